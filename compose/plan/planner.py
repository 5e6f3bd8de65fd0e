"""The capacity planner: size a vLLM deployment from the model's own facts.

`plan(PlanRequest(...))` follows what vLLM's V1 engine does at start-up
(vllm/v1/worker/gpu_worker.py `determine_available_memory`, vllm/v1/core/
kv_cache_utils.py) and derives every number our manifests use: tensor
parallelism, KV cache, batch and queue limits, start-up and drain budgets,
resources and autoscaling thresholds. Each output has a one-line explanation.

Facts quoted here come from ../shared/docs/vllm-facts.md (cited as "facts §N")
and the sources named next to each constant. Fitted constants say what they
were fitted on; docs/planner.md shows the derivations.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass, field

from compose.core.errors import DoesNotFit, InvalidInput
from compose.plan import catalog
from compose.plan import storage as storage_mod
from compose.plan.catalog import DTYPE_BYTES, GPU, Architecture, ResolvedModel
from compose.plan.kvcache import BLOCK_SIZE, KVLayout, attention_token_bytes, cdiv, kv_layout
from compose.plan.weights import (
    MXFP4_PADDING, VOCAB_PADDING, WeightTally, local_experts, padded_vocab, param_count, weight_tally,
)

__all__ = [  # re-exported for callers that used the planner's weight and KV helpers
    "BLOCK_SIZE", "KVLayout", "VOCAB_PADDING", "WeightTally", "attention_token_bytes", "kv_layout",
    "padded_vocab", "param_count", "weight_tally",
]

VLLM_VERSION = "0.33.0"
GIB = 1 << 30

# ---------------------------------------------------------------- vLLM behaviour
V1_DEFAULT_SINCE = (0, 8, 0)  # V1 engine default from 0.8.0; V0 removed by 0.11 (facts §5)
CUDA_GRAPH_PROFILING_SINCE = (0, 21, 0)  # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 (facts §4, §5)
SHUTDOWN_TIMEOUT_SINCE = (0, 18, 0)  # --shutdown-timeout, vllm-project/vllm#36666 (facts §3)
# Behaviour read in the pinned 0.33.0 source that the calibration logs (vLLM 0.10-0.11)
# predate. The first release carrying each was not established (no git history was
# available), so each is gated at 0.33.0, the release that was read:
# - config/cache.py CacheConfig.gpu_memory_utilization default 0.92 (0.9 before);
# - config/vllm.py max_in_flight_tokens: sliding-window and chunked-local admission
#   reserves max_concurrent_batches (2 with async scheduling) x max_num_batched_tokens
#   (vllm-project/vllm#47728, merged 2026-07-06); 1 x before;
# - Model Runner V2 (config/vllm.py use_v2_model_runner) keeps a persistent
#   output_bin_counts int32 [max_num_seqs, vocab] + prompt_bin_mask
#   (v1/worker/gpu/sample/penalties.py PenaltiesState), and the fused-MoE workspace is
#   a persistent process-wide buffer (v1/worker/workspace.py,
#   fused_moe/modular_kernel.py _allocate_buffers), so both stack on the sampler peak;
# - hybrid Mamba models run with prefix caching, so mamba_cache_mode "align"
#   (models/config.py MambaModelConfig.verify_and_update_config);
# - "GPU KV cache size" of a hybrid model is int(max concurrency x max_model_len)
#   (v1/core/kv_cache_utils.py get_kv_cache_capacity); 0.11.1 and 0.19.0 log
#   num_blocks // groups x block_size instead.
V033_BEHAVIOUR_SINCE = (0, 33, 0)
# Behaviour whose first release was bracketed by reading the released wheels
# (0.9.2, 0.11.0, 0.11.1, 0.15.0, 0.16.0, 0.17.0, 0.18.0, 0.19.0):
# - v1/worker/gpu_worker.py Worker.init_device takes the init memory snapshot before
#   init_worker_distributed_environment up to 0.10.x (read in 0.9.2; the 0.10.2 logs
#   show ~0.6 GiB used at the snapshot), after it from 0.11.0 (read in 0.11.0 and
#   0.11.1; vllm-project/vllm#25359). Before, the TP group's NCCL communicator, its
#   warm-up all-reduce, the custom all-reduce IPC buffers and a KV connector's
#   worker init are charged to the KV budget (see NON_TORCH_GIB_MULTI_BEFORE_0_11).
COMM_SETUP_AFTER_SNAPSHOT_SINCE = (0, 11, 0)
# - the native sampler's top-k/top-p runs a Triton kernel in place for >= 8 rows
#   (v1/sample/ops/topk_topp_sampler.py apply_top_k_top_p -> topk_topp_triton.py):
#   absent in 0.16.0, present in 0.17.0; before, it sorted the logits. 0.33.0 samples
#   in Model Runner V2 (v1/worker/gpu/sample/sampler.py), whose warm-up no public log
#   measures: it keeps the older native figure (see SAMPLER_FP32_COPIES).
TRITON_SAMPLER_SINCE = (0, 17, 0)
# - determine_available_memory profiles the CUDA graphs inside memory_profiling
#   (absent in 0.17.0, present in 0.18.0 and 0.19.0), so what graph capture leaves
#   outside torch counts as non-torch memory (NON_TORCH_GIB_GRAPH_PROFILE). 0.33.0
#   profiles them after memory_profiling again; the release that moved it back was
#   not established, so the figures apply up to 0.21.0, where the graph estimate
#   starts being subtracted (below).
GRAPH_PROFILE_IN_NON_TORCH = ((0, 18, 0), (0, 21, 0))
# - chunked-local attention (Llama 4) in the hybrid allocator:
#   VLLM_ALLOW_CHUNKED_LOCAL_ATTN_WITH_HYBRID_KV_CACHE defaults to 0 in 0.11.1
#   (vllm-project/vllm#21761, July 2025, had turned it off: chunked layers sized as
#   full attention) and to 1 in 0.18.0, 0.19.0 and 0.33.0 (envs.py); 0.12-0.17 were
#   not read and are modelled as off.
CHUNKED_HYBRID_SINCE = (0, 18, 0)
# - fused-MoE experts take their workspaces from a process-wide cached buffer
#   (v1/worker/workspace.py WorkspaceManager, fused_moe/modular_kernel.py
#   _allocate_buffers): absent in 0.11.1, present in 0.15.0 (0.12-0.14 not read), so the
#   workspace stays allocated through the sampler warm-up. The v0.19.0 logs show it for
#   Triton experts (Qwen3-30B-A3B, Mixtral, DeepSeek-V2-Lite: activation = sampler +
#   workspace) but not for gpt-oss's MXFP4 experts (2.87 GiB = sampler + hidden
#   buffers at TP1 and TP2; gpt_oss_triton_kernels_moe.py allocates inside the kernel),
#   so MXFP4 experts keep the transient treatment until 0.33.
MOE_WORKSPACE_CACHED_SINCE = (0, 15, 0)
DEFAULT_UTILIZATION = 0.92  # 0.33.0 config/cache.py
DEFAULT_UTILIZATION_BEFORE = 0.9
V0_MAX_NUM_SEQS = 256  # V0 EngineArgs default
V0_MIN_BATCHED_TOKENS = 2048  # V0 without chunked prefill: max(max_model_len, 2048)
KV_CACHE_DTYPES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}

# ---------------------------------------------------------------- memory model (GiB)
# Non-torch memory (NCCL, cuBLAS workspaces): 0.13 GiB at TP1, 0.55 at TP2 on H100,
# llm-d-benchmark config_explorer/empirical-vllm-memory-results.md (facts §5; vLLM
# 0.11.1-0.14, snapshot after NCCL init).
NON_TORCH_GIB_TP1 = 0.13
NON_TORCH_GIB_MULTI = 0.55
# Before 0.11.0 the snapshot precedes the distributed init (COMM_SETUP_AFTER_SNAPSHOT_SINCE):
# 1.84 GiB at TP4, fitted on the one pre-0.11 breakdown at TP > 1 on an H100 that no
# benchmark case uses (vllm-project/vllm#24881: vllm/vllm-openai:v0.10.2, Qwen3-Next,
# TP4, "Actual usage is 37.99 GiB for weight, 4.71 GiB for peak activation, 1.84 GiB
# for non-torch memory"; it runs MTP speculative decoding, which the planner does not
# model, so it is a fitting source, not a case). The size is NCCL's (channels x
# per-protocol buffers, NVLS above 2 GPUs: NVIDIA/nccl src/transport/nvls.cc), which
# depends on the topology, not on the model, so one figure serves TP >= 2; a v0.10.2
# TP2 log on an H200 (not a benchmark case: its URL could not be resolved) shows 1.38
# GiB, so TP2 is charged ~0.45 GiB too much.
NON_TORCH_GIB_MULTI_BEFORE_0_11 = 1.84
# 0.18-0.20 (GRAPH_PROFILE_IN_NON_TORCH): fitted on Llama-3.1-8B's v0.19.0 H100 logs
# (llm-d-incubation/llm-d-planner accuracy sweep: "non-torch forward increase memory"
# 0.25 GiB at TP1, 2.07 at TP2, 2.13 at TP4); every other model in that sweep
# (Qwen2.5, Gemma, Llama 3.3/4, Mixtral, gpt-oss, Kimi) logs 0.24-0.27 / 2.06-2.10 /
# 2.13-2.21, and the 0.15-0.18 version sweep of Qwen3-14B (0.13 up to 0.17, 0.25 in
# 0.18) dates the step.
NON_TORCH_GIB_GRAPH_PROFILE = {1: 0.25, 2: 2.07, 4: 2.13}
# V1 activation peak = base + a x (hidden-state buffers) + max(sampler warm-up, MLP).
# Fitted on three llm-d-benchmark logs (vLLM 0.11, H100, 8192 batched tokens, 1024
# seqs): Llama-3.1-8B 4.76, Llama-3.3-70B-FP8 4.84, Qwen3-0.6B 5.56 GiB. Qwen3-32B
# (5.64 at TP1 and TP2) and gpt-oss-20b (7.38) are held out and reproduced.
ACTIVATION_BASE_GIB = 0.022
ACTIVATION_HIDDEN_BUFFERS = 1.28  # x max_num_batched_tokens x hidden_size x 2 bytes
SAMPLER_FP32_COPIES = 9.52  # x max_num_seqs x vocab_size x 4 bytes (logits, sort, probs)
# FlashInfer's top-k/top-p kernel samples without sorting: the warm-up then holds the
# model-dtype logits, their fp32 copy and the fp32 probabilities, 2 + 4 + 4 bytes per
# logit (v1/sample/sampler.py forward, ops/topk_topp_sampler.py forward_cuda). Derived,
# not fitted; the Mistral-Small-3.2 log (vLLM 0.11.0 image) is its check. vLLM V1 used
# it by default when FlashInfer was installed (vllm-project/vllm#11394) until
# vllm-project/vllm#26859 (merged 2025-10-15, first released in 0.11.1) turned it off.
SAMPLER_FLASHINFER_BYTES = 10
FLASHINFER_SAMPLER_UNTIL = (0, 11, 0)
# 0.17+ (TRITON_SAMPLER_SINCE): the sampler warm-up keeps the model-dtype logits (held
# by _dummy_sampler_run), their fp32 copy (Sampler.forward), the fp32 probabilities
# (TopKTopPSampler.forward_native) and random_sample's exponential noise `q`: 2 + 4 +
# 4 + 4 bytes per logit; top-k/top-p masks the fp32 logits in place and adds one
# cached fp32 vocab row per program, min(SMs, rows) programs (topk_topp_triton.py
# apply_top_k_top_p_triton). Derived, not fitted: Qwen3-14B's 0.17 log (2.23 GiB) and
# Llama-3.1-8B's 0.19 log (1.89 GiB) are reproduced to 0.01 GiB.
SAMPLER_TRITON_BYTES = 14
SM_COUNT_ASSUMED = 132  # H100 SXM's, for GPUs whose SM count the catalog does not give
# CUDA-graph pool estimate (subtracted since v0.21): 0.36 GiB for 16 graphs in a
# vLLM 0.27.1 log (gpustack/runner#251) -> 22.5 MiB per graph; capped at 1.5 GiB,
# the top of the 0.3-1.5 GiB range in facts §5 (vllm-project/vllm#21489: 1.3 GiB).
CUDA_GRAPH_GIB_PER_GRAPH = 0.0225
CUDA_GRAPH_GIB_CAP = 1.5
# vllm/config/vllm.py VllmConfig._set_cudagraph_sizes: the default capture ceiling is
# 1024 on the SM100 family (B200, GB200), 512 elsewhere.
MAX_CUDA_GRAPH_CAPTURE_SIZE = 512
MAX_CUDA_GRAPH_CAPTURE_SIZE_SM100 = 1024
# MLA's profile run allocates the worst-case chunked-prefill context buffer
# (layers/attention/mla_attention.py, determine_chunked_prefill_workspace_size):
# min(max(8 x max_model_len, 4 x max_num_seqs x block), 64K) rows x heads/TP x (nope + v) x 2 B.
MLA_PREFILL_WORKSPACE_ROWS = 64 * 1024
# Multimodal profiling (multimodal/encoder_budget.py MultiModalBudget): the default
# --limit-mm-per-prompt is 999 items per modality (config/multimodal.py).
MM_DEFAULT_LIMIT_PER_PROMPT = 999
# Vision-encoder forward peak per patch token: 4 hidden-sized and 2 intermediate-sized
# (per TP shard) buffers in 16 bits. An estimate, not fitted: no public log isolates it;
# it only matters where it exceeds the sampler warm-up.
VIT_HIDDEN_BUFFERS = 4
VIT_INTERMEDIATE_BUFFERS = 2

# ---------------------------------------------------------------- planner policy
# Default TP must hold one max_model_len request plus this many request-profile
# requests, so one long request cannot stall all other traffic.
HEADROOM_REQUESTS = 4
# Roofline efficiencies (assumptions, stated as such in every explanation).
MEMORY_BANDWIDTH_EFFICIENCY = 0.75
PREFILL_COMPUTE_EFFICIENCY = 0.5

# ---------------------------------------------------------------- start-up (facts §6)
LOAD_GBPS_PER_PROCESS = 1.1  # default safetensors loader, Qwen3-30B-A3B on 1xH200 (InstantTensor docs page)
LOAD_GBPS_PER_NODE = 2.0  # 405B-FP8 on 8xH100 ~2 GB/s aggregate (vllm-project/vllm#6746)
DOWNLOAD_GBPS = 0.5  # half the ~1.15 GB/s HF download in llm-d-benchmark's Mistral-Small-24B log
COMPILE_SECONDS = 90  # torch.compile, cold: 20-90 s (facts §6)
CUDA_GRAPH_CAPTURE_SECONDS = 60  # 5-60 s (facts §6, vllm-project/vllm#19824)
P2P_CHECK_SECONDS = 60  # TP > 1, unless VLLM_SKIP_P2P_CHECK=1 (vllm-project/vllm#19824)
STARTUP_MARGIN = 1.5  # facts §6 rule of thumb: +50%
STARTUP_PROBE_PERIOD_SECONDS = 10  # KServe llmisvc and production-stack use 10 s (anchors.md)
# For checkpoints over 100 GiB the probe allows at least what production-stack
# (15 + 10 s x 60 = 615 s) and KServe's llmisvc (10 x 60 = 600 s) allow (anchors.md).
STARTUP_FLOOR_SECONDS = 615
STARTUP_FLOOR_ABOVE_GIB = 100
PROGRESS_DEADLINE_FLOOR_SECONDS = 1200  # production-stack progressDeadlineSeconds (anchors.md)
SCALE_DOWN_STABILIZATION_FLOOR_SECONDS = 300  # llm-d HPA stabilization 300 s (anchors.md)

# ---------------------------------------------------------------- drain (facts §3)
PRESTOP_SECONDS = 15  # KServe kserve/kserve#5496 and llm-d graceful-shutdown component
DRAIN_BUFFER_SECONDS = 15  # llm-d: TGPS 75 = 15 preStop + 45 shutdown + 15 buffer
SHUTDOWN_TIMEOUT_FLOOR_SECONDS = 30  # llm-d default --shutdown-timeout (llm-d/llm-d#1653)
DRAIN_MARGIN = 1.5  # GIE manifest: (worst-case drain + preStop) x 1.5
MIN_SPOT_NOTICE_SECONDS = 3  # a notice shorter than this is a typo

# ---------------------------------------------------------------- pod resources (anchors.md)
SHM_GIB_TP1 = 2  # vLLM docs deployment example: 2Gi /dev/shm
SHM_GIB_MULTI_GPU = 20  # production-stack and llm-d: 20Gi when TP > 1 (NCCL)
HOST_GIB_PER_GPU = 8  # llm-d Qwen3-32B TP2 requests 96Gi = 61 GiB weights + 20Gi shm + 2 x ~7.5
CPU_PER_GPU = 4  # llm-d Qwen3-32B TP2 requests 8 CPU for 2 GPUs
PVC_MARGIN = 1.25  # tokenizer/config files, filesystem overhead, partial downloads
PVC_FLOOR_GIB = 10

# ---------------------------------------------------------------- input bounds
# Every number a request takes has an upper bound far above any real deployment, so
# a typo or a hostile value is one line and exit 2, never a hang or a manifest that
# cannot run. `compose plan --help` and `compose new-model --help` state them.
MAX_GPUS_PER_NODE = 64  # --gpus-per-node, --tensor-parallel-size
MAX_TOKENS = 1 << 24  # --max-model-len, --prompt-tokens, --output-tokens, --max-output-tokens, --max-num-batched-tokens
MAX_NUM_SEQS = 1 << 16  # --max-num-seqs
MAX_GPU_MEMORY_GIB = 1024.0  # --gpu-memory-gib
MAX_TARGET_RPS = 100_000.0  # --target-rps
MAX_REPLICAS = 1000  # KEDA maxReplicaCount of one overlay, given (--replicas) or derived from --target-rps
MAX_SPOT_NOTICE_SECONDS = 3600  # --spot-notice-seconds
MAX_VERSION_LENGTH = 64  # --vllm-version
MIN_GPU_MEMORY_UTILIZATION = 0.05

# Request profile defaults: `vllm bench serve` random dataset input length 1024;
# 256 output tokens, twice its 128, closer to chat answers. output_tokens is the
# typical request profile (capacity planning: max_num_seqs, KEDA, the drain), not a
# limit: answers are capped only by max_output_tokens (--max-output-tokens, vLLM's
# --override-generation-config max_new_tokens); unset, vLLM allows max_model_len - prompt.
DEFAULT_PROMPT_TOKENS = 1024
DEFAULT_OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class PlanRequest:
    """What to plan. `gpu` names a catalog GPU; `gpu_memory_gib` describes another one."""

    model: str
    gpu: str | None = None
    gpu_memory_gib: float | None = None
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float | None = None  # None: the modelled vLLM version's default
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    gpus_per_node: int | None = None
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    output_tokens: int = DEFAULT_OUTPUT_TOKENS
    # The most output tokens vLLM generates for one request (--override-generation-config
    # max_new_tokens), 1 to max_model_len. None: not capped, up to max_model_len - prompt.
    max_output_tokens: int | None = None
    target_rps: float | None = None
    vllm_version: str = VLLM_VERSION
    spot_notice_seconds: int | None = None
    max_num_seqs: int | None = None  # None: vLLM's default, capped by the KV cache for the profile
    enable_expert_parallel: bool | None = None  # None: only when TP sharding of the experts is invalid
    # Environment overrides, for reproducing a log whose environment differs from vLLM's
    # image (not CLI options): the MXFP4 MoE backend the log names, and whether the
    # sampler warm-up ran FlashInfer's kernel (None: what the version's image does).
    mxfp4_backend: str | None = None
    flashinfer_sampler: bool | None = None
    storage: str | None = None  # where the weights are read from (compose/plan/storage.py); None: local NVMe
    concurrent_loads: int = 1  # replicas loading from that storage at once (a first deploy: the minimum)
    hf_repo: str | None = None  # None: the catalog's, or the config's _name_or_path when it is org/name
    revision: str | None = None  # None: the catalog's pinned revision (a local config has none)


@dataclass
class Plan:
    """The planner's answer. `to_dict()` is what `--format json` prints."""

    request: PlanRequest
    model: str
    slug: str
    hf_repo: str | None
    revision: str | None
    revision_pinned: bool
    gated: bool
    served_model_name: str
    model_dir: str
    vllm_version: str
    engine: str
    gpu: str
    gpu_memory_gib: float
    gpus_per_node: int
    tensor_parallel_size: int
    gpus_per_replica: int
    enable_expert_parallel: bool
    gpu_memory_utilization: float
    dtype: str
    kv_cache_dtype: str
    block_size: int
    weights_gib_total: float
    weights_gib_per_gpu: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_cache_gib_per_gpu: float
    kv_bytes_per_token_per_gpu: int
    kv_layer_groups: list
    profile_terms_gib: dict
    kv_cache_tokens: int
    max_model_len: int
    max_output_tokens: int  # the longest answer vLLM allows: --max-output-tokens, else max_model_len - 1
    max_concurrency_at_max_model_len: float
    max_num_seqs: int
    max_num_batched_tokens: int
    fits: bool
    reason: str
    decode_tokens_per_second: float
    replica_throughput_rps: float
    replicas_for_target_rps: int
    max_num_queued_reqs: int
    keda_queue_threshold: int
    keda_activation_threshold: int
    scale_down_stabilization_seconds: int
    load_seconds_estimate: int
    storage: str
    load_read_mib_per_second: int
    download_seconds_estimate: int
    startup_budget_seconds: int
    startup_probe_period_seconds: int
    startup_probe_failure_threshold: int
    progress_deadline_seconds: int
    drain_seconds_estimate: int
    prestop_seconds: int
    shutdown_timeout_seconds: int
    termination_grace_period_seconds: int
    shm_size_gib: int
    memory_request_gib: int
    memory_limit_gib: int
    cpu_request: int
    pvc_size_gib: int
    explanations: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict:
        """JSON-able, keys sorted; the inputs are under "request"."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        out["request"] = dict(sorted(dataclasses.asdict(self.request).items()))
        out["explanations"] = dict(sorted(self.explanations.items()))
        return dict(sorted(out.items()))


# =============================================================== entry points


def plan(req: PlanRequest) -> Plan:
    """Size a deployment. Bad input raises InvalidInput; a model that does not fit
    returns a Plan with fits=False and a reason naming the way out."""
    _validate(req)
    ctx = _context(req)
    if req.tensor_parallel_size is not None:
        sizing = _size_explicit(ctx, req.tensor_parallel_size)
        chosen_by = "given by --tensor-parallel-size"
    else:
        sizing, chosen_by = _choose_tp(ctx)
    return _build_plan(ctx, sizing, chosen_by)


def plan_or_raise(req: PlanRequest) -> Plan:
    """Like plan(), but a plan that does not fit raises DoesNotFit(reason, plan=...)."""
    result = plan(req)
    if not result.fits:
        raise DoesNotFit(result.reason, plan=result)
    return result


# =============================================================== validation and context


def _validate(req: PlanRequest) -> None:
    catalog.check_model_ref(req.model)
    if req.gpu and req.gpu_memory_gib is not None:
        raise InvalidInput("give --gpu or --gpu-memory-gib, not both")
    if not req.gpu and req.gpu_memory_gib is None:
        raise InvalidInput("give --gpu NAME (see `compose gpus`) or --gpu-memory-gib F for another GPU")
    _bounded("--gpu-memory-gib", req.gpu_memory_gib, MAX_GPU_MEMORY_GIB, number=True)
    _bounded("--tensor-parallel-size", req.tensor_parallel_size, MAX_GPUS_PER_NODE)
    _bounded("--max-model-len", req.max_model_len, MAX_TOKENS)
    _bounded("--max-num-batched-tokens", req.max_num_batched_tokens, MAX_TOKENS)
    _bounded("--max-num-seqs", req.max_num_seqs, MAX_NUM_SEQS)
    _bounded("--gpus-per-node", req.gpus_per_node, MAX_GPUS_PER_NODE)
    _bounded("--prompt-tokens", req.prompt_tokens, MAX_TOKENS)
    _bounded("--output-tokens", req.output_tokens, MAX_TOKENS)
    if req.max_output_tokens is not None:
        _bounded("--max-output-tokens", req.max_output_tokens, MAX_TOKENS)
    _bounded("--target-rps", req.target_rps, MAX_TARGET_RPS, number=True)
    util = req.gpu_memory_utilization
    if util is not None and (isinstance(util, bool) or not isinstance(util, (int, float)) or not math.isfinite(util)
                             or not MIN_GPU_MEMORY_UTILIZATION <= util <= 1):
        raise InvalidInput(
            f"--gpu-memory-utilization must be between {MIN_GPU_MEMORY_UTILIZATION} and 1, got {util!r}"
        )
    if req.enable_expert_parallel not in (None, True, False):
        raise InvalidInput(f"enable_expert_parallel must be true, false or unset, got {req.enable_expert_parallel!r}")
    if req.flashinfer_sampler not in (None, True, False):
        raise InvalidInput(f"flashinfer_sampler must be true, false or unset, got {req.flashinfer_sampler!r}")
    if req.mxfp4_backend is not None and req.mxfp4_backend not in MXFP4_PADDING:
        raise InvalidInput(f"mxfp4_backend must be one of {', '.join(MXFP4_PADDING)}, got {req.mxfp4_backend!r}")
    _bounded("--concurrent-loads", req.concurrent_loads, MAX_REPLICAS)
    if req.storage is not None:
        storage_mod.get(req.storage)
    if req.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InvalidInput(f"--kv-cache-dtype must be one of {', '.join(KV_CACHE_DTYPES)}, got {req.kv_cache_dtype!r}")
    if req.spot_notice_seconds is not None:
        _bounded("--spot-notice-seconds", req.spot_notice_seconds, MAX_SPOT_NOTICE_SECONDS)
        if req.spot_notice_seconds < MIN_SPOT_NOTICE_SECONDS:
            raise InvalidInput(
                f"spot notice must be at least {MIN_SPOT_NOTICE_SECONDS} seconds, got {req.spot_notice_seconds}"
            )
    parse_version(req.vllm_version)
    if req.hf_repo is not None:
        catalog.check_hub_id(req.hf_repo)
    if req.revision is not None:
        catalog.check_revision(req.revision)


def _bounded(flag: str, value, upper: float, number: bool = False) -> None:
    """None, or a positive int (a finite positive number with `number`) up to `upper`."""
    if value is None:
        return
    ok_type = isinstance(value, (int, float)) if number else isinstance(value, int)
    if isinstance(value, bool) or not ok_type or (number and not math.isfinite(value)) or not value > 0:
        kind = "a positive number" if number else "a positive integer"
        raise InvalidInput(f"{flag} must be {kind}, got {value!r}")
    if value > upper:
        raise InvalidInput(f"{flag} must be at most {upper:g}, got {value:g}")


# X.Y[.Z] and any suffix of letters, digits, '.', '+', '-'. Possessive quantifiers and a
# length cap keep it linear: the old pattern backtracked exponentially on `0.1.aaaa…!`.
_VERSION = re.compile(r"v?+(\d++)\.(\d++)(?:\.(\d++))?+[\w.+-]*+")


def parse_version(text: str) -> tuple[int, int, int]:
    """'0.33.0', 'v0.11', '0.6.4.post1' -> (major, minor, patch)."""
    raw = str(text).strip()
    match = _VERSION.fullmatch(raw) if len(raw) <= MAX_VERSION_LENGTH else None
    if not match:
        shown = raw if len(raw) <= 40 else raw[:37] + "..."
        raise InvalidInput(f"invalid vLLM version {shown!r}; use X.Y.Z, e.g. {VLLM_VERSION}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


@dataclass(frozen=True)
class Engine:
    """The pinned vLLM version's memory behaviour."""

    version: str
    v1: bool
    subtracts_cuda_graphs: bool
    has_shutdown_timeout: bool
    v033: bool = False  # the 0.33.0 behaviours listed at V033_BEHAVIOUR_SINCE
    flashinfer_sampler: bool = False  # V1 up to 0.11.0 sampled with FlashInfer (see SAMPLER_FLASHINFER_BYTES)
    comm_setup_in_budget: bool = False  # V1 before 0.11.0: NCCL/custom-AR/connector init after the snapshot
    triton_sampler: bool = False  # 0.17-0.32: in-place Triton top-k/top-p (SAMPLER_TRITON_BYTES)
    graph_profile_in_non_torch: bool = False  # 0.18-0.20: NON_TORCH_GIB_GRAPH_PROFILE
    chunked_hybrid: bool = False  # 0.18+: chunked-local layers keep their own groups (CHUNKED_HYBRID_SINCE)
    moe_workspace_cached: bool = False  # 0.15+: MOE_WORKSPACE_CACHED_SINCE

    @property
    def label(self) -> str:
        return "V1" if self.v1 else "V0"

    @property
    def default_utilization(self) -> float:
        return DEFAULT_UTILIZATION if self.v033 else DEFAULT_UTILIZATION_BEFORE

    @property
    def in_flight_batches(self) -> int:
        """Batches a sliding/chunked layer reserves for: 2 with async scheduling (0.33)."""
        return 2 if self.v033 else 1

    @property
    def persistent_profile_buffers(self) -> bool:
        """MRV2 penalties state and the persistent fused-MoE workspace (0.33)."""
        return self.v033

    @property
    def mamba_align(self) -> bool:
        return self.v033


def engine_for(version: str) -> Engine:
    parsed = parse_version(version)
    return Engine(
        version=version,
        v1=parsed >= V1_DEFAULT_SINCE,
        subtracts_cuda_graphs=parsed >= CUDA_GRAPH_PROFILING_SINCE,
        has_shutdown_timeout=parsed >= SHUTDOWN_TIMEOUT_SINCE,
        v033=parsed >= V033_BEHAVIOUR_SINCE,
        flashinfer_sampler=V1_DEFAULT_SINCE <= parsed <= FLASHINFER_SAMPLER_UNTIL,
        comm_setup_in_budget=V1_DEFAULT_SINCE <= parsed < COMM_SETUP_AFTER_SNAPSHOT_SINCE,
        triton_sampler=TRITON_SAMPLER_SINCE <= parsed < V033_BEHAVIOUR_SINCE,
        graph_profile_in_non_torch=GRAPH_PROFILE_IN_NON_TORCH[0] <= parsed < GRAPH_PROFILE_IN_NON_TORCH[1],
        chunked_hybrid=parsed >= CHUNKED_HYBRID_SINCE,
        moe_workspace_cached=parsed >= MOE_WORKSPACE_CACHED_SINCE,
    )


@dataclass(frozen=True)
class _Context:
    """Everything fixed before the tensor-parallel size is chosen."""

    req: PlanRequest
    model: ResolvedModel
    gpu: GPU
    engine: Engine
    gpus_per_node: int
    max_model_len: int
    kv_dtype_bytes: int
    dtype: str
    utilization: float

    @property
    def arch(self) -> Architecture:
        return self.model.arch

    @property
    def profile_tokens(self) -> int:
        return self.req.prompt_tokens + self.req.output_tokens

    @property
    def requested_gib(self) -> float:
        return self.gpu.memory_gib * self.utilization

    @property
    def sm100(self) -> bool:
        """Data-centre Blackwell (compute capability 10.x: B200, GB200)."""
        return (self.gpu.compute_capability or "").startswith("10.")

    @property
    def mxfp4_backend(self) -> str:
        """The MoE backend vLLM 0.33 picks for gpt-oss MXFP4 experts on this GPU
        (fused_moe/oracle/mxfp4.py _get_priority_backends_for_gpt_oss)."""
        if self.req.mxfp4_backend:
            return self.req.mxfp4_backend
        if self.gpu.vendor == "amd":
            return "aiter"
        cc = self.gpu.compute_capability or ""
        if cc.startswith("10."):
            return "trtllm"
        if cc.startswith("9."):
            return "triton"
        return "marlin"  # Ampere, Ada, and SM120 (Triton moved behind Marlin there)

    @property
    def gdn_flashinfer(self) -> bool:
        """FlashInfer's GDN prefill kernel (qwen_gdn_linear_attn.py _resolve_gdn_prefill_backend):
        Hopper, or Blackwell with head_k_dim 128 (assuming the image's CUDA >= 13)."""
        cc = self.gpu.compute_capability or ""
        g = self.arch.linear_attention
        return self.gpu.vendor == "nvidia" and (cc.startswith("9.") or (
            cc[:3] in ("10.", "12.") and g is not None and g.key_head_dim == 128))


def _context(req: PlanRequest) -> _Context:
    model = catalog.with_identity(catalog.resolve_model(req.model), req.hf_repo, req.revision)
    gpu = catalog.get_gpu(req.gpu) if req.gpu else catalog.custom_gpu(req.gpu_memory_gib)
    arch = model.arch
    max_model_len = req.max_model_len or arch.context_length
    if max_model_len > arch.context_length:
        raise InvalidInput(
            f"--max-model-len {max_model_len} exceeds {model.slug}'s context length {arch.context_length}; "
            "vLLM refuses it, use a value up to the context length"
        )
    if req.max_num_batched_tokens and req.max_num_seqs and req.max_num_batched_tokens < req.max_num_seqs:
        raise InvalidInput(
            f"--max-num-batched-tokens {req.max_num_batched_tokens} must be at least --max-num-seqs {req.max_num_seqs} "
            "(vLLM's SchedulerConfig refuses it)"
        )
    if req.prompt_tokens + req.output_tokens > max_model_len:
        raise InvalidInput(
            f"--prompt-tokens + --output-tokens ({req.prompt_tokens + req.output_tokens}) exceed "
            f"--max-model-len {max_model_len}; lower them or raise --max-model-len"
        )
    if req.max_output_tokens is not None and req.max_output_tokens > max_model_len:
        raise InvalidInput(
            f"--max-output-tokens {req.max_output_tokens} exceeds --max-model-len {max_model_len}; "
            f"use 1 to {max_model_len} (vLLM never generates more than max_model_len - prompt), or leave it unset"
        )
    engine = engine_for(req.vllm_version)
    kv_fp8 = arch.quantization is not None and arch.quantization.kv_fp8  # "auto" follows the checkpoint
    return _Context(
        req=req, model=model, gpu=gpu, engine=engine,
        gpus_per_node=req.gpus_per_node or gpu.gpus_per_node, max_model_len=max_model_len,
        kv_dtype_bytes=KV_CACHE_DTYPES[req.kv_cache_dtype] or (1 if kv_fp8 else DTYPE_BYTES),
        dtype=arch.dtype if gpu.bf16 else "float16",
        utilization=float(req.gpu_memory_utilization or engine.default_utilization),
    )


# =============================================================== tensor parallelism


def tp_problem(arch: Architecture, tp: int, ep: bool = False) -> str | None:
    """Why vLLM would refuse this tensor-parallel size, or None.

    `ep`: experts dealt out whole (--enable-expert-parallel), so only the dense
    layers, shared experts and attention must split evenly.
    """
    if arch.num_heads % tp:
        return f"tensor parallel size {tp} does not divide the {arch.num_heads} attention heads"
    kv = arch.num_kv_heads
    if arch.mla is None and ((tp >= kv and tp % kv) or (tp < kv and kv % tp)):
        return f"tensor parallel size {tp} and the {kv} KV heads do not divide one another"
    g = arch.linear_attention
    if g is not None and (g.num_value_heads % tp or g.num_key_heads % tp):
        return (f"tensor parallel size {tp} does not divide the {g.num_key_heads} key / "
                f"{g.num_value_heads} value heads of the linear-attention layers")
    sizes = []  # (what, size, column-or-row partition checked against FP8 blocks)
    if len(arch.moe_layers) < arch.num_layers:
        sizes.append(("intermediate_size", arch.intermediate_size))
    if arch.is_moe and not ep:
        sizes.append(("moe_intermediate_size", arch.moe_intermediate_size))
    if arch.shared_expert_intermediate_size:
        sizes.append(("shared_expert_intermediate_size", arch.shared_expert_intermediate_size))
    q = arch.quantization
    for key, size in sizes:
        if size % tp:
            return f"tensor parallel size {tp} does not divide {key} {size}"
        if q and q.scale == "group" and q.group_size and (size // tp) % q.group_size:
            return f"{size}/{tp} = {size // tp} input channels per GPU is not a multiple of the quantization group {q.group_size}"
    if q and q.scale == "block" and tp > 1:
        return _fp8_block_problem(arch, tp, q.group_size, sizes, ep)
    return None


def _fp8_block_problem(arch: Architecture, tp: int, block: int, sizes: list, ep: bool) -> str | None:
    """Block-FP8 needs whole 128-blocks per GPU in every split dimension
    (quantization/utils/fp8_utils.py validate_fp8_block_shape, validate_fp8_block_shape_moe)."""
    for key, size in sizes:
        if (size // tp) % block:
            return f"FP8 {block}x{block} blocks: {key} {size}/{tp} = {size // tp} per GPU is not a multiple of {block}"
    if arch.mla is not None:
        m = arch.mla
        parts = {"q_b_proj": arch.num_heads // tp * (m.qk_nope_head_dim + m.qk_rope_head_dim),
                 "kv_b_proj": arch.num_heads // tp * (m.qk_nope_head_dim + m.v_head_dim),
                 "o_proj": arch.num_heads // tp * m.v_head_dim}
    else:
        parts = {"q_proj": arch.num_heads // tp * arch.head_dim, "o_proj": arch.num_heads // tp * arch.head_dim}
        if tp <= arch.num_kv_heads:
            parts["k_proj"] = arch.num_kv_heads // tp * arch.head_dim
    for name, size in parts.items():
        if size % block:
            return f"FP8 {block}x{block} blocks: {name} has {size} channels per GPU at TP {tp}, not a multiple of {block}"
    return None


def valid_tp_sizes(arch: Architecture, limit: int) -> list[int]:
    """TP sizes vLLM accepts, with expert parallelism where TP sharding of the experts fails."""
    return [tp for tp in range(1, limit + 1) if _parallelism(arch, tp, None) is not None]


def _parallelism(arch: Architecture, tp: int, ep: bool | None) -> bool | None:
    """The expert-parallel setting to run `tp` with (None: neither works).

    `ep` None: TP-sharded experts when valid, else expert parallelism for MoE models.
    """
    if ep is None:
        if tp_problem(arch, tp) is None:
            return False
        return True if arch.is_moe and tp > 1 and tp_problem(arch, tp, ep=True) is None else None
    if ep and not arch.is_moe:
        return None
    return ep if tp_problem(arch, tp, ep=ep) is None else None


# =============================================================== memory and KV capacity


@dataclass(frozen=True)
class ProfileTerms:
    """What vLLM's profile run adds to the weights, in GiB, by name.

    `persistent` terms stay allocated (they stack on the transient peak);
    the transient peak is the largest of the others.
    """

    hidden_buffers: float  # fitted: base + 1.28 x batched tokens x hidden x 2 B
    sampler_warmup: float  # fitted: 9.52 fp32 copies of max_num_seqs x vocab logits
    mlp_intermediate: float  # dense MLP gate/up/activation of the batched tokens
    fused_moe_workspace: float  # Triton fused-MoE workspaces (cached, so persistent, from 0.15)
    mla_prefill_workspace: float  # MLA's worst-case chunked-prefill context buffer
    mm_encoder_peak: float  # vision-encoder forward over the profiled images
    mm_encoder_outputs: float  # encoder cache: the images' embeddings, held through the decoder run
    penalties_state: float  # 0.33 Model Runner V2: output_bin_counts + prompt_bin_mask
    moe_persistent: bool

    @property
    def transient_peak(self) -> float:
        candidates = [self.sampler_warmup, self.mlp_intermediate, self.mla_prefill_workspace, self.mm_encoder_peak]
        if not self.moe_persistent:
            candidates.append(self.fused_moe_workspace)
        return max(candidates)

    @property
    def total(self) -> float:
        persistent = self.penalties_state + (self.fused_moe_workspace if self.moe_persistent else 0.0)
        return self.hidden_buffers + persistent + self.mm_encoder_outputs + self.transient_peak

    def as_dict(self) -> dict[str, float]:
        return {
            "hidden_buffers": _gib(self.hidden_buffers), "sampler_warmup": _gib(self.sampler_warmup),
            "mlp_intermediate": _gib(self.mlp_intermediate), "fused_moe_workspace": _gib(self.fused_moe_workspace),
            "mla_prefill_workspace": _gib(self.mla_prefill_workspace), "mm_encoder_peak": _gib(self.mm_encoder_peak),
            "mm_encoder_outputs": _gib(self.mm_encoder_outputs), "penalties_state": _gib(self.penalties_state),
        }


@dataclass(frozen=True)
class _Memory:
    """vLLM's per-GPU memory budget for one TP size, batched tokens and max_num_seqs."""

    weights_gib: float
    activation_gib: float
    non_torch_gib: float
    cuda_graph_gib: float
    kv_gib: float
    kv_bytes_per_token: int
    num_blocks: int
    kv_tokens: int
    max_concurrency: float
    profile_concurrency: int
    holds_one: bool  # one max_model_len request fits beside the null block
    headroom: bool
    terms: ProfileTerms
    layout: KVLayout


@dataclass(frozen=True)
class _Sizing(_Memory):
    """One tensor-parallel size evaluated against the GPU: its memory budget
    (headroom only when it also fits), the batch limits and the verdict."""

    tp: int
    ep: bool
    max_num_seqs: int
    max_num_batched_tokens: int
    default_max_num_seqs: int
    fits: bool
    problem: str | None  # why it does not fit


def _gpu_batch_defaults(gpu) -> tuple[int, int]:
    """get_batch_defaults' (max_num_batched_tokens, max_num_seqs) for `vllm serve` on this GPU."""
    if gpu.memory_gib >= 160:
        return 16384, 1024
    if gpu.memory_gib >= 70 and not gpu.is_a100:
        return 8192, 1024
    return 2048, 256


def batch_defaults(ctx: _Context) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) vLLM picks for `vllm serve`.

    V1: EngineArgs.get_batch_defaults (vllm/engine/arg_utils.py, 0.33.0) by total
    GPU memory and name, then capped: batched tokens <= seqs x max_model_len and
    seqs <= batched tokens. V0: no chunked prefill, so max(max_model_len, 2048).
    """
    req, gpu = ctx.req, ctx.gpu
    if not ctx.engine.v1:
        tokens = req.max_num_batched_tokens or max(ctx.max_model_len, V0_MIN_BATCHED_TOKENS)
        return tokens, req.max_num_seqs or V0_MAX_NUM_SEQS
    tokens, seqs = _gpu_batch_defaults(gpu)
    seqs = req.max_num_seqs or seqs
    if req.max_num_batched_tokens is None:
        tokens = min(tokens, seqs * ctx.max_model_len)
    else:
        tokens = req.max_num_batched_tokens
    return tokens, req.max_num_seqs or min(seqs, tokens)


def non_torch_gib(tp: int, engine: Engine | None = None) -> float:
    """Memory outside torch that vLLM charges to the KV budget, by accounting regime."""
    if engine is not None and engine.graph_profile_in_non_torch:
        return NON_TORCH_GIB_GRAPH_PROFILE[1 if tp == 1 else 2 if tp == 2 else 4]
    if tp == 1:
        return NON_TORCH_GIB_TP1
    if engine is not None and engine.comm_setup_in_budget:
        return NON_TORCH_GIB_MULTI_BEFORE_0_11
    return NON_TORCH_GIB_MULTI


def non_torch_explanation(tp: int, engine: Engine) -> str:
    if engine.graph_profile_in_non_torch:
        return (f"vLLM 0.18-0.20 profile the CUDA graphs inside the memory profile (gpu_worker.py), so what "
                f"capture leaves outside torch counts: {NON_TORCH_GIB_GRAPH_PROFILE[1]} GiB at TP1, "
                f"{NON_TORCH_GIB_GRAPH_PROFILE[2]} at TP2, {NON_TORCH_GIB_GRAPH_PROFILE[4]} at TP>=3 "
                "(Llama-3.1-8B v0.19.0 H100 logs, llm-d-planner accuracy sweep)")
    if engine.comm_setup_in_budget and tp > 1:
        return (f"before vLLM 0.11 the memory snapshot precedes NCCL init (gpu_worker.py init_device), so the TP "
                f"communicator, custom all-reduce buffers and KV-connector init count: {NON_TORCH_GIB_MULTI_BEFORE_0_11}"
                " GiB at TP>=2 (vllm-project/vllm#24881, v0.10.2 TP4 H100 breakdown)")
    return (f"NCCL and cuBLAS buffers: {NON_TORCH_GIB_TP1} GiB at TP1, {NON_TORCH_GIB_MULTI} at TP>=2 "
            "(llm-d-benchmark H100 logs, facts §5)")


def activation_gib(ctx: _Context, tp: int, batched_tokens: int, max_num_seqs: int, ep: bool = False) -> float:
    """Peak of the profiling run above the weights (see ProfileTerms)."""
    return profile_terms(ctx, tp, batched_tokens, max_num_seqs, ep).total


def profile_terms(ctx: _Context, tp: int, batched_tokens: int, max_num_seqs: int, ep: bool = False) -> ProfileTerms:
    """The profile run's terms (vllm/v1/worker/gpu/model_runner.py profile_run, 0.33):
    encoder profile (multimodal), a forward of `batched_tokens` tokens over
    min(tokens, max_num_seqs) requests, then the sampler warm-up on one row per request."""
    arch, eng = ctx.arch, ctx.engine
    vocab_rows = max_num_seqs * arch.vocab_size
    if not eng.v1:  # V0 profiles a full batch of max_model_len tokens
        per_token = (2 * arch.hidden_size + 3 * arch.intermediate_size // tp) * DTYPE_BYTES
        return ProfileTerms(batched_tokens * per_token / GIB, vocab_rows * 4 / GIB, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, False)
    hidden = ACTIVATION_BASE_GIB + ACTIVATION_HIDDEN_BUFFERS * batched_tokens * arch.hidden_size * DTYPE_BYTES / GIB
    flashinfer = eng.flashinfer_sampler if ctx.req.flashinfer_sampler is None else ctx.req.flashinfer_sampler
    sampler = sampler_warmup_bytes(ctx, max_num_seqs, flashinfer) / GIB
    dense = 0.0
    if len(arch.moe_layers) < arch.num_layers:
        per_inner = 3 if arch.gated_mlp else 2  # gate+up output and the activation, per intermediate channel
        dense = batched_tokens * per_inner * (arch.intermediate_size // tp) * DTYPE_BYTES / GIB
    penalties = vocab_rows * 4 + max_num_seqs * cdiv(arch.vocab_size, 32) * 4 if eng.persistent_profile_buffers else 0
    encoder_peak, encoder_out = _mm_encoder_terms(ctx, tp, batched_tokens, max_num_seqs)
    return ProfileTerms(
        hidden_buffers=hidden, sampler_warmup=sampler, mlp_intermediate=dense,
        fused_moe_workspace=_moe_workspace_bytes(arch, tp, batched_tokens, ep) / GIB,
        mla_prefill_workspace=_mla_workspace_bytes(ctx, tp, max_num_seqs) / GIB,
        mm_encoder_peak=encoder_peak, mm_encoder_outputs=encoder_out, penalties_state=penalties / GIB,
        moe_persistent=eng.persistent_profile_buffers or (eng.moe_workspace_cached and not _mxfp4_experts(arch)),
    )


def _mxfp4_experts(arch: Architecture) -> bool:
    return arch.quantization is not None and arch.quantization.method == "mxfp4"


def sampler_warmup_bytes(ctx: _Context, max_num_seqs: int, flashinfer: bool) -> float:
    """The sampler warm-up on max_num_seqs rows of the full vocabulary (see the SAMPLER_* constants)."""
    vocab = ctx.arch.vocab_size
    rows = max_num_seqs * vocab
    if flashinfer:
        return SAMPLER_FLASHINFER_BYTES * rows
    if ctx.engine.triton_sampler and max_num_seqs >= 8:  # smaller batches still sort (apply_top_k_top_p)
        programs = min(ctx.gpu.sm_count or SM_COUNT_ASSUMED, max_num_seqs)
        return SAMPLER_TRITON_BYTES * rows + programs * vocab * 4
    return SAMPLER_FP32_COPIES * 4 * rows


def _moe_workspace_bytes(arch: Architecture, tp: int, tokens: int, ep: bool) -> float:
    """Triton fused-MoE workspaces for M = batched tokens
    (fused_moe/experts/triton_moe.py workspace_shapes): M x topk x max(N/2, K) and
    M x topk x max(N, K) in 16 bits, N = 2 x intermediate per GPU, K = hidden."""
    if not arch.is_moe:
        return 0.0
    inner = arch.moe_intermediate_size // (1 if ep else tp)
    h, k = arch.hidden_size, arch.experts_per_token
    return tokens * k * (max(inner, h) + max(2 * inner, h)) * DTYPE_BYTES


def _mla_workspace_bytes(ctx: _Context, tp: int, max_num_seqs: int) -> float:
    m = ctx.arch.mla
    if m is None:
        return 0.0
    rows = min(max(8 * ctx.max_model_len, 4 * max_num_seqs * BLOCK_SIZE), MLA_PREFILL_WORKSPACE_ROWS)
    return rows * (ctx.arch.num_heads // tp) * (m.qk_nope_head_dim + m.v_head_dim) * DTYPE_BYTES


def mm_profile_items(ctx: _Context, batched_tokens: int, max_num_seqs: int) -> int:
    """Images in the encoder profile batch (multimodal/encoder_budget.py MultiModalBudget):
    budget = max(batched tokens, tokens per image); items = budget // tokens per image,
    at most max_num_seqs x min(999, max_model_len // tokens per image), at least 1."""
    v = ctx.arch.vision
    budget = max(batched_tokens, v.tokens_per_item)
    per_prompt = max(1, min(MM_DEFAULT_LIMIT_PER_PROMPT, ctx.max_model_len // v.tokens_per_item))
    return max(1, min(budget // v.tokens_per_item, max_num_seqs * per_prompt))


def _mm_encoder_terms(ctx: _Context, tp: int, batched_tokens: int, max_num_seqs: int) -> tuple[float, float]:
    """(encoder forward peak, encoder outputs kept through the decoder run), GiB."""
    v = ctx.arch.vision
    if v is None:
        return 0.0, 0.0
    items = mm_profile_items(ctx, batched_tokens, max_num_seqs)
    per_patch = (VIT_HIDDEN_BUFFERS * v.hidden_size + VIT_INTERMEDIATE_BUFFERS * v.intermediate_size // tp) * DTYPE_BYTES
    peak = items * v.patches_per_item * per_patch
    outputs = items * v.tokens_per_item * ctx.arch.hidden_size * DTYPE_BYTES
    return peak / GIB, outputs / GIB


def cuda_graph_capture_sizes(max_num_seqs: int, batched_tokens: int, ceiling: int = MAX_CUDA_GRAPH_CAPTURE_SIZE) -> list[int]:
    """vLLM's default capture list: 1, 2, 4, multiples of 8 to 248, of 16 from 256
    up to min(2 x max_num_seqs, ceiling, batched tokens) (config/vllm.py _set_cudagraph_sizes)."""
    top = min(max_num_seqs * 2, ceiling, batched_tokens)
    candidates = [1, 2, 4, *range(8, 256, 8), *range(256, ceiling + 1, 16)]
    return [s for s in candidates if s <= top]


def cuda_graph_estimate_gib(max_num_seqs: int, batched_tokens: int, ceiling: int = MAX_CUDA_GRAPH_CAPTURE_SIZE) -> float:
    """Estimated graph pool: piecewise graphs for every capture size plus full
    decode graphs for the sizes up to max_num_seqs."""
    sizes = cuda_graph_capture_sizes(max_num_seqs, batched_tokens, ceiling)
    graphs = len(sizes) + sum(1 for s in sizes if s <= max_num_seqs)
    return min(CUDA_GRAPH_GIB_CAP, graphs * CUDA_GRAPH_GIB_PER_GRAPH)


def _graph_ceiling(ctx: _Context) -> int:
    return MAX_CUDA_GRAPH_CAPTURE_SIZE_SM100 if ctx.sm100 else MAX_CUDA_GRAPH_CAPTURE_SIZE


def cuda_graph_gib(ctx: _Context, max_num_seqs: int, batched_tokens: int) -> float:
    """The part of the graph pool vLLM subtracts from the KV budget (v0.21+)."""
    if not ctx.engine.subtracts_cuda_graphs:
        return 0.0
    return cuda_graph_estimate_gib(max_num_seqs, batched_tokens, _graph_ceiling(ctx))


def kv_bytes_per_token(arch: Architecture, tp: int, kv_dtype_bytes: int) -> int:
    """Bytes one cached token costs across the attention layers on one GPU (windows
    not applied): 2 x max(1, kv_heads // tp) x head_dim x dtype per layer, MLA's
    latent per layer (not sharded), nothing for linear-attention layers."""
    return sum(attention_token_bytes(arch, kind, tp, kv_dtype_bytes) for kind in arch.kinds if kind != "linear")


def layout_for(ctx: _Context, tp: int, batched: int) -> KVLayout:
    eng = ctx.engine
    return kv_layout(ctx.arch, tp, ctx.kv_dtype_bytes, batched, in_flight_batches=eng.in_flight_batches,
                     chunked_hybrid=eng.chunked_hybrid, mamba_align=eng.mamba_align,
                     gdn_flashinfer=ctx.gdn_flashinfer)


def _size(ctx: _Context, tp: int, ep: bool = False) -> _Sizing:
    """Follow vLLM's profiler for one TP size, with max_num_seqs either given or
    the largest value whose own profiling run leaves KV room for that many
    request-profile requests (the profile's activation and CUDA graphs grow
    with max_num_seqs, so the cap and the KV budget are solved together)."""
    batched, default_seqs = batch_defaults(ctx)
    seqs = default_seqs if ctx.req.max_num_seqs else _consistent_max_num_seqs(ctx, tp, ep, batched, default_seqs)
    mem = _memory(ctx, tp, ep, batched, seqs or default_seqs)
    problem = _fit_problem(ctx, tp, mem)
    budget = {f.name: getattr(mem, f.name) for f in dataclasses.fields(_Memory)}
    budget["headroom"] = problem is None and mem.headroom
    return _Sizing(
        **budget, tp=tp, ep=ep, max_num_seqs=seqs, max_num_batched_tokens=batched,
        default_max_num_seqs=default_seqs, fits=problem is None, problem=problem,
    )


def _consistent_max_num_seqs(ctx: _Context, tp: int, ep: bool, batched: int, default: int) -> int:
    """Largest s <= default with profile_concurrency(s) >= s (0 if none).

    profile_concurrency falls as s grows, so feasibility is monotone: bisect.
    """
    first = _memory(ctx, tp, ep, batched, default).profile_concurrency
    if first >= default or first <= 0:
        return min(first, default)
    lo, hi = first, default - 1  # lo is feasible: a smaller s only frees memory
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _memory(ctx, tp, ep, batched, mid).profile_concurrency >= mid:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _weights(ctx: _Context, tp: int, ep: bool) -> WeightTally:
    return weight_tally(ctx.arch, tp, ep=ep, mxfp4_backend=ctx.mxfp4_backend)


def _memory(ctx: _Context, tp: int, ep: bool, batched: int, seqs: int) -> _Memory:
    """vLLM's budget: requested - weights - activation - non-torch - graphs, then blocks."""
    arch = ctx.arch
    weights = _weights(ctx, tp, ep).bytes / GIB
    terms = profile_terms(ctx, tp, batched, seqs, ep)
    other = non_torch_gib(tp, ctx.engine)
    graphs = cuda_graph_gib(ctx, seqs, batched)
    kv = ctx.requested_gib - weights - terms.total - other - graphs
    layout = layout_for(ctx, tp, batched)
    blocks = layout.num_blocks(kv * GIB) if kv > 0 else 0
    usable = max(0, blocks - 1)  # BlockPool holds one null block back (kv_cache_planning.py)
    need_max = layout.blocks_per_request(ctx.max_model_len)
    need_profile = layout.blocks_per_request(ctx.profile_tokens)
    tokens = kv_cache_tokens(layout, blocks, ctx.max_model_len, ctx.engine)
    return _Memory(
        weights_gib=weights, activation_gib=terms.total, non_torch_gib=other, cuda_graph_gib=graphs, kv_gib=kv,
        kv_bytes_per_token=kv_bytes_per_token(arch, tp, ctx.kv_dtype_bytes), num_blocks=blocks, kv_tokens=tokens,
        max_concurrency=blocks / need_max, profile_concurrency=int(usable // need_profile),
        holds_one=usable >= need_max, headroom=usable >= need_max + HEADROOM_REQUESTS * need_profile,
        terms=terms, layout=layout,
    )


def kv_cache_tokens(layout: KVLayout, blocks: int, max_model_len: int, engine: Engine) -> int:
    """vLLM's "GPU KV cache size": blocks x block size for one group; for a hybrid
    layout int(max concurrency x max_model_len) in 0.33 (get_kv_cache_capacity), and
    num_blocks // groups x block_size before (kv_cache_utils.py, 0.11.1 and 0.19.0)."""
    if not layout.hybrid:
        return blocks * layout.block_size
    if engine.v033:
        return int(blocks / layout.blocks_per_request(max_model_len) * max_model_len)
    return blocks // len(layout.groups) * layout.block_size


def _fit_problem(ctx: _Context, tp: int, mem: _Memory) -> str | None:
    """Why vLLM would not start (or the pod could not be placed), else None."""
    q = ctx.arch.quantization
    cc = ctx.gpu.compute_capability
    if q and q.bits == 8 and q.scale != "group" and cc and float(cc) < 8.0:
        return f"FP8 weights need compute capability 8.0 or newer; {ctx.gpu.name} is {cc}"
    if q and q.method == "gptq" and q.g_idx and ctx.engine.v033:
        return ("vLLM 0.33 refuses GPTQ checkpoints with grouped activation ordering (desc_act), "
                "quantization/utils/gptq_utils.py; use a desc_act=false checkpoint or an older --vllm-version")
    if tp > ctx.gpus_per_node:
        return f"TP {tp} needs {tp} GPUs but a {ctx.gpu.name} node has {ctx.gpus_per_node}"
    if mem.weights_gib >= ctx.requested_gib:
        return (f"the weights need {mem.weights_gib:.2f} GiB per GPU but "
                f"{ctx.utilization} x {ctx.gpu.memory_gib} = {ctx.requested_gib:.2f} GiB is budgeted")
    if mem.num_blocks <= 1:
        if mem.kv_gib < 0:
            return (f"no memory is left for the KV cache: weights, activation and overheads exceed the budget by "
                    f"{-mem.kv_gib:.2f} GiB")
        return (f"no memory is left for the KV cache ({mem.kv_gib:.2f} GiB, at most one "
                f"{mem.layout.bytes_per_block / GIB:.2f} GiB block)")
    if not mem.holds_one:
        need = mem.layout.blocks_per_request(ctx.max_model_len) * mem.layout.bytes_per_block / GIB
        return (f"one {ctx.max_model_len}-token request needs {need:.2f} GiB of KV cache per GPU "
                f"but only {mem.kv_gib:.2f} GiB is left")
    return None


def _size_explicit(ctx: _Context, tp: int) -> _Sizing:
    ep = _parallelism(ctx.arch, tp, ctx.req.enable_expert_parallel)
    if ep is None:
        problem = tp_problem(ctx.arch, tp, ep=bool(ctx.req.enable_expert_parallel))
        if ctx.req.enable_expert_parallel and not ctx.arch.is_moe:
            problem = "expert parallelism needs a mixture-of-experts model"
        chosen = ctx.req.enable_expert_parallel if ctx.arch.is_moe else None
        valid = [t for t in range(1, ctx.gpus_per_node + 1) if _parallelism(ctx.arch, t, chosen) is not None]
        other = "--no-expert-parallel" if chosen else "--enable-expert-parallel"
        flip = (f"; TP {tp} works with {other}" if chosen is not None and ctx.arch.is_moe
                and _parallelism(ctx.arch, tp, not chosen) is not None else "")
        setting = "" if chosen is None else (" with expert parallelism" if chosen else " without expert parallelism")
        raise InvalidInput(f"--tensor-parallel-size {tp}: {problem}; valid sizes on one node{setting}: {valid}{flip}")
    return _size(ctx, tp, ep)


def _candidates(ctx: _Context) -> list[_Sizing]:
    out = []
    for tp in range(1, ctx.gpus_per_node + 1):
        ep = _parallelism(ctx.arch, tp, ctx.req.enable_expert_parallel)
        if ep is not None:
            out.append(_size(ctx, tp, ep))
    return out


def _choose_tp(ctx: _Context) -> tuple[_Sizing, str]:
    """Smallest valid TP on one node with headroom, else the smallest that fits."""
    sizings = _candidates(ctx)
    if not sizings:
        raise InvalidInput(f"{ctx.model.slug}: no tensor-parallel size up to {ctx.gpus_per_node} divides its layers; "
                           "give --gpus-per-node or another model")
    with_headroom = [s for s in sizings if s.headroom]
    if with_headroom:
        return with_headroom[0], (
            f"smallest valid TP on one node that holds one {ctx.max_model_len}-token request "
            f"plus {HEADROOM_REQUESTS} requests of {ctx.profile_tokens} tokens"
        )
    fitting = [s for s in sizings if s.fits]
    if fitting:
        return fitting[0], (
            f"smallest valid TP that fits; no TP up to {ctx.gpus_per_node} leaves room for "
            f"{HEADROOM_REQUESTS} more requests beside a {ctx.max_model_len}-token one"
        )
    return sizings[-1], f"no valid TP up to {ctx.gpus_per_node} fits; showing the largest"


# =============================================================== not-fit reasons


def _way_out(ctx: _Context, sizing: _Sizing) -> str:
    """One line: what failed and the ways out (TP, GPU, quantization, context, nodes)."""
    options = []
    larger = [s for s in _candidates(ctx) if s.tp > sizing.tp and s.fits]
    within = [s for s in _candidates(ctx) if s.fits] if sizing.tp > ctx.gpus_per_node else []
    if within:  # the TP asked for needs more GPUs than a node has, and one the node can run fits
        return (f"{ctx.model.slug} does not fit on {ctx.gpu.name} at TP {sizing.tp}: {sizing.problem}; way out: "
                f"a --tensor-parallel-size up to {ctx.gpus_per_node} ({within[-1].tp} fits)")
    if larger:
        options.append(f"a higher --tensor-parallel-size ({larger[0].tp} fits)")
    else:
        options.append(f"no --tensor-parallel-size up to {ctx.gpus_per_node} fits on one {ctx.gpu.name} node")
    bigger = _bigger_gpu(ctx)
    if bigger:
        options.append(f"a bigger GPU (--gpu {bigger[0]} fits at TP {bigger[1]})")
    elif not ctx.gpu.custom:
        options.append("no catalog GPU fits it on one node")
    if not larger:
        nodes = _nodes_needed(ctx)
        if nodes > 1:
            options.append(
                f"pipeline parallelism across {nodes} {ctx.gpu.name} nodes (--pipeline-parallel-size {nodes} "
                f"x --tensor-parallel-size {ctx.gpus_per_node}; multi-node serving is not generated by compose, "
                "see docs/planner.md: LeaderWorkerSet is the next step)"
            )
    if ctx.arch.quantization is None:
        options.append("a quantized variant (FP8 halves the weights)")
    # memory ways out, at a TP the node can run (the largest, when the one asked for is beyond it)
    at = sizing if sizing.tp <= ctx.gpus_per_node else max(_candidates(ctx), key=lambda c: c.tp, default=None)
    if at is not None:
        shorter = _max_len_that_fits(ctx, at)
        if shorter:
            options.append(f"a shorter context (--max-model-len {shorter} fits at TP {at.tp})")
        if ctx.kv_dtype_bytes > 1 and at.kv_gib > 0:
            options.append("--kv-cache-dtype fp8 (half the KV bytes per token)")
    return f"{ctx.model.slug} does not fit on {ctx.gpu.name} at TP {sizing.tp}: {sizing.problem}; way out: " + "; ".join(options)


def _nodes_needed(ctx: _Context) -> int:
    """Nodes of this GPU whose budget holds the weights split by layer (PP) and TP
    across the node, leaving the largest-TP plan's other overheads per GPU."""
    tp = ctx.gpus_per_node
    ep = _parallelism(ctx.arch, tp, ctx.req.enable_expert_parallel)
    if ep is None:
        return 0
    batched, seqs = batch_defaults(ctx)
    weights = _weights(ctx, tp, ep).bytes / GIB
    overhead = (profile_terms(ctx, tp, batched, seqs, ep).total + non_torch_gib(tp, ctx.engine)
                + cuda_graph_gib(ctx, seqs, batched))
    per_gpu = ctx.requested_gib - overhead
    if per_gpu <= 0:
        return 0
    return max(1, math.ceil(weights / (0.9 * per_gpu)))  # keep a tenth of each GPU's budget for KV


def _bigger_gpu(ctx: _Context) -> tuple[str, int] | None:
    """The smallest catalog GPU with more memory on which some TP fits."""
    for gpu in sorted(catalog.gpus(), key=lambda g: g.memory_gib):
        if gpu.memory_gib <= ctx.gpu.memory_gib:
            continue
        other = dataclasses.replace(ctx, gpu=gpu, gpus_per_node=gpu.gpus_per_node,
                                    dtype=ctx.arch.dtype if gpu.bf16 else "float16")
        for s in _candidates(other):
            if s.fits:
                return gpu.name, s.tp
    return None


def _max_len_that_fits(ctx: _Context, sizing: _Sizing) -> int | None:
    """vLLM's 'estimated maximum model length' at this TP, if it is usable."""
    if sizing.kv_gib <= 0 or sizing.num_blocks <= 1 or sizing.weights_gib >= ctx.requested_gib:
        return None
    usable = sizing.num_blocks - 1
    layout = sizing.layout
    lo, hi = 0, ctx.max_model_len - 1  # largest length whose request fits in the usable blocks
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if layout.blocks_per_request(mid) <= usable:
            lo = mid
        else:
            hi = mid - 1
    return lo if lo >= ctx.profile_tokens else None


# =============================================================== GPUs per node: the longest context one node holds

MAX_MODEL_LEN_STEP = 256  # a capped --max-model-len is a multiple of this


def max_model_len_for_node(req: PlanRequest) -> int | None:
    """The longest --max-model-len (a multiple of 256, below the model's context)
    that fits one node of `req.gpus_per_node` GPUs: with the planner's headroom
    (one such request plus HEADROOM_REQUESTS request-profile requests) when any
    length allows it, else the longest that fits at all. None when not even a
    request-profile-length context fits. The TP is the planner's own choice."""
    _validate(req)
    full = _context(req)
    lo = math.ceil(full.profile_tokens / MAX_MODEL_LEN_STEP)  # in steps
    hi = (full.arch.context_length - 1) // MAX_MODEL_LEN_STEP

    def sizings(steps: int) -> list[_Sizing]:
        ctx = _context(dataclasses.replace(req, max_model_len=steps * MAX_MODEL_LEN_STEP))
        if req.tensor_parallel_size is not None:
            return [_size_explicit(ctx, req.tensor_parallel_size)]
        return [_size(ctx, tp) for tp in valid_tp_sizes(ctx.arch, ctx.gpus_per_node)]

    for wanted in (lambda s: s.headroom, lambda s: s.fits):
        if lo > hi or not any(wanted(s) for s in sizings(lo)):
            continue
        good, bad = lo, hi + 1  # longer contexts only need more KV: the predicate is monotone
        while bad - good > 1:
            mid = (good + bad) // 2
            if any(wanted(s) for s in sizings(mid)):
                good = mid
            else:
                bad = mid
        return good * MAX_MODEL_LEN_STEP
    return None


# =============================================================== throughput (roofline estimate)


@dataclass(frozen=True)
class _Speed:
    decode_tps: float  # per sequence, at a full batch
    replica_rps: float
    step_seconds: float
    prefill_seconds: float
    tflops: float | None


def roofline(ctx: _Context, sizing: _Sizing) -> _Speed:
    """Decode reads the GPU's weights once per step plus every running request's
    KV cache; prefill is compute-bound. Both at assumed efficiencies."""
    batch = sizing.max_num_seqs
    if batch < 1:
        return _Speed(0.0, 0.0, math.inf, 0.0, None)
    arch = ctx.arch
    tally = _weights(ctx, sizing.tp, sizing.ep)
    touched = min(1.0, batch * arch.experts_per_token / arch.num_experts) if arch.is_moe else 1.0
    weight_read = tally.bytes - tally.expert_bytes * (1 - touched)
    context = ctx.req.prompt_tokens + ctx.req.output_tokens / 2
    kv_read = batch * _kv_bytes_for(sizing.layout, context)
    step = (weight_read + kv_read) / (ctx.gpu.bandwidth_gbps * 1e9 * MEMORY_BANDWIDTH_EFFICIENCY)
    tflops = _prefill_tflops(ctx)
    full = weight_tally(arch, sizing.tp)  # compute per GPU: experts active per token, TP-split
    active = full.params - full.embedding_params
    if arch.is_moe:
        active -= full.expert_params * (1 - arch.experts_per_token / arch.num_experts)
    prefill = ctx.req.prompt_tokens * 2 * active / (tflops * 1e12 * PREFILL_COMPUTE_EFFICIENCY) if tflops else 0.0
    rps = batch / (ctx.req.output_tokens * step + batch * prefill)
    return _Speed(1 / step, rps, step, prefill, tflops)


def _kv_bytes_for(layout: KVLayout, tokens: float) -> float:
    """KV bytes one request of `tokens` tokens reads on one GPU per decode step:
    windows and chunks capped, a linear-attention layer's whole state."""
    total = 0.0
    for g in layout.groups:
        if g.kind == "linear":
            total += layout.state_bytes * len(g.layers)
        else:
            kept = min(tokens, g.window) if g.kind in ("sliding", "chunked") else tokens
            total += layout.token_bytes[g.kind] * len(g.layers) * kept
    return total


def _prefill_tflops(ctx: _Context) -> float | None:
    q = ctx.arch.quantization
    if q and q.bits == 8 and q.scale != "group" and ctx.gpu.dense_tflops("fp8"):
        return ctx.gpu.dense_tflops("fp8")
    return ctx.gpu.dense_tflops("bf16" if ctx.dtype == "bfloat16" else "fp16")


# =============================================================== start-up, drain, resources


@dataclass(frozen=True)
class _Drain:
    prestop: int
    shutdown: int
    buffer: int
    drain: int
    note: str

    @property
    def tgps(self) -> int:
        return self.prestop + self.shutdown + self.buffer


def drain_budget(ctx: _Context, speed: _Speed) -> _Drain:
    """preStop + --shutdown-timeout + buffer = terminationGracePeriodSeconds, the
    same on spot capacity: a preemption cuts the pod off at the cloud's notice
    whatever the grace period says, while rollouts, scale-in, node upgrades and
    consolidation (planned disruptions) honour the whole grace period, so a drain
    cut to the notice would only hurt those (components/spot/README.md)."""
    drain = math.ceil(ctx.req.output_tokens / speed.decode_tps) if speed.decode_tps else 0
    shutdown = max(SHUTDOWN_TIMEOUT_FLOOR_SECONDS, math.ceil(DRAIN_MARGIN * drain))
    plan = _Drain(PRESTOP_SECONDS, shutdown, DRAIN_BUFFER_SECONDS, drain, "")
    notice = ctx.req.spot_notice_seconds
    if notice is None or plan.tgps <= notice:
        return plan
    note = (f"max({SHUTDOWN_TIMEOUT_FLOOR_SECONDS} s llm-d default, {DRAIN_MARGIN} x {drain} s drain), not cut to "
            f"the {notice} s spot notice: planned disruptions get all of it; on a preemption vLLM keeps serving "
            f"in-flight answers (through the preStop sleep) until the node goes {notice} s after the notice, "
            "and answers still running then are lost and retried")
    return _Drain(PRESTOP_SECONDS, shutdown, DRAIN_BUFFER_SECONDS, drain, note)


@dataclass(frozen=True)
class _Startup:
    load: float
    download: float
    budget: int
    period: int
    failure_threshold: int
    progress_deadline: int
    storage: storage_mod.Storage
    read_mib_s: float  # the rate the load estimate uses (storage or loader, the slower)
    loader_bound: bool  # vLLM's loader, not the storage, is the limit
    floored: bool  # raised to STARTUP_FLOOR_SECONDS for a large checkpoint


def startup_budget(ctx: _Context, tp: int) -> _Startup:
    """Weights are on the cache volume (an init container downloads them first),
    so the startupProbe covers vLLM's load of the checkpoint from that storage
    (the slower of the storage's conservative read rate and vLLM's loader),
    compile, graph capture and the P2P check; at least STARTUP_FLOOR_SECONDS for
    checkpoints over STARTUP_FLOOR_ABOVE_GIB."""
    total_bytes = weight_tally(ctx.arch, 1, runtime=False).bytes
    store = storage_mod.get(ctx.req.storage or storage_mod.DEFAULT)
    size_gib = total_bytes / GIB
    loader_mib_s = min(LOAD_GBPS_PER_PROCESS * tp, LOAD_GBPS_PER_NODE) * 1e9 / storage_mod.MIB
    storage_mib_s = store.read_mib_s(size_gib * PVC_MARGIN, ctx.req.concurrent_loads)
    read = min(loader_mib_s, storage_mib_s)
    load = total_bytes / (read * storage_mod.MIB)
    fixed = COMPILE_SECONDS + CUDA_GRAPH_CAPTURE_SECONDS + (P2P_CHECK_SECONDS if tp > 1 else 0)
    budget = math.ceil(STARTUP_MARGIN * (load + fixed))
    floored = size_gib > STARTUP_FLOOR_ABOVE_GIB and budget < STARTUP_FLOOR_SECONDS
    if floored:
        budget = STARTUP_FLOOR_SECONDS
    period = STARTUP_PROBE_PERIOD_SECONDS
    write_gbps = min(DOWNLOAD_GBPS, (store.write_mib_s or math.inf) * storage_mod.MIB / 1e9)
    download = total_bytes / 1e9 / write_gbps
    deadline = max(PROGRESS_DEADLINE_FLOOR_SECONDS, budget + math.ceil(STARTUP_MARGIN * download))
    return _Startup(load, download, budget, period, math.ceil(budget / period), deadline, store, read,
                    loader_mib_s <= storage_mib_s, floored)


# =============================================================== assembling the plan


def _build_plan(ctx: _Context, sizing: _Sizing, chosen_by: str) -> Plan:
    speed = roofline(ctx, sizing)
    drain = drain_budget(ctx, speed)
    start = startup_budget(ctx, sizing.tp)
    total_gib = weight_tally(ctx.arch, 1, runtime=False).bytes / GIB
    shm = SHM_GIB_TP1 if sizing.tp == 1 else SHM_GIB_MULTI_GPU
    memory = math.ceil(total_gib + HOST_GIB_PER_GPU * sizing.tp + shm)
    seqs = sizing.max_num_seqs
    queue = seqs  # one more full batch may wait: about one request latency of queueing
    target = ctx.req.target_rps
    replicas = (max(1, math.ceil(target / speed.replica_rps)) if target else 1) if speed.replica_rps else 0
    if sizing.fits and replicas > MAX_REPLICAS:
        raise InvalidInput(
            f"--target-rps {target:g} needs {replicas} replicas of {speed.replica_rps:.2f} requests/s each "
            f"({ctx.gpu.name}, TP {sizing.tp}); one overlay scales to at most {MAX_REPLICAS}: lower --target-rps, "
            "choose a faster --gpu, or split the traffic across several overlays"
        )
    m = ctx.model
    values = dict(
        request=ctx.req, model=m.slug if m.origin == "catalog" else m.origin, slug=m.slug, hf_repo=m.hf_repo,
        revision=m.revision, revision_pinned=m.revision_pinned, gated=m.gated, served_model_name=m.served_model_name,
        model_dir=f"/models/{m.hf_repo or m.slug}", vllm_version=ctx.req.vllm_version, engine=ctx.engine.label,
        gpu=ctx.gpu.name, gpu_memory_gib=round(ctx.gpu.memory_gib, 2), gpus_per_node=ctx.gpus_per_node,
        tensor_parallel_size=sizing.tp, gpus_per_replica=sizing.tp, enable_expert_parallel=sizing.ep,
        gpu_memory_utilization=ctx.utilization, dtype=ctx.dtype, kv_cache_dtype=ctx.req.kv_cache_dtype,
        block_size=sizing.layout.block_size, weights_gib_total=_gib(total_gib),
        weights_gib_per_gpu=_gib(sizing.weights_gib),
        activation_gib=_gib(sizing.activation_gib), non_torch_gib=_gib(sizing.non_torch_gib),
        cuda_graph_gib=_gib(sizing.cuda_graph_gib), kv_cache_gib_per_gpu=_gib(sizing.kv_gib),
        kv_bytes_per_token_per_gpu=sizing.kv_bytes_per_token,
        kv_layer_groups=sizing.layout.describe(ctx.max_model_len), profile_terms_gib=sizing.terms.as_dict(),
        kv_cache_tokens=sizing.kv_tokens,
        max_model_len=ctx.max_model_len,
        max_output_tokens=ctx.req.max_output_tokens or max(1, ctx.max_model_len - 1),
        max_concurrency_at_max_model_len=round(sizing.max_concurrency, 2),
        max_num_seqs=seqs, max_num_batched_tokens=sizing.max_num_batched_tokens, fits=sizing.fits,
        reason=_reason(ctx, sizing, chosen_by),
        decode_tokens_per_second=round(speed.decode_tps, 1), replica_throughput_rps=round(speed.replica_rps, 2),
        replicas_for_target_rps=replicas, max_num_queued_reqs=seqs + queue,
        keda_queue_threshold=max(1, math.ceil(queue / 2)), keda_activation_threshold=1,
        scale_down_stabilization_seconds=max(SCALE_DOWN_STABILIZATION_FLOOR_SECONDS, start.budget),
        load_seconds_estimate=math.ceil(start.load), storage=start.storage.key,
        load_read_mib_per_second=round(start.read_mib_s), download_seconds_estimate=math.ceil(start.download),
        startup_budget_seconds=start.budget, startup_probe_period_seconds=start.period,
        startup_probe_failure_threshold=start.failure_threshold, progress_deadline_seconds=start.progress_deadline,
        drain_seconds_estimate=drain.drain, prestop_seconds=drain.prestop, shutdown_timeout_seconds=drain.shutdown,
        termination_grace_period_seconds=drain.tgps, shm_size_gib=shm, memory_request_gib=memory,
        memory_limit_gib=memory, cpu_request=CPU_PER_GPU * sizing.tp,
        pvc_size_gib=max(PVC_FLOOR_GIB, math.ceil(total_gib * PVC_MARGIN)),
    )
    result = Plan(**values)
    result.explanations = _explain(ctx, sizing, speed, drain, start, result, chosen_by)
    return result


def _gib(value: float) -> float:
    return round(value, 2)


def _reason(ctx: _Context, sizing: _Sizing, chosen_by: str) -> str:
    if not sizing.fits:
        return _way_out(ctx, sizing)
    return (f"fits at TP {sizing.tp} ({chosen_by}): {sizing.kv_gib:.2f} GiB of KV cache per GPU holds "
            f"{sizing.max_concurrency:.2f} requests of {ctx.max_model_len} tokens")


def _explain(ctx: _Context, s: _Sizing, speed: _Speed, drain: _Drain, start: _Startup, p: Plan, chosen_by: str) -> dict[str, str]:
    """key -> one line on how the number was derived."""
    arch, gpu, req, eng = ctx.arch, ctx.gpu, ctx.req, ctx.engine
    quant = arch.quantization.describe() if arch.quantization else f"{DTYPE_BYTES}-byte {arch.dtype} weights"
    gpu_note = (f"custom GPU: {gpu.memory_gib} GiB given; bandwidth assumed {gpu.bandwidth_gbps:.0f} GB/s "
                "(slowest catalog GPU), compute unknown") if gpu.custom else (
                    f"catalog GPU {gpu.device_name}; memory from {gpu.source.get('memory_gib', '').split(' (')[0]}")
    e = {
        "model": _explain_model(ctx),
        **_identity_notes(ctx),
        "revision_pinned": "whether the revision is a commit SHA",
        "gated": "the repository asks users to accept a licence: the download needs an HF token" if p.gated
                 else "no access gate",
        "served_model_name": "the name clients send and vLLM's metrics carry (model_name label)",
        "model_dir": "where the init container writes the weights and vLLM reads them (/models/<hf_repo>)",
        "vllm_version": "the vLLM version whose behaviour is modelled (image vllm/vllm-openai:v<version>)",
        "engine": f"{eng.label}: V1 is the default engine from 0.8.0; V0 profiled max_model_len tokens (facts §5)",
        "gpu": gpu_note,
        "gpu_memory_gib": "total memory as CUDA reports it (vLLM's budget base), not the marketing number",
        "gpus_per_node": "--gpus-per-node" if req.gpus_per_node else "largest node shape for this GPU in the catalog",
        "tensor_parallel_size": chosen_by,
        "gpus_per_replica": "= tensor_parallel_size (one replica is one pod on one node)",
        "enable_expert_parallel": _explain_ep(ctx, s),
        "gpu_memory_utilization": (f"vLLM budgets {ctx.utilization} x {gpu.memory_gib} = {ctx.requested_gib:.2f} GiB per GPU"
                                   + ("" if req.gpu_memory_utilization else
                                      f" (vLLM {eng.version}'s default, config/cache.py)")),
        "dtype": (f"{arch.dtype} from the config" if ctx.dtype == arch.dtype
                  else f"{gpu.name} has no bfloat16: serve with --dtype half"),
        "kv_cache_dtype": f"--kv-cache-dtype {req.kv_cache_dtype}: {ctx.kv_dtype_bytes} byte(s) per KV element",
        "block_size": (f"raised from {BLOCK_SIZE} so one attention page holds a linear-attention state "
                       "(platforms/interface.py _align_hybrid_block_size)" if s.layout.block_size != BLOCK_SIZE
                       else "vLLM's default KV block size on CUDA (CacheConfig.DEFAULT_BLOCK_SIZE)"),
        "weights_gib_total": f"checkpoint size from the architecture: {param_count(arch) / 1e9:.2f}B parameters, {quant}",
        "weights_gib_per_gpu": _explain_weights(ctx, s),
        "activation_gib": _explain_activation(ctx, s),
        "non_torch_gib": non_torch_explanation(s.tp, ctx.engine),
        "cuda_graph_gib": _explain_graphs(ctx, s),
        "kv_cache_gib_per_gpu": (f"{ctx.requested_gib:.2f} budget - {s.weights_gib:.2f} weights - {s.activation_gib:.2f} activation "
                                 f"- {s.non_torch_gib:.2f} non-torch - {s.cuda_graph_gib:.2f} CUDA graphs "
                                 "(vLLM V1 determine_available_memory)"),
        "kv_bytes_per_token_per_gpu": _explain_bytes_per_token(ctx, s),
        "kv_layer_groups": _explain_groups(ctx, s),
        "profile_terms_gib": ("the profile run's named terms (GiB); activation = hidden buffers + persistent terms "
                              + ("(penalties state, 0.33 fused-MoE workspace)" if ctx.engine.v033 else
                                 "(the fused-MoE workspace, cached from vLLM 0.15)")
                              + " + encoder outputs + the largest transient "
                              "(sampler warm-up, MLP intermediate, MLA workspace, encoder peak)"),
        "kv_cache_tokens": _explain_tokens(ctx, s),
        "max_model_len": "--max-model-len" if req.max_model_len else "the model's context length (vLLM's default)",
        "max_concurrency_at_max_model_len": "KV blocks / blocks one max_model_len request needs (vLLM's 'Maximum concurrency')",
        "max_num_seqs": ("--max-num-seqs" if req.max_num_seqs else
                         f"vLLM 0.33 default {_gpu_batch_defaults(gpu)[1]} for this GPU (get_batch_defaults)"
                         + (f", at most max_num_batched_tokens ({s.max_num_batched_tokens})"
                            if s.default_max_num_seqs < _gpu_batch_defaults(gpu)[1] else "")
                         + ", capped to the most "
                         f"requests of {ctx.profile_tokens} tokens the KV cache holds ({s.profile_concurrency}) when vLLM "
                         "profiles with that value"),
        "max_num_batched_tokens": ("--max-num-batched-tokens" if req.max_num_batched_tokens else
                                   f"vLLM default for `vllm serve` on this GPU ({_batch_rule(eng)}); "
                                   "the profiling run uses this many tokens"),
        "fits": "vLLM starts: the weights fit and the KV cache holds one max_model_len request",
        "reason": "what limits the plan, and the way out when it does not fit",
        "decode_tokens_per_second": (f"estimate per sequence at {p.max_num_seqs} running: each step reads the weights and the running "
                                     f"requests' KV at {MEMORY_BANDWIDTH_EFFICIENCY:.0%} of {gpu.bandwidth_gbps:.0f} GB/s "
                                     f"(step {speed.step_seconds * 1000:.1f} ms)"),
        "replica_throughput_rps": _explain_rps(ctx, s, speed),
        "replicas_for_target_rps": (f"ceil({req.target_rps} / {p.replica_throughput_rps})" if req.target_rps
                                    else "no --target-rps: one replica"),
        "max_num_queued_reqs": (f"max_num_seqs {p.max_num_seqs} running + a queue of {p.max_num_seqs} (one more full batch); "
                                "beyond it vLLM answers 503 so the client retries elsewhere"),
        "keda_queue_threshold": (f"half the {p.max_num_seqs}-request queue budget per replica (same capacity as the admission "
                                 "limit): scaling starts with half the queue left to absorb arrivals during a cold start"),
        "keda_activation_threshold": "one waiting request activates scaling",
        "scale_down_stabilization_seconds": f"about one cold start: max({SCALE_DOWN_STABILIZATION_FLOOR_SECONDS} s llm-d, startup budget)",
        "load_seconds_estimate": f"{p.weights_gib_total:.1f} GiB / {p.load_read_mib_per_second:g} MiB/s "
                                 f"({'vLLM loader bound' if start.loader_bound else 'storage bound'}, see load_read_mib_per_second)",
        "storage": _explain_storage(ctx, start),
        "load_read_mib_per_second": _explain_read_rate(ctx, s, start),
        "download_seconds_estimate": (f"init-container download at min({DOWNLOAD_GBPS} GB/s assumed (half the llm-d-benchmark "
                                      "log's rate), the storage's write rate)"),
        "startup_budget_seconds": (f"{STARTUP_MARGIN} x (load {start.load:.0f} s + compile {COMPILE_SECONDS} s + graphs "
                                   f"{CUDA_GRAPH_CAPTURE_SECONDS} s" + (f" + P2P check {P2P_CHECK_SECONDS} s" if s.tp > 1 else "")
                                   + ")" + (f", raised to {STARTUP_FLOOR_SECONDS} s: a checkpoint over "
                                            f"{STARTUP_FLOOR_ABOVE_GIB} GiB gets at least what production-stack and KServe allow"
                                            if start.floored else "")
                                   + "; weights are pre-downloaded, so the probe covers vLLM's load only"),
        "startup_probe_period_seconds": "KServe and production-stack probe every 10 s",
        "startup_probe_failure_threshold": f"ceil({start.budget} / {start.period}): period x threshold >= startup budget",
        "progress_deadline_seconds": (f"startup budget + {STARTUP_MARGIN} x download estimate, "
                                      f"at least {PROGRESS_DEADLINE_FLOOR_SECONDS} s (production-stack)"),
        "drain_seconds_estimate": f"--output-tokens {req.output_tokens} / {p.decode_tokens_per_second} tokens/s (estimate)",
        "max_output_tokens": (
            f"capped by --override-generation-config max_new_tokens {req.max_output_tokens} (--max-output-tokens); "
            "the route timeout is sized for it" if req.max_output_tokens else
            f"not capped: up to max_model_len {ctx.max_model_len} - prompt (vLLM's get_max_tokens), at most "
            f"{ctx.max_model_len - 1}; the route timeout is sized for it (--max-output-tokens caps answers and shortens it)"),
        "prestop_seconds": "preStop sleep so load balancers stop routing first (KServe, llm-d: 15 s)",
        "shutdown_timeout_seconds": drain.note or (
            f"max({SHUTDOWN_TIMEOUT_FLOOR_SECONDS} s llm-d default, {DRAIN_MARGIN} x {drain.drain} s drain)"
            + ("" if eng.has_shutdown_timeout else "; this vLLM version has no --shutdown-timeout (0.18+)")),
        "termination_grace_period_seconds": f"preStop {drain.prestop} + shutdown {drain.shutdown} + buffer {drain.buffer} (llm-d)"
        + (f"; on spot a preemption ends the pod at the {req.spot_notice_seconds} s notice, planned disruptions "
           "get all of it" if req.spot_notice_seconds else ""),
        "shm_size_gib": "/dev/shm: 2Gi at TP1 (vLLM docs), 20Gi for NCCL at TP>1 (production-stack, llm-d)",
        "memory_request_gib": (f"{p.weights_gib_total:.1f} GiB page cache for the checkpoint + {HOST_GIB_PER_GPU} GiB per GPU worker "
                               f"+ {p.shm_size_gib} GiB /dev/shm (memory-backed, counts against the limit); llm-d's Qwen3-32B sizing"),
        "memory_limit_gib": "= memory request, so the pod is not the first OOM-kill candidate",
        "cpu_request": f"{CPU_PER_GPU} cores per GPU (llm-d: 8 CPU for TP2)",
        "pvc_size_gib": f"checkpoint {p.weights_gib_total:.1f} GiB x {PVC_MARGIN}, at least {PVC_FLOOR_GIB} Gi",
    }
    return e


def _identity_notes(ctx: _Context) -> dict[str, str]:
    """How the slug, repository and revision were chosen (catalog, config, or the user)."""
    req, m = ctx.req, ctx.model
    catalog_model = m.origin == "catalog"
    if req.hf_repo:
        repo = "--hf-repo: the Hugging Face repository the init container downloads"
    elif catalog_model:
        repo = "Hugging Face repository the init container downloads"
    elif m.hf_repo:
        repo = "the config's _name_or_path, a Hugging Face repository id"
    else:
        repo = "none: the config's _name_or_path is not org/name; give --hf-repo"
    if req.revision:
        revision = "--revision, a commit SHA (pinned)" if m.revision_pinned else "--revision, a branch or tag (not pinned)"
    elif m.revision_pinned:
        revision = "pinned commit from the catalog (seen in public code)"
    elif catalog_model and m.revision:
        revision = "catalog revision (not pinned to a commit)"
    else:
        revision = "none: a local config.json names no Hub revision; give --revision"
    slug = "catalog slug" if catalog_model else (
        "repository name, lower-cased DNS-1123" if m.hf_repo and not req.hf_repo else "directory name, lower-cased DNS-1123")
    return {"slug": slug, "hf_repo": repo, "revision": revision}


def _explain_storage(ctx: _Context, start: _Startup) -> str:
    st = start.storage
    where = f"{st.description}" + (f" (StorageClass {st.storage_class})" if st.storage_class else "")
    if ctx.req.storage is None:
        return f"{where}: the default of `compose plan` (pass --storage to model a network cache)"
    return f"{where}: the model cache the cloud component mounts (compose/plan/storage.py)"


def _explain_read_rate(ctx: _Context, s: _Sizing, start: _Startup) -> str:
    loader = (f"vLLM's loader: min({LOAD_GBPS_PER_PROCESS} GB/s x TP {s.tp}, {LOAD_GBPS_PER_NODE} GB/s per node) "
              "(facts §6)")
    size = weight_tally(ctx.arch, 1, runtime=False).bytes / GIB * PVC_MARGIN
    if start.loader_bound:
        return loader + f"; {start.storage.key} reads faster"
    return (f"{start.storage.key}: {start.storage.limit_text(size, ctx.req.concurrent_loads)}, "
            f"slower than {loader}")


def _batch_rule(engine: Engine) -> str:
    return "V1 get_batch_defaults" if engine.v1 else "V0: max(max_model_len, 2048)"


def _explain_model(ctx: _Context) -> str:
    arch = ctx.arch
    parts = [f"{ctx.model.origin}: {arch.model_type}, {arch.num_layers} layers, hidden {arch.hidden_size}"]
    if arch.mla:
        m = arch.mla
        parts.append(f"{arch.num_heads} heads with MLA (kv_lora_rank {m.kv_lora_rank} + rope {m.qk_rope_head_dim})")
    else:
        parts.append(f"{arch.num_heads} heads / {arch.num_kv_heads} KV heads x {arch.head_dim}")
    kinds = {k: arch.count(k) for k in catalog.LAYER_KINDS if arch.count(k)}
    if len(kinds) > 1 or ("mla" not in kinds and "full" not in kinds):
        parts.append("layers " + " + ".join(f"{n} {k}" for k, n in kinds.items()))
    if arch.is_moe:
        parts.append(f"{len(arch.moe_layers)} MoE layers of {arch.num_experts} experts (top-{arch.experts_per_token})")
    if arch.vision:
        parts.append(f"{arch.vision.kind} vision tower ({arch.vision.params / 1e6:.0f}M)")
    parts.append(f"vocab {arch.vocab_size}")
    return ", ".join(parts)


def _explain_ep(ctx: _Context, s: _Sizing) -> str:
    if not ctx.arch.is_moe:
        return "dense model: no experts to distribute"
    if s.ep:
        how = "--enable-expert-parallel" if ctx.req.enable_expert_parallel else (
            f"chosen because TP {s.tp} cannot split the experts: {tp_problem(ctx.arch, s.tp)}")
        return (f"{how}: each GPU holds {local_experts(ctx.arch, s.tp, True)} of {ctx.arch.num_experts} whole experts "
                "(expert_map_manager.py determine_expert_map); shared experts and attention stay TP-sharded")
    return f"experts sharded by TP along their intermediate size ({ctx.arch.moe_intermediate_size} / {s.tp} per GPU)"


def _explain_weights(ctx: _Context, s: _Sizing) -> str:
    arch = ctx.arch
    tally = _weights(ctx, s.tp, s.ep)
    text = f"sharded over TP {s.tp}: attention and MLP split"
    if arch.mla is None and s.tp > arch.num_kv_heads:
        text += f", the {arch.num_kv_heads} KV heads replicated"
    if arch.is_moe:
        mxfp4 = arch.quantization is not None and arch.quantization.method == "mxfp4"
        text += (f", {local_experts(arch, s.tp, s.ep)} experts per GPU ({tally.expert_bytes / GIB:.2f} GiB"
                 + (f", MXFP4 padded for the {ctx.mxfp4_backend} MoE backend" if mxfp4 else "") + ")")
    if tally.mla_copy_bytes:
        text += f", MLA's dequantized W_UK/W_UV copies {tally.mla_copy_bytes / GIB:.2f} GiB"
    if tally.vision_bytes:
        text += f", vision tower {tally.vision_bytes / GIB:.2f} GiB (16-bit)"
    return text + ", vocab-parallel embedding/LM head padded to 64, norms and RoPE cache replicated"


def _explain_bytes_per_token(ctx: _Context, s: _Sizing) -> str:
    arch, parts = ctx.arch, []
    for kind, bytes_ in sorted(s.layout.token_bytes.items()):
        n = sum(len(g.layers) for g in s.layout.groups if g.kind == kind)
        if kind == "mla":
            parts.append(f"{n} MLA layers x {arch.mla.latent_dim} latent x {ctx.kv_dtype_bytes} B (not split by TP)")
        else:
            heads = max(1, arch.num_kv_heads // s.tp)
            parts.append(f"{n} {kind} layers x 2 x {heads} KV heads/GPU x {arch.head_dim} x {ctx.kv_dtype_bytes} B")
    return " + ".join(parts) + " per token, before window caps"


def _explain_groups(ctx: _Context, s: _Sizing) -> str:
    lay = s.layout
    if not lay.hybrid:
        n = len(lay.groups[0].layers)
        return f"one group of {n} layers; a block is {n} layers x one {lay.page_bytes} B page (kv_cache_planning.py)"
    text = (f"{len(lay.groups)} groups of up to {max(len(g.layers) for g in lay.groups)} layers share one pool of "
            f"{lay.bytes_per_block} B blocks (hybrid KV-cache manager); a {ctx.max_model_len}-token request holds "
            f"{lay.blocks_per_request(ctx.max_model_len)} blocks")
    if any(g.kind in ("sliding", "chunked") for g in lay.groups):
        text += f"; windows and chunks keep their size + {lay.in_flight_tokens} in-flight tokens"
    if lay.state_bytes:
        text += (f"; linear layers keep a {lay.state_bytes} B state per sequence, padded to the page, "
                 f"{lay.linear_blocks} block(s) per request")
    if lay.promoted:
        text += "; chunked layers sized as full attention (this vLLM version keeps Llama 4 out of the hybrid manager)"
    return text


def _explain_activation(ctx: _Context, s: _Sizing) -> str:
    if not ctx.engine.v1:
        return (f"V0 profile of {s.max_num_batched_tokens} tokens: (2 x hidden + 3 x intermediate/TP) x 2 B per token "
                f"+ {V0_MAX_NUM_SEQS} x vocab fp32 logits")
    t = s.terms
    named = [f"hidden buffers {t.hidden_buffers:.2f}"]
    if t.penalties_state:
        named.append(f"penalties state {t.penalties_state:.2f}")
    if t.moe_persistent and t.fused_moe_workspace:
        named.append(f"fused-MoE workspace {t.fused_moe_workspace:.2f}")
    if t.mm_encoder_outputs:
        named.append(f"encoder outputs {t.mm_encoder_outputs:.2f}")
    transient = {"sampler warm-up": t.sampler_warmup, "MLP intermediate": t.mlp_intermediate,
                 "MLA prefill workspace": t.mla_prefill_workspace, "encoder peak": t.mm_encoder_peak}
    if not t.moe_persistent:
        transient["fused-MoE workspace"] = t.fused_moe_workspace
    shown = ", ".join(f"{k} {v:.2f}" for k, v in transient.items() if v)
    flashinfer = ctx.engine.flashinfer_sampler if ctx.req.flashinfer_sampler is None else ctx.req.flashinfer_sampler
    if flashinfer:
        sampler = f"FlashInfer sampler, {SAMPLER_FLASHINFER_BYTES} B x {s.max_num_seqs} seqs x vocab"
        fitted = "hidden buffers fitted"
    elif ctx.engine.triton_sampler and s.max_num_seqs >= 8:
        sm = ctx.gpu.sm_count or SM_COUNT_ASSUMED
        sampler = (f"Triton top-k/top-p (vLLM 0.17+), {SAMPLER_TRITON_BYTES} B x {s.max_num_seqs} seqs x vocab "
                   f"+ {min(sm, s.max_num_seqs)} fp32 vocab rows" + ("" if ctx.gpu.sm_count else " (SM count assumed)"))
        fitted = "hidden buffers fitted"
    else:
        sampler = f"{SAMPLER_FP32_COPIES} x {s.max_num_seqs} seqs x vocab x 4 B"
        fitted = "hidden buffers and the native sampler's copies fitted"
    return " + ".join(named) + f" + max({shown}) GiB; sampler warm-up {sampler}; {fitted} on llm-d-benchmark H100 logs"


def _explain_graphs(ctx: _Context, s: _Sizing) -> str:
    ceiling = _graph_ceiling(ctx)
    if not ctx.engine.subtracts_cuda_graphs:
        pool = cuda_graph_estimate_gib(s.max_num_seqs, s.max_num_batched_tokens, ceiling)
        return (f"not subtracted before vLLM 0.21: the graph pool (~{pool:.2f} GiB) "
                f"must fit in the (1 - {ctx.utilization}) headroom")
    sizes = cuda_graph_capture_sizes(s.max_num_seqs, s.max_num_batched_tokens, ceiling)
    return (f"{len(sizes)} piecewise + {sum(1 for x in sizes if x <= s.max_num_seqs)} full graphs (capture ceiling "
            f"{ceiling}) x {CUDA_GRAPH_GIB_PER_GRAPH * 1024:.0f} MiB, capped at {CUDA_GRAPH_GIB_CAP} GiB "
            "(estimate, subtracted since 0.21)")


def _explain_tokens(ctx: _Context, s: _Sizing) -> str:
    if s.layout.hybrid and ctx.engine.v033:
        return (f"{s.num_blocks} blocks / {s.layout.blocks_per_request(ctx.max_model_len)} blocks per "
                f"{ctx.max_model_len}-token request x {ctx.max_model_len} (vLLM's get_kv_cache_capacity)")
    if s.layout.hybrid:
        return (f"{s.num_blocks} blocks // {len(s.layout.groups)} groups x {s.layout.block_size} tokens "
                "(what vLLM before 0.33 logs as GPU KV cache size, kv_cache_utils.py)")
    return (f"{s.kv_gib:.2f} GiB / ({len(s.layout.groups[0].layers)} layers x {s.layout.page_bytes} B pages), "
            f"rounded down to {s.num_blocks} blocks of {s.layout.block_size}")


def _explain_rps(ctx: _Context, s: _Sizing, speed: _Speed) -> str:
    if s.max_num_seqs < 1:
        return "no request fits: no throughput"
    prefill = (f" + prefill of {ctx.req.prompt_tokens} tokens at {PREFILL_COMPUTE_EFFICIENCY:.0%} of "
               f"{speed.tflops:.0f} TFLOPS ({speed.prefill_seconds * 1000:.0f} ms each)" if speed.tflops
               else " (prefill not counted: compute unknown)")
    return (f"estimate: {s.max_num_seqs} requests per {ctx.req.output_tokens} decode steps of "
            f"{speed.step_seconds * 1000:.1f} ms{prefill}")
