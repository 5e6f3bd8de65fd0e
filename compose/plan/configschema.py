"""The declared schema of the `config.json` fields the planner reads.

A Hugging Face config.json belongs to the model, so keys the planner does not
read are allowed and ignored. A key the planner *does* read must have the right
type and a sane value: a positive integer below an upper bound, a finite float,
a real JSON boolean (`"false"` is a string, not false), a known dtype, a
quantization scheme with a bit width vLLM has kernels for. `check(cfg, source)`
raises one `ConfigError` line that names the file, every wrong field and the fix,
before `catalog.parse_config` derives anything from the mapping.

The bounds are generous (they let every real checkpoint through, by orders of
magnitude) and exist so that an absurd value is an error instead of hours of
arithmetic or a manifest nobody can run. To read a new field (a new
architecture), add it to `ModelConfig` (or `QuantizationConfig`) with its type
and range; `catalog.parse_config` may then trust its type.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal, Optional

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from compose.core.errors import ConfigError
from compose.core.schema import describe, kind_of

# Upper bounds: far above any published checkpoint (Llama 3.1 405B: hidden 16384,
# 126 layers, 128 heads; the largest vocabularies are ~260k; Llama 4 Scout's
# context is 10M tokens).
MAX_HIDDEN = 1 << 17
MAX_LAYERS = 2048
MAX_HEADS = 4096
MAX_INTERMEDIATE = 1 << 20
MAX_VOCAB = 1 << 23
MAX_CONTEXT = 1 << 26
MAX_EXPERTS = 4096
MAX_ROPE_FACTOR = 1024.0
MAX_BLOCK = 1 << 16
QUANT_BITS = (2, 3, 4, 8)
# torch dtypes vLLM serves (catalog.DTYPES maps them to what it loads).
DTYPE_NAMES = ("bfloat16", "float16", "float32", "half")


def _int(lo: int, hi: int):
    return Annotated[Optional[int], Field(default=None, ge=lo, le=hi)]


PositiveInt = _int(1, MAX_HIDDEN)
Bits = Optional[Literal[2, 3, 4, 8]]
ModuleList = Optional[list[Annotated[str, Field(max_length=4096)]]]


class _Open(BaseModel):
    """Strict types for the fields we name; every other key is the model's business."""

    model_config = ConfigDict(strict=True, extra="allow", populate_by_name=True)


class RopeScaling(_Open):
    factor: Optional[float] = Field(None, gt=0, le=MAX_ROPE_FACTOR, allow_inf_nan=False)
    rope_type: Optional[str] = Field(None, max_length=64)
    type: Optional[str] = Field(None, max_length=64)
    original_max_position_embeddings: _int(1, MAX_CONTEXT) = None


class CompressedWeights(_Open):
    num_bits: Bits = None
    type: Optional[str] = Field(None, max_length=32)
    strategy: Optional[str] = Field(None, max_length=32)
    group_size: _int(1, MAX_BLOCK) = None
    block_structure: Optional[list[Annotated[int, Field(ge=1, le=MAX_BLOCK)]]] = Field(None, min_length=1, max_length=2)
    symmetric: Optional[bool] = None


class ConfigGroup(_Open):
    targets: ModuleList = None
    weights: Optional[CompressedWeights] = None


class ModelOptNested(_Open):
    quant_algo: Optional[str] = Field(None, max_length=64)
    kv_cache_quant_algo: Optional[str] = Field(None, max_length=64)


class KvCacheScheme(_Open):
    type: Optional[str] = Field(None, max_length=32)
    num_bits: Bits = None


class QuantizationConfig(_Open):
    quant_method: str = Field(min_length=1, max_length=64)
    bits: Bits = None
    w_bit: Bits = None
    # -1 means one group per row (GPTQ); otherwise inputs per scale.
    group_size: Optional[Annotated[int, Field(ge=-1, le=MAX_BLOCK)]] = None
    q_group_size: Optional[Annotated[int, Field(ge=-1, le=MAX_BLOCK)]] = None
    weight_block_size: Optional[list[Annotated[int, Field(ge=1, le=MAX_BLOCK)]]] = Field(None, min_length=2, max_length=2)
    zero_point: Optional[bool] = None
    ignored_layers: ModuleList = None
    modules_to_not_convert: ModuleList = None
    ignore: ModuleList = None
    exclude_modules: ModuleList = None
    quant_algo: Optional[str] = Field(None, max_length=64)
    kv_cache_quant_algo: Optional[str] = Field(None, max_length=64)
    kv_cache_scheme: Optional[KvCacheScheme] = None
    desc_act: Optional[bool] = None
    quantization: Optional[ModelOptNested] = None
    config_groups: Optional[dict[str, ConfigGroup]] = None


class DecoderConfig(_Open):
    """Every decoder key `catalog.parse_config` reads, with its type and range: at the top
    level of a text model's config.json, or in `text_config` of a multimodal one (Gemma 3,
    Llama 4, Mistral 3). catalog's own helpers (`_bounded_int`, `_flag`, `_int_list`) then
    check only what a type cannot say: presence for the architecture, cross-field rules."""

    model_type: Optional[str] = Field(None, max_length=128)
    hidden_size: PositiveInt = None
    num_hidden_layers: _int(1, MAX_LAYERS) = None
    num_attention_heads: _int(1, MAX_HEADS) = None
    num_key_value_heads: _int(1, MAX_HEADS) = None
    head_dim: _int(1, MAX_HEADS) = None
    intermediate_size: _int(1, MAX_INTERMEDIATE) = None
    intermediate_size_mlp: _int(1, MAX_INTERMEDIATE) = None  # Llama 4's dense layers
    vocab_size: _int(1, MAX_VOCAB) = None
    tie_word_embeddings: Optional[bool] = None
    attention_bias: Optional[bool] = None
    mlp_bias: Optional[bool] = None
    is_encoder_decoder: Optional[bool] = None
    partial_rotary_factor: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
    torch_dtype: Optional[Literal[DTYPE_NAMES]] = None  # type: ignore[valid-type]
    dtype: Optional[Literal[DTYPE_NAMES]] = None  # type: ignore[valid-type]
    # Keys vLLM reads the context length from.
    max_position_embeddings: _int(1, MAX_CONTEXT) = None
    n_positions: _int(1, MAX_CONTEXT) = None
    max_seq_len: _int(1, MAX_CONTEXT) = None
    seq_length: _int(1, MAX_CONTEXT) = None
    model_max_length: _int(1, MAX_CONTEXT) = None
    max_sequence_length: _int(1, MAX_CONTEXT) = None
    max_seq_length: _int(1, MAX_CONTEXT) = None
    seq_len: _int(1, MAX_CONTEXT) = None
    rope_scaling: Optional[RopeScaling] = None
    rope_local_base_freq: Optional[float] = Field(None, gt=0, le=1e12, allow_inf_nan=False)  # Gemma 3
    # Older spellings (transformers' attribute_map).
    n_embd: PositiveInt = None
    d_model: PositiveInt = None
    n_layer: _int(1, MAX_LAYERS) = None
    n_layers: _int(1, MAX_LAYERS) = None
    num_layers: _int(1, MAX_LAYERS) = None
    n_head: _int(1, MAX_HEADS) = None
    n_heads: _int(1, MAX_HEADS) = None
    n_head_kv: _int(1, MAX_HEADS) = None
    num_kv_heads: _int(1, MAX_HEADS) = None
    n_inner: _int(1, MAX_INTERMEDIATE) = None
    ffn_dim: _int(1, MAX_INTERMEDIATE) = None
    rotary_pct: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)
    # Sliding-window and chunked attention.
    sliding_window: _int(0, MAX_CONTEXT) = None
    layer_types: Optional[list[Annotated[str, Field(max_length=64)]]] = Field(None, max_length=MAX_LAYERS)
    use_sliding_window: Optional[bool] = None
    max_window_layers: _int(0, MAX_LAYERS) = None
    sliding_window_pattern: _int(1, MAX_LAYERS) = None
    attention_chunk_size: _int(1, MAX_CONTEXT) = None  # Llama 4
    no_rope_layer_interval: _int(1, MAX_LAYERS) = None
    no_rope_layers: Optional[list[Annotated[int, Field(ge=0, le=1)]]] = Field(None, max_length=MAX_LAYERS)
    # Linear attention (Qwen3-Next's Gated DeltaNet).
    full_attention_interval: _int(1, MAX_LAYERS) = None
    linear_num_key_heads: _int(1, MAX_HEADS) = None
    linear_num_value_heads: _int(1, MAX_HEADS) = None
    linear_key_head_dim: _int(1, MAX_HIDDEN) = None
    linear_value_head_dim: _int(1, MAX_HIDDEN) = None
    linear_conv_kernel_dim: _int(1, 64) = None
    # Mixture of experts.
    num_local_experts: _int(0, MAX_EXPERTS) = None
    num_experts: _int(0, MAX_EXPERTS) = None
    n_routed_experts: _int(0, MAX_EXPERTS) = None  # DeepSeek
    num_experts_per_tok: _int(1, MAX_EXPERTS) = None
    moe_intermediate_size: _int(1, MAX_INTERMEDIATE) = None
    shared_expert_intermediate_size: _int(0, MAX_INTERMEDIATE) = None
    n_shared_experts: _int(0, MAX_EXPERTS) = None
    decoder_sparse_step: _int(1, MAX_LAYERS) = None
    moe_layer_freq: _int(1, MAX_LAYERS) = None
    first_k_dense_replace: _int(0, MAX_LAYERS) = None
    interleave_moe_layer_step: _int(1, MAX_LAYERS) = None  # Llama 4
    mlp_only_layers: Optional[list[Annotated[int, Field(ge=0, le=MAX_LAYERS)]]] = Field(None, max_length=MAX_LAYERS)
    topk_method: Optional[str] = Field(None, max_length=64)
    # Multi-head latent attention (DeepSeek V2/V3, Kimi K2).
    kv_lora_rank: _int(0, MAX_HIDDEN) = None
    q_lora_rank: _int(0, MAX_HIDDEN) = None
    qk_nope_head_dim: _int(1, MAX_HIDDEN) = None
    qk_rope_head_dim: _int(1, MAX_HIDDEN) = None
    v_head_dim: _int(1, MAX_HIDDEN) = None
    quantization_config: Optional[QuantizationConfig] = None


class VisionConfig(_Open):
    """`vision_config` of the multimodal families the planner models (SigLIP, Pixtral,
    Qwen2.5-VL's ViT, Llama 4's ViT)."""

    model_type: Optional[str] = Field(None, max_length=128)
    hidden_size: PositiveInt = None
    intermediate_size: _int(1, MAX_INTERMEDIATE) = None
    num_hidden_layers: _int(1, MAX_LAYERS) = None
    depth: _int(1, MAX_LAYERS) = None  # Qwen2.5-VL's layer count
    patch_size: _int(1, 1024) = None
    num_channels: _int(1, 16) = None
    in_chans: _int(1, 16) = None
    image_size: _int(1, 16384) = None
    temporal_patch_size: _int(1, 16) = None
    spatial_merge_size: _int(1, 16) = None
    out_hidden_size: PositiveInt = None
    projector_input_dim: PositiveInt = None
    projector_output_dim: PositiveInt = None
    vision_output_dim: PositiveInt = None
    pixel_shuffle_ratio: Optional[float] = Field(None, gt=0, le=1, allow_inf_nan=False)


class ModelConfig(DecoderConfig):
    """The whole config.json: the decoder's keys (above), and for a multimodal model its
    `text_config` (the same keys) and `vision_config`, plus the projector's keys."""

    name_or_path: Optional[str] = Field(None, alias="_name_or_path", max_length=4096)
    text_config: Optional[DecoderConfig] = None
    vision_config: Optional[VisionConfig] = None
    mm_tokens_per_image: _int(1, MAX_CONTEXT) = None  # Gemma 3
    spatial_merge_size: _int(1, 16) = None  # Mistral 3
    multimodal_projector_bias: Optional[bool] = None


def check(cfg: Any, source: str = "config.json") -> ModelConfig:
    """Validate the fields the planner reads; one ConfigError line naming all that are wrong."""
    if not isinstance(cfg, dict):
        raise ConfigError(f"{source}: expected a JSON object at the top level, got {kind_of(cfg)}; give a model's config.json")
    try:
        return ModelConfig.model_validate(cfg)
    except ValidationError as err:
        raise ConfigError(
            f"{source}: {describe(err)}; correct {'this field' if err.error_count() == 1 else 'these fields'} "
            "in the config.json (or give the checkpoint's own config.json)"
        ) from None


def check_quantization(qc: Any, source: str = "config.json") -> QuantizationConfig:
    """`quantization_config` alone, for callers that read it without the rest."""
    try:
        return QuantizationConfig.model_validate(qc)
    except ValidationError as err:
        raise ConfigError(f"{source}: quantization_config: {describe(err)}; correct it in the config.json") from None


__all__ = ["DecoderConfig", "ModelConfig", "QuantizationConfig", "VisionConfig", "check", "check_quantization"]
