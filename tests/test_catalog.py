"""The model and GPU catalogs, and reading config.json files."""

from __future__ import annotations

import json
import re

import pytest

from compose.plan import catalog, planner
from compose.core.errors import ConfigError, InvalidInput, UnknownGPU, UnknownModel

REQUIRED_MODELS = {
    "llama-3.1-8b", "llama-3.1-70b", "llama-3.1-405b-fp8", "llama-3.3-70b", "mistral-7b", "mixtral-8x7b",
    "qwen2.5-7b", "qwen2.5-32b", "qwen2.5-72b", "qwen3-8b", "qwen3-32b", "qwen3-30b-a3b",
    "gemma-2-9b", "gemma-2-27b", "deepseek-r1-distill-qwen-32b",
    # issue 13
    "gpt-oss-20b", "gpt-oss-120b", "deepseek-v3", "deepseek-r1", "gemma-3-27b", "llama-4-scout", "llama-4-maverick",
    "qwen3-235b-a22b-fp8", "qwen3-30b-a3b-fp8", "qwen3-next-80b-a3b", "qwen2.5-vl-7b", "mistral-small-3.1-24b",
    "mistral-small-3.2-24b", "phi-4",
}
REQUIRED_GPUS = {"h100-80gb", "h200", "a100-80gb", "a100-40gb", "l40s", "l4", "a10g", "t4", "rtx-4090",
                 "b200", "gb200", "rtx-pro-6000", "h200-nvl"}


# --------------------------------------------------------------------------- models


def test_model_catalog_has_the_required_models():
    slugs = {m.slug for m in catalog.models()}
    assert len(slugs) >= 15 and REQUIRED_MODELS <= slugs
    quantized = {m.slug: m.architecture().quantization for m in catalog.models() if m.architecture().quantization}
    assert {"llama-3.3-70b-fp8", "llama-3.1-70b-awq"} <= set(quantized)
    assert quantized["gpt-oss-120b"].method == "mxfp4" and quantized["deepseek-r1"].scale == "block"


def test_every_model_entry_is_complete_and_sourced():
    repos = set()
    for m in catalog.models():
        assert re.fullmatch(r"[a-z0-9]([a-z0-9.-]*[a-z0-9])?", m.slug), m.slug
        assert m.hf_repo not in repos
        repos.add(m.hf_repo)
        if m.revision_pinned:
            assert re.fullmatch(r"[0-9a-f]{40}", m.revision), m.slug
        for fact in ("config", "revision", "gated", "published_params_b"):
            assert m.source.get(fact), (m.slug, fact)
        assert m.source["config"].startswith(f"https://huggingface.co/{m.hf_repo}/")


def test_context_length_is_what_the_config_derives():
    for m in catalog.models():
        assert m.architecture().context_length == m.context_length, m.slug


def test_parameter_counts_match_the_model_cards():
    # published_params_b comes from the model cards; the count from the architecture
    for m in catalog.models():
        counted = planner.param_count(m.architecture()) / 1e9
        assert counted == pytest.approx(m.published_params_b, rel=0.02), m.slug


def test_lookup_by_slug_or_repo_and_unknown():
    assert catalog.get_model("LLAMA-3.1-8B").hf_repo == "meta-llama/Llama-3.1-8B-Instruct"
    assert catalog.get_model("meta-llama/llama-3.1-8b-instruct").slug == "llama-3.1-8b"
    with pytest.raises(UnknownModel) as err:
        catalog.get_model("gpt-5")
    assert str(err.value) == "unknown model 'gpt-5'; run `compose models` to list the catalog"


def test_config_for_is_a_copy_and_a_valid_config():
    cfg = catalog.config_for("qwen2.5-7b")
    cfg["hidden_size"] = 1
    assert catalog.config_for("qwen2.5-7b")["hidden_size"] == 3584


def test_405b_ignore_list_expands_to_the_checkpoint_list():
    qc = catalog.config_for("llama-3.1-405b-fp8")["quantization_config"]
    names = qc["modules_to_not_convert"]
    # lm_head + 126 layers x 4 attention projections + 2 layers x 3 MLP projections
    assert len(names) == 1 + 126 * 4 + 2 * 3 == 511
    assert "model.layers.125.self_attn.v_proj" in names and "model.layers.0.mlp.gate_proj" in names


def test_expand_braces():
    assert catalog.expand_braces("a.{0..2}.{x,y}") == ["a.0.x", "a.0.y", "a.1.x", "a.1.y", "a.2.x", "a.2.y"]
    assert catalog.expand_braces("lm_head") == ["lm_head"]


# --------------------------------------------------------------------------- config.json


def _write(tmp_path, cfg, name="config.json"):
    path = tmp_path / name
    path.write_text(json.dumps(cfg) if not isinstance(cfg, str) else cfg)
    return path


def test_resolve_config_file_and_directory(tmp_path):
    cfg = catalog.config_for("mistral-7b")
    _write(tmp_path, cfg)
    by_file = catalog.resolve_model(str(tmp_path / "config.json"))
    by_dir = catalog.resolve_model(str(tmp_path))
    assert by_file.arch == by_dir.arch == catalog.get_model("mistral-7b").architecture()
    # No _name_or_path: nothing names a Hub repository (the directory name is not one).
    assert by_file.revision is None and by_file.hf_repo is None
    assert by_file.slug == catalog.dns_slug(tmp_path.name) == by_file.served_model_name
    cfg["_name_or_path"] = "mistralai/Mistral-7B-Instruct-v0.3"
    _write(tmp_path, cfg)
    assert catalog.resolve_model(str(tmp_path)).served_model_name == "mistralai/Mistral-7B-Instruct-v0.3"
    for local in ("/home/me/checkpoints/run-7", "../..", "./x/y", "org/../name", "-org/name", "org/name.", "a--b/c"):
        cfg["_name_or_path"] = local  # a local path is not a repo id
        _write(tmp_path, cfg)
        assert catalog.resolve_model(str(tmp_path)).hf_repo is None, local


def test_hub_ids_and_revisions_are_validated():
    for good in ("meta-llama/Llama-3.1-8B-Instruct", "a/b", "Org_1/name.v2"):
        assert catalog.check_hub_id(good) == good
    for bad in ("../..", "a", "a/b/c", "/a", "a/", "a b/c", "a/b{{", "x" * 97 + "/y", "a..b/c", None, 5):
        with pytest.raises(InvalidInput, match="--hf-repo"):
            catalog.check_hub_id(bad)
    for good in ("main", "0" * 40, "refs/pr/1", "v1.2.3"):
        assert catalog.check_revision(good) == good
    for bad in ("", "../x", "a b", "-x", "x/", "x.lock", "x" * 256, "a//b"):
        with pytest.raises(InvalidInput, match="--revision"):
            catalog.check_revision(bad)


@pytest.mark.parametrize(
    "content, message",
    [
        ("{not json", "malformed JSON"),
        ("[1, 2]", "JSON object"),
        ({"hidden_size": 64}, "missing 'num_hidden_layers'"),
        ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": "4"}, "num_attention_heads must be an integer (got '4')"),
        ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 3,
          "vocab_size": 10, "intermediate_size": 8, "max_position_embeddings": 16}, "not a multiple"),
        ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10,
          "intermediate_size": 8}, "context length"),
        ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10,
          "intermediate_size": 8, "max_position_embeddings": 16,
          "quantization_config": {"quant_method": "bitsandbytes"}}, "unsupported quantization method 'bitsandbytes'"),
        ({"model_type": "deepseek_v3", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "vocab_size": 10, "intermediate_size": 8, "max_position_embeddings": 16, "kv_lora_rank": 32},
         "missing 'qk_nope_head_dim'"),
        ({"model_type": "deepseek_v3", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "vocab_size": 10, "intermediate_size": 8, "max_position_embeddings": 16, "kv_lora_rank": 32,
          "qk_nope_head_dim": 8, "qk_rope_head_dim": "8", "v_head_dim": 8}, "qk_rope_head_dim must be an integer (got '8')"),
        ({"model_type": "llava", "text_config": {}, "vision_config": {}}, "multimodal"),
        ({"model_type": "qwen2_audio", "audio_config": {}}, "audio"),
        ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8,
          "max_position_embeddings": 16, "layer_types": ["full_attention", "linear_attention"]},
         "missing 'linear_num_key_heads'"),
        ({"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10, "intermediate_size": 8,
          "max_position_embeddings": 16, "layer_types": ["full_attention", "mamba"]}, "layer_types ['mamba']"),
        ({"model_type": "gpt_oss", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
          "vocab_size": 10, "max_position_embeddings": 16, "num_local_experts": 4, "num_experts_per_tok": 2,
          "intermediate_size": 8, "quantization_config": {"quant_method": "fp8", "weight_block_size": [128, 64]}},
         "non-square FP8 blocks"),
    ],
)
def test_bad_configs_are_one_line_config_errors(tmp_path, content, message):
    path = _write(tmp_path, content)
    with pytest.raises(ConfigError) as err:
        catalog.resolve_model(str(path))
    assert message in str(err.value)
    assert "\n" not in str(err.value)


def test_missing_paths(tmp_path):
    with pytest.raises(ConfigError, match="no config.json"):
        catalog.resolve_model(str(tmp_path))
    with pytest.raises(ConfigError, match="no such file"):
        catalog.resolve_model(str(tmp_path / "nope" / "config.json"))


def test_rope_scaling_and_sliding_window_rules():
    base = {"hidden_size": 64, "num_hidden_layers": 4, "num_attention_heads": 4, "vocab_size": 10,
            "intermediate_size": 8, "max_position_embeddings": 32768}
    # vLLM 0.33 (config/model.py _get_and_verify_max_len) no longer applies a YaRN factor:
    # max_position_embeddings is taken as already scaled; linear factors still multiply.
    yarn = catalog.parse_config({**base, "rope_scaling": {"rope_type": "yarn", "factor": 4.0,
                                                          "original_max_position_embeddings": 32768}})
    assert yarn.context_length == 32768
    linear = catalog.parse_config({**base, "rope_scaling": {"rope_type": "linear", "factor": 2.0}})
    assert linear.context_length == 65536
    gemma3 = catalog.parse_config({**base, "model_type": "gemma3_text", "rope_scaling": {"rope_type": "linear", "factor": 8.0}})
    assert gemma3.context_length == 32768  # Gemma 3's length is already scaled
    llama3 = catalog.parse_config({**base, "rope_scaling": {"rope_type": "llama3", "factor": 8.0}})
    assert llama3.context_length == 32768
    qwen_off = catalog.parse_config({**base, "model_type": "qwen2", "sliding_window": 4096, "use_sliding_window": False})
    assert qwen_off.sliding_layers == 0
    mistral_v01 = catalog.parse_config({**base, "sliding_window": 4096})
    assert mistral_v01.sliding_layers == 4
    assert catalog.parse_config({**base, "sliding_window": 32768}).sliding_layers == 0  # window >= context


# --------------------------------------------------------------------------- GPUs


def test_gpu_catalog_has_the_required_gpus_with_cuda_totals():
    names = {g.name for g in catalog.gpus()}
    assert REQUIRED_GPUS <= names
    # vllm-facts.md §8: totals as CUDA reports them
    assert catalog.get_gpu("h100-80gb").memory_gib == 79.18
    assert catalog.get_gpu("h200").memory_gib == 139.72
    for gpu in catalog.gpus():
        assert gpu.bandwidth_gbps > 0 and gpu.gpus_per_node >= 1
        assert gpu.source.get("memory_gib") and gpu.source.get("bandwidth_gbps")


def test_aliases_and_unknown_gpu():
    assert catalog.get_gpu("H100").name == "h100-80gb"
    assert catalog.get_gpu("24gb").name == "rtx-4090"
    with pytest.raises(UnknownGPU, match="run `compose gpus`"):
        catalog.get_gpu("v100")


def test_clouds_lists_node_shapes_and_empty_lists_for_gpus_not_offered():
    assert catalog.get_gpu("a10g").clouds()["gke"] == []
    assert catalog.get_gpu("l4").clouds()["aks"] == []
    assert catalog.get_gpu("rtx-4090").clouds() == {"gke": [], "eks": [], "aks": []}
    assert "p5.48xlarge" in catalog.get_gpu("h100-80gb").clouds()["eks"]
    assert {g.name for g in catalog.gpus_for_cloud("gke")} >= {"l4", "h100-80gb", "t4"}
    assert "a10g" not in {g.name for g in catalog.gpus_for_cloud("gke")}
    assert "rtx-4090" in {g.name for g in catalog.gpus_for_cloud("k3s")}
    with pytest.raises(InvalidInput, match="unknown cloud"):
        catalog.gpus_for_cloud("azure")


def test_amd_gpus_are_refused_with_the_reason():
    """MI300X left the catalog (docs/gpus.md): --gpu mi300x says why, and the
    catalog holds NVIDIA GPUs only."""
    with pytest.raises(UnknownGPU, match="NVIDIA deployments only.*restricted"):
        catalog.get_gpu("mi300x")
    assert {g.vendor for g in catalog.gpus()} == {"nvidia"}
    assert {g.resource for g in catalog.gpus()} == {"nvidia.com/gpu"}


def test_eks_pins_the_a100_memory():
    """Karpenter calls both A100s "a100"; the GPU memory label tells p4d from p4de."""
    assert catalog.get_gpu("a100-80gb").node_selector("eks", 4) == {
        "karpenter.k8s.aws/instance-gpu-name": "a100", "karpenter.k8s.aws/instance-gpu-memory": "81920"}
    assert catalog.get_gpu("a100-40gb").node_selector("eks", 1)["karpenter.k8s.aws/instance-gpu-memory"] == "40960"
    assert catalog.get_gpu("h100-80gb").node_selector("eks", 8) == {"karpenter.k8s.aws/instance-gpu-name": "h100"}
    assert catalog.get_gpu("l4").node_selector("gke", 1) == {"cloud.google.com/gke-accelerator": "nvidia-l4"}
    assert catalog.get_gpu("l4").node_selector("k3s", 1) == {}


def test_aks_picks_a_vm_size_with_cpus_for_the_pod():
    """Standard_NC4as_T4_v3 has 4 vCPUs, less than 4 allocatable: a pod requesting 4 CPUs
    (the planner's 4 per GPU) never fits there, so the overlay pins NC8as_T4_v3."""
    t4 = catalog.get_gpu("t4")
    assert catalog.vm_vcpus("Standard_NC4as_T4_v3") == 4 and catalog.vm_vcpus("Standard_ND96isr_H100_v5") == 96
    assert t4.node_label_value("aks", 1) == "Standard_NC4as_T4_v3"
    assert t4.node_label_value("aks", 1, cpus=4) == "Standard_NC8as_T4_v3"
    assert t4.node_selector("aks", 2, cpus=8) == {"node.kubernetes.io/instance-type": "Standard_NC64as_T4_v3"}


def test_node_label_values():
    h100 = catalog.get_gpu("h100-80gb")
    assert h100.node_label_value("gke", 4) == "nvidia-h100-80gb"
    assert h100.node_label_value("eks", 8) == "h100"
    assert catalog.get_gpu("a100-80gb").node_label_value("aks", 2) == "Standard_NC48ads_A100_v4"
    assert h100.node_label_value("k3s", 1) is None
    with pytest.raises(InvalidInput, match="no node with 8 t4"):
        catalog.get_gpu("t4").node_label_value("gke", 8)


def test_custom_gpu_is_conservative():
    gpu = catalog.custom_gpu(40.0)
    assert gpu.custom and gpu.memory_gib == 40.0
    assert gpu.bandwidth_gbps == min(g.bandwidth_gbps for g in catalog.gpus())
    assert gpu.dense_tflops("bf16") is None


def test_issue13_models_have_their_attention_layouts():
    kinds = {m.slug: {k: m.architecture().count(k) for k in catalog.LAYER_KINDS if m.architecture().count(k)}
             for m in catalog.models()}
    assert kinds["gpt-oss-120b"] == {"full": 18, "sliding": 18}
    assert kinds["deepseek-v3"] == {"mla": 61}
    assert kinds["gemma-3-27b"] == {"full": 10, "sliding": 52}
    assert kinds["llama-4-maverick"] == {"full": 12, "chunked": 36}
    assert kinds["qwen3-next-80b-a3b"] == {"full": 12, "linear": 36}
    assert kinds["phi-4"] == {"full": 40}
    multimodal = {m.slug for m in catalog.models() if m.architecture().is_multimodal}
    assert multimodal == {"gemma-3-27b", "llama-4-scout", "llama-4-maverick", "qwen2.5-vl-7b",
                          "mistral-small-3.1-24b", "mistral-small-3.2-24b"}


def test_deepseek_moe_layout():
    a = catalog.get_model("deepseek-r1").architecture()
    assert len(a.moe_layers) == 58 and 2 not in a.moe_layers and 3 in a.moe_layers  # first_k_dense_replace 3
    assert (a.num_experts, a.experts_per_token, a.shared_expert_intermediate_size) == (256, 8, 2048)
    assert a.router_score_bias and a.rotary_dim == 64
    maverick = catalog.get_model("llama-4-maverick").architecture()
    assert len(maverick.moe_layers) == 24 and 1 in maverick.moe_layers and 0 not in maverick.moe_layers
    assert maverick.intermediate_size == 16384 and maverick.moe_intermediate_size == 8192


@pytest.mark.parametrize(
    "cfg, message",
    [
        ({"kv_lora_rank": 512, "qk_nope_head_dim": 128, "qk_rope_head_dim": 64, "v_head_dim": 10**9},
         "v_head_dim must be at most 131072 (got 1000000000)"),
        ({"layer_types": ["full_attention", "linear_attention"], "linear_num_key_heads": 2,
          "linear_num_value_heads": 2, "linear_key_head_dim": 8, "linear_value_head_dim": 8,
          "linear_conv_kernel_dim": 0}, "linear_conv_kernel_dim must be at least 1 (got 0)"),
        ({"model_type": "llama4_text", "attention_chunk_size": 8, "no_rope_layers": [1, 2]},
         "no_rope_layers[1] must be at most 1 (got 2)"),
        ({"model_type": "llama4_text", "attention_chunk_size": 8, "no_rope_layers": [1]}, "no_rope_layers has 1 entries"),
        ({"first_k_dense_replace": -1, "n_routed_experts": 4, "num_experts_per_tok": 2, "moe_intermediate_size": 8},
         "first_k_dense_replace must be at least 0"),
        ({"sliding_window_pattern": True, "sliding_window": 4, "model_type": "x"}, "sliding_window_pattern"),
        ({"rope_scaling": {"rope_type": "linear", "factor": "8"}}, "rope_scaling.factor must be a number"),
        ({"quantization_config": {"quant_method": "fp8", "weight_block_size": [128]}}, "weight_block_size must have at least 2 items"),
    ],
)
def test_new_config_fields_are_validated_in_one_line(cfg, message):
    base = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "vocab_size": 10,
            "intermediate_size": 8, "max_position_embeddings": 16}
    with pytest.raises(ConfigError) as err:
        catalog.parse_config({**base, **cfg}, "x/config.json")
    assert message in str(err.value) and str(err.value).startswith("x/config.json") and "\n" not in str(err.value)


def test_multimodal_text_config_is_the_decoder_and_tower_keys_are_checked():
    cfg = catalog.config_for("mistral-small-3.1-24b")
    a = catalog.parse_config(cfg)
    assert (a.model_type, a.hidden_size, a.num_layers) == ("mistral", 5120, 40)
    cfg["vision_config"]["num_hidden_layers"] = "24"
    with pytest.raises(ConfigError, match=r"vision_config\.num_hidden_layers must be an integer \(got '24'\)"):
        catalog.parse_config(cfg)


def test_blackwell_and_h200_nvl_gpus():
    b200 = catalog.get_gpu("b200")
    assert (b200.memory_gib, b200.compute_capability, b200.node_label_value("eks", 8)) == (178.35, "10.0", "b200")
    assert b200.node_label_value("gke", 8) == "nvidia-b200" and b200.clouds()["aks"] == []
    assert catalog.get_gpu("gb200").max_gpus_per_node("gke") == 4
    pro = catalog.get_gpu("rtx-pro-6000")
    assert pro.node_label_value("eks", 2) == "rtx-pro-server-6000" and pro.node_label_value("gke", 1) == "nvidia-rtx-pro-6000"
    assert pro.compute_capability == "12.0"
    nvl = catalog.get_gpu("h200-nvl")
    assert nvl.clouds() == {"gke": [], "eks": [], "aks": []} and "h200-nvl" in {g.name for g in catalog.gpus_for_cloud("k3s")}
    for name in ("gb200", "rtx-pro-6000", "h200-nvl"):
        assert "DERIVED" in catalog.get_gpu(name).source["memory_gib"]
