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
from functools import lru_cache

from compose.core.errors import DoesNotFit, InvalidInput
from compose.plan import catalog
from compose.plan import storage as storage_mod
from compose.plan.catalog import DTYPE_BYTES, GPU, Architecture, ResolvedModel

VLLM_VERSION = "0.33.0"
GIB = 1 << 30

# ---------------------------------------------------------------- vLLM behaviour
BLOCK_SIZE = 16  # vllm/config/cache.py CacheConfig.DEFAULT_BLOCK_SIZE
VOCAB_PADDING = 64  # VocabParallelEmbedding pads the vocabulary to a multiple of 64
V1_DEFAULT_SINCE = (0, 8, 0)  # V1 engine default from 0.8.0; V0 removed by 0.11 (facts §5)
CUDA_GRAPH_PROFILING_SINCE = (0, 21, 0)  # VLLM_MEMORY_PROFILER_ESTIMATE_CUDAGRAPHS=1 (facts §4, §5)
SHUTDOWN_TIMEOUT_SINCE = (0, 18, 0)  # --shutdown-timeout, vllm-project/vllm#36666 (facts §3)
V0_MAX_NUM_SEQS = 256  # V0 EngineArgs default
V0_MIN_BATCHED_TOKENS = 2048  # V0 without chunked prefill: max(max_model_len, 2048)
KV_CACHE_DTYPES = {"auto": None, "fp8": 1, "fp8_e4m3": 1, "fp8_e5m2": 1}

# ---------------------------------------------------------------- memory model (GiB)
# Non-torch memory (NCCL, cuBLAS workspaces): 0.13 GiB at TP1, 0.55 at TP2 on H100,
# llm-d-benchmark config_explorer/empirical-vllm-memory-results.md (facts §5).
NON_TORCH_GIB_TP1 = 0.13
NON_TORCH_GIB_MULTI = 0.55
# V1 activation peak = base + a x (hidden-state buffers) + max(sampler warm-up, MLP).
# Fitted on three llm-d-benchmark logs (vLLM 0.11, H100, 8192 batched tokens, 1024
# seqs): Llama-3.1-8B 4.76, Llama-3.3-70B-FP8 4.84, Qwen3-0.6B 5.56 GiB. Qwen3-32B
# (5.64 at TP1 and TP2) and gpt-oss-20b (7.38) are held out and reproduced.
ACTIVATION_BASE_GIB = 0.022
ACTIVATION_HIDDEN_BUFFERS = 1.28  # x max_num_batched_tokens x hidden_size x 2 bytes
SAMPLER_FP32_COPIES = 9.52  # x max_num_seqs x vocab_size x 4 bytes (logits, sort, probs)
# CUDA-graph pool estimate (subtracted since v0.21): 0.36 GiB for 16 graphs in a
# vLLM 0.27.1 log (gpustack/runner#251) -> 22.5 MiB per graph; capped at 1.5 GiB,
# the top of the 0.3-1.5 GiB range in facts §5 (vllm-project/vllm#21489: 1.3 GiB).
CUDA_GRAPH_GIB_PER_GRAPH = 0.0225
CUDA_GRAPH_GIB_CAP = 1.5
MAX_CUDA_GRAPH_CAPTURE_SIZE = 512  # vllm/config/vllm.py _set_cudagraph_sizes (non-Blackwell)

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

# Request profile defaults: `vllm bench serve` random dataset input length 1024;
# 256 output tokens, twice its 128, closer to chat answers. output_tokens is the
# max_tokens a request may ask for: the drain budget lets one such answer finish.
DEFAULT_PROMPT_TOKENS = 1024
DEFAULT_OUTPUT_TOKENS = 256


@dataclass(frozen=True)
class PlanRequest:
    """What to plan. `gpu` names a catalog GPU; `gpu_memory_gib` describes another one."""

    model: str
    gpu: str | None = None
    gpu_memory_gib: float | None = None
    tensor_parallel_size: int | None = None
    gpu_memory_utilization: float = 0.9
    max_model_len: int | None = None
    max_num_batched_tokens: int | None = None
    kv_cache_dtype: str = "auto"
    gpus_per_node: int | None = None
    prompt_tokens: int = DEFAULT_PROMPT_TOKENS
    output_tokens: int = DEFAULT_OUTPUT_TOKENS
    target_rps: float | None = None
    vllm_version: str = VLLM_VERSION
    spot_notice_seconds: int | None = None
    max_num_seqs: int | None = None  # None: vLLM's default, capped by the KV cache for the profile
    storage: str | None = None  # where the weights are read from (compose/plan/storage.py); None: local NVMe
    concurrent_loads: int = 1  # replicas loading from that storage at once (a first deploy: the minimum)


@dataclass
class Plan:
    """The planner's answer. `to_dict()` is what `--format json` prints."""

    request: PlanRequest
    model: str
    slug: str
    hf_repo: str
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
    kv_cache_tokens: int
    max_model_len: int
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
    if not isinstance(req.model, str) or not req.model.strip():
        raise InvalidInput("give a model: a catalog slug (see `compose models`) or a config.json path")
    if req.gpu and req.gpu_memory_gib is not None:
        raise InvalidInput("give --gpu or --gpu-memory-gib, not both")
    if not req.gpu and req.gpu_memory_gib is None:
        raise InvalidInput("give --gpu NAME (see `compose gpus`) or --gpu-memory-gib F for another GPU")
    _positive("--gpu-memory-gib", req.gpu_memory_gib, number=True)
    _positive("--tensor-parallel-size", req.tensor_parallel_size)
    _positive("--max-model-len", req.max_model_len)
    _positive("--max-num-batched-tokens", req.max_num_batched_tokens)
    _positive("--max-num-seqs", req.max_num_seqs)
    _positive("--gpus-per-node", req.gpus_per_node)
    _positive("--prompt-tokens", req.prompt_tokens)
    _positive("--output-tokens", req.output_tokens)
    _positive("--target-rps", req.target_rps, number=True)
    _positive("concurrent_loads", req.concurrent_loads)
    if req.storage is not None:
        storage_mod.get(req.storage)
    if not 0 < float(req.gpu_memory_utilization) <= 1:
        raise InvalidInput(f"--gpu-memory-utilization must be in (0, 1], got {req.gpu_memory_utilization}")
    if req.kv_cache_dtype not in KV_CACHE_DTYPES:
        raise InvalidInput(f"--kv-cache-dtype must be one of {', '.join(KV_CACHE_DTYPES)}, got {req.kv_cache_dtype!r}")
    if req.spot_notice_seconds is not None and (
        isinstance(req.spot_notice_seconds, bool) or int(req.spot_notice_seconds) < MIN_SPOT_NOTICE_SECONDS
    ):
        raise InvalidInput(f"spot notice must be at least {MIN_SPOT_NOTICE_SECONDS} seconds, got {req.spot_notice_seconds}")
    parse_version(req.vllm_version)


def _positive(flag: str, value, number: bool = False) -> None:
    if value is None:
        return
    ok_type = isinstance(value, (int, float)) if number else isinstance(value, int)
    if isinstance(value, bool) or not ok_type or not value > 0 or (number and not math.isfinite(value)):
        kind = "a positive number" if number else "a positive integer"
        raise InvalidInput(f"{flag} must be {kind}, got {value!r}")


def parse_version(text: str) -> tuple[int, int, int]:
    """'0.33.0', 'v0.11', '0.6.4.post1' -> (major, minor, patch)."""
    match = re.fullmatch(r"v?(\d+)\.(\d+)(?:\.(\d+))?(?:[.+-]?\w*)*", str(text).strip())
    if not match:
        raise InvalidInput(f"invalid vLLM version {text!r}; use X.Y.Z, e.g. {VLLM_VERSION}")
    return int(match[1]), int(match[2]), int(match[3] or 0)


@dataclass(frozen=True)
class Engine:
    """The pinned vLLM version's memory behaviour."""

    version: str
    v1: bool
    subtracts_cuda_graphs: bool
    has_shutdown_timeout: bool

    @property
    def label(self) -> str:
        return "V1" if self.v1 else "V0"


def engine_for(version: str) -> Engine:
    parsed = parse_version(version)
    return Engine(
        version=version,
        v1=parsed >= V1_DEFAULT_SINCE,
        subtracts_cuda_graphs=parsed >= CUDA_GRAPH_PROFILING_SINCE,
        has_shutdown_timeout=parsed >= SHUTDOWN_TIMEOUT_SINCE,
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

    @property
    def arch(self) -> Architecture:
        return self.model.arch

    @property
    def profile_tokens(self) -> int:
        return self.req.prompt_tokens + self.req.output_tokens

    @property
    def requested_gib(self) -> float:
        return self.gpu.memory_gib * self.req.gpu_memory_utilization


def _context(req: PlanRequest) -> _Context:
    model = catalog.resolve_model(req.model)
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
    return _Context(
        req=req, model=model, gpu=gpu, engine=engine_for(req.vllm_version),
        gpus_per_node=req.gpus_per_node or gpu.gpus_per_node, max_model_len=max_model_len,
        kv_dtype_bytes=KV_CACHE_DTYPES[req.kv_cache_dtype] or DTYPE_BYTES,
        dtype=arch.dtype if gpu.bf16 else "float16",
    )


# =============================================================== weights


@dataclass(frozen=True)
class WeightTally:
    """Bytes and parameters one GPU holds (experts and embedding counted apart)."""

    bytes: float
    params: float
    expert_bytes: float
    expert_params: float
    embedding_params: float


@dataclass
class _Tally:
    bytes: float = 0.0
    params: float = 0.0
    expert_bytes: float = 0.0
    expert_params: float = 0.0
    embedding_params: float = 0.0

    def add(self, nbytes: float, params: float, expert: bool = False) -> None:
        self.bytes += nbytes
        self.params += params
        if expert:
            self.expert_bytes += nbytes
            self.expert_params += params

    def freeze(self) -> WeightTally:
        return WeightTally(self.bytes, self.params, self.expert_bytes, self.expert_params, self.embedding_params)


def padded_vocab(vocab_size: int) -> int:
    return math.ceil(vocab_size / VOCAB_PADDING) * VOCAB_PADDING


@lru_cache(maxsize=512)
def weight_tally(arch: Architecture, tp: int, runtime: bool = True) -> WeightTally:
    """Weights held by one of `tp` GPUs, sharded as vLLM shards them.

    Column-parallel (q, k, v, gate, up) split their outputs, row-parallel (o,
    down) their inputs; K/V heads are replicated when tp > kv heads; embedding
    and LM head are vocab-parallel (padded to 64); norms, router and the RoPE
    cache are replicated. `runtime=False` gives the checkpoint as stored (tp=1,
    no padding, no RoPE cache).
    """
    t = _Tally()
    h, d = arch.hidden_size, DTYPE_BYTES
    vocab = math.ceil((padded_vocab(arch.vocab_size) if runtime else arch.vocab_size) / tp)
    t.add(vocab * h * d, vocab * h)
    t.embedding_params = vocab * h
    if not arch.tie_word_embeddings:
        t.add(vocab * h * d, vocab * h)  # LM head: kept in 16 bits by every supported method
    for layer in range(arch.num_layers):
        _attention(t, arch, tp, layer)
        if layer in arch.moe_layers:
            _moe_mlp(t, arch, tp, layer)
        else:
            _mlp(t, arch, tp, f"model.layers.{layer}.mlp", arch.intermediate_size)
    t.add(h * d, h)  # final norm
    if runtime:
        t.add(arch.max_position_embeddings * arch.rotary_dim * d, 0)  # RoPE cos/sin cache
    return t.freeze()


def _linear(t: _Tally, arch: Architecture, name: str, fan_in: int, fan_out: int, expert: bool = False, count: int = 1):
    q = arch.quantization
    if q is not None and not _skipped(q, name):
        nbytes = q.linear_bytes(fan_in, fan_out)
    else:
        nbytes = fan_in * fan_out * DTYPE_BYTES
    t.add(nbytes * count, fan_in * fan_out * count, expert)


@lru_cache(maxsize=65536)
def _skipped(q: catalog.Quantization, name: str) -> bool:
    return q.skips(name)


def _attention(t: _Tally, arch: Architecture, tp: int, layer: int) -> None:
    h, d, prefix = arch.hidden_size, DTYPE_BYTES, f"model.layers.{layer}.self_attn"
    q_out = arch.num_heads // tp * arch.head_dim
    kv_out = max(1, arch.num_kv_heads // tp) * arch.head_dim
    _linear(t, arch, f"{prefix}.q_proj", h, q_out)
    _linear(t, arch, f"{prefix}.k_proj", h, kv_out)
    _linear(t, arch, f"{prefix}.v_proj", h, kv_out)
    _linear(t, arch, f"{prefix}.o_proj", q_out, h)
    norms = arch.norms_per_layer * h + (2 * arch.head_dim if arch.qk_norm else 0)
    biases = (q_out + 2 * kv_out) if arch.qkv_bias else 0
    t.add((norms + biases) * d, norms + biases)


def _mlp(t: _Tally, arch: Architecture, tp: int, prefix: str, size: int, expert: bool = False, count: int = 1):
    h, inner = arch.hidden_size, size // tp
    if arch.gated_mlp:
        _linear(t, arch, f"{prefix}.gate_proj", h, inner, expert, count)
    _linear(t, arch, f"{prefix}.up_proj", h, inner, expert, count)
    _linear(t, arch, f"{prefix}.down_proj", inner, h, expert, count)
    if arch.mlp_bias:
        bias = ((2 if arch.gated_mlp else 1) * inner + h) * count
        t.add(bias * DTYPE_BYTES, bias, expert)


def _moe_mlp(t: _Tally, arch: Architecture, tp: int, layer: int) -> None:
    """Experts sharded along their intermediate size (vLLM FusedMoE without EP)."""
    prefix, h = f"model.layers.{layer}.mlp", arch.hidden_size
    _mlp(t, arch, tp, f"{prefix}.experts.0", arch.moe_intermediate_size, expert=True, count=arch.num_experts)
    t.add(h * arch.num_experts * DTYPE_BYTES, h * arch.num_experts)  # router, replicated, 16-bit
    if arch.shared_expert_intermediate_size:
        _mlp(t, arch, tp, f"{prefix}.shared_expert", arch.shared_expert_intermediate_size)
        t.add(h * DTYPE_BYTES, h)  # shared_expert_gate


def param_count(arch: Architecture) -> int:
    """Parameters of the checkpoint (compare with the model card)."""
    return int(weight_tally(arch, 1, runtime=False).params)


# =============================================================== tensor parallelism


def tp_problem(arch: Architecture, tp: int) -> str | None:
    """Why vLLM would refuse this tensor-parallel size, or None."""
    if arch.num_heads % tp:
        return f"tensor parallel size {tp} does not divide the {arch.num_heads} attention heads"
    kv = arch.num_kv_heads
    if (tp >= kv and tp % kv) or (tp < kv and kv % tp):
        return f"tensor parallel size {tp} and the {kv} KV heads do not divide one another"
    sizes = []
    if len(arch.moe_layers) < arch.num_layers:
        sizes.append(("intermediate_size", arch.intermediate_size))
    if arch.is_moe:
        sizes.append(("moe_intermediate_size", arch.moe_intermediate_size))
    if arch.shared_expert_intermediate_size:
        sizes.append(("shared_expert_intermediate_size", arch.shared_expert_intermediate_size))
    for key, size in sizes:
        if size % tp:
            return f"tensor parallel size {tp} does not divide {key} {size}"
        q = arch.quantization
        if q and q.scale == "group" and q.group_size and (size // tp) % q.group_size:
            return f"{size}/{tp} = {size // tp} input channels per GPU is not a multiple of the quantization group {q.group_size}"
    return None


def valid_tp_sizes(arch: Architecture, limit: int) -> list[int]:
    return [tp for tp in range(1, limit + 1) if tp_problem(arch, tp) is None]


# =============================================================== memory and KV capacity


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


@dataclass(frozen=True)
class _Sizing(_Memory):
    """One tensor-parallel size evaluated against the GPU: its memory budget
    (headroom only when it also fits), the batch limits and the verdict."""

    tp: int
    max_num_seqs: int
    max_num_batched_tokens: int
    default_max_num_seqs: int
    fits: bool
    problem: str | None  # why it does not fit


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
    if gpu.memory_gib >= 160:
        tokens, seqs = 16384, 1024
    elif gpu.memory_gib >= 70 and not gpu.is_a100:
        tokens, seqs = 8192, 1024
    else:
        tokens, seqs = 2048, 256
    seqs = req.max_num_seqs or seqs
    if req.max_num_batched_tokens is None:
        tokens = min(tokens, seqs * ctx.max_model_len)
    else:
        tokens = req.max_num_batched_tokens
    return tokens, req.max_num_seqs or min(seqs, tokens)


def non_torch_gib(tp: int) -> float:
    return NON_TORCH_GIB_TP1 if tp == 1 else NON_TORCH_GIB_MULTI


def activation_gib(ctx: _Context, tp: int, batched_tokens: int, max_num_seqs: int) -> float:
    """Peak activation of the profiling run (see the constants' fit above)."""
    arch = ctx.arch
    sampler = max_num_seqs * arch.vocab_size * 4
    if not ctx.engine.v1:  # V0 profiles a full batch of max_model_len tokens
        per_token = (2 * arch.hidden_size + 3 * arch.intermediate_size // tp) * DTYPE_BYTES
        return (batched_tokens * per_token + sampler) / GIB
    hidden = ACTIVATION_HIDDEN_BUFFERS * batched_tokens * arch.hidden_size * DTYPE_BYTES
    return ACTIVATION_BASE_GIB + (hidden + max(SAMPLER_FP32_COPIES * sampler, _mlp_peak_bytes(arch, tp, batched_tokens))) / GIB


def _mlp_peak_bytes(arch: Architecture, tp: int, tokens: int) -> float:
    """Largest MLP intermediate of the profiling forward (fused-MoE caches for MoE)."""
    per_inner = 3 if arch.gated_mlp else 2  # gate+up output and the activation, per intermediate channel
    dense = per_inner * (arch.intermediate_size // tp) if len(arch.moe_layers) < arch.num_layers else 0
    moe = arch.experts_per_token * (3 * arch.moe_intermediate_size // tp + arch.hidden_size) if arch.is_moe else 0
    return tokens * max(dense, moe) * DTYPE_BYTES


def cuda_graph_capture_sizes(max_num_seqs: int, batched_tokens: int) -> list[int]:
    """vLLM's default capture list: 1, 2, 4, multiples of 8 to 248, of 16 from 256."""
    top = min(max_num_seqs * 2, MAX_CUDA_GRAPH_CAPTURE_SIZE, batched_tokens)
    candidates = [1, 2, 4, *range(8, 256, 8), *range(256, MAX_CUDA_GRAPH_CAPTURE_SIZE + 1, 16)]
    return [s for s in candidates if s <= top]


def cuda_graph_estimate_gib(max_num_seqs: int, batched_tokens: int) -> float:
    """Estimated graph pool: piecewise graphs for every capture size plus full
    decode graphs for the sizes up to max_num_seqs."""
    sizes = cuda_graph_capture_sizes(max_num_seqs, batched_tokens)
    graphs = len(sizes) + sum(1 for s in sizes if s <= max_num_seqs)
    return min(CUDA_GRAPH_GIB_CAP, graphs * CUDA_GRAPH_GIB_PER_GRAPH)


def cuda_graph_gib(ctx: _Context, max_num_seqs: int, batched_tokens: int) -> float:
    """The part of the graph pool vLLM subtracts from the KV budget (v0.21+)."""
    if not ctx.engine.subtracts_cuda_graphs:
        return 0.0
    return cuda_graph_estimate_gib(max_num_seqs, batched_tokens)


def kv_bytes_per_token(arch: Architecture, tp: int, kv_dtype_bytes: int) -> int:
    """2 (K and V) x layers x max(1, kv_heads // tp) x head_dim x dtype bytes (facts §5)."""
    return 2 * arch.num_layers * max(1, arch.num_kv_heads // tp) * arch.head_dim * kv_dtype_bytes


@dataclass(frozen=True)
class KVLayout:
    """Block accounting of vLLM's KV cache manager for one GPU.

    A block holds BLOCK_SIZE tokens for one layer group; full-attention and
    sliding-window layers draw blocks from one pool (the hybrid allocator).
    """

    full_layers: int
    sliding_layers: int
    window: int | None
    page_bytes: int  # one layer, one block
    batched_tokens: int

    @property
    def group_layers(self) -> int:
        return max(self.full_layers, self.sliding_layers)

    def blocks_for(self, tokens: int) -> float:
        """Pool blocks one request of `tokens` tokens holds."""
        full = self.full_layers / self.group_layers * math.ceil(tokens / BLOCK_SIZE)
        if not self.sliding_layers:
            return full
        # SlidingWindowSpec.max_memory_usage_bytes: window - 1 + batched tokens, + 1 block
        kept = min(self.window - 1 + self.batched_tokens, tokens)
        return full + self.sliding_layers / self.group_layers * (math.ceil(kept / BLOCK_SIZE) + 1)

    def num_blocks(self, kv_bytes: float) -> int:
        return max(0, int(kv_bytes // (self.page_bytes * self.group_layers)))


def kv_layout(arch: Architecture, tp: int, kv_dtype_bytes: int, batched_tokens: int) -> KVLayout:
    page = 2 * BLOCK_SIZE * max(1, arch.num_kv_heads // tp) * arch.head_dim * kv_dtype_bytes
    return KVLayout(arch.full_attention_layers, arch.sliding_layers, arch.sliding_window, page, batched_tokens)


def _size(ctx: _Context, tp: int) -> _Sizing:
    """Follow vLLM's profiler for one TP size, with max_num_seqs either given or
    the largest value whose own profiling run leaves KV room for that many
    request-profile requests (the profile's activation and CUDA graphs grow
    with max_num_seqs, so the cap and the KV budget are solved together)."""
    batched, default_seqs = batch_defaults(ctx)
    seqs = default_seqs if ctx.req.max_num_seqs else _consistent_max_num_seqs(ctx, tp, batched, default_seqs)
    mem = _memory(ctx, tp, batched, seqs or default_seqs)
    problem = _fit_problem(ctx, tp, mem)
    budget = dataclasses.asdict(mem) | {"headroom": problem is None and mem.headroom}
    return _Sizing(
        **budget, tp=tp, max_num_seqs=seqs, max_num_batched_tokens=batched,
        default_max_num_seqs=default_seqs, fits=problem is None, problem=problem,
    )


def _consistent_max_num_seqs(ctx: _Context, tp: int, batched: int, default: int) -> int:
    """Largest s <= default with profile_concurrency(s) >= s (0 if none).

    profile_concurrency falls as s grows, so feasibility is monotone: bisect.
    """
    first = _memory(ctx, tp, batched, default).profile_concurrency
    if first >= default or first <= 0:
        return min(first, default)
    lo, hi = first, default - 1  # lo is feasible: a smaller s only frees memory
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if _memory(ctx, tp, batched, mid).profile_concurrency >= mid:
            lo = mid
        else:
            hi = mid - 1
    return lo


def _memory(ctx: _Context, tp: int, batched: int, seqs: int) -> _Memory:
    """vLLM's budget: requested - weights - activation - non-torch - graphs, then blocks."""
    arch = ctx.arch
    weights = weight_tally(arch, tp).bytes / GIB
    act = activation_gib(ctx, tp, batched, seqs)
    other = non_torch_gib(tp)
    graphs = cuda_graph_gib(ctx, seqs, batched)
    kv = ctx.requested_gib - weights - act - other - graphs
    layout = kv_layout(arch, tp, ctx.kv_dtype_bytes, batched)
    blocks = layout.num_blocks(kv * GIB) if kv > 0 else 0
    usable = max(0, blocks - 1)  # BlockPool holds one null block back (kv_cache_planning.py)
    need_max = layout.blocks_for(ctx.max_model_len)
    need_profile = layout.blocks_for(ctx.profile_tokens)
    tokens = int(blocks / need_max * ctx.max_model_len) if layout.sliding_layers else blocks * BLOCK_SIZE
    return _Memory(
        weights_gib=weights, activation_gib=act, non_torch_gib=other, cuda_graph_gib=graphs, kv_gib=kv,
        kv_bytes_per_token=kv_bytes_per_token(arch, tp, ctx.kv_dtype_bytes), num_blocks=blocks, kv_tokens=tokens,
        max_concurrency=blocks / need_max, profile_concurrency=int(usable // need_profile),
        holds_one=usable >= need_max, headroom=usable >= need_max + HEADROOM_REQUESTS * need_profile,
    )


def _fit_problem(ctx: _Context, tp: int, mem: _Memory) -> str | None:
    """Why vLLM would not start (or the pod could not be placed), else None."""
    q = ctx.arch.quantization
    cc = ctx.gpu.compute_capability
    if q and q.bits == 8 and q.scale != "group" and cc and float(cc) < 8.0:
        return f"FP8 weights need compute capability 8.0 or newer; {ctx.gpu.name} is {cc}"
    if tp > ctx.gpus_per_node:
        return f"TP {tp} needs {tp} GPUs but a {ctx.gpu.name} node has {ctx.gpus_per_node}"
    if mem.weights_gib >= ctx.requested_gib:
        return (f"the weights need {mem.weights_gib:.2f} GiB per GPU but "
                f"{ctx.req.gpu_memory_utilization} x {ctx.gpu.memory_gib} = {ctx.requested_gib:.2f} GiB is budgeted")
    if mem.num_blocks <= 1:
        return f"no memory is left for the KV cache ({mem.kv_gib:.2f} GiB after weights, activation and overheads)"
    if not mem.holds_one:
        need = ctx.max_model_len * mem.kv_bytes_per_token / GIB
        return (f"one {ctx.max_model_len}-token request needs {need:.2f} GiB of KV cache per GPU "
                f"but only {mem.kv_gib:.2f} GiB is left")
    return None


def _size_explicit(ctx: _Context, tp: int) -> _Sizing:
    problem = tp_problem(ctx.arch, tp)
    if problem:
        valid = valid_tp_sizes(ctx.arch, ctx.gpus_per_node)
        raise InvalidInput(f"--tensor-parallel-size {tp}: {problem}; valid sizes on one node: {valid}")
    return _size(ctx, tp)


def _choose_tp(ctx: _Context) -> tuple[_Sizing, str]:
    """Smallest valid TP on one node with headroom, else the smallest that fits."""
    sizings = [_size(ctx, tp) for tp in valid_tp_sizes(ctx.arch, ctx.gpus_per_node)]
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
    """One line: what failed and the ways out (TP, GPU, quantization, context)."""
    options = []
    larger = [s for s in (_size(ctx, tp) for tp in valid_tp_sizes(ctx.arch, ctx.gpus_per_node) if tp > sizing.tp) if s.fits]
    if larger:
        options.append(f"a higher --tensor-parallel-size ({larger[0].tp} fits)")
    else:
        options.append(f"no --tensor-parallel-size up to {ctx.gpus_per_node} fits on one {ctx.gpu.name} node")
    bigger = _bigger_gpu(ctx)
    if bigger:
        options.append(f"a bigger GPU (--gpu {bigger[0]} fits at TP {bigger[1]})")
    elif not ctx.gpu.custom:
        options.append("no catalog GPU fits it on one node")
    if ctx.arch.quantization is None:
        options.append("a quantized variant (FP8 halves the weights)")
    shorter = _max_len_that_fits(ctx, sizing)
    if shorter:
        options.append(f"a shorter context (--max-model-len {shorter} fits at TP {sizing.tp})")
    if ctx.kv_dtype_bytes > 1 and sizing.kv_gib > 0:
        options.append("--kv-cache-dtype fp8 (half the KV bytes per token)")
    return f"{ctx.model.slug} does not fit on {ctx.gpu.name} at TP {sizing.tp}: {sizing.problem}; way out: " + "; ".join(options)


def _bigger_gpu(ctx: _Context) -> tuple[str, int] | None:
    """The smallest catalog GPU with more memory on which some TP fits."""
    for gpu in sorted(catalog.gpus(), key=lambda g: g.memory_gib):
        if gpu.memory_gib <= ctx.gpu.memory_gib:
            continue
        other = dataclasses.replace(ctx, gpu=gpu, gpus_per_node=gpu.gpus_per_node,
                                    dtype=ctx.arch.dtype if gpu.bf16 else "float16")
        for tp in valid_tp_sizes(ctx.arch, gpu.gpus_per_node):
            if _size(other, tp).fits:
                return gpu.name, tp
    return None


def _max_len_that_fits(ctx: _Context, sizing: _Sizing) -> int | None:
    """vLLM's 'estimated maximum model length' at this TP, if it is usable."""
    if sizing.kv_gib <= 0 or sizing.num_blocks <= 1 or sizing.weights_gib >= ctx.requested_gib:
        return None
    tokens = (sizing.num_blocks - 1) * BLOCK_SIZE
    if ctx.arch.sliding_layers:
        tokens = int(sizing.max_concurrency * ctx.max_model_len)
    tokens = min(tokens, ctx.max_model_len - 1)
    return tokens if tokens >= ctx.profile_tokens else None


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
    arch, tally = ctx.arch, weight_tally(ctx.arch, sizing.tp)
    touched = min(1.0, batch * arch.experts_per_token / arch.num_experts) if arch.is_moe else 1.0
    weight_read = tally.bytes - tally.expert_bytes * (1 - touched)
    context = ctx.req.prompt_tokens + ctx.req.output_tokens / 2
    kv_read = batch * _kv_bytes_for(ctx, sizing.tp, context)
    step = (weight_read + kv_read) / (ctx.gpu.bandwidth_gbps * 1e9 * MEMORY_BANDWIDTH_EFFICIENCY)
    tflops = _prefill_tflops(ctx)
    active = tally.params - tally.embedding_params
    if arch.is_moe:
        active -= tally.expert_params * (1 - arch.experts_per_token / arch.num_experts)
    prefill = ctx.req.prompt_tokens * 2 * active / (tflops * 1e12 * PREFILL_COMPUTE_EFFICIENCY) if tflops else 0.0
    rps = batch / (ctx.req.output_tokens * step + batch * prefill)
    return _Speed(1 / step, rps, step, prefill, tflops)


def _kv_bytes_for(ctx: _Context, tp: int, tokens: float) -> float:
    """KV bytes one request of `tokens` tokens keeps on one GPU (windows capped)."""
    arch = ctx.arch
    per_layer = 2 * max(1, arch.num_kv_heads // tp) * arch.head_dim * ctx.kv_dtype_bytes
    sliding = arch.sliding_layers * min(tokens, arch.sliding_window or tokens)
    return per_layer * (arch.full_attention_layers * tokens + sliding)


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
    m = ctx.model
    values = dict(
        request=ctx.req, model=m.slug if m.origin == "catalog" else m.origin, slug=m.slug, hf_repo=m.hf_repo,
        revision=m.revision, revision_pinned=m.revision_pinned, gated=m.gated, served_model_name=m.served_model_name,
        model_dir=f"/models/{m.hf_repo}", vllm_version=ctx.req.vllm_version, engine=ctx.engine.label,
        gpu=ctx.gpu.name, gpu_memory_gib=round(ctx.gpu.memory_gib, 2), gpus_per_node=ctx.gpus_per_node,
        tensor_parallel_size=sizing.tp, gpus_per_replica=sizing.tp,
        gpu_memory_utilization=ctx.req.gpu_memory_utilization, dtype=ctx.dtype, kv_cache_dtype=ctx.req.kv_cache_dtype,
        block_size=BLOCK_SIZE, weights_gib_total=_gib(total_gib), weights_gib_per_gpu=_gib(sizing.weights_gib),
        activation_gib=_gib(sizing.activation_gib), non_torch_gib=_gib(sizing.non_torch_gib),
        cuda_graph_gib=_gib(sizing.cuda_graph_gib), kv_cache_gib_per_gpu=_gib(sizing.kv_gib),
        kv_bytes_per_token_per_gpu=sizing.kv_bytes_per_token, kv_cache_tokens=sizing.kv_tokens,
        max_model_len=ctx.max_model_len, max_concurrency_at_max_model_len=round(sizing.max_concurrency, 2),
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
    kv_heads = max(1, arch.num_kv_heads // s.tp)
    gpu_note = (f"custom GPU: {gpu.memory_gib} GiB given; bandwidth assumed {gpu.bandwidth_gbps:.0f} GB/s "
                "(slowest catalog GPU), compute unknown") if gpu.custom else (
                    f"catalog GPU {gpu.device_name}; memory from {gpu.source.get('memory_gib', '').split(' (')[0]}")
    e = {
        "model": f"{ctx.model.origin}: {arch.model_type}, {arch.num_layers} layers, hidden {arch.hidden_size}, "
                 f"{arch.num_heads} heads / {arch.num_kv_heads} KV heads x {arch.head_dim}, vocab {arch.vocab_size}",
        "slug": "catalog slug" if ctx.model.origin == "catalog" else "directory name, lower-cased DNS-1123",
        "hf_repo": "Hugging Face repository the init container downloads" if ctx.model.origin == "catalog"
                   else "config's _name_or_path when it is org/name, else the directory name",
        "revision": "pinned commit from the catalog (seen in public code)" if ctx.model.revision_pinned
                    else ("catalog revision (not pinned to a commit)" if ctx.model.origin == "catalog"
                          else "none: a local config.json has no Hub revision"),
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
        "gpu_memory_utilization": f"vLLM budgets {req.gpu_memory_utilization} x {gpu.memory_gib} = {ctx.requested_gib:.2f} GiB per GPU",
        "dtype": (f"{arch.dtype} from the config" if ctx.dtype == arch.dtype
                  else f"{gpu.name} has no bfloat16: serve with --dtype half"),
        "kv_cache_dtype": f"--kv-cache-dtype {req.kv_cache_dtype}: {ctx.kv_dtype_bytes} byte(s) per KV element",
        "block_size": "vLLM's default KV block size on CUDA (CacheConfig.DEFAULT_BLOCK_SIZE)",
        "weights_gib_total": f"checkpoint size from the architecture: {param_count(arch) / 1e9:.2f}B parameters, {quant}",
        "weights_gib_per_gpu": (f"sharded over TP {s.tp}: attention and MLP split"
                                + (f", the {arch.num_kv_heads} KV heads replicated" if s.tp > arch.num_kv_heads else "")
                                + ", vocab-parallel embedding/LM head padded to 64, norms and RoPE cache replicated"),
        "activation_gib": _explain_activation(ctx, s),
        "non_torch_gib": (f"NCCL and cuBLAS buffers: {NON_TORCH_GIB_TP1} GiB at TP1, {NON_TORCH_GIB_MULTI} at TP>=2 "
                          "(llm-d-benchmark H100 logs, facts §5)"),
        "cuda_graph_gib": _explain_graphs(ctx, s),
        "kv_cache_gib_per_gpu": (f"{ctx.requested_gib:.2f} budget - {s.weights_gib:.2f} weights - {s.activation_gib:.2f} activation "
                                 f"- {s.non_torch_gib:.2f} non-torch - {s.cuda_graph_gib:.2f} CUDA graphs "
                                 "(vLLM V1 determine_available_memory)"),
        "kv_bytes_per_token_per_gpu": f"2 x {arch.num_layers} layers x {kv_heads} KV heads/GPU x {arch.head_dim} x {ctx.kv_dtype_bytes} B",
        "kv_cache_tokens": _explain_tokens(ctx, s),
        "max_model_len": "--max-model-len" if req.max_model_len else "the model's context length (vLLM's default)",
        "max_concurrency_at_max_model_len": "KV blocks / blocks one max_model_len request needs (vLLM's 'Maximum concurrency')",
        "max_num_seqs": ("--max-num-seqs" if req.max_num_seqs else
                         f"vLLM 0.33 default {s.default_max_num_seqs} for this GPU (get_batch_defaults), capped to the most "
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


def _explain_activation(ctx: _Context, s: _Sizing) -> str:
    if not ctx.engine.v1:
        return (f"V0 profile of {s.max_num_batched_tokens} tokens: (2 x hidden + 3 x intermediate/TP) x 2 B per token "
                f"+ {V0_MAX_NUM_SEQS} x vocab fp32 logits")
    return (f"{ACTIVATION_BASE_GIB} + {ACTIVATION_HIDDEN_BUFFERS} x {s.max_num_batched_tokens} tokens x hidden x 2 B "
            f"+ max({SAMPLER_FP32_COPIES} x {s.max_num_seqs} seqs x vocab x 4 B sampler warm-up, MLP intermediate); "
            "fitted on llm-d-benchmark H100 logs")


def _explain_graphs(ctx: _Context, s: _Sizing) -> str:
    if not ctx.engine.subtracts_cuda_graphs:
        pool = cuda_graph_estimate_gib(s.max_num_seqs, s.max_num_batched_tokens)
        return (f"not subtracted before vLLM 0.21: the graph pool (~{pool:.2f} GiB) "
                f"must fit in the (1 - {ctx.req.gpu_memory_utilization}) headroom")
    sizes = cuda_graph_capture_sizes(s.max_num_seqs, s.max_num_batched_tokens)
    return (f"{len(sizes)} piecewise + {sum(1 for x in sizes if x <= s.max_num_seqs)} full graphs x "
            f"{CUDA_GRAPH_GIB_PER_GRAPH * 1024:.0f} MiB, capped at {CUDA_GRAPH_GIB_CAP} GiB (estimate, subtracted since 0.21)")


def _explain_tokens(ctx: _Context, s: _Sizing) -> str:
    if ctx.arch.sliding_layers:
        return (f"{s.num_blocks} blocks; {ctx.arch.sliding_layers} sliding-window layers keep at most "
                f"{ctx.arch.sliding_window} - 1 + {s.max_num_batched_tokens} tokens per request, so capacity = "
                "concurrency x max_model_len (vLLM's hybrid figure)")
    return f"{s.kv_gib:.2f} GiB / {s.kv_bytes_per_token} B per token, rounded down to {s.num_blocks} blocks of {BLOCK_SIZE}"


def _explain_rps(ctx: _Context, s: _Sizing, speed: _Speed) -> str:
    if s.max_num_seqs < 1:
        return "no request fits: no throughput"
    prefill = (f" + prefill of {ctx.req.prompt_tokens} tokens at {PREFILL_COMPUTE_EFFICIENCY:.0%} of "
               f"{speed.tflops:.0f} TFLOPS ({speed.prefill_seconds * 1000:.0f} ms each)" if speed.tflops
               else " (prefill not counted: compute unknown)")
    return (f"estimate: {s.max_num_seqs} requests per {ctx.req.output_tokens} decode steps of "
            f"{speed.step_seconds * 1000:.1f} ms{prefill}")
