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
_ROPE_NO_EXTEND = ("su", "longrope", "llama3", "default", "mrope")
_QK_NORM_TYPES = ("qwen3", "qwen3_moe", "gemma3_text")
_FOUR_NORM_TYPES = ("gemma2", "gemma3_text")
_QKV_BIAS_TYPES = ("qwen2", "qwen2_moe")
_ATTENTION_LAYER_TYPES = ("full_attention", "sliding_attention")
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


@dataclass(frozen=True)
class Quantization:
    """How a checkpoint stores its linear layers (from `quantization_config`)."""

    method: str
    bits: int
    scale: str  # "tensor" | "channel" | "group" | "block"
    group_size: int = 0  # inputs per scale ("group"), or the block edge ("block")
    scale_bytes: int = 4
    zero_point: bool = False  # a packed zero point per group (AWQ, GPTQ, asymmetric int)
    g_idx: bool = False  # GPTQ's int32 act-order index per input channel
    ignore: tuple[str, ...] = ()

    def skips(self, module: str) -> bool:
        """Whether `module` is left unquantized.

        Plain names match exactly or as a substring (vLLM's is_layer_skipped for
        AWQ/fbgemm); `re:` entries are regular expressions (compressed-tensors).
        """
        for pattern in self.ignore:
            if pattern.startswith("re:"):
                if re.match(pattern[3:], module):
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
        groups = math.ceil(in_features / self.group_size) if self.group_size > 0 else 1
        extra = groups * out_features * self.scale_bytes
        if self.zero_point:
            extra += groups * out_features * self.bits / 8
        if self.g_idx:
            extra += in_features * 4
        return weights + extra

    def describe(self) -> str:
        detail = f"{self.scale} scales" if self.scale != "group" else f"group {self.group_size}"
        return f"{self.method} {self.bits}-bit weights, {detail}"


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
    qkv_bias: bool = False
    mlp_bias: bool = False
    qk_norm: bool = False
    norms_per_layer: int = 2
    gated_mlp: bool = True  # gate + up + down (SwiGLU/GeGLU); False: up + down
    num_experts: int = 0
    experts_per_token: int = 0
    moe_intermediate_size: int = 0
    shared_expert_intermediate_size: int = 0
    moe_layers: frozenset[int] = frozenset()
    sliding_window: int | None = None
    sliding_layers: int = 0
    quantization: Quantization | None = None

    @property
    def is_moe(self) -> bool:
        return bool(self.moe_layers)

    @property
    def full_attention_layers(self) -> int:
        return self.num_layers - self.sliding_layers


@dataclass(frozen=True)
class ResolvedModel:
    """A model the planner can size: identity for the manifests plus its architecture."""

    slug: str
    hf_repo: str
    revision: str | None
    revision_pinned: bool
    gated: bool
    served_model_name: str
    arch: Architecture
    origin: str  # "catalog" or the config.json path


def parse_config(cfg: Any, source: str = "config.json") -> Architecture:
    """Turn a config.json mapping into an Architecture, or raise one-line ConfigError.

    The fields read here are first checked against their declared types and ranges
    (`compose.plan.configschema`), so the code below may trust them.
    """
    configschema.check(cfg, source)
    _reject_unsupported(cfg, source)
    cfg = _with_standard_names(cfg)
    model_type = str(cfg.get("model_type") or "")
    hidden = _positive_int(cfg, "hidden_size", source)
    layers = _positive_int(cfg, "num_hidden_layers", source)
    heads = _positive_int(cfg, "num_attention_heads", source)
    kv_heads = _positive_int(cfg, "num_key_value_heads", source, default=heads)
    if heads % kv_heads:
        raise ConfigError(f"{source}: num_attention_heads ({heads}) is not a multiple of num_key_value_heads ({kv_heads})")
    head_dim = _head_dim(cfg, hidden, heads, source)
    moe = _moe_fields(cfg, layers, source)
    all_moe = len(moe.get("moe_layers", ())) == layers
    gated = model_type not in _UNGATED_MLP_TYPES
    default_inter = 0 if all_moe else (None if gated else 4 * hidden)  # GPT-2's n_inner: null = 4 x hidden
    intermediate = _positive_int(cfg, "intermediate_size", source, default=default_inter)
    context, max_pos = _context_length(cfg, source)
    sliding_window, sliding_layers = _sliding(cfg, model_type, layers, context, source)
    return Architecture(
        model_type=model_type,
        hidden_size=hidden,
        num_layers=layers,
        num_heads=heads,
        num_kv_heads=kv_heads,
        head_dim=head_dim,
        intermediate_size=intermediate,
        vocab_size=_positive_int(cfg, "vocab_size", source),
        tie_word_embeddings=bool(cfg.get("tie_word_embeddings", False)),
        context_length=context,
        max_position_embeddings=max_pos,
        rotary_dim=int(head_dim * float(cfg.get("partial_rotary_factor") or 1.0)),
        dtype=_dtype(cfg, source),
        qkv_bias=bool(cfg["attention_bias"]) if "attention_bias" in cfg else model_type in _QKV_BIAS_TYPES,
        mlp_bias=bool(cfg.get("mlp_bias", False)),
        qk_norm=model_type in _QK_NORM_TYPES,
        norms_per_layer=4 if model_type in _FOUR_NORM_TYPES else 2,
        gated_mlp=gated,
        sliding_window=sliding_window,
        sliding_layers=sliding_layers,
        quantization=parse_quantization(cfg.get("quantization_config"), source),
        **moe,
    )


def _reject_unsupported(cfg: dict, source: str) -> None:
    if cfg.get("is_encoder_decoder"):
        raise ConfigError(f"{source}: encoder-decoder models are not supported; give a decoder-only model")
    for key in ("text_config", "vision_config", "audio_config"):
        if key in cfg:
            raise ConfigError(
                f"{source}: multimodal configs ({key}) are not supported; give a text-only decoder config"
            )
    if cfg.get("kv_lora_rank"):
        raise ConfigError(
            f"{source}: multi-head latent attention (model_type {cfg.get('model_type')!r}) is not supported yet"
        )
    types = cfg.get("layer_types")
    if types is not None:
        odd = sorted({str(t) for t in types} - set(_ATTENTION_LAYER_TYPES)) if isinstance(types, list) else [str(types)]
        if odd:
            raise ConfigError(f"{source}: layer_types {odd} are not supported (only full and sliding attention)")


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


def _head_dim(cfg: dict, hidden: int, heads: int, source: str) -> int:
    """The config's head_dim when present (Qwen3, Gemma 2), else hidden / heads."""
    if cfg.get("head_dim") is not None:
        return _positive_int(cfg, "head_dim", source)
    if hidden % heads:
        raise ConfigError(f"{source}: hidden_size ({hidden}) is not a multiple of num_attention_heads ({heads}) and no head_dim is given")
    return hidden // heads


def _moe_fields(cfg: dict, layers: int, source: str) -> dict:
    experts = cfg.get("num_local_experts") or cfg.get("num_experts") or 0
    if not isinstance(experts, int) or experts <= 1:
        return {}
    per_token = _positive_int(cfg, "num_experts_per_tok", source)
    if per_token > experts:
        raise ConfigError(f"{source}: num_experts_per_tok ({per_token}) exceeds the {experts} experts; correct it")
    moe_inter = cfg.get("moe_intermediate_size") or cfg.get("intermediate_size")
    if not isinstance(moe_inter, int) or moe_inter <= 0:
        raise ConfigError(f"{source}: missing 'moe_intermediate_size' for a mixture-of-experts model")
    step = cfg.get("decoder_sparse_step") or 1
    dense_first = cfg.get("first_k_dense_replace") or 0
    mlp_only = set(cfg.get("mlp_only_layers") or [])
    moe_layers = frozenset(
        i for i in range(layers) if i not in mlp_only and i >= dense_first and (i + 1) % step == 0
    )
    return {
        "num_experts": experts,
        "experts_per_token": per_token,
        "moe_intermediate_size": moe_inter,
        "shared_expert_intermediate_size": int(cfg.get("shared_expert_intermediate_size") or 0),
        "moe_layers": moe_layers,
    }


def _context_length(cfg: dict, source: str) -> tuple[int, int]:
    """(context length vLLM derives, max_position_embeddings) per _get_and_verify_max_len."""
    present = [cfg[k] for k in _CONTEXT_KEYS if isinstance(cfg.get(k), int) and cfg[k] > 0]
    if not present:
        raise ConfigError(f"{source}: missing 'max_position_embeddings' (the model's context length)")
    derived = min(present)
    max_pos = int(cfg.get("max_position_embeddings") or derived)
    rope = cfg.get("rope_scaling") or {}
    rope_type = rope.get("rope_type") or rope.get("type") if isinstance(rope, dict) else None
    if isinstance(rope, dict) and "factor" in rope and rope_type not in _ROPE_NO_EXTEND:
        if rope_type == "yarn" and rope.get("original_max_position_embeddings"):
            derived = int(rope["original_max_position_embeddings"])
        derived = int(derived * float(rope["factor"]))
    if derived > configschema.MAX_CONTEXT:
        raise ConfigError(
            f"{source}: the context length derived from rope_scaling ({derived} tokens) exceeds "
            f"{configschema.MAX_CONTEXT}; correct rope_scaling.factor or max_position_embeddings"
        )
    return derived, max_pos


def _sliding(cfg: dict, model_type: str, layers: int, context: int, source: str) -> tuple[int | None, int]:
    """(window, number of sliding-window layers) as vLLM builds its KV specs."""
    window = cfg.get("sliding_window")
    if not isinstance(window, int) or window <= 0 or window >= context:
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


# --------------------------------------------------------------------------- quantization


SUPPORTED_QUANT = ("fp8", "fbgemm_fp8", "compressed-tensors", "awq", "gptq", "modelopt (FP8)")


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
    block = qc.get("weight_block_size")
    ignore = _ignore_list(qc, "ignored_layers", "modules_to_not_convert")
    if block:
        return Quantization("fp8", 8, "block", group_size=int(block[0]), ignore=ignore)
    return Quantization("fp8", 8, "tensor", ignore=ignore)


def _fbgemm_fp8(qc: dict, source: str) -> Quantization:
    return Quantization("fbgemm_fp8", 8, "channel", ignore=_ignore_list(qc, "modules_to_not_convert"))


def _modelopt(qc: dict, source: str) -> Quantization:
    algo = str(qc.get("quant_algo") or (qc.get("quantization") or {}).get("quant_algo") or "").upper()
    if algo != "FP8":
        raise ConfigError(f"{source}: unsupported modelopt quant_algo {algo!r}; only FP8 is supported")
    return Quantization("modelopt", 8, "tensor", ignore=_ignore_list(qc, "exclude_modules", "ignore"))


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
    return Quantization(
        "gptq", bits, "group", group_size=max(group, 0), scale_bytes=2,
        zero_point=True, g_idx=True, ignore=_ignore_list(qc, "modules_to_not_convert"),
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
    if strategy not in ("tensor", "channel", "group", "block", "tensor_group"):
        raise ConfigError(f"{source}: unsupported compressed-tensors weight strategy {strategy!r}")
    if strategy == "tensor_group":  # NVFP4: FP8 scale per 16 weights
        return Quantization("compressed-tensors", bits, "group", group_size=group or 16, scale_bytes=1,
                            ignore=_ignore_list(qc, "ignore"))
    scale_bytes = 4 if is_float else 2
    return Quantization(
        "compressed-tensors", bits, strategy, group_size=group, scale_bytes=scale_bytes,
        zero_point=not is_float and not weights.get("symmetric", True), ignore=_ignore_list(qc, "ignore"),
    )


_QUANT_PARSERS = {
    "fp8": _fp8,
    "fbgemm_fp8": _fbgemm_fp8,
    "compressed-tensors": _compressed_tensors,
    "compressed_tensors": _compressed_tensors,
    "awq": _awq,
    "gptq": _gptq,
    "modelopt": _modelopt,
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
    path = Path(ref).expanduser()
    if path.exists():
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
        raise ConfigError(f"{path}: no config.json in this directory")
    cfg = load_config_file(file)
    arch = parse_config(cfg, str(file))
    name = _repo_like(cfg.get("_name_or_path")) or file.resolve().parent.name or "model"
    return ResolvedModel(
        slug=dns_slug(name.split("/")[-1]), hf_repo=name, revision=None, revision_pinned=False,
        gated=False, served_model_name=name, arch=arch, origin=str(file),
    )


def _repo_like(value: Any) -> str | None:
    """`org/name` from `_name_or_path`, ignoring local paths."""
    if isinstance(value, str) and re.fullmatch(r"[\w.-]+/[\w.-]+", value):
        return value
    return None


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
        node_label_value() under the cloud's GPU label, and on EKS the GPU memory
        too where two catalog GPUs share Karpenter's instance-gpu-name (A100 40/80 GB).
        Empty on self-managed clusters."""
        labels = {"gke": "cloud.google.com/gke-accelerator", "eks": "karpenter.k8s.aws/instance-gpu-name",
                  "aks": "node.kubernetes.io/instance-type"}
        value = self.node_label_value(cloud, gpus, cpus)
        if value is None or cloud not in labels:
            return {}
        out = {labels[cloud]: value}
        if cloud == "eks" and self.karpenter_gpu_memory_mib:
            out["karpenter.k8s.aws/instance-gpu-memory"] = str(self.karpenter_gpu_memory_mib)
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
