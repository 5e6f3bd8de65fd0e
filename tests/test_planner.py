"""The planner's maths on small worked examples, derived by hand in each test.

GiB = 2**30 bytes. Tiny configs keep the arithmetic checkable; catalog models
are checked against figures vLLM itself logged (llm-d-benchmark, vllm#6746).
"""

from __future__ import annotations

import json
import math

import pytest

from compose.plan import catalog, planner
from compose.plan.catalog import Quantization, parse_config
from compose.core.errors import ConfigError, DoesNotFit, InvalidInput, UnknownGPU, UnknownModel
from compose.plan.planner import PlanRequest, plan, plan_or_raise

GIB = 2**30


def tiny(**overrides) -> dict:
    """A 2-layer Llama-style config small enough to count by hand."""
    cfg = {
        "model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000,
        "max_position_embeddings": 128, "tie_word_embeddings": False, "torch_dtype": "bfloat16",
    }
    cfg.update(overrides)
    return cfg


# --------------------------------------------------------------------------- bytes per token


def test_bytes_per_token_llama_8b():
    arch = catalog.get_model("llama-3.1-8b").architecture()
    # 2 (K,V) x 32 layers x 8 KV heads x 128 head_dim x 2 bytes
    assert planner.kv_bytes_per_token(arch, 1, 2) == 2 * 32 * 8 * 128 * 2 == 131072
    # TP2 halves the KV heads per GPU; fp8 halves the bytes again
    assert planner.kv_bytes_per_token(arch, 2, 2) == 2 * 32 * 4 * 128 * 2
    assert planner.kv_bytes_per_token(arch, 2, 1) == 2 * 32 * 4 * 128 * 1


def test_bytes_per_token_replicates_kv_heads_past_tp():
    arch = parse_config(tiny(num_attention_heads=8, num_key_value_heads=2))
    # TP4 > 2 KV heads: max(1, 2 // 4) = 1 head per GPU, head_dim 64 / 8 = 8
    assert planner.kv_bytes_per_token(arch, 4, 2) == 2 * 2 * 1 * 8 * 2


def test_bytes_per_token_uses_head_dim_from_config():
    # Qwen3-style: head_dim 128 although hidden / heads = 64 / 4 = 16
    arch = parse_config(tiny(head_dim=128))
    assert planner.kv_bytes_per_token(arch, 1, 2) == 2 * 2 * 2 * 128 * 2


# --------------------------------------------------------------------------- weights


def _tiny_layer_params(tp: int) -> int:
    """hidden 64, 4 heads x 16, 2 KV heads, intermediate 128, sharded over tp."""
    q_out = 4 // tp * 16
    kv_out = max(1, 2 // tp) * 16
    attention = 64 * q_out + 2 * 64 * kv_out + q_out * 64
    norms = 2 * 64
    mlp = 3 * 64 * (128 // tp)
    return attention + norms + mlp


def test_weights_untied_and_tied():
    untied = parse_config(tiny())
    tied = parse_config(tiny(tie_word_embeddings=True))
    layers = 2 * _tiny_layer_params(1)  # 2 x (4096 + 4096 + 4096 + 128 + 24576) = 73984
    assert layers == 73984
    embedding = 1000 * 64
    final_norm = 64
    assert planner.param_count(untied) == 2 * embedding + layers + final_norm == 202048
    assert planner.param_count(tied) == embedding + layers + final_norm == 138048
    assert planner.weight_tally(untied, 1, runtime=False).bytes == 202048 * 2


def test_weights_per_gpu_shard_pad_and_replicate():
    arch = parse_config(tiny())
    # TP2: vocab padded to 1024 then split (512 rows each for embedding and LM head),
    # layers sharded, final norm and the RoPE cache (128 positions x 16 dims) replicated.
    params = 2 * 512 * 64 + 2 * _tiny_layer_params(2) + 64
    rope = 128 * 16 * 2
    assert planner.weight_tally(arch, 2).bytes == params * 2 + rope == 209536


def test_weights_moe_experts_and_router():
    arch = parse_config(tiny(num_local_experts=4, num_experts_per_tok=2, intermediate_size=32, model_type="mixtral"))
    attention_and_norms = 4096 + 2048 + 2048 + 4096 + 128
    experts = 4 * 3 * 64 * 32  # 4 experts x (gate, up, down) of 64 x 32
    router = 64 * 4
    expected = 2 * 1000 * 64 + 2 * (attention_and_norms + experts + router) + 64
    assert planner.param_count(arch) == expected
    tally = planner.weight_tally(arch, 1, runtime=False)
    assert tally.expert_params == 2 * experts


def test_catalog_moe_matches_published_totals():
    # Mixtral 8x7B: 46.7B total (Mistral); Qwen3-30B-A3B: 30.5B total (model card)
    assert planner.param_count(catalog.get_model("mixtral-8x7b").architecture()) / 1e9 == pytest.approx(46.7, rel=0.01)
    assert planner.param_count(catalog.get_model("qwen3-30b-a3b").architecture()) / 1e9 == pytest.approx(30.5, rel=0.01)


def test_weights_fp8_channel_with_unquantized_lm_head():
    qc = {"quant_method": "compressed-tensors", "config_groups": {"group_0": {
        "targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
        "ignore": ["lm_head"]}
    arch = parse_config(tiny(quantization_config=qc))

    def linear(fan_in, fan_out):  # 1 byte per weight + one fp32 scale per output channel
        return fan_in * fan_out + 4 * fan_out

    layer = (linear(64, 64) + 2 * linear(64, 32) + linear(64, 64)  # q, k, v, o
             + 2 * linear(64, 128) + linear(128, 64)  # gate, up, down
             + 2 * 64 * 2)  # two norms in 16 bits
    expected = 2 * (1000 * 64 * 2) + 2 * layer + 64 * 2  # embedding + LM head in 16 bits
    assert planner.weight_tally(arch, 1, runtime=False).bytes == expected


def test_weights_match_vllm_logs():
    # "Model loading took" figures from llm-d-benchmark (vLLM 0.11, H100).
    logged = {("llama-3.1-8b", 1): 14.99, ("qwen3-0.6b", 1): 1.12, ("qwen3-32b", 1): 61.03,
              ("llama-3.3-70b-fp8", 1): 67.72, ("llama-3.3-70b-fp8", 2): 33.88}
    for (slug, tp), gib in logged.items():
        arch = catalog.get_model(slug).architecture()
        assert planner.weight_tally(arch, tp).bytes / GIB == pytest.approx(gib, abs=0.02), slug


def test_405b_fp8_keeps_attention_in_16_bits():
    arch = catalog.get_model("llama-3.1-405b-fp8").architecture()
    q = arch.quantization
    assert q.skips("model.layers.7.self_attn.q_proj") and q.skips("model.layers.125.mlp.up_proj")
    assert not q.skips("model.layers.7.mlp.up_proj")
    # vllm#6746 (v0.5.3) logged 57.75 GiB per GPU at TP8; the architecture gives ~56.8.
    assert planner.weight_tally(arch, 8).bytes / GIB == pytest.approx(57.75, rel=0.03)


@pytest.mark.parametrize(
    "quant, expected",
    [
        # [64 out, 128 in]: 4-bit weights = 4096 B; groups of 32 -> 4 groups x 64 outputs
        (Quantization("awq", 4, "group", group_size=32, scale_bytes=2, zero_point=True), 4096 + 4 * 64 * 2 + 4 * 64 * 0.5),
        (Quantization("gptq", 4, "group", group_size=32, scale_bytes=2, zero_point=True, g_idx=True),
         4096 + 4 * 64 * 2 + 4 * 64 * 0.5 + 128 * 4),
        (Quantization("fbgemm_fp8", 8, "channel"), 128 * 64 + 64 * 4),
        (Quantization("fp8", 8, "tensor"), 128 * 64 + 4),
        (Quantization("fp8", 8, "block", group_size=64), 128 * 64 + 1 * 2 * 4),
    ],
)
def test_quantized_linear_bytes(quant, expected):
    assert quant.linear_bytes(128, 64) == expected


def test_awq_config_is_read():
    arch = parse_config(tiny(quantization_config={"quant_method": "awq", "bits": 4, "group_size": 64, "zero_point": True}))
    assert arch.quantization.method == "awq" and arch.quantization.group_size == 64


# --------------------------------------------------------------------------- activation, graphs, KV


def _ctx(**kw):
    req = PlanRequest(**{"gpu": "h100-80gb", **kw})
    return planner._context(req)


# The llm-d-benchmark rows ran vllm-openai:latest in January 2026 (a release between
# 0.11.1 and 0.14: sorting native sampler, no CUDA-graph subtraction); see benchmarks/planner_accuracy.py.
LLMD_VERSION = "0.14.0"


def test_activation_for_llama_8b_default_batch():
    ctx = _ctx(model="llama-3.1-8b", vllm_version=LLMD_VERSION)
    # 0.022 + (1.28 x 8192 x 4096 x 2 + 9.52 x 1024 x 128256 x 4) / GiB
    expected = 0.022 + (1.28 * 8192 * 4096 * 2 + 9.52 * 1024 * 128256 * 4) / GIB
    assert expected == pytest.approx(4.76, abs=0.005)  # the logged peak
    assert planner.activation_gib(ctx, 1, 8192, 1024) == pytest.approx(expected)


def test_cuda_graphs_only_subtracted_from_0_21():
    old = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb", vllm_version="0.20.0", max_num_seqs=256))
    new = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb", vllm_version="0.21.0", max_num_seqs=256))
    assert old.cuda_graph_gib == 0
    # 256 seqs: sizes 1,2,4, 8..248 step 8 (31), 256..512 step 16 (17) = 51 piecewise, 35 of them <= 256
    # full-decode graphs: 86 x 0.0225 GiB = 1.94, capped at 1.5
    assert new.cuda_graph_gib == 1.5
    # 0.20 still counts what graph profiling leaves outside torch (0.25 GiB at TP1); 0.21 does not
    assert (old.non_torch_gib, new.non_torch_gib) == (0.25, 0.13)
    assert old.kv_cache_gib_per_gpu - new.kv_cache_gib_per_gpu == pytest.approx(1.5 - 0.12, abs=0.011)


def test_kv_cache_is_budget_minus_overheads_and_tokens_are_whole_blocks():
    p = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb"))
    assert p.gpu_memory_utilization == 0.92  # vLLM 0.33's default (config/cache.py)
    budget = 0.92 * 79.18
    expected = budget - p.weights_gib_per_gpu - p.activation_gib - p.non_torch_gib - p.cuda_graph_gib
    assert p.kv_cache_gib_per_gpu == pytest.approx(expected, abs=0.03)
    assert p.kv_cache_tokens % 16 == 0
    kv_bytes = p.kv_cache_gib_per_gpu * GIB
    assert p.kv_cache_tokens * 131072 <= kv_bytes + 0.005 * GIB
    assert (p.kv_cache_tokens + 16) * 131072 > kv_bytes - 0.005 * GIB


def test_calibration_point_llama_8b_h100_llm_d():
    p = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb", tensor_parallel_size=1, max_model_len=16000,
                         gpu_memory_utilization=0.9, vllm_version=LLMD_VERSION, max_num_seqs=1024))
    # 71.262 - 14.99 weights - 4.76 activation - 0.13 non-torch (no graph subtraction before 0.21)
    assert p.kv_cache_gib_per_gpu == pytest.approx(71.262 - 14.99 - 4.76 - 0.13, abs=0.02)


def test_sliding_window_layers_hold_at_most_the_window():
    arch = catalog.get_model("gemma-2-9b").architecture()
    assert (arch.sliding_window, arch.sliding_layers, arch.full_attention_layers) == (4096, 21, 21)
    layout = planner.kv_layout(arch, 1, 2, 2048)  # one batch in flight (vLLM <= 0.11)
    # 20000 tokens: full layers need ceil(20000/16) = 1250 blocks; sliding ones keep
    # min(4096 - 1 + 2048, 20000) = 6143 tokens -> ceil(6143/16) + 1 = 385 blocks
    assert layout.blocks_per_request(20000) == 1250 + 385
    # 21 + 21 layers: two groups of 21, one block = 21 layers x (16 x 8 heads x 256 x 2 x 2 B)
    assert layout.bytes_per_block == 21 * 16 * 8 * 256 * 2 * 2


# --------------------------------------------------------------------------- batch defaults


@pytest.mark.parametrize(
    "gpu, tokens, seqs",
    [("h100-80gb", 8192, 1024), ("h200", 8192, 1024), (192.0, 16384, 1024),
     ("a100-80gb", 2048, 256), ("l4", 2048, 256)],
)
def test_batch_defaults_follow_get_batch_defaults(gpu, tokens, seqs):
    # vllm/engine/arg_utils.py: >=160 GiB -> 16384/1024; >=70 GiB and not A100 -> 8192/1024; else 2048/256
    # (a 192 GiB GPU: no catalog GPU is that large since MI300X left the catalog)
    kw = {"gpu": None, "gpu_memory_gib": gpu} if isinstance(gpu, float) else {"gpu": gpu}
    assert planner.batch_defaults(_ctx(model="qwen3-8b", **kw)) == (tokens, seqs)


def test_batched_tokens_capped_by_seqs_times_len():
    ctx = _ctx(model="qwen3-8b", max_model_len=4, prompt_tokens=2, output_tokens=2, max_num_seqs=8)
    assert planner.batch_defaults(ctx) == (8 * 4, 8)


def test_max_num_seqs_capped_by_kv_capacity():
    p = plan(PlanRequest("llama-3.1-8b", gpu="l4", max_model_len=8192))
    assert p.max_num_seqs < 256
    # the KV cache holds that many 1280-token requests (80 blocks each)
    assert p.max_num_seqs * math.ceil(1280 / 16) <= p.kv_cache_tokens // 16 - 1


# --------------------------------------------------------------------------- TP choice and fit


def test_default_tp_for_70b_on_h100_is_4():
    # TP1: 131 GiB of weights > 71.26. TP2: 65.7 GiB of weights leave < 5 GiB, while one
    # 131072-token request needs 131072 x (2 x 80 x 4 x 128 x 2) B = 20 GiB. TP3 does not
    # divide 64 heads. TP4: 32.9 GiB of weights, one request needs 10 GiB: fits.
    p = plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb"))
    assert p.fits and p.tensor_parallel_size == 4 == p.gpus_per_replica
    assert p.weights_gib_per_gpu == pytest.approx(131.42 / 4, abs=0.1)


def test_70b_bf16_tp1_on_h100_does_not_fit_and_names_the_way_out():
    p = plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb", tensor_parallel_size=1))
    assert not p.fits
    assert "--tensor-parallel-size (4 fits)" in p.reason
    assert "bigger GPU" in p.reason and "quantized" in p.reason
    with pytest.raises(DoesNotFit) as err:
        plan_or_raise(PlanRequest("llama-3.1-70b", gpu="h100-80gb", tensor_parallel_size=1))
    assert err.value.plan is not None and err.value.plan.fits is False


def test_8b_with_128k_context_on_a_24gb_gpu_does_not_fit():
    # 131072 tokens x 131072 B = 16 GiB of KV, but 0.9 x 23.64 - 15 GiB of weights < 6.3 GiB
    p = plan(PlanRequest("llama-3.1-8b", gpu="rtx-4090"))
    assert not p.fits
    assert "16.00 GiB" in p.reason
    assert "--max-model-len" in p.reason and "no --tensor-parallel-size up to 1" in p.reason


def test_70b_fp8_tp1_on_h100_fails_as_logged():
    p = plan(PlanRequest("llama-3.3-70b-fp8", gpu="h100-80gb", tensor_parallel_size=1, max_model_len=16000,
                         gpu_memory_utilization=0.9, vllm_version=LLMD_VERSION, max_num_seqs=1024))
    assert not p.fits and p.kv_cache_gib_per_gpu < 0  # vLLM logged -1.44 GiB


def test_nothing_fits_on_one_node_says_so():
    p = plan(PlanRequest("llama-3.1-405b-fp8", gpu="l4"))
    assert not p.fits and "no --tensor-parallel-size up to 8 fits" in p.reason


def test_fp8_weights_need_ampere_or_newer():
    p = plan(PlanRequest("llama-3.3-70b-fp8", gpu="t4", tensor_parallel_size=8))
    assert not p.fits and "compute capability" in p.reason


def test_t4_serves_in_float16():
    assert plan(PlanRequest("qwen3-0.6b", gpu="t4")).dtype == "float16"


def test_tp_must_divide_heads():
    with pytest.raises(InvalidInput, match="does not divide the 64 attention heads"):
        plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb", tensor_parallel_size=3))


def test_tp_must_respect_the_quantization_group(tmp_path):
    cfg = tiny(intermediate_size=96, quantization_config={"quant_method": "awq", "bits": 4, "group_size": 32})
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    # 96 / 2 = 48 input channels per GPU for down_proj: not a multiple of 32
    with pytest.raises(InvalidInput, match="quantization group"):
        plan(PlanRequest(str(tmp_path), gpu_memory_gib=20, tensor_parallel_size=2, max_model_len=64,
                         prompt_tokens=32, output_tokens=32))


# --------------------------------------------------------------------------- bad input


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_model_len": -5}, "--max-model-len must be a positive integer"),
        ({"max_model_len": 10**7}, "exceeds"),
        ({"gpu_memory_utilization": 1.5}, "--gpu-memory-utilization"),
        ({"kv_cache_dtype": "int3"}, "--kv-cache-dtype"),
        ({"prompt_tokens": 0}, "--prompt-tokens"),
        ({"target_rps": -1.0}, "--target-rps"),
        ({"vllm_version": "latest"}, "vLLM version"),
        ({"gpu": None}, "--gpu"),
        ({"gpu_memory_gib": 80.0}, "not both"),
        ({"spot_notice_seconds": 1}, "spot notice"),
    ],
)
def test_bad_input_is_invalid_input(kwargs, message):
    with pytest.raises(InvalidInput, match=message):
        plan(PlanRequest(**{"model": "llama-3.1-8b", "gpu": "l4", **kwargs}))


def test_unknown_model_and_gpu():
    with pytest.raises(UnknownModel, match=r"unknown model 'nope'; run `compose models`"):
        plan(PlanRequest("nope", gpu="l4"))
    with pytest.raises(UnknownGPU, match="unknown GPU 'nope'"):
        plan(PlanRequest("llama-3.1-8b", gpu="nope"))


def test_malformed_config_json(tmp_path):
    bad = tmp_path / "config.json"
    bad.write_text("{not json")
    with pytest.raises(ConfigError) as err:
        plan(PlanRequest(str(bad), gpu_memory_gib=79.18))
    assert "malformed JSON" in str(err.value) and "\n" not in str(err.value)


# --------------------------------------------------------------------------- budgets


def test_startup_budget_from_load_throughput():
    p = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb"))
    load = 16.06e9 / (1.1e9)  # 8.03B x 2 bytes at 1.1 GB/s (one process, TP1)
    assert p.load_seconds_estimate == math.ceil(load)
    assert p.startup_budget_seconds == math.ceil(1.5 * (load + 90 + 60))  # no P2P check at TP1
    assert p.startup_probe_period_seconds * p.startup_probe_failure_threshold >= p.startup_budget_seconds
    assert p.progress_deadline_seconds >= p.startup_budget_seconds
    assert p.scale_down_stabilization_seconds >= 300


def test_startup_budget_reads_the_checkpoint_from_its_storage():
    """prod-70b's case: 131.4 GiB from EFS. The budget covers the load at the
    conservative NFS rate (350 MiB/s), which is below EFS's 500 MiB/s per-client limit."""
    from compose.plan import storage

    p = plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb", storage="efs", concurrent_loads=2))
    bytes_ = planner.weight_tally(catalog.resolve_model("llama-3.1-70b").arch, 1, runtime=False).bytes
    load = bytes_ / (350 * storage.MIB)
    assert p.storage == "efs" and p.load_read_mib_per_second == 350
    assert p.load_seconds_estimate == math.ceil(load) and 380 < load < 390
    assert p.startup_budget_seconds == math.ceil(1.5 * (load + 90 + 60 + 60))  # TP4: P2P check
    assert p.startup_budget_seconds >= bytes_ / (500 * storage.MIB)  # even at the per-client limit
    assert "modelplane#204" in p.explanations["load_read_mib_per_second"]
    # From local NVMe the loader is the limit (2 GB/s per node), and the floor applies: > 100 GiB.
    fast = plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb"))
    assert fast.storage == "local-nvme" and fast.startup_budget_seconds == planner.STARTUP_FLOOR_SECONDS == 615
    assert "production-stack and KServe" in fast.explanations["startup_budget_seconds"]
    # A small checkpoint has no floor.
    assert plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb")).startup_budget_seconds < 600


def test_shared_volumes_divide_their_throughput_between_replicas_loading_at_once():
    from compose.plan import storage

    hdd = storage.get("filestore-basic-hdd")
    assert hdd.read_mib_s(1000, 1) == 100 and hdd.read_mib_s(1000, 2) == 50
    premium = storage.get("azure-files-premium")
    # 100 + ceil(0.04 x GiB) + ceil(0.06 x GiB), at least 100 GiB provisioned
    assert premium.shared_mib_s(20) == 110 and premium.shared_mib_s(1024) == 100 + 41 + 62
    assert storage.get("efs").read_mib_s(165, 4) == storage.NETWORK_FS_READ_MIB_S  # per client, not shared
    assert storage.get("local-nvme").read_mib_s(165) == math.inf
    one = plan(PlanRequest("mistral-7b", gpu="a100-80gb", storage="filestore-basic-hdd"))
    two = plan(PlanRequest("mistral-7b", gpu="a100-80gb", storage="filestore-basic-hdd", concurrent_loads=2))
    assert two.load_seconds_estimate > 1.9 * one.load_seconds_estimate
    with pytest.raises(InvalidInput, match="unknown storage"):
        plan(PlanRequest("mistral-7b", gpu="a100-80gb", storage="s3"))


def test_every_cloud_names_a_modelled_storage_class():
    from compose.plan import clouds, storage

    for cloud in clouds.CLOUDS.values():
        backend = storage.get(cloud.storage)
        assert backend.storage_class == cloud.storage_class, cloud.name
        assert backend.sources, cloud.name
    # The slow defaults were replaced (README of each component says why).
    assert clouds.get("gke").storage_class == "premium-rwx" and clouds.get("aks").storage_class == "azurefile-csi-premium"


def test_drain_fits_grace_period_and_spot_notice():
    p = plan(PlanRequest("llama-3.1-8b", gpu="l4", max_model_len=8192))
    assert p.termination_grace_period_seconds >= p.prestop_seconds + p.shutdown_timeout_seconds
    assert p.shutdown_timeout_seconds >= max(30, 1.5 * p.drain_seconds_estimate)
    # On spot the drain stays what planned disruptions need; the notice is only quoted.
    spot = plan(PlanRequest("llama-3.1-8b", gpu="l4", max_model_len=8192, spot_notice_seconds=15))
    assert (spot.prestop_seconds, spot.shutdown_timeout_seconds, spot.termination_grace_period_seconds) == (
        p.prestop_seconds, p.shutdown_timeout_seconds, p.termination_grace_period_seconds)
    assert spot.termination_grace_period_seconds > 15
    assert "not cut to the 15 s spot notice" in spot.explanations["shutdown_timeout_seconds"]
    assert "planned disruptions get all of it" in spot.explanations["termination_grace_period_seconds"]


def test_replicas_from_target_rate():
    base = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb"))
    assert base.replicas_for_target_rps == 1
    target = 10 * base.replica_throughput_rps + 0.1
    scaled = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb", target_rps=target))
    assert scaled.replicas_for_target_rps == math.ceil(target / scaled.replica_throughput_rps) == 11


def test_queue_limit_and_keda_threshold_share_one_capacity():
    p = plan(PlanRequest("qwen2.5-7b", gpu="l4"))
    assert p.max_num_queued_reqs == 2 * p.max_num_seqs
    assert p.keda_queue_threshold == math.ceil(p.max_num_seqs / 2)
    assert p.keda_activation_threshold >= 1


def test_decode_roofline_is_bandwidth_bound():
    p = plan(PlanRequest("llama-3.1-8b", gpu="h100-80gb", max_num_seqs=1, max_model_len=4096))
    # one sequence: each step reads 14.99 GiB of weights + ~1.15k tokens x 128 KiB of KV
    step = (14.99 * GIB + (1024 + 128) * 131072) / (3350e9 * 0.75)
    assert p.decode_tokens_per_second == pytest.approx(1 / step, rel=0.01)


def test_resources_follow_tp():
    p = plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb"))
    assert p.shm_size_gib == 20 and p.cpu_request == 4 * 4
    assert p.memory_request_gib == p.memory_limit_gib == math.ceil(p.weights_gib_total + 8 * 4 + 20)
    assert p.pvc_size_gib == math.ceil(p.weights_gib_total * 1.25)


# --------------------------------------------------------------------------- output shape


ISSUE_KEYS = {
    "model", "gpu", "tensor_parallel_size", "weights_gib_per_gpu", "activation_gib", "non_torch_gib",
    "cuda_graph_gib", "kv_cache_gib_per_gpu", "kv_bytes_per_token_per_gpu", "kv_cache_tokens", "max_model_len",
    "max_concurrency_at_max_model_len", "max_num_seqs", "fits", "reason", "startup_budget_seconds",
    "shutdown_timeout_seconds", "termination_grace_period_seconds", "shm_size_gib", "memory_request_gib",
    "cpu_request", "pvc_size_gib", "replica_throughput_rps", "replicas_for_target_rps", "keda_queue_threshold",
}
GENERATOR_KEYS = {
    "hf_repo", "revision", "gated", "served_model_name", "slug", "model_dir", "gpus_per_replica",
    "gpu_memory_utilization", "max_num_batched_tokens", "kv_cache_dtype", "max_num_queued_reqs",
    "keda_activation_threshold", "prestop_seconds", "startup_probe_period_seconds",
    "startup_probe_failure_threshold", "progress_deadline_seconds", "scale_down_stabilization_seconds",
    "memory_limit_gib", "decode_tokens_per_second", "weights_gib_total", "load_seconds_estimate", "vllm_version",
}


def test_to_dict_has_every_key_typed_and_explained():
    p = plan(PlanRequest("llama-3.1-70b", gpu="h100-80gb"))
    d = json.loads(json.dumps(p.to_dict()))
    assert ISSUE_KEYS | GENERATOR_KEYS <= set(d)
    assert list(d) == sorted(d)
    assert d["request"]["model"] == "llama-3.1-70b"
    assert set(d) - {"request", "explanations"} <= set(d["explanations"])
    for key in ("startup_budget_seconds", "termination_grace_period_seconds", "shm_size_gib",
                "memory_request_gib", "cpu_request", "pvc_size_gib", "max_num_seqs", "kv_cache_tokens"):
        assert isinstance(d[key], int) and not isinstance(d[key], bool), key
    assert d["model_dir"] == "/models/meta-llama/Llama-3.1-70B-Instruct"
    assert d["served_model_name"] == d["hf_repo"]


def test_config_json_path_plans(tmp_path):
    cfg = catalog.config_for("qwen3-8b")
    cfg["_name_or_path"] = "Qwen/Qwen3-8B"
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    from_path = plan(PlanRequest(str(tmp_path / "config.json"), gpu_memory_gib=79.18, tensor_parallel_size=2))
    from_slug = plan(PlanRequest("qwen3-8b", gpu="h100-80gb", tensor_parallel_size=2))
    assert from_path.revision is None and from_path.served_model_name == "Qwen/Qwen3-8B"
    assert from_path.kv_cache_gib_per_gpu == from_slug.kv_cache_gib_per_gpu


def test_older_config_names_and_ungated_mlp():
    # GPT-2 spelling: n_embd/n_layer/n_head, n_inner null = 4 x hidden, MLP without a gate.
    cfg = {"model_type": "gpt2", "n_embd": 64, "n_layer": 2, "n_head": 4, "n_inner": None,
           "vocab_size": 1000, "n_positions": 128, "tie_word_embeddings": True}
    arch = parse_config(cfg)
    attention = 4 * 64 * 64  # q, k, v, o with 4 KV heads of 16
    mlp = 64 * 256 + 256 * 64  # up and down only
    # (GPT-2's learned position table and biases, ~1% here, are not counted)
    assert planner.param_count(arch) == 1000 * 64 + 2 * (attention + 2 * 64 + mlp) + 64
