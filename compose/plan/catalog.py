"""Model and GPU catalogs, and the reading of Hugging Face `config.json` files.

The catalogs are data files next to this module (`catalog/models.yaml`,
`catalog/gpus.yaml`), each fact with its source. A catalog model carries the
config.json fields the planner needs, so a catalog slug and a config.json path
go through the same parser (`parse_config`) and the same maths.

Public API:
    models(), gpus()                    every entry, in catalog order
    get_model(slug), get_gpu(name)      lookup; UnknownModel / UnknownGPU
    resolve_model(ref)                  slug, hf repo id, config.json or a directory
    config_for(slug)                    a catalog model as a config.json dict
    gpus_for_cloud(cloud)               GPUs a cloud sells (k3s: any)
    custom_gpu(memory_gib)              an uncatalogued GPU known only by its memory
    GPU.clouds()                        {"gke": [...], "eks": [...], "aks": [...]};
                                        an empty list = that cloud does not sell it
"""

from __future__ import annotations

import copy
import dataclasses
import itertools
import json
import math
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from compose.core import yamlio
from compose.core.errors import ConfigError, InvalidInput, UnknownGPU, UnknownModel
from compose.plan import configschema

CATALOG_DIR = Path(__file__).parent / "catalog"
MANAGED_CLOUDS = ("gke", "eks", "aks")
SELF_MANAGED_CLOUDS = ("k3s",)

# vLLM serves float32 checkpoints in 16 bits with --dtype auto, so every dtype
# here costs 2 bytes per unquantized weight (vllm/config/model.py _get_and_verify_dtype).
DTYPES = {"bfloat16": "bfloat16", "float16": "float16", "float32": "bfloat16", "half": "float16"}
DTYPE_BYTES = 2

# Keys vLLM reads the context length from (vllm/config/model.py _get_and_verify_max_len).
_CONTEXT_KEYS = (
    "max_position_embeddings", "n_positions", "max_seq_len", "seq_length",
    "model_max_length", "max_sequence_length", "max_seq_length", "seq_len",
)
# RoPE types whose factor is already folded into max_position_embeddings.
# RoPE types whose factor vLLM 0.33 does not apply again (config/model.py
# _get_and_verify_max_len: YaRN leaves max_position_embeddings already scaled).
_ROPE_NO_EXTEND = ("su", "longrope", "llama3", "default", "mrope", "yarn", "deepseek_yarn", "deepseek_llama_scaling")
_QK_NORM_TYPES = ("qwen3", "qwen3_moe", "gemma3_text", "qwen3_next")
_FOUR_NORM_TYPES = ("gemma2", "gemma3_text")
_QKV_BIAS_TYPES = ("qwen2", "qwen2_moe")
# Older config spellings (transformers' attribute_map) -> the names used here.
_ALIASES = {
    "n_embd": "hidden_size", "d_model": "hidden_size",
    "n_layer": "num_hidden_layers", "n_layers": "num_hidden_layers", "num_layers": "num_hidden_layers",
    "n_head": "num_attention_heads", "n_heads": "num_attention_heads",
    "n_head_kv": "num_key_value_heads", "num_kv_heads": "num_key_value_heads",
    "n_inner": "intermediate_size", "ffn_dim": "intermediate_size", "rotary_pct": "partial_rotary_factor",
}
# Decoder-only families whose MLP is up/down only (no gate projection).
_UNGATED_MLP_TYPES = ("gpt2", "gpt_neox", "gptj", "opt", "falcon", "gpt_bigcode", "phi", "starcoder2", "bloom", "mpt")


# --------------------------------------------------------------------------- architecture

# Per-layer attention kinds, as vLLM's KV-cache spec classes name them
# (vllm/v1/kv_cache_interface.py): FullAttentionSpec, SlidingWindowSpec,
# ChunkedLocalAttentionSpec, MLAAttentionSpec, MambaSpec (linear attention).
LAYER_KINDS = ("full", "sliding", "chunked", "mla", "linear")
_HF_LAYER_TYPES = {"full_attention": "full", "sliding_attention": "sliding", "linear_attention": "linear",
                   "chunked_attention": "chunked"}

# Upper bounds for the fields this module reads beyond the basic shape: far above
# any published model, low enough to catch a typo (an extra digit, a byte count).
_MAX_DIM = 1 << 20
_MAX_LAYERS = 4096
_MAX_HEADS = 1 << 14
_MAX_TOKENS = 1 << 27


@dataclass(frozen=True)
class Quantization:
    """How a checkpoint stores its linear layers (from `quantization_config`).

    `experts_only`: the scheme quantizes only the routed experts (MXFP4: vLLM's
    Mxfp4Config.get_quant_method gives every LinearBase UnquantizedLinearMethod).
    `kv_fp8`: the checkpoint declares an FP8 KV cache, so --kv-cache-dtype auto
    resolves to fp8 (vllm/utils/torch_utils.py resolve_kv_cache_dtype_string).
    """

    method: str
    bits: int
    scale: str  # "tensor" | "channel" | "group" | "block" | "mx"
    group_size: int = 0  # inputs per scale ("group", "mx"), or the block edge ("block")
    scale_bytes: int = 4
    zero_point: bool = False  # a packed zero point per group (AWQ, GPTQ, asymmetric int)
    g_idx: bool = False  # GPTQ's int32 act-order index per input channel (desc_act)
    ignore: tuple[str, ...] = ()
    experts_only: bool = False
    kv_fp8: bool = False

    def skips(self, module: str) -> bool:
        """Whether `module` is left unquantized.

        Plain names match exactly or as a substring (vLLM's is_layer_skipped for
        AWQ/fbgemm); `re:` entries are regular expressions (compressed-tensors);
        `*` is a wildcard (MXFP4's `model.layers.*.self_attn`).
        """
        for pattern in self.ignore:
            if pattern.startswith("re:"):
                if re.match(pattern[3:], module):
                    return True
            elif "*" in pattern:
                if re.match(re.escape(pattern).replace(r"\*", r"[^.]+"), module):
                    return True
            elif pattern == module or pattern in module:
                return True
        return False

    def linear_bytes(self, in_features: int, out_features: int) -> float:
        """Bytes of one quantized weight matrix of shape [out, in], scales included."""
        weights = in_features * out_features * self.bits / 8
        if self.scale == "tensor":
            return weights + self.scale_bytes
        if self.scale == "channel":
            return weights + out_features * self.scale_bytes
        if self.scale == "block":
            blocks = math.ceil(out_features / self.group_size) * math.ceil(in_features / self.group_size)
            return weights + blocks * self.scale_bytes
        if self.scale == "mx":  # one e8m0 byte per group of inputs per output row
            return weights + out_features * math.ceil(in_features / self.group_size) * self.scale_bytes
        groups = math.ceil(in_features / self.group_size) if self.group_size > 0 else 1
        extra = groups * out_features * self.scale_bytes
        if self.zero_point:
            extra += groups * out_features * self.bits / 8
        if self.g_idx:
            extra += in_features * 4
        return weights + extra

    def describe(self) -> str:
        detail = {"group": f"group {self.group_size}", "mx": f"e8m0 scale per {self.group_size}",
                  "block": f"{self.group_size}x{self.group_size} block scales"}.get(self.scale, f"{self.scale} scales")
        where = ", routed experts only" if self.experts_only else ""
        return f"{self.method} {self.bits}-bit weights, {detail}{where}"


@dataclass(frozen=True)
class MLA:
    """Multi-head latent attention (DeepSeek V2/V3): the KV cache stores one
    latent of kv_lora_rank + qk_rope_head_dim per token and layer, not per head."""

    kv_lora_rank: int
    q_lora_rank: int  # 0: no query compression (q_proj instead of q_a/q_b)
    qk_nope_head_dim: int
    qk_rope_head_dim: int
    v_head_dim: int

    @property
    def latent_dim(self) -> int:
        return self.kv_lora_rank + self.qk_rope_head_dim


@dataclass(frozen=True)
class LinearAttention:
    """Gated DeltaNet (Qwen3-Next): a fixed-size recurrent state per sequence."""

    num_key_heads: int
    num_value_heads: int
    key_head_dim: int
    value_head_dim: int
    conv_kernel: int

    @property
    def key_dim(self) -> int:
        return self.num_key_heads * self.key_head_dim

    @property
    def value_dim(self) -> int:
        return self.num_value_heads * self.value_head_dim

    @property
    def conv_dim(self) -> int:
        return 2 * self.key_dim + self.value_dim


@dataclass(frozen=True)
class VisionTower:
    """A multimodal model's image encoder and projector, counted by tensor.

    `sharded_params` are the tower's linear weights (vLLM builds them as
    Column/RowParallelLinear, split over TP with the default
    --mm-encoder-tp-mode weights); `replicated_params` (patch embedding,
    position tables, norms, biases of row-parallel layers) sit on every GPU.
    `tokens_per_item` is the most decoder tokens one image becomes (the encoder
    cache unit); `patches_per_item` the most patches the encoder sees for it.
    """

    kind: str
    hidden_size: int
    intermediate_size: int
    num_layers: int
    sharded_params: int
    replicated_params: int
    tokens_per_item: int
    patches_per_item: int

    @property
    def params(self) -> int:
        return self.sharded_params + self.replicated_params


@dataclass(frozen=True)
class Architecture:
    """The decoder-only transformer a config.json describes: what the maths needs."""

    model_type: str
    hidden_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int
    head_dim: int
    intermediate_size: int
    vocab_size: int
    tie_word_embeddings: bool
    context_length: int
    max_position_embeddings: int
    rotary_dim: int
    dtype: str = "bfloat16"
    rope_cache_positions: tuple[int, ...] = ()  # positions of each distinct RoPE cos/sin cache; () = (max_pos,)
    qkv_bias: bool = False
    o_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    gated_mlp: bool = True  # gate + up + down (SwiGLU/GeGLU); False: up + down
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    shared_expert_gate: bool = False  # Qwen2-MoE / Qwen3-Next: a [hidden -> 1] gate on the shared expert
    expert_bias: bool = False  # gpt-oss: w13/w2 biases per expert
    router_bias: bool = False  # gpt-oss: the router has a bias
    router_score_bias: bool = False  # DeepSeek V3 noaux_tc: fp32 e_score_correction_bias [experts]
    moe_layers: frozenset[int] = frozenset()
    layer_kinds: tuple[str, ...] = ()  # one per layer (LAYER_KINDS); () = all full attention
    sliding_window: int | None = None
    attention_chunk_size: int | None = None
    attention_output_gate: bool = False  # Qwen3-Next: q_proj also emits a per-head output gate
    attention_sinks: bool = False  # gpt-oss: one learned sink logit per head and layer
    mla: MLA | None = None
    linear_attention: LinearAttention | None = None
    vision: VisionTower | None = None
    quantization: Quantization | None = None

    @property
    def is_moe(self) -> bool:
        return bool(self.moe_layers)

    @property
    def kinds(self) -> tuple[str, ...]:
        """The attention kind of every layer ("full" when the config says nothing)."""
        return self.layer_kinds or ("mla" if self.mla else "full",) * self.num_layers

    def count(self, kind: str) -> int:
        return sum(1 for k in self.kinds if k == kind)

    @property
    def sliding_layers(self) -> int:
        return self.count("sliding")

    @property
    def full_attention_layers(self) -> int:
        return self.count("full")

    @property
    def attention_layers(self) -> int:
        """Layers that keep a per-token KV cache (all but linear attention)."""
        return self.num_layers - self.count("linear")

    @property
    def is_multimodal(self) -> bool:
        return self.vision is not None


@dataclass(frozen=True)
class ResolvedModel:
    """A model the planner can size: identity for the manifests plus its architecture.

    `hf_repo` is a validated Hub id (`org/name`) or None when nothing names one (a
    local config.json whose `_name_or_path` is a path); `revision` is None unless the
    catalog or the caller pins one. `compose new-model` refuses a model without both.
    """

    slug: str
    hf_repo: str | None
    revision: str | None
    revision_pinned: bool
    gated: bool
    served_model_name: str
    arch: Architecture
    origin: str  # "catalog" or the config.json path


def parse_config(cfg: Any, source: str = "config.json") -> Architecture:
    """Turn a config.json mapping into an Architecture, or raise one-line ConfigError.

    Multimodal configs (text_config / vision_config) are read as their decoder
    plus a VisionTower; the quantization config is the checkpoint's top-level one.
    The fields read here are first checked against their declared types and ranges
    (`compose.plan.configschema`), so the code below may trust them.
    """
    configschema.check(cfg, source)
    _reject_unsupported(cfg, source)
    text, vision_cfg = _split_multimodal(cfg, source)
    text = _with_family_defaults(_with_standard_names(text))
    model_type = str(text.get("model_type") or "")
    hidden = _positive_int(text, "hidden_size", source)
    layers = _positive_int(text, "num_hidden_layers", source)
    heads = _positive_int(text, "num_attention_heads", source)
    kv_heads = _positive_int(text, "num_key_value_heads", source, default=heads)
    if heads % kv_heads:
        raise ConfigError(f"{source}: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")
    head_dim = _head_dim(text, hidden, heads, source)
    moe = _moe_fields(text, layers, source)
    all_moe = len(moe.get("moe_layers", ())) == layers
    gated = model_type not in _UNGATED_MLP_TYPES
    default_inter = 0 if all_moe else (None if gated else 4 * hidden)  # GPT-2's n_inner: null = 4 x hidden
    intermediate = _positive_int(text, "intermediate_size", source, default=default_inter)
    if moe.pop("dense_intermediate_size", None):  # Llama 4: dense layers use intermediate_size_mlp
        intermediate = _bounded_int(text, "intermediate_size_mlp", source, hi=_MAX_DIM)
    context, max_pos = _context_length(text, source)
    mla = _mla_fields(text, source)
    linear = _linear_attention_fields(text, source)
    kinds, window, chunk = _layer_kinds(text, model_type, layers, context, mla, linear, source)
    quant = parse_quantization(cfg.get("quantization_config", text.get("quantization_config")), source)
    return Architecture(
        model_type=model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=_positive_int(text, "vocab_size", source),
        tie_word_embeddings=bool(text.get("tie_word_embeddings", False)),
        context_length=context,
        max_position_embeddings=max_pos,
        rotary_dim=mla.qk_rope_head_dim if mla else int(head_dim * float(text.get("partial_rotary_factor") or 1.0)),
        rope_cache_positions=_rope_cache_positions(text, max_pos, kinds),
        dtype=_dtype(text, source),
        qkv_bias=bool(text["attention_bias"]) if "attention_bias" in text else model_type in _QKV_BIAS_TYPES,
        o_bias=model_type in _O_BIAS_TYPES and bool(text.get("attention_bias", False)),
        mlp_bias=bool(text.get("mlp_bias", False)),
        qk_norm=model_type in _QK_NORM_TYPES,
        norms_per_layer=4 if model_type in _FOUR_NORM_TYPES else 2,
        gated_mlp=gated,
        layer_kinds=kinds,
        sliding_window=window,
        attention_chunk_size=chunk,
        attention_output_gate=model_type in _OUTPUT_GATE_TYPES,
        attention_sinks=model_type in _SINK_TYPES,
        mla=mla,
        linear_attention=linear,
        vision=_vision_tower(cfg, vision_cfg, hidden, source) if vision_cfg is not None else None,
        quantization=quant,
        **moe,
    )


# Families whose o_proj carries a bias when attention_bias is set (gpt-oss);
# Qwen2's attention_bias-free default biases q/k/v only.
_O_BIAS_TYPES = ("gpt_oss",)
_OUTPUT_GATE_TYPES = ("qwen3_next",)
_SINK_TYPES = ("gpt_oss",)
# Multimodal families the planner models: top-level model_type -> vision kind.
_VISION_KINDS = {"gemma3": "siglip", "llama4": "llama4", "qwen2_5_vl": "qwen2_5_vl", "mistral3": "pixtral"}


def _reject_unsupported(cfg: dict, source: str) -> None:
    if cfg.get("is_encoder_decoder"):
        raise ConfigError(f"{source}: encoder-decoder models are not supported; give a decoder-only model")
    if "audio_config" in cfg:
        raise ConfigError(f"{source}: audio models (audio_config) are not supported; give a text or image-text model")
    if "vision_config" in cfg or "text_config" in cfg:
        kind = str(cfg.get("model_type") or "")
        if kind not in _VISION_KINDS:
            raise ConfigError(
                f"{source}: multimodal model_type {kind!r} is not supported; "
                f"supported: {', '.join(sorted(_VISION_KINDS))} (or give the text-only decoder config)"
            )
    text = cfg.get("text_config") if isinstance(cfg.get("text_config"), dict) else cfg
    types = text.get("layer_types")
    if types is not None:
        odd = (sorted({str(t) for t in types} - set(_HF_LAYER_TYPES)) if isinstance(types, list) else [str(types)])
        if odd:
            raise ConfigError(f"{source}: layer_types {odd} are not supported "
                              f"(full, sliding, chunked and linear attention are)")


def _split_multimodal(cfg: dict, source: str) -> tuple[dict, dict | None]:
    """(decoder config, vision config or None). Qwen2.5-VL keeps its decoder
    fields at the top level; Gemma 3, Llama 4 and Mistral 3 nest them in text_config."""
    vision = cfg.get("vision_config")
    if "vision_config" in cfg and not isinstance(vision, dict):
        raise ConfigError(f"{source}: vision_config must be a JSON object")
    text = cfg.get("text_config")
    if text is None:
        return cfg, vision
    if not isinstance(text, dict):
        raise ConfigError(f"{source}: text_config must be a JSON object")
    merged = dict(text)
    for key in ("torch_dtype", "dtype", "tie_word_embeddings"):  # top-level values apply to the decoder too
        if key in cfg and key not in merged:
            merged[key] = cfg[key]
    if "model_type" not in merged:
        merged["model_type"] = {"gemma3": "gemma3_text", "llama4": "llama4_text", "mistral3": "mistral"}.get(
            str(cfg.get("model_type")), str(cfg.get("model_type") or ""))
    return merged, vision


# transformers' config-class defaults for keys the official configs leave out
# (Gemma3TextConfig, Llama4TextConfig, Qwen3NextConfig). Only applied when absent.
_FAMILY_DEFAULTS = {
    "gemma3_text": {"vocab_size": 262208, "head_dim": 256, "num_attention_heads": 8, "num_key_value_heads": 4,
                    "max_position_embeddings": 131072, "sliding_window": 4096, "sliding_window_pattern": 6,
                    "tie_word_embeddings": True, "rope_local_base_freq": 10000.0},
}


def _with_family_defaults(cfg: dict) -> dict:
    defaults = _FAMILY_DEFAULTS.get(str(cfg.get("model_type") or ""))
    if not defaults:
        return cfg
    return {**defaults, **{k: v for k, v in cfg.items() if v is not None or k not in defaults}}


def _with_standard_names(cfg: dict) -> dict:
    """A copy of cfg with aliased keys (n_embd, n_layer, ...) under their standard names."""
    out = dict(cfg)
    for alias, name in _ALIASES.items():
        if out.get(name) is None and cfg.get(alias) is not None:
            out[name] = cfg[alias]
    return out


def _positive_int(cfg: dict, key: str, source: str, default: int | None = None) -> int:
    """cfg[key] as a positive int; `default` when absent (None: the key is required)."""
    value = cfg.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"{source}: missing {key!r}, which the planner needs")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise ConfigError(f"{source}: {key!r} must be a positive integer, got {value!r}")
    return value


def _bounded_int(cfg: dict, key: str, source: str, hi: int, default: int | None = None, lo: int = 1) -> int:
    """cfg[key] as an int in [lo, hi]; `default` when absent (None: required)."""
    value = cfg.get(key)
    if value is None:
        if default is None:
            raise ConfigError(f"{source}: missing {key!r}, which the planner needs for this architecture")
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ConfigError(f"{source}: {key!r} must be an integer from {lo} to {hi}, got {value!r}; fix the config")
    return value


def _flag(cfg: dict, key: str, source: str, default: bool = False) -> bool:
    """cfg[key] as a real JSON boolean (not 0/1 or "true")."""
    value = cfg.get(key, default)
    if value is None:
        return default
    if not isinstance(value, bool):
        raise ConfigError(f"{source}: {key!r} must be true or false, got {value!r}; fix the config")
    return value


def _int_list(cfg: dict, key: str, source: str, hi: int) -> list[int]:
    value = cfg.get(key) or []
    if not isinstance(value, list) or any(isinstance(v, bool) or not isinstance(v, int) or not 0 <= v <= hi for v in value):
        raise ConfigError(f"{source}: {key!r} must be a list of integers from 0 to {hi}, got {value!r}; fix the config")
    return value


def _head_dim(cfg: dict, hidden: int, heads: int, source: str) -> int:
    """The config's head_dim when present (Qwen3, Gemma 2), else hidden / heads."""
    if cfg.get("head_dim") is not None:
        return _positive_int(cfg, "head_dim", source)
    if hidden % heads:
        raise ConfigError(f"{source}: hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads}) and no head_dim is given")
    return hidden // heads


def _moe_fields(cfg: dict, layers: int, source: str) -> dict:
    """Experts, their size and which layers have them.

    Spellings: num_local_experts (Mixtral, gpt-oss, Llama 4), num_experts (Qwen),
    n_routed_experts (DeepSeek). MoE layers: DeepSeek's first_k_dense_replace /
    moe_layer_freq, Qwen's decoder_sparse_step / mlp_only_layers, Llama 4's
    interleave_moe_layer_step (vllm/model_executor/models/{deepseek_v2,qwen3_moe,llama4}.py).
    """
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or cfg.get("n_routed_experts") or 0
    if isinstance(experts, bool) or not isinstance(experts, int) or experts <= 1:
        return {}
    experts = _bounded_int({"experts": experts}, "experts", source, hi=_MAX_HEADS)
    per_token = _positive_int(cfg, "num_experts_per_tok", source)
    if per_token > experts:
        raise ConfigError(f"{source}: num_experts_per_tok ({per_token}) exceeds the {experts} experts; correct it")
    model_type = str(cfg.get("model_type") or "")
    llama4 = model_type == "llama4_text"
    moe_inter = cfg.get("moe_intermediate_size") or cfg.get("intermediate_size")
    if not isinstance(moe_inter, int) or isinstance(moe_inter, bool) or moe_inter <= 0:
        raise ConfigError(f"{source}: missing 'moe_intermediate_size' for a mixture-of-experts model")
    if llama4:  # experts use intermediate_size; dense layers intermediate_size_mlp
        moe_inter = _positive_int(cfg, "intermediate_size", source)
    step = cfg.get("decoder_sparse_step") or 1
    freq = _bounded_int(cfg, "moe_layer_freq", source, hi=_MAX_LAYERS, default=1)
    dense_first = _bounded_int(cfg, "first_k_dense_replace", source, hi=_MAX_LAYERS, default=0, lo=0)
    mlp_only = set(_int_list(cfg, "mlp_only_layers", source, hi=_MAX_LAYERS))
    if llama4:
        interleave = _bounded_int(cfg, "interleave_moe_layer_step", source, hi=_MAX_LAYERS, default=1)
        moe_layers = frozenset(i for i in range(layers) if (i + 1) % interleave == 0)
    else:
        moe_layers = frozenset(
            i for i in range(layers)
            if i not in mlp_only and i >= dense_first and (i + 1) % step == 0 and i % freq == 0
        )
    shared = int(cfg.get("shared_expert_intermediate_size") or 0)
    n_shared = _bounded_int(cfg, "n_shared_experts", source, hi=_MAX_HEADS, default=0, lo=0)
    if n_shared:  # DeepSeek: n_shared_experts x moe_intermediate_size, one TP-sharded MLP
        shared = n_shared * moe_inter
    if llama4:  # one shared expert of the expert size (vllm llama4.py Llama4MoE.shared_expert)
        shared = moe_inter
    out = {
        "num_experts": experts,
        "experts_per_token": per_token,
        "moe_intermediate_size": moe_inter,
        "shared_expert_intermediate_size": shared,
        "shared_expert_gate": bool(cfg.get("shared_expert_intermediate_size")),
        "expert_bias": model_type == "gpt_oss",
        "router_bias": model_type == "gpt_oss",
        "router_score_bias": cfg.get("topk_method") == "noaux_tc",
        "moe_layers": moe_layers,
    }
    if llama4 and len(moe_layers) < layers:
        out["dense_intermediate_size"] = True
    return out


def _context_length(cfg: dict, source: str) -> tuple[int, int]:
    """(context length vLLM derives, max_position_embeddings) per _get_and_verify_max_len."""
    present = [cfg[k] for k in _CONTEXT_KEYS if isinstance(cfg.get(k), int) and cfg[k] > 0]
    if not present:
        raise ConfigError(f"{source}: missing 'max_position_embeddings' (the model's context length)")
    derived = min(present)
    max_pos = int(cfg.get("max_position_embeddings") or derived)
    rope = cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") if isinstance(rope, dict) else None
    gemma3 = "gemma3" in str(cfg.get("model_type") or "")  # already scaled (vLLM skips Gemma 3)
    if isinstance(rope, dict) and "factor" in rope and rope_type not in _ROPE_NO_EXTEND and not gemma3:
        factor = rope["factor"]
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not 0 < factor < 1e4:
            raise ConfigError(f"{source}: rope_scaling.factor must be a positive number, got {factor!r}; fix the config")
        derived = int(derived * float(factor))
    if derived > configschema.MAX_CONTEXT:
        raise ConfigError(
            f"{source}: the context length derived from rope_scaling ({derived} tokens) exceeds "
            f"{configschema.MAX_CONTEXT}; correct rope_scaling.factor or max_position_embeddings"
        )
    return derived, max_pos


def _rope_cache_positions(cfg: dict, max_pos: int, kinds: tuple[str, ...]) -> tuple[int, ...]:
    """Rows of each RoPE cos/sin cache vLLM builds (one per distinct rope config, get_rope's
    _ROPE_DICT): linear and dynamic-NTK scaling cache max_position x factor
    (rotary_embedding/linear_scaling_rope.py, dynamic_ntk_scaling_rope.py
    _compute_cos_sin_cache); Gemma 3's sliding layers add an unscaled local-base cache
    (models/gemma3.py: rope_parameters per layer type)."""
    rope = cfg.get("rope_scaling") if isinstance(cfg.get("rope_scaling"), dict) else {}
    kind = rope.get("rope_type") or rope.get("type")
    factor = rope.get("factor")
    scaled = max_pos
    if kind in ("linear", "dynamic") and isinstance(factor, (int, float)) and not isinstance(factor, bool) and factor > 0:
        scaled = int(max_pos * float(factor))
    if cfg.get("rope_local_base_freq") is not None and "sliding" in kinds and "full" in kinds:
        return (scaled, max_pos)
    return (scaled,)


def _mla_fields(cfg: dict, source: str) -> MLA | None:
    """DeepSeek V2/V3 latent attention (vllm/model_executor/models/deepseek_v2.py)."""
    if not cfg.get("kv_lora_rank"):
        return None
    return MLA(
        kv_lora_rank=_bounded_int(cfg, "kv_lora_rank", source, hi=_MAX_DIM),
        q_lora_rank=_bounded_int(cfg, "q_lora_rank", source, hi=_MAX_DIM, default=0, lo=0),
        qk_nope_head_dim=_bounded_int(cfg, "qk_nope_head_dim", source, hi=_MAX_DIM),
        qk_rope_head_dim=_bounded_int(cfg, "qk_rope_head_dim", source, hi=_MAX_DIM),
        v_head_dim=_bounded_int(cfg, "v_head_dim", source, hi=_MAX_DIM),
    )


def _linear_attention_fields(cfg: dict, source: str) -> LinearAttention | None:
    """Gated DeltaNet sizes (vllm/model_executor/models/qwen3_next.py
    get_mamba_state_shape_from_config): only for configs with linear-attention layers."""
    types = cfg.get("layer_types")
    has_linear = (isinstance(types, list) and "linear_attention" in types) or cfg.get("full_attention_interval")
    if not has_linear:
        return None
    return LinearAttention(
        num_key_heads=_bounded_int(cfg, "linear_num_key_heads", source, hi=_MAX_HEADS),
        num_value_heads=_bounded_int(cfg, "linear_num_value_heads", source, hi=_MAX_HEADS),
        key_head_dim=_bounded_int(cfg, "linear_key_head_dim", source, hi=_MAX_DIM),
        value_head_dim=_bounded_int(cfg, "linear_value_head_dim", source, hi=_MAX_DIM),
        conv_kernel=_bounded_int(cfg, "linear_conv_kernel_dim", source, hi=64),
    )


def _layer_kinds(cfg: dict, model_type: str, layers: int, context: int, mla: MLA | None,
                 linear: LinearAttention | None, source: str) -> tuple[tuple[str, ...], int | None, int | None]:
    """(kind per layer, sliding window, attention chunk) as vLLM builds its KV specs.

    () means every layer is full attention (or MLA). Sources per family:
    layer_types (gpt-oss, Gemma 3 saved by newer transformers, Qwen3-Next);
    sliding_window_pattern (Gemma 3: layer i is local unless (i + 1) % pattern == 0);
    Llama 4's no_rope_layers / attention_chunk_size (llama4.py: chunked unless NoPE);
    Qwen3-Next's full_attention_interval.
    """
    if mla is not None:
        return (), None, None
    if linear is not None:
        kinds = _linear_kinds(cfg, layers, source)
        return kinds, None, None
    chunk = cfg.get("attention_chunk_size")
    if chunk is not None and model_type == "llama4_text":
        chunk = _bounded_int(cfg, "attention_chunk_size", source, hi=_MAX_TOKENS)
        interval = _bounded_int(cfg, "no_rope_layer_interval", source, hi=_MAX_LAYERS, default=4)
        nope = _int_list(cfg, "no_rope_layers", source, hi=1) or [int((i + 1) % interval != 0) for i in range(layers)]
        if len(nope) != layers:
            raise ConfigError(f"{source}: no_rope_layers has {len(nope)} entries for {layers} layers; fix the config")
        kinds = tuple("chunked" if uses_rope else "full" for uses_rope in nope)
        return (kinds, None, chunk) if chunk < context else ((), None, None)
    window, count = _sliding(cfg, model_type, layers, context, source)
    if not count:
        return (), None, None
    types = cfg.get("layer_types")
    if isinstance(types, list) and len(types) == layers:
        kinds = tuple(_HF_LAYER_TYPES[str(t)] for t in types)
    elif model_type == "gemma2":  # even layers are local (HF Gemma2 layer_types)
        kinds = tuple("sliding" if i % 2 == 0 else "full" for i in range(layers))
    elif cfg.get("sliding_window_pattern"):
        pattern = _bounded_int(cfg, "sliding_window_pattern", source, hi=_MAX_LAYERS)
        kinds = tuple("full" if (i + 1) % pattern == 0 else "sliding" for i in range(layers))
    else:  # Qwen2/3 max_window_layers, Mistral v0.1: the last `count` layers slide
        kinds = tuple("full" if i < layers - count else "sliding" for i in range(layers))
    return kinds, window, None


def _linear_kinds(cfg: dict, layers: int, source: str) -> tuple[str, ...]:
    types = cfg.get("layer_types")
    if isinstance(types, list):
        if len(types) != layers:
            raise ConfigError(f"{source}: layer_types has {len(types)} entries for {layers} layers; fix the config")
        return tuple(_HF_LAYER_TYPES[str(t)] for t in types)
    interval = _bounded_int(cfg, "full_attention_interval", source, hi=_MAX_LAYERS)
    return tuple("full" if (i + 1) % interval == 0 else "linear" for i in range(layers))


def _sliding(cfg: dict, model_type: str, layers: int, context: int, source: str) -> tuple[int | None, int]:
    """(window, number of sliding-window layers) as vLLM builds its KV specs."""
    if cfg.get("sliding_window") is None:
        return None, 0
    window = _bounded_int(cfg, "sliding_window", source, hi=_MAX_TOKENS)
    if cfg.get("sliding_window_pattern") is not None:
        _bounded_int(cfg, "sliding_window_pattern", source, hi=_MAX_LAYERS)
    if window >= context:
        return None, 0
    if "layer_types" in cfg:
        count = sum(1 for t in cfg["layer_types"] if t == "sliding_attention")
    elif "use_sliding_window" in cfg:  # Qwen2/3: layers from max_window_layers on
        count = layers - int(cfg.get("max_window_layers") or 0) if cfg["use_sliding_window"] else 0
    elif model_type == "gemma2":  # even layers are local (HF Gemma2 layer_types)
        count = math.ceil(layers / 2)
    elif cfg.get("sliding_window_pattern"):
        count = layers - layers // int(cfg["sliding_window_pattern"])
    else:  # Mistral v0.1 style: every layer
        count = layers
    return (window, count) if count > 0 else (None, 0)


def _dtype(cfg: dict, source: str) -> str:
    raw = cfg.get("torch_dtype") or cfg.get("dtype") or "bfloat16"
    if raw not in DTYPES:
        raise ConfigError(f"{source}: unsupported torch_dtype {raw!r} (bfloat16, float16 or float32)")
    return DTYPES[raw]


# --------------------------------------------------------------------------- vision towers


def _vision_tower(cfg: dict, vcfg: dict, text_hidden: int, source: str) -> VisionTower:
    """The image encoder and projector of a supported multimodal family, by tensor."""
    kind = _VISION_KINDS[str(cfg.get("model_type"))]
    src = f"{source} vision_config"
    hidden = _bounded_int(vcfg, "hidden_size", src, hi=_MAX_DIM)
    inter = _bounded_int(vcfg, "intermediate_size", src, hi=_MAX_DIM)
    layers = _bounded_int(vcfg, "num_hidden_layers" if kind != "qwen2_5_vl" else "depth", src, hi=_MAX_LAYERS)
    patch = _bounded_int(vcfg, "patch_size", src, hi=1024, default=14)
    channels = _bounded_int(vcfg, "num_channels" if kind != "qwen2_5_vl" else "in_chans", src, hi=16, default=3)
    return _TOWERS[kind](cfg, vcfg, hidden, inter, layers, patch, channels, text_hidden, src)


def _siglip(cfg, vcfg, h, inter, layers, patch, ch, text_hidden, src) -> VisionTower:
    """Gemma 3: SigLIP encoder (vllm models/siglip.py) + Gemma3MultiModalProjector
    (gemma3_mm.py: mm_input_projection_weight [vision, text] and an RMSNorm)."""
    image = _bounded_int(vcfg, "image_size", src, hi=16384, default=896)
    patches = (image // patch) ** 2
    linears = layers * (4 * h * h + 2 * h * inter)
    replicated = (ch * patch * patch * h + h + patches * h  # patch conv + bias, position table
                  + layers * (4 * h + 4 * h + inter + h)  # 2 layer norms, q/k/v/o and fc biases
                  + 2 * h)  # post layer norm
    projector = h * text_hidden + h  # nn.Parameters: replicated on every GPU
    tokens = _bounded_int(cfg, "mm_tokens_per_image", src, hi=_MAX_TOKENS, default=256)
    return VisionTower("siglip", h, inter, layers, linears, replicated + projector, tokens, patches)


def _pixtral(cfg, vcfg, h, inter, layers, patch, ch, text_hidden, src) -> VisionTower:
    """Mistral 3: Pixtral encoder (vllm models/pixtral.py PixtralHFVisionModel, gated MLP,
    RMSNorms, 2D RoPE) + Mistral3MultiModalProjector (patch merger of
    spatial_merge_size^2 patches, linear_1, linear_2; no biases by default)."""
    image = _bounded_int(vcfg, "image_size", src, hi=16384, default=1540)
    merge = _bounded_int(cfg, "spatial_merge_size", src, hi=16, default=2)
    bias = _flag(cfg, "multimodal_projector_bias", src, default=False)
    side = image // patch
    linears = layers * (4 * h * h + 3 * h * inter)
    replicated = ch * patch * patch * h + h + layers * 2 * h
    projector = h + (merge * merge * h) * h + h * text_hidden + text_hidden * text_hidden
    projector_bias = 2 * text_hidden if bias else 0
    tokens = (side // merge) * (side // merge + 1)  # merged patches plus one [IMG_BREAK] per row
    return VisionTower("pixtral", h, inter, layers, linears + projector - h, replicated + h + projector_bias,
                       tokens, side * side)


def _qwen2_5_vl(cfg, vcfg, h, inter, layers, patch, ch, text_hidden, src) -> VisionTower:
    """Qwen2.5-VL: windowed ViT (vllm models/qwen2_5_vl.py Qwen2_5_VisionTransformer:
    qkv and proj with biases, gated MLP with biases, RMSNorms) + patch merger
    (ln_q, Linear(h*m^2, h*m^2), Linear(h*m^2, out_hidden_size), with biases).
    One image is at most max_pixels = 12845056 (the HF processor default):
    12845056 / 14^2 = 65536 patches, merged 2x2 into 16384 decoder tokens."""
    temporal = _bounded_int(vcfg, "temporal_patch_size", src, hi=16, default=2)
    merge = _bounded_int(vcfg, "spatial_merge_size", src, hi=16, default=2)
    out = _bounded_int(vcfg, "out_hidden_size", src, hi=_MAX_DIM, default=text_hidden)
    linears = layers * (4 * h * h + 3 * h * inter)
    replicated = ch * temporal * patch * patch * h + layers * (2 * h + 3 * h + h + 2 * inter + h)
    wide = h * merge * merge  # merger: ln_q, Linear(wide, wide), Linear(wide, out), with biases
    patches = 12845056 // (patch * patch)
    return VisionTower("qwen2_5_vl", h, inter, layers, linears + wide * wide + wide * out,
                       replicated + h + wide + out, patches // (merge * merge), patches)


def _llama4_vision(cfg, vcfg, h, inter, layers, patch, ch, text_hidden, src) -> VisionTower:
    """Llama 4: ViT with class token and learned positions, attention and MLP with
    biases (vllm models/mllama4.py Llama4VisionModel, built with quant_config=None),
    pixel-shuffle adapter MLP and a linear projector to the text width. One image
    is at most 16 tiles + a global tile of (336/14)^2 patches, shuffled by 0.5 into
    144 tokens each (HF Llama4 processor max_patches=16)."""
    image = _bounded_int(vcfg, "image_size", src, hi=16384, default=336)
    proj_in = _bounded_int(vcfg, "projector_input_dim", src, hi=_MAX_DIM, default=4096)
    proj_out = _bounded_int(vcfg, "projector_output_dim", src, hi=_MAX_DIM, default=4096)
    out = _bounded_int(vcfg, "vision_output_dim", src, hi=_MAX_DIM, default=4096)
    ratio = float(vcfg.get("pixel_shuffle_ratio") or 0.5)
    if not 0 < ratio <= 1:
        raise ConfigError(f"{src}: 'pixel_shuffle_ratio' must be in (0, 1], got {ratio!r}; fix the config")
    patches = (image // patch) ** 2
    shuffled = int(h / (ratio * ratio))
    linears = layers * (4 * h * h + 2 * h * inter) + ch * patch * patch * h
    replicated = (h + (patches + 1) * h + 4 * h  # class token, positions, pre/post layer norms
                  + layers * (4 * h + 4 * h + inter + h))  # 2 layer norms, q/k/v/o and fc biases
    adapter = shuffled * proj_in + proj_out * out
    projector = out * text_hidden
    tokens_per_tile = int(patches * ratio * ratio)
    return VisionTower("llama4", h, inter, layers, linears + adapter + projector, replicated,
                       17 * tokens_per_tile, 17 * patches)


_TOWERS = {"siglip": _siglip, "pixtral": _pixtral, "qwen2_5_vl": _qwen2_5_vl, "llama4": _llama4_vision}


# --------------------------------------------------------------------------- quantization


SUPPORTED_QUANT = ("fp8", "fbgemm_fp8", "compressed-tensors", "awq", "gptq", "modelopt (FP8)", "mxfp4")


def parse_quantization(qc: Any, source: str = "config.json") -> Quantization | None:
    """Read `quantization_config`; None for an unquantized checkpoint."""
    if qc is None:
        return None
    if not isinstance(qc, dict) or not qc.get("quant_method"):
        raise ConfigError(f"{source}: quantization_config needs a 'quant_method'")
    configschema.check_quantization(qc, source)
    method = str(qc["quant_method"]).lower()
    parser = _QUANT_PARSERS.get(method)
    if parser is None:
        raise ConfigError(
            f"{source}: unsupported quantization method {method!r}; supported: {', '.join(SUPPORTED_QUANT)}"
        )
    return parser(qc, source)


def _ignore_list(qc: dict, *keys: str) -> tuple[str, ...]:
    for key in keys:
        value = qc.get(key)
        if value:
            return tuple(str(v) for v in value)
    return ()


def _fp8(qc: dict, source: str) -> Quantization:
    """vllm/model_executor/layers/quantization/fp8.py Fp8Config: fp8 weights with one
    fp32 scale per tensor (per logical shard), or per weight_block_size block
    (`weight_scale_inv`, DeepSeek V3 and Qwen3-FP8: [128, 128])."""
    block = qc.get("weight_block_size")
    ignore = _ignore_list(qc, "ignored_layers", "modules_to_not_convert")
    if block:
        if (not isinstance(block, list) or len(block) != 2 or any(isinstance(b, bool) or not isinstance(b, int)
                                                                  or not 1 <= b <= 4096 for b in block)):
            raise ConfigError(f"{source}: quantization_config.weight_block_size must be two integers "
                              f"from 1 to 4096, got {block!r}; fix the config")
        if block[0] != block[1]:
            raise ConfigError(f"{source}: non-square FP8 blocks {block} are not supported; "
                              "the planner models [N, N] blocks (DeepSeek and Qwen use [128, 128])")
        return Quantization("fp8", 8, "block", group_size=block[0], ignore=ignore)
    return Quantization("fp8", 8, "tensor", ignore=ignore)


def _fbgemm_fp8(qc: dict, source: str) -> Quantization:
    return Quantization("fbgemm_fp8", 8, "channel", ignore=_ignore_list(qc, "modules_to_not_convert"))


def _modelopt(qc: dict, source: str) -> Quantization:
    inner = qc.get("quantization") if isinstance(qc.get("quantization"), dict) else {}
    algo = str(qc.get("quant_algo") or inner.get("quant_algo") or "").upper()
    if algo != "FP8":
        raise ConfigError(f"{source}: unsupported modelopt quant_algo {algo!r}; only FP8 is supported")
    kv = str(qc.get("kv_cache_quant_algo") or inner.get("kv_cache_quant_algo") or "").upper()
    return Quantization("modelopt", 8, "tensor", ignore=_ignore_list(qc, "exclude_modules", "ignore"),
                        kv_fp8=kv == "FP8")


def _mxfp4(qc: dict, source: str) -> Quantization:
    """gpt-oss: OCP MX FP4 experts, one e8m0 scale byte per 32 weights
    (vllm/model_executor/layers/quantization/mxfp4.py); everything else bf16."""
    return Quantization("mxfp4", 4, "mx", group_size=32, scale_bytes=1, experts_only=True,
                        ignore=_ignore_list(qc, "modules_to_not_convert", "ignored_layers"))


def _awq(qc: dict, source: str) -> Quantization:
    bits = int(qc.get("bits") or qc.get("w_bit") or 4)
    group = int(qc.get("group_size") or qc.get("q_group_size") or 128)
    return Quantization(
        "awq", bits, "group", group_size=group, scale_bytes=2,
        zero_point=bool(qc.get("zero_point", True)), ignore=_ignore_list(qc, "modules_to_not_convert"),
    )


def _gptq(qc: dict, source: str) -> Quantization:
    bits = int(qc.get("bits") or 4)
    group = int(qc.get("group_size") or -1)
    # act order with one group per channel is a no-op (gptq_utils.py normalize_and_validate_gptq_desc_act)
    act_order = bool(qc.get("desc_act", False)) and group != -1
    return Quantization(
        "gptq", bits, "group", group_size=max(group, 0), scale_bytes=2,
        zero_point=True, g_idx=act_order, ignore=_ignore_list(qc, "modules_to_not_convert"),
    )


def _compressed_tensors(qc: dict, source: str) -> Quantization:
    groups = qc.get("config_groups") or {}
    chosen = next((g for g in groups.values() if "Linear" in (g.get("targets") or [])), None)
    chosen = chosen or next(iter(groups.values()), None)
    weights = (chosen or {}).get("weights")
    if not isinstance(weights, dict) or not weights.get("num_bits"):
        raise ConfigError(f"{source}: compressed-tensors quantization_config has no weight scheme in config_groups")
    bits = int(weights["num_bits"])
    is_float = weights.get("type") == "float"
    strategy = str(weights.get("strategy") or "tensor")
    group = int(weights.get("group_size") or (weights.get("block_structure") or [0])[0] or 0)
    ignore = _ignore_list(qc, "ignore")
    kv_fp8 = isinstance(qc.get("kv_cache_scheme"), dict) and qc["kv_cache_scheme"].get("type") == "float"
    if strategy not in ("tensor", "channel", "group", "block", "tensor_group"):
        raise ConfigError(f"{source}: unsupported compressed-tensors weight strategy {strategy!r}")
    if strategy == "tensor_group":  # NVFP4: FP8 scale per 16 weights
        return Quantization("compressed-tensors", bits, "group", group_size=group or 16, scale_bytes=1,
                            ignore=ignore, kv_fp8=kv_fp8)
    scale_bytes = 4 if is_float else 2
    return Quantization(
        "compressed-tensors", bits, strategy, group_size=group, scale_bytes=scale_bytes,
        zero_point=not is_float and not weights.get("symmetric", True), ignore=ignore, kv_fp8=kv_fp8,
    )


_QUANT_PARSERS = {
    "fp8": _fp8,
    "fbgemm_fp8": _fbgemm_fp8,
    "compressed-tensors": _compressed_tensors,
    "compressed_tensors": _compressed_tensors,
    "awq": _awq,
    "gptq": _gptq,
    "modelopt": _modelopt,
    "mxfp4": _mxfp4,
}


# --------------------------------------------------------------------------- model catalog


@dataclass(frozen=True)
class ModelEntry:
    slug: str
    hf_repo: str
    revision: str
    revision_pinned: bool
    gated: bool
    context_length: int
    published_params_b: float
    config: dict = field(repr=False, hash=False, compare=False)
    source: dict = field(repr=False, hash=False, compare=False)

    def architecture(self) -> Architecture:
        return parse_config(self.config, f"catalog model {self.slug}")


@lru_cache(maxsize=1)
def _model_entries() -> tuple[ModelEntry, ...]:
    data = yamlio.load_file(CATALOG_DIR / "models.yaml")
    entries = []
    for raw in data["models"]:
        cfg = copy.deepcopy(raw["config"])
        _expand_module_lists(cfg)
        entries.append(
            ModelEntry(
                slug=raw["slug"], hf_repo=raw["hf_repo"], revision=str(raw["revision"]),
                revision_pinned=bool(raw["revision_pinned"]), gated=bool(raw["gated"]),
                context_length=int(raw["context_length"]), published_params_b=float(raw["published_params_b"]),
                config=cfg, source=dict(raw["source"]),
            )
        )
    return tuple(entries)


def _expand_module_lists(cfg: dict) -> None:
    """Replace catalog `{expand: [...]}` module lists with the literal names."""
    qc = cfg.get("quantization_config") or {}
    for key, value in list(qc.items()):
        if isinstance(value, dict) and set(value) == {"expand"}:
            qc[key] = [name for pattern in value["expand"] for name in expand_braces(pattern)]


def expand_braces(pattern: str) -> list[str]:
    """Shell-style brace expansion: `a.{0..2}.{x,y}` -> a.0.x, a.0.y, a.1.x, ..."""
    parts = re.split(r"(\{[^{}]*\})", pattern)
    choices = []
    for part in parts:
        if part.startswith("{") and part.endswith("}"):
            inner = part[1:-1]
            span = re.fullmatch(r"(\d+)\.\.(\d+)", inner)
            choices.append([str(i) for i in range(int(span[1]), int(span[2]) + 1)] if span else inner.split(","))
        else:
            choices.append([part])
    return ["".join(combo) for combo in itertools.product(*choices)]


def models() -> list[ModelEntry]:
    return list(_model_entries())


def get_model(slug: str) -> ModelEntry:
    key = slug.strip().lower()
    for entry in _model_entries():
        if entry.slug == key or entry.hf_repo.lower() == key:
            return entry
    raise UnknownModel(f"unknown model {slug!r}; run `compose models` to list the catalog")


def config_for(slug: str) -> dict:
    """A catalog model as a config.json dict (a deep copy, safe to modify)."""
    return copy.deepcopy(get_model(slug).config)


# --------------------------------------------------------------------------- model resolution


def resolve_model(ref: str) -> ResolvedModel:
    """A catalog slug or hf repo id, a config.json file, or a directory holding one."""
    check_model_ref(ref)
    path = Path(ref).expanduser()
    try:
        exists = path.exists()
    except OSError as err:
        raise ConfigError(f"{_short(ref)}: {err.strerror}; give a catalog slug or a shorter path to a config.json") from None
    if exists:
        return _resolve_path(path)
    try:
        entry = get_model(ref)
    except UnknownModel:
        if ref.endswith(".json") or ref.startswith((".", "/", "~")) or ref.count("/") > 1:
            raise ConfigError(f"{ref}: no such file; give a config.json, a directory holding one, or a catalog slug") from None
        raise
    return ResolvedModel(
        slug=entry.slug, hf_repo=entry.hf_repo, revision=entry.revision, revision_pinned=entry.revision_pinned,
        gated=entry.gated, served_model_name=entry.hf_repo, arch=entry.architecture(), origin="catalog",
    )


MAX_MODEL_REF = 1024


def check_model_ref(ref: Any) -> str:
    """A model argument: a non-empty line of text, at most MAX_MODEL_REF characters."""
    if not isinstance(ref, str) or not ref.strip():
        raise InvalidInput("give a model: a catalog slug (see `compose models`) or a config.json path")
    if len(ref) > MAX_MODEL_REF:
        raise InvalidInput(
            f"the model argument is {len(ref)} characters long; give a catalog slug (see `compose models`) "
            f"or a path to a config.json of at most {MAX_MODEL_REF} characters"
        )
    if any(ord(c) < 32 or ord(c) == 127 for c in ref):
        raise InvalidInput(f"invalid model {_short(ref)}: it contains control characters; give a slug or a path")
    return ref


def load_config_file(path: Path) -> dict:
    """Read a config.json; malformed JSON is a one-line ConfigError."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise ConfigError(f"{path}: malformed JSON ({err.msg} at line {err.lineno} column {err.colno}); fix the file") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: not UTF-8 text; give the checkpoint's config.json") from None
    except (ValueError, RecursionError) as err:  # a number with thousands of digits, absurd nesting
        raise ConfigError(f"{path}: not a config.json ({' '.join(str(err).split())[:120]}); fix the file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read ({err.strerror or err.__class__.__name__}); check the path and its permissions") from None


def _resolve_path(path: Path) -> ResolvedModel:
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise ConfigError(f"{path}: no config.json in this directory" if path.is_dir() else
                          f"{path}: not a regular file (a device, a FIFO or a socket); give a config.json or its directory")
    cfg = load_config_file(file)
    arch = parse_config(cfg, str(file))
    # Only a real Hub id names the repository; a local path ("../..", "/ckpt/run-7") never does.
    hub_id = _repo_like(cfg.get("_name_or_path"))
    slug = dns_slug(hub_id.split("/")[-1] if hub_id else file.resolve().parent.name)
    return ResolvedModel(
        slug=slug, hf_repo=hub_id, revision=None, revision_pinned=False,
        gated=False, served_model_name=hub_id or slug, arch=arch, origin=str(file),
    )


def with_identity(model: ResolvedModel, hf_repo: str | None = None, revision: str | None = None) -> ResolvedModel:
    """The model downloaded from `hf_repo` at `revision` (given by the user) instead."""
    changes: dict[str, Any] = {}
    if hf_repo is not None:
        check_hub_id(hf_repo)
        changes.update(hf_repo=hf_repo, served_model_name=hf_repo, gated=model.gated and hf_repo == model.hf_repo)
        if hf_repo != model.hf_repo and revision is None:
            changes.update(revision=None, revision_pinned=False)
    if revision is not None:
        check_revision(revision)
        changes.update(revision=revision, revision_pinned=is_commit(revision))
    return dataclasses.replace(model, **changes) if changes else model


# Hugging Face repository ids: `org/name`, each part alphanumerics, '-', '_', '.',
# not starting or ending with '-' or '.', no '--' or '..', at most 96 characters.
_HUB_PART = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9._-]*[A-Za-z0-9])?")
_COMMIT = re.compile(r"[0-9a-f]{40}")
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]*")


def is_hub_id(value: Any) -> bool:
    if not isinstance(value, str) or len(value) > 193 or value.count("/") != 1:
        return False
    return all(
        0 < len(part) <= 96 and _HUB_PART.fullmatch(part) is not None and "--" not in part and ".." not in part
        for part in value.split("/")
    )


def check_hub_id(value: Any, flag: str = "--hf-repo") -> str:
    if not is_hub_id(value):
        raise InvalidInput(
            f"invalid {flag} {_short(value)}: a Hugging Face repository id ORG/NAME (letters, digits, "
            "'-', '_', '.'), e.g. meta-llama/Llama-3.1-8B-Instruct"
        )
    return value


def is_commit(value: Any) -> bool:
    return isinstance(value, str) and _COMMIT.fullmatch(value) is not None


def check_revision(value: Any, flag: str = "--revision") -> str:
    ok = (
        isinstance(value, str) and 0 < len(value) <= 255 and _REVISION.fullmatch(value) is not None
        and ".." not in value and "//" not in value and not value.endswith(("/", ".", ".lock"))
    )
    if not ok:
        raise InvalidInput(
            f"invalid {flag} {_short(value)}: a commit SHA (40 hex characters: pinned) or a branch or tag name"
        )
    return value


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _repo_like(value: Any) -> str | None:
    """`org/name` from `_name_or_path`, ignoring local paths."""
    return value if is_hub_id(value) else None


def dns_slug(name: str) -> str:
    """Lower-case DNS-1123-like slug (dots allowed, as in catalog slugs)."""
    slug = re.sub(r"[^a-z0-9.-]+", "-", name.lower()).strip("-.")
    return slug[:63].strip("-.") or "model"


# --------------------------------------------------------------------------- GPUs


@dataclass(frozen=True)
class NodeShape:
    name: str
    gpus: int


def vm_vcpus(vm_size: str) -> int:
    """vCPUs of an Azure VM size, from its name ("[Family][# of vCPUs][features]",
    https://learn.microsoft.com/azure/virtual-machines/vm-naming-conventions):
    Standard_NC24ads_A100_v4 -> 24. 0 for names that do not follow it."""
    m = re.match(r"^Standard_[A-Za-z]+?(\d+)", vm_size)
    return int(m.group(1)) if m else 0


# The extended resource each vendor's device plugin advertises (NVIDIA/k8s-device-plugin,
# ROCm/k8s-device-plugin). compose generates NVIDIA deployments only: the GPU catalog
# holds no other vendor, and `compose check` (rule gpu-vendor) holds a pod's GPU
# resource, image and node affinity to its GPU's vendor.
VENDOR_RESOURCES = {"nvidia": "nvidia.com/gpu", "amd": "amd.com/gpu"}
SUPPORTED_VENDORS = ("nvidia",)
# The well-known node label of the CPU architecture (set by the kubelet).
ARCH_LABEL = "kubernetes.io/arch"
# GPUs taken out of the catalog, with the one-line reason `--gpu` answers.
REMOVED_GPUS = {
    "mi300x": "compose generates NVIDIA deployments only: every documented ROCm setup for vLLM on Kubernetes "
              "needs seccompProfile Unconfined and hostIPC, which Pod Security \"restricted\" forbids "
              "(docs/gpus.md); deploy it by hand in a namespace that allows them",
}


@dataclass(frozen=True)
class GPU:
    name: str
    memory_gib: float
    bandwidth_gbps: float
    gpus_per_node: int
    device_name: str = ""
    vendor: str = "nvidia"
    aliases: tuple[str, ...] = ()
    tflops: dict = field(default_factory=dict, hash=False, compare=False)
    compute_capability: str | None = None
    bf16: bool = True
    sm_count: int | None = None  # streaming multiprocessors (optional; see gpus.yaml)
    node_arch: str = "amd64"  # kubernetes.io/arch of the cloud nodes carrying it (see gpus.yaml)
    gke_accelerator: str | None = None
    karpenter_gpu_name: str | None = None
    karpenter_gpu_memory_mib: int | None = None
    shapes: dict = field(default_factory=dict, hash=False, compare=False)  # cloud -> tuple[NodeShape]
    source: dict = field(default_factory=dict, hash=False, compare=False)
    custom: bool = False

    def clouds(self) -> dict[str, list[str]]:
        """Node shapes each managed cloud sells; an empty list = not offered there."""
        return {cloud: [s.name for s in self.shapes.get(cloud, ())] for cloud in MANAGED_CLOUDS}

    def offered_on(self, cloud: str) -> bool:
        if cloud in SELF_MANAGED_CLOUDS:
            return True
        return bool(self.shapes.get(cloud))

    def max_gpus_per_node(self, cloud: str) -> int:
        if cloud in SELF_MANAGED_CLOUDS:
            return self.gpus_per_node
        return max((s.gpus for s in self.shapes.get(cloud, ())), default=0)

    def node_label_value(self, cloud: str, gpus: int, cpus: int = 0) -> str | None:
        """Value of the cloud's GPU node label for a pod needing `gpus` of this GPU
        (and `cpus` CPUs).

        GKE: the gke-accelerator value; EKS: Karpenter's instance-gpu-name; AKS:
        the smallest VM size with at least `gpus` GPUs and more vCPUs than `cpus`
        (a size's allocatable CPU is below its vCPU count: Standard_NC4as_T4_v3 can
        never hold a pod that requests 4 CPUs). None on self-managed clusters.
        InvalidInput when the cloud has no node that large.
        """
        if cloud in SELF_MANAGED_CLOUDS:
            return None
        shapes = sorted(self.shapes.get(cloud, ()), key=lambda s: (s.gpus, vm_vcpus(s.name)))
        big_enough = [s for s in shapes if s.gpus >= gpus]
        if cloud == "aks" and cpus:
            big_enough = [s for s in big_enough if vm_vcpus(s.name) > cpus] or big_enough
        if not big_enough:
            largest = shapes[-1].gpus if shapes else 0
            raise InvalidInput(
                f"{cloud} has no node with {gpus} {self.name} GPUs (largest: {largest}); "
                f"use --tensor-parallel-size <= {largest} or another --gpu"
            )
        if cloud == "gke":
            return self.gke_accelerator
        if cloud == "eks":
            return self.karpenter_gpu_name
        return big_enough[0].name

    def node_selector(self, cloud: str, gpus: int, cpus: int = 0) -> dict[str, str]:
        """The cloud's node labels that pin this GPU for a pod needing `gpus` of it:
        node_label_value() under the cloud's GPU label, on EKS the GPU memory too
        where two catalog GPUs share Karpenter's instance-gpu-name (A100 40/80 GB),
        and kubernetes.io/arch where the GPU's nodes are not amd64 (GB200: Grace,
        arm64). Empty on self-managed clusters."""
        labels = {"gke": "cloud.google.com/gke-accelerator", "eks": "karpenter.k8s.aws/instance-gpu-name",
                  "aks": "node.kubernetes.io/instance-type"}
        value = self.node_label_value(cloud, gpus, cpus)
        if value is None or cloud not in labels:
            return {}
        out = {labels[cloud]: value}
        if cloud == "eks" and self.karpenter_gpu_memory_mib:
            out["karpenter.k8s.aws/instance-gpu-memory"] = str(self.karpenter_gpu_memory_mib)
        if self.node_arch != "amd64":
            out[ARCH_LABEL] = self.node_arch
        return out

    @property
    def resource(self) -> str:
        """The extended resource a pod requests for this GPU (nvidia.com/gpu)."""
        return VENDOR_RESOURCES[self.vendor]

    def dense_tflops(self, precision: str) -> float | None:
        value = self.tflops.get(precision)
        return float(value) if value else None

    @property
    def is_a100(self) -> bool:
        return "a100" in self.device_name.lower() or "a100" in self.name


@lru_cache(maxsize=1)
def _gpu_entries() -> tuple[GPU, ...]:
    data = yamlio.load_file(CATALOG_DIR / "gpus.yaml")
    return tuple(_gpu_from_yaml(raw) for raw in data["gpus"])


def _gpu_from_yaml(raw: dict) -> GPU:
    clouds = raw["clouds"]
    lists = {"gke": "machine_types", "eks": "instance_types", "aks": "vm_sizes"}
    shapes = {
        cloud: tuple(NodeShape(str(s["name"]), int(s["gpus"])) for s in clouds[cloud][key])
        for cloud, key in lists.items()
    }
    if raw["vendor"] not in SUPPORTED_VENDORS:
        raise InvalidInput(f"gpus.yaml: {raw['name']} is a {raw['vendor']} GPU; compose generates "
                           f"{', '.join(SUPPORTED_VENDORS)} deployments only (see the catalog's header)")
    return GPU(
        name=raw["name"], aliases=tuple(raw.get("aliases") or ()), vendor=raw["vendor"],
        device_name=raw["device_name"], memory_gib=float(raw["memory_gib"]),
        bandwidth_gbps=float(raw["bandwidth_gbps"]), tflops=dict(raw["tflops"]),
        compute_capability=raw.get("compute_capability"), bf16=bool(raw["bf16"]),
        sm_count=int(raw["sm_count"]) if raw.get("sm_count") else None,
        node_arch=str(raw.get("node_arch") or "amd64"),
        gpus_per_node=int(raw["gpus_per_node"]), gke_accelerator=clouds["gke"].get("accelerator"),
        karpenter_gpu_name=clouds["eks"].get("karpenter_gpu_name"),
        karpenter_gpu_memory_mib=clouds["eks"].get("karpenter_gpu_memory_mib"), shapes=shapes, source=dict(raw["source"]),
    )


def gpus() -> list[GPU]:
    return list(_gpu_entries())


def get_gpu(name: str) -> GPU:
    key = name.strip().lower()
    for gpu in _gpu_entries():
        if key == gpu.name or key in gpu.aliases:
            return gpu
    if key in REMOVED_GPUS:
        raise UnknownGPU(f"--gpu {key} is not supported: {REMOVED_GPUS[key]}")
    raise UnknownGPU(f"unknown GPU {name!r}; run `compose gpus` to list the catalog")


def gpus_for_cloud(cloud: str) -> list[GPU]:
    """GPUs a cloud sells; a self-managed cluster (k3s) can hold any of them."""
    if cloud not in MANAGED_CLOUDS + SELF_MANAGED_CLOUDS:
        raise InvalidInput(f"unknown cloud {cloud!r}; choose one of: {', '.join(MANAGED_CLOUDS + SELF_MANAGED_CLOUDS)}")
    return [g for g in _gpu_entries() if g.offered_on(cloud)]


def custom_gpu(memory_gib: float, gpus_per_node: int = 8) -> GPU:
    """A GPU known only by its memory: bandwidth is the slowest in the catalog
    (a conservative decode estimate) and its compute is unknown."""
    slowest = min(g.bandwidth_gbps for g in _gpu_entries())
    return GPU(
        name="custom", memory_gib=float(memory_gib), bandwidth_gbps=slowest, gpus_per_node=gpus_per_node,
        device_name="custom", custom=True,
        source={"bandwidth_gbps": "assumed: the slowest bandwidth in compose/plan/catalog/gpus.yaml"},
    )
