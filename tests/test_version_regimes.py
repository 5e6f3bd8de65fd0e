"""Behaviour that changed between vLLM releases, each checked against a hand calculation
from the release's own source (wheels read: 0.9.2, 0.11.0, 0.11.1, 0.15.0-0.19.0; 0.33.0).

- v1/worker/gpu_worker.py init_device: memory snapshot before the distributed init up to
  0.10.x, after it from 0.11.0;
- v1/sample/ops/topk_topp_sampler.py + topk_topp_triton.py: in-place Triton top-k/top-p
  from 0.17.0;
- determine_available_memory: CUDA graphs profiled inside memory_profiling in 0.18-0.20;
- v1/worker/workspace.py: cached fused-MoE workspaces from 0.15.0;
- kv_cache_utils.py: "GPU KV cache size" = num_blocks // groups x block_size before 0.33.
"""

from __future__ import annotations

import pytest

from compose.plan import planner
from compose.plan.planner import PlanRequest, engine_for, plan

GIB = 2**30


def ctx(**kw):
    return planner._context(PlanRequest(**{"gpu": "h100-80gb", **kw}))


@pytest.mark.parametrize(("version", "expected"), [
    ("0.9.2", {"comm_setup_in_budget": True, "triton_sampler": False, "graph_profile_in_non_torch": False,
               "chunked_hybrid": False, "moe_workspace_cached": False}),
    ("0.11.0", {"comm_setup_in_budget": False, "flashinfer_sampler": True}),
    ("0.14.0", {"comm_setup_in_budget": False, "triton_sampler": False, "moe_workspace_cached": False}),
    ("0.15.0", {"moe_workspace_cached": True, "triton_sampler": False}),
    ("0.17.0", {"triton_sampler": True, "graph_profile_in_non_torch": False, "chunked_hybrid": False}),
    ("0.18.0", {"triton_sampler": True, "graph_profile_in_non_torch": True, "chunked_hybrid": True}),
    ("0.21.0", {"graph_profile_in_non_torch": False, "subtracts_cuda_graphs": True}),
    ("0.33.0", {"triton_sampler": False, "chunked_hybrid": True, "moe_workspace_cached": True, "v033": True}),
])
def test_engine_flags_by_release(version, expected):
    eng = engine_for(version)
    assert {k: getattr(eng, k) for k in expected} == expected


def test_non_torch_by_accounting_regime():
    cases = {("0.9.2", 1): 0.13, ("0.9.2", 4): 1.84, ("0.10.2", 2): 1.84, ("0.14.0", 1): 0.13, ("0.14.0", 4): 0.55,
             ("0.19.0", 1): 0.25, ("0.19.0", 2): 2.07, ("0.19.0", 4): 2.13, ("0.19.0", 8): 2.13,
             ("0.33.0", 1): 0.13, ("0.33.0", 8): 0.55}
    assert {k: planner.non_torch_gib(k[1], engine_for(k[0])) for k in cases} == cases


def test_triton_sampler_warmup_bytes():
    # 0.17+: bf16 logits (2) + fp32 copy (4) + fp32 probs (4) + exponential noise q (4) per logit,
    # plus one cached fp32 vocab row per Triton program: min(132 H100 SMs, 1024 rows) programs
    c = ctx(model="llama-3.1-8b", vllm_version="0.19.0")
    assert planner.sampler_warmup_bytes(c, 1024, False) == 14 * 1024 * 128256 + 132 * 128256 * 4
    # fewer rows than SMs: one program per row
    assert planner.sampler_warmup_bytes(c, 64, False) == 14 * 64 * 128256 + 64 * 128256 * 4
    # fewer than 8 rows still sorts (apply_top_k_top_p's pytorch path): the sorting figure
    assert planner.sampler_warmup_bytes(c, 4, False) == pytest.approx(9.52 * 4 * 4 * 128256)
    # an A100 has 108 SMs
    a100 = ctx(model="llama-3.1-8b", vllm_version="0.19.0", gpu="a100-80gb")
    assert planner.sampler_warmup_bytes(a100, 256, False) == 14 * 256 * 128256 + 108 * 128256 * 4
    # before 0.17, and in 0.33 (Model Runner V2), the sorting figure
    for version in ("0.16.0", "0.33.0"):
        assert planner.sampler_warmup_bytes(ctx(model="llama-3.1-8b", vllm_version=version), 1024, False) == \
            pytest.approx(9.52 * 4 * 1024 * 128256)


def test_llama_8b_activation_in_0_19_matches_its_log():
    # hidden buffers (fitted on 0.11-0.14 logs) + the derived Triton sampler term = the logged 1.89 GiB
    t = planner.profile_terms(ctx(model="llama-3.1-8b", vllm_version="0.19.0"), 1, 8192, 1024)
    hidden = 0.022 + 1.28 * 8192 * 4096 * 2 / GIB
    sampler = (14 * 1024 * 128256 + 132 * 128256 * 4) / GIB
    assert t.total == pytest.approx(hidden + sampler)
    assert t.total == pytest.approx(1.89, abs=0.015)


def test_moe_workspace_cached_from_0_15_except_mxfp4():
    workspace = 8192 * 8 * (max(768, 2048) + max(1536, 2048)) * 2 / GIB  # Qwen3-30B-A3B, TP1
    for version, stacked in (("0.14.0", False), ("0.15.0", True), ("0.19.0", True)):
        t = planner.profile_terms(ctx(model="qwen3-30b-a3b", vllm_version=version), 1, 8192, 1024)
        assert t.fused_moe_workspace == pytest.approx(workspace)
        expected = t.hidden_buffers + (workspace + t.sampler_warmup if stacked else max(t.sampler_warmup, workspace))
        assert t.total == pytest.approx(expected)
    # gpt-oss's MXFP4 experts allocate inside the kernel: no stack before 0.33
    g = planner.profile_terms(ctx(model="gpt-oss-20b", vllm_version="0.19.0"), 1, 8192, 1024)
    assert g.total == pytest.approx(g.hidden_buffers + max(g.sampler_warmup, g.fused_moe_workspace))


def test_hybrid_token_figure_before_0_33():
    c = ctx(model="gemma-3-27b", vllm_version="0.19.0", max_model_len=8192)
    layout = planner.layout_for(c, 1, 8192)
    assert len(layout.groups) == 7  # 10 full layers + 52 sliding in groups of 10
    # the v0.19.0 log: 15997 blocks, "GPU KV cache size: 36,560 tokens" = 15997 // 7 x 16
    assert planner.kv_cache_tokens(layout, 15997, 8192, engine_for("0.19.0")) == 36560
    assert planner.kv_cache_tokens(layout, 15997, 8192, engine_for("0.33.0")) == int(
        15997 / layout.blocks_per_request(8192) * 8192)


def test_chunked_local_layers_keep_their_groups_from_0_18():
    for version, groups in (("0.17.0", 1), ("0.18.0", 4)):
        c = ctx(model="llama-4-scout", vllm_version=version, max_model_len=8192)
        assert len(planner.layout_for(c, 4, 8192).groups) == groups


def test_pre_0_11_tp4_plan_charges_the_communicator_setup():
    old = plan(PlanRequest("qwen3-235b-a22b-fp8", gpu="h100-80gb", tensor_parallel_size=4, vllm_version="0.9.2",
                           gpu_memory_utilization=0.9, max_num_seqs=1024, flashinfer_sampler=False))
    new = plan(PlanRequest("qwen3-235b-a22b-fp8", gpu="h100-80gb", tensor_parallel_size=4, vllm_version="0.11.1",
                           gpu_memory_utilization=0.9, max_num_seqs=1024))
    assert (old.non_torch_gib, new.non_torch_gib) == (1.84, 0.55)
    assert new.kv_cache_gib_per_gpu - old.kv_cache_gib_per_gpu == pytest.approx(1.29, abs=0.011)
    assert "snapshot precedes NCCL init" in old.explanations["non_torch_gib"]
