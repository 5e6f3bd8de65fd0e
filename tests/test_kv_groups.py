"""KV cache per layer group: worked examples against vLLM 0.33's formulas.

Each expected number is derived by hand in the test from
vllm/v1/kv_cache_interface.py (page sizes, max_admission_blocks_per_request),
vllm/v1/core/kv_cache_planning.py (grouping, bytes per block) and
vllm/platforms/interface.py (_align_hybrid_block_size).
"""

from __future__ import annotations

import pytest

from compose.plan import catalog, planner
from compose.plan.catalog import parse_config
from compose.plan.kvcache import kv_layout, linear_state_bytes
from compose.plan.planner import PlanRequest, plan

GIB = 2**30


def arch(slug):
    return catalog.get_model(slug).architecture()


# --------------------------------------------------------------------------- sliding window (gpt-oss)


def test_gpt_oss_alternating_sliding_and_full_layers():
    a = arch("gpt-oss-20b")
    assert (a.count("sliding"), a.count("full"), a.sliding_window) == (12, 12, 128)
    lay = kv_layout(a, 1, 2, 8192, in_flight_batches=2)
    # per layer and token: 8 KV heads x (64 + 64) x 2 B = 2048; a 16-token page 32768 B
    assert lay.token_bytes == {"full": 2048, "sliding": 2048} and lay.page_bytes == 32768
    # 12 + 12 layers: two groups of 12 share one pool; a block is 12 pages
    assert len(lay.groups) == 2 and lay.bytes_per_block == 12 * 32768
    # 131072 tokens: full cdiv(131072, 16) = 8192; sliding (0.33: 2 x 8192 in flight)
    # cdiv(min(128 - 1 + 16384, 131072), 16) + 1 = 1032 + 1
    assert lay.blocks_per_request(131072) == 8192 + 1033
    # vLLM <= 0.11 reserved one batch: cdiv(127 + 8192, 16) + 1 = 521
    assert kv_layout(a, 1, 2, 8192).blocks_per_request(131072) == 8192 + 521
    # TP8 keeps one KV head per GPU: 256 B per layer and token
    assert kv_layout(a, 8, 2, 8192).token_bytes["full"] == 256


def test_gpt_oss_capacity_is_vllms_concurrency_times_length():
    p = plan(PlanRequest("gpt-oss-20b", gpu="h100-80gb", max_model_len=131072))
    lay = planner.layout_for(planner._context(PlanRequest("gpt-oss-20b", gpu="h100-80gb", max_model_len=131072)),
                             p.tensor_parallel_size, p.max_num_batched_tokens)
    blocks = int(p.kv_cache_gib_per_gpu * GIB // lay.bytes_per_block)
    # get_kv_cache_capacity: int(num_blocks / blocks per request x max_model_len), within rounding of the GiB figure
    assert p.kv_cache_tokens == pytest.approx(blocks / (8192 + 1033) * 131072, rel=1e-3)
    kinds = {g["kind"]: g for g in p.kv_layer_groups}
    assert kinds["sliding"]["tokens_per_request_cap"] == 127 + 2 * 8192
    assert kinds["full"]["tokens_per_request_cap"] == 131072


# --------------------------------------------------------------------------- Gemma 3 5:1


def test_gemma3_52_sliding_10_full_group_size_and_padding():
    a = arch("gemma-3-27b")
    assert (a.count("sliding"), a.count("full")) == (52, 10)
    assert a.kinds[5] == "full" and a.kinds[4] == "sliding"  # layer i is global when (i + 1) % 6 == 0
    lay = kv_layout(a, 2, 2, 8192, in_flight_batches=2)
    # group size = 10 (52 >= 1.5 x 10); the sliding bucket splits into cdiv(52, 10) = 6 groups of 9,9,9,9,8,8
    sizes = sorted(len(g.layers) for g in lay.groups if g.kind == "sliding")
    assert sizes == [8, 8, 9, 9, 9, 9]
    # TP2: 8 KV heads x 256 x 2 B = 4096 B per layer and token; block = 10 layers x 16 tokens
    assert lay.page_bytes == 16 * 4096 and lay.bytes_per_block == 10 * 16 * 4096
    # per request: cdiv(131072, 16) + 6 x (cdiv(1023 + 16384, 16) + 1)
    assert lay.blocks_per_request(131072) == 8192 + 6 * (1088 + 1)


# --------------------------------------------------------------------------- Llama 4 chunked local attention


def test_llama4_chunked_layers_groups_and_promotion_before_0_33():
    a = arch("llama-4-scout")
    assert (a.count("chunked"), a.count("full"), a.attention_chunk_size) == (36, 12, 8192)
    assert [a.kinds[i] for i in range(4)] == ["chunked", "chunked", "chunked", "full"]  # NoPE every 4th layer
    lay = kv_layout(a, 8, 2, 8192, in_flight_batches=2)
    # 12 full + 36 chunked: group size 12, one full and three chunked groups; TP8: 1 KV head, 512 B
    assert len(lay.groups) == 4 and lay.bytes_per_block == 12 * 16 * 512
    # chunk: cdiv(min(8192 + 2 x 8192, L), 16) = 1536 blocks, no "+1"
    assert lay.blocks_per_request(1048576) == 65536 + 3 * 1536
    # vLLM 0.10-0.11 kept chunked layers out of the hybrid manager: all 48 as full attention
    old = kv_layout(a, 8, 2, 8192, chunked_hybrid=False)
    assert old.promoted and len(old.groups) == 1 and len(old.groups[0].layers) == 48
    assert old.blocks_per_request(1048576) == 65536


# --------------------------------------------------------------------------- MLA


def test_deepseek_mla_latent_is_not_split_by_tp():
    a = arch("deepseek-r1")
    for tp in (1, 8):
        lay = kv_layout(a, tp, 2, 8192)
        # one latent of kv_lora_rank 512 + rope 64 per layer and token: 576 x 2 B
        assert lay.token_bytes == {"mla": 1152}
        assert lay.bytes_per_block == 61 * 16 * 1152
        assert planner.kv_bytes_per_token(a, tp, 2) == 61 * 576 * 2 == 70272
    assert planner.kv_bytes_per_token(a, 8, 1) == 35136  # fp8 KV cache
    # vLLM's Kimi-K2 log: 46.80 GiB / (61 x 16 x 1152 B) blocks x 16 = 715,072 tokens (recipes Kimi-K2-Think.md)
    assert kv_layout(a, 8, 2, 8192).num_blocks(46.80 * GIB) * 16 == pytest.approx(715072, abs=16)


# --------------------------------------------------------------------------- linear attention (Qwen3-Next)


def test_qwen3_next_gdn_state_block_size_and_groups():
    a = arch("qwen3-next-80b-a3b")
    assert (a.count("linear"), a.count("full")) == (36, 12)
    # conv [8192, 3] + recurrent [32 heads, 128, 128], bf16 (mamba_utils.py gated_delta_net_state_shape)
    assert linear_state_bytes(a, 1) == (8192 * 3 + 32 * 128 * 128) * 2 == 1097728
    assert linear_state_bytes(a, 4) == (2048 * 3 + 8 * 128 * 128) * 2 == 274432
    # Hopper, prefix caching on ("align"), FlashInfer GDN prefill: alignment lcm(16, 64) = 64;
    # attention page per token = 2 KV heads x 512 x 2 B = 2048 -> block 64 x cdiv(1097728, 64 x 2048) = 576
    lay = kv_layout(a, 1, 2, 8192, in_flight_batches=2, mamba_align=True, gdn_flashinfer=True)
    assert lay.block_size == 576 and lay.page_bytes == 576 * 2048
    assert len(lay.groups) == 4 and lay.bytes_per_block == 12 * 576 * 2048
    # per request: cdiv(262144, 576) attention blocks + 3 GDN groups x (2 + 1 checkpoint block)
    assert lay.blocks_per_request(262144) == 456 + 3 * 3
    # TP4: 1 KV head, 1024 B per token: 64 x cdiv(274432, 64 x 1024) = 320
    assert kv_layout(a, 4, 2, 8192, mamba_align=True, gdn_flashinfer=True).block_size == 320
    # Ampere (Triton GDN, alignment 16): 16 x cdiv(1097728, 16 x 2048) = 544, 2 blocks per group
    ampere = kv_layout(a, 1, 2, 8192, mamba_align=True)
    assert ampere.block_size == 544 and ampere.linear_blocks == 2
    # before 0.33 (no prefix caching for hybrids): "none" mode, one block per group
    assert kv_layout(a, 1, 2, 8192).linear_blocks == 1


def test_qwen3_next_plan_prints_the_forced_block_size():
    p = plan(PlanRequest("qwen3-next-80b-a3b", gpu="h100-80gb", tensor_parallel_size=4))
    assert p.block_size == 320 and "linear-attention state" in p.explanations["block_size"]
    linear = next(g for g in p.kv_layer_groups if g["kind"] == "linear")
    assert linear["tokens_per_request_cap"] == 0 and linear["state_bytes_per_layer"] == 274432


# --------------------------------------------------------------------------- KV dtype


def test_checkpoint_declared_fp8_kv_makes_auto_fp8():
    cfg = {"model_type": "llama", "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
           "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 1000, "max_position_embeddings": 128,
           "quantization_config": {"quant_method": "compressed-tensors", "config_groups": {"g": {
               "targets": ["Linear"], "weights": {"num_bits": 8, "type": "float", "strategy": "channel"}}},
               "kv_cache_scheme": {"num_bits": 8, "type": "float", "strategy": "tensor"}}}
    assert parse_config(cfg).quantization.kv_fp8
    import json
    import tempfile
    from pathlib import Path
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "config.json").write_text(json.dumps(cfg))
        ctx = planner._context(PlanRequest(d, gpu_memory_gib=20, max_model_len=128, prompt_tokens=32, output_tokens=32))
    assert ctx.kv_dtype_bytes == 1  # utils/torch_utils.py resolve_kv_cache_dtype_string
