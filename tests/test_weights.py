"""Weights by tensor: each quantization scheme, the layers it leaves in 16 bits,
MLA, linear attention, vision towers and MoE sharded by TP or by EP.

Hand counts follow the tensor shapes vLLM creates (vllm/model_executor/layers/
quantization/*.py create_weights; fused_moe/oracle/mxfp4.py padding).
"""

from __future__ import annotations

import pytest

from compose.core.errors import InvalidInput
from compose.plan import catalog, weights
from compose.plan.catalog import Quantization, parse_config
from compose.plan.planner import PlanRequest, plan, tp_problem

GIB = 2**30


def arch(slug):
    return catalog.get_model(slug).architecture()


def tiny_moe(**overrides) -> dict:
    cfg = {"model_type": "qwen3_moe", "hidden_size": 256, "num_hidden_layers": 1, "num_attention_heads": 4,
           "num_key_value_heads": 2, "head_dim": 64, "vocab_size": 1024, "max_position_embeddings": 128,
           "num_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 256, "intermediate_size": 512}
    cfg.update(overrides)
    return cfg


# --------------------------------------------------------------------------- MXFP4 (gpt-oss)


def _mxfp4_expert(hp, ip):
    # w13 [2I, H/2] + e8m0 [2I, H/32], w2 [H, I/2] + [H, I/32], bytes
    return 2 * ip * hp // 2 + 2 * ip * hp // 32 + hp * ip // 2 + hp * ip // 32


@pytest.mark.parametrize("backend, hp, ip", [("triton", 3072, 2880), ("marlin", 3072, 2944), ("trtllm", 3072, 2944)])
def test_mxfp4_experts_padded_per_backend(backend, hp, ip):
    a = arch("gpt-oss-20b")
    tally = weights.weight_tally(a, 1, mxfp4_backend=backend)
    biases = (2 * ip + hp) * 2  # w13_bias [E, 2I] and w2_bias [E, H], bf16
    assert tally.expert_bytes == 24 * 32 * (_mxfp4_expert(hp, ip) + biases)


def test_mxfp4_tp_splits_the_intermediate_before_padding():
    a = arch("gpt-oss-120b")
    # TP2: 2880 / 2 = 1440 -> Triton pads to 64 (1472), TRTLLM to 128 (1536)
    t = weights.weight_tally(a, 2, mxfp4_backend="triton")
    assert t.expert_bytes == 36 * 128 * (_mxfp4_expert(3072, 1472) + (2 * 1472 + 3072) * 2)
    t = weights.weight_tally(a, 2, mxfp4_backend="trtllm")
    assert t.expert_bytes == 36 * 128 * (_mxfp4_expert(3072, 1536) + (2 * 1536 + 3072) * 2)


def test_mxfp4_leaves_attention_router_embedding_and_head_in_16_bits():
    a = arch("gpt-oss-20b")
    q = a.quantization
    assert q.method == "mxfp4" and q.experts_only
    assert q.skips("model.layers.3.self_attn.q_proj") and q.skips("lm_head")
    t = weights.weight_tally(a, 1, runtime=False)
    h, e = 2880, 32
    # attention: q 2880 -> 4096, k/v 2880 -> 512, o 4096 -> 2880, all with biases, + 64 sinks, 2 norms
    attention = (h * 4096 + 2 * h * 512 + 4096 * h) + (4096 + 2 * 512 + h) + 64 + 2 * h
    router = h * e + e
    embed_and_head = 2 * 201088 * h
    dense_bytes = (24 * (attention + router) + embed_and_head + h) * 2
    assert t.bytes - t.expert_bytes == dense_bytes
    assert weights.param_count(a) == pytest.approx(20.91e9, rel=1e-3)


# --------------------------------------------------------------------------- FP8 blocks, INT4 groups, channels


def test_fp8_block_moe_experts_with_block_scales():
    a = parse_config(tiny_moe(quantization_config={"quant_method": "fp8", "weight_block_size": [128, 128]}))
    t = weights.weight_tally(a, 2, runtime=False)
    # the stored checkpoint: per expert gate, up and down [256 x 256]: 65536 fp8 bytes + 2 x 2 blocks x 4 B fp32
    assert t.expert_bytes == 4 * 3 * (256 * 256 + 4 * 4)
    r = weights.weight_tally(a, 2)
    # TP2: intermediate 128 per GPU: gate/up [128, 256] -> 1 x 2 blocks; down [256, 128] -> 2 x 1
    assert r.expert_bytes == 4 * 3 * (128 * 256 + 2 * 4)


def test_fp8_block_tp_must_keep_whole_blocks_unless_experts_go_whole():
    a = arch("qwen3-30b-a3b-fp8")
    # 768 / 4 = 192 is not a multiple of 128 (fp8_utils.py validate_fp8_block_shape_moe)
    assert "192 per GPU is not a multiple of 128" in tp_problem(a, 4)
    assert tp_problem(a, 4, ep=True) is None  # experts whole: attention still splits in 128s
    assert tp_problem(a, 2) is None


def test_compressed_tensors_w4a16_group_scales_and_regex_ignore():
    q = Quantization("compressed-tensors", 4, "group", group_size=32, scale_bytes=2,
                     ignore=("lm_head", "re:.*self_attn.*", "re:.*shared_experts.*"))
    # [64 out, 128 in]: 4-bit packed 4096 B + bf16 scale per 32 inputs: 4 x 64 x 2
    assert q.linear_bytes(128, 64) == 4096 + 4 * 64 * 2
    assert q.skips("model.layers.1.self_attn.q_b_proj") and q.skips("model.layers.1.mlp.shared_experts.up_proj")
    assert not q.skips("model.layers.1.mlp.experts.0.up_proj")


def test_gptq_g_idx_only_with_grouped_act_order_which_0_33_refuses(tmp_path):
    assert not catalog.parse_quantization({"quant_method": "gptq", "bits": 4, "group_size": 128}).g_idx
    assert not catalog.parse_quantization({"quant_method": "gptq", "bits": 4, "group_size": -1, "desc_act": True}).g_idx
    assert catalog.parse_quantization({"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}).g_idx
    import json
    cfg = {"model_type": "llama", "hidden_size": 256, "intermediate_size": 512, "num_hidden_layers": 2,
           "num_attention_heads": 4, "vocab_size": 1000, "max_position_embeddings": 128,
           "quantization_config": {"quant_method": "gptq", "bits": 4, "group_size": 128, "desc_act": True}}
    (tmp_path / "config.json").write_text(json.dumps(cfg))
    kw = dict(gpu_memory_gib=20, max_model_len=128, prompt_tokens=32, output_tokens=32, tensor_parallel_size=1)
    # quantization/utils/gptq_utils.py normalize_and_validate_gptq_desc_act raises in 0.33
    assert "desc_act" in plan(PlanRequest(str(tmp_path), **kw)).reason
    assert plan(PlanRequest(str(tmp_path), vllm_version="0.14.0", **kw)).fits


def test_qwen3_fp8_keeps_router_norms_and_head_unquantized():
    a = arch("qwen3-235b-a22b-fp8")
    q = a.quantization
    assert (q.method, q.scale, q.group_size) == ("fp8", "block", 128)
    assert q.skips("model.layers.93.mlp.gate") and q.skips("lm_head")
    assert not q.skips("model.layers.93.mlp.experts.5.down_proj") and not q.skips("model.layers.0.self_attn.q_proj")
    # one expert at TP4: gate/up [384, 4096] + 3 x 32 scales, down [4096, 384] + 32 x 3
    per_expert = 3 * (384 * 4096 + 3 * 32 * 4)
    assert weights.weight_tally(a, 4).expert_bytes == 94 * 128 * per_expert


# --------------------------------------------------------------------------- MoE: TP or EP


def test_expert_parallel_deals_whole_experts_to_the_busiest_gpu():
    a = parse_config(tiny_moe(num_experts=10))
    tp = weights.weight_tally(a, 4, runtime=True)
    ep = weights.weight_tally(a, 4, runtime=True, ep=True)
    # TP: all 10 experts with intermediate 256 / 4; EP: ceil(10 / 4) = 3 whole experts
    assert tp.expert_bytes == 10 * 3 * 256 * 64 * 2
    assert ep.expert_bytes == 3 * 3 * 256 * 256 * 2 and ep.local_experts == 3


def test_planner_picks_ep_when_tp_cannot_split_the_experts_and_the_flag_reaches_the_args():
    p = plan(PlanRequest("qwen3-30b-a3b-fp8", gpu="l4", tensor_parallel_size=4))
    assert p.enable_expert_parallel and "32 of 128 whole experts" in p.explanations["enable_expert_parallel"]
    from compose.generate.patches import patch_model_args
    args = patch_model_args(p.to_dict())["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--enable-expert-parallel" in args
    tp2 = plan(PlanRequest("qwen3-30b-a3b-fp8", gpu="l4", tensor_parallel_size=2))
    assert not tp2.enable_expert_parallel


def test_expert_parallel_is_refused_for_a_dense_model():
    with pytest.raises(InvalidInput, match="mixture-of-experts"):
        plan(PlanRequest("llama-3.1-8b", gpu="l4", tensor_parallel_size=1, enable_expert_parallel=True))


# --------------------------------------------------------------------------- MLA weights


def test_mla_replicated_down_projections_and_decode_copies():
    a = arch("deepseek-r1")
    one = weights.weight_tally(a, 1)
    eight = weights.weight_tally(a, 8)
    # W_UK/W_UV: heads/TP x kv_lora_rank x (nope + v) x 2 B per layer (mla_attention.py process_weights_after_loading)
    assert eight.mla_copy_bytes == 61 * 16 * 512 * 256 * 2
    assert one.mla_copy_bytes == 8 * eight.mla_copy_bytes
    # DeepSeek-R1 in FP8 does not fit 8 x H100: ~79.5 GiB of weights per GPU
    assert eight.bytes / GIB == pytest.approx(79.55, abs=0.05)
    assert weights.param_count(a) == pytest.approx(671e9, rel=0.001)


# --------------------------------------------------------------------------- vision towers


def test_gemma3_siglip_tower_counted_in_16_bits_and_sharded():
    a = arch("gemma-3-27b")
    v = a.vision
    assert v.kind == "siglip" and v.tokens_per_item == 256 and v.patches_per_item == 64 * 64
    # 27 layers x (4 x 1152^2 attention + 2 x 1152 x 4304 MLP) are TP-sharded linears
    assert v.sharded_params == 27 * (4 * 1152 * 1152 + 2 * 1152 * 4304)
    # projector mm_input_projection_weight [1152, 5376] is a replicated nn.Parameter
    assert v.replicated_params > 1152 * 5376
    t1, t2 = weights.weight_tally(a, 1), weights.weight_tally(a, 2)
    assert t1.vision_bytes - t2.vision_bytes == pytest.approx(v.sharded_params / 2 * 2)
    assert 0.40e9 < v.params < 0.45e9  # SigLIP-So400m + projector


def test_llama4_and_qwen_vl_and_pixtral_tokens_per_image():
    assert arch("llama-4-scout").vision.tokens_per_item == 17 * 144  # 16 tiles + global, 576 patches shuffled by 0.5
    assert arch("qwen2.5-vl-7b").vision.tokens_per_item == 16384  # max_pixels 12845056 / 14^2 / 2^2
    assert arch("mistral-small-3.1-24b").vision.tokens_per_item == 55 * 56  # 110 patches merged 2x2, + row breaks
    assert arch("mistral-small-3.1-24b").vision.params / 1e9 == pytest.approx(0.44, abs=0.01)


def test_linear_rope_scaling_caches_max_position_times_factor():
    """rotary_embedding/linear_scaling_rope.py _compute_cos_sin_cache: max_position x factor rows;
    models/gemma3.py builds one rope per layer type (get_rope's _ROPE_DICT keeps one cache each)."""
    arch = catalog.resolve_model("gemma-3-27b").arch
    weight_tally = weights.weight_tally
    # global layers: linear x8 over 131072 positions; sliding layers: the unscaled local-base cache
    assert arch.rope_cache_positions == (131072 * 8, 131072)
    runtime = weight_tally(arch, 1).bytes
    checkpoint = weight_tally(arch, 1, runtime=False).bytes
    assert runtime - checkpoint == (131072 * 8 + 131072) * 128 * 2
    # an unscaled model keeps one cache of max_position_embeddings rows
    assert catalog.resolve_model("llama-3.1-8b").arch.rope_cache_positions == (131072,)
