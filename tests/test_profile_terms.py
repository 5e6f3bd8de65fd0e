"""The profile run's named terms and the behaviour gated by vLLM version.

0.33.0 sources: v1/worker/gpu/model_runner.py profile_run / _dummy_sampler_run,
v1/worker/gpu/sample/penalties.py, fused_moe/experts/triton_moe.py
workspace_shapes, layers/attention/mla_attention.py, multimodal/encoder_budget.py,
config/vllm.py _set_cudagraph_sizes, config/cache.py.
"""

from __future__ import annotations

import pytest

from compose.plan import planner
from compose.plan.planner import PlanRequest, plan

GIB = 2**30


def ctx(**kw):
    return planner._context(PlanRequest(**{"gpu": "h100-80gb", **kw}))


def test_default_utilization_follows_the_version():
    assert plan(PlanRequest("qwen3-8b", gpu="h100-80gb")).gpu_memory_utilization == 0.92
    assert plan(PlanRequest("qwen3-8b", gpu="h100-80gb", vllm_version="0.20.0")).gpu_memory_utilization == 0.9
    assert plan(PlanRequest("qwen3-8b", gpu="h100-80gb", gpu_memory_utilization=0.85)).gpu_memory_utilization == 0.85


def test_penalties_state_is_persistent_only_from_0_33():
    c = ctx(model="qwen3-8b")
    t = planner.profile_terms(c, 1, 8192, 1024)
    # output_bin_counts int32 [1024, 151936] + prompt_bin_mask int32 [1024, cdiv(151936, 32)]
    assert t.penalties_state == pytest.approx((1024 * 151936 * 4 + 1024 * 4748 * 4) / GIB)
    assert planner.profile_terms(ctx(model="qwen3-8b", vllm_version="0.20.0"), 1, 8192, 1024).penalties_state == 0


def test_sampler_warmup_native_vs_flashinfer():
    native = planner.profile_terms(ctx(model="llama-3.1-8b", vllm_version="0.14.0"), 1, 8192, 1024)
    assert native.sampler_warmup == pytest.approx(9.52 * 1024 * 128256 * 4 / GIB)
    # vLLM 0.11.0 sampled with FlashInfer by default: bf16 logits + fp32 copy + fp32 probs = 10 B
    fi = planner.profile_terms(ctx(model="llama-3.1-8b", vllm_version="0.11.0"), 1, 8192, 1024)
    assert fi.sampler_warmup == pytest.approx(10 * 1024 * 128256 / GIB)
    forced = planner.profile_terms(ctx(model="llama-3.1-8b", vllm_version="0.11.0", flashinfer_sampler=False),
                                   1, 8192, 1024)
    assert forced.sampler_warmup == native.sampler_warmup


def test_fused_moe_workspace_is_persistent_in_0_33():
    # Triton: M x topk x max(N/2, K) + M x topk x max(N, K), N = 2 x 768 / TP, K = 2048, bf16
    expected = 8192 * 8 * (max(768, 2048) + max(1536, 2048)) * 2 / GIB
    new = planner.profile_terms(ctx(model="qwen3-30b-a3b"), 1, 8192, 1024)
    old = planner.profile_terms(ctx(model="qwen3-30b-a3b", vllm_version="0.14.0"), 1, 8192, 1024)
    assert new.fused_moe_workspace == old.fused_moe_workspace == pytest.approx(expected)
    # 0.33: hidden + penalties + workspace + the transient peak; before: the workspace is one transient among others
    assert new.total == pytest.approx(new.hidden_buffers + new.penalties_state + expected + new.sampler_warmup)
    assert old.total == pytest.approx(old.hidden_buffers + max(old.sampler_warmup, expected))


def test_mla_prefill_workspace():
    c = ctx(model="deepseek-r1", gpu="h200", max_model_len=4096)
    t = planner.profile_terms(c, 8, 8192, 1024)
    # min(max(8 x 4096, 4 x 1024 x 16), 65536) rows x 128/8 heads x (128 + 128) x 2 B
    assert t.mla_prefill_workspace == pytest.approx(65536 * 16 * 256 * 2 / GIB)
    short = planner.profile_terms(c, 8, 8192, 64)
    assert short.mla_prefill_workspace == pytest.approx(32768 * 16 * 256 * 2 / GIB)


def test_multimodal_encoder_profile_items_and_outputs():
    g = ctx(model="gemma-3-27b")
    # budget = max(8192, 256) tokens -> 32 images of 256 tokens
    assert planner.mm_profile_items(g, 8192, 1024) == 32
    t = planner.profile_terms(g, 2, 8192, 1024)
    assert t.mm_encoder_outputs == pytest.approx(32 * 256 * 5376 * 2 / GIB)
    # encoder forward: 32 images x 4096 patches x (4 x 1152 + 2 x 4304 / TP) x 2 B
    assert t.mm_encoder_peak == pytest.approx(32 * 4096 * (4 * 1152 + 2 * 2152) * 2 / GIB)
    q = ctx(model="qwen2.5-vl-7b")
    assert planner.mm_profile_items(q, 8192, 1024) == 1  # budget max(8192, 16384) holds one image
    assert planner.profile_terms(ctx(model="qwen3-8b"), 1, 8192, 1024).mm_encoder_outputs == 0


def test_cuda_graph_ceiling_1024_on_blackwell():
    assert len(planner.cuda_graph_capture_sizes(1024, 16384, 1024)) == 3 + 31 + 49
    assert len(planner.cuda_graph_capture_sizes(1024, 8192)) == 3 + 31 + 17
    p = plan(PlanRequest("qwen3-8b", gpu="b200", max_num_seqs=1024))
    assert "capture ceiling 1024" in p.explanations["cuda_graph_gib"]
    assert p.max_num_batched_tokens == 16384  # >= 160 GiB: get_batch_defaults' largest tier


def test_activation_explanation_names_every_term():
    p = plan(PlanRequest("gpt-oss-120b", gpu="h100-80gb", tensor_parallel_size=2))
    text = p.explanations["activation_gib"]
    for term in ("hidden buffers", "penalties state", "fused-MoE workspace", "sampler warm-up"):
        assert term in text, term
    assert set(p.profile_terms_gib) >= {"sampler_warmup", "fused_moe_workspace", "mm_encoder_outputs",
                                        "mla_prefill_workspace", "penalties_state", "hidden_buffers"}
