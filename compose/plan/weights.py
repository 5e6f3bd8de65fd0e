"""Weights by tensor: what one GPU holds after vLLM loads a checkpoint.

`weight_tally(arch, tp, ...)` walks the model the way vLLM builds it and adds
the bytes of every tensor on one of `tp` GPUs, quantization scales included:

- column-parallel layers (q, k, v, gate, up) split their outputs and
  row-parallel ones (o, down) their inputs; K/V heads are replicated past TP
  (QKVParallelLinear); vocab-parallel embedding and LM head are padded to a
  multiple of 64 (layers/vocab_parallel_embedding.py pad_vocab_size);
- norms, routers (GateLinear, a ReplicatedLinear) and the RoPE cos/sin cache
  are replicated; so are MLA's q_a/kv_a projections (deepseek_v2.py
  DeepSeekV2FusedQkvAProjLinear, disable_tp=True);
- MoE experts are sharded along their intermediate size over TP, or, with
  --enable-expert-parallel, whole experts are dealt out over the TP ranks
  (fused_moe/config.py FusedMoEParallelConfig.make, expert_map_manager.py
  determine_expert_map: the first E % ep ranks hold one more);
- quantization follows the checkpoint's quantization_config and its ignore
  list; MXFP4 quantizes only the routed experts (mxfp4.py get_quant_method)
  and pads their shapes per MoE backend (fused_moe/oracle/mxfp4.py
  mxfp4_round_up_hidden_size_and_intermediate_size);
- vision towers are counted in 16 bits and TP-sharded (--mm-encoder-tp-mode
  weights, the default); the catalog's quantized multimodal checkpoints list
  their towers as unquantized, and Llama 4 builds its tower with
  quant_config=None (mllama4.py).

`runtime=False` gives the checkpoint as stored (TP 1, no padding, no RoPE
cache, no MLA decode copies): its parameter count is what model cards quote.
This module imports only the catalog's data classes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from compose.plan.catalog import DTYPE_BYTES, Architecture, Quantization

VOCAB_PADDING = 64  # VocabParallelEmbedding pads the vocabulary to a multiple of 64

# MXFP4 expert padding per MoE backend, (hidden, intermediate-per-partition) multiples:
# vllm/model_executor/layers/fused_moe/oracle/mxfp4.py (0.33.0). gpt-oss picks
# FlashInfer TRTLLM on SM100 (256, 128), OAI Triton on SM90 (hidden unpadded, 64)
# and Marlin on Ampere, Ada and SM120 (256, 128); ROCm AITER pads both to 256.
# On SM90 the triton_kernels weight swizzle (outside vLLM, not read) adds more:
# the logged loading figures match a hidden size padded to 256, fitted on
# gpt-oss-20b (13.47 GiB) and checked on gpt-oss-120b (64.38 GiB); see
# benchmarks/planner_accuracy.py.
# Module names as the checkpoints spell them (quantization ignore lists match on them).
_SHARED_EXPERTS_PLURAL = ("deepseek_v2", "deepseek_v3", "kimi_k2")

MXFP4_PADDING = {"trtllm": (256, 128), "triton": (256, 64), "marlin": (256, 128), "aiter": (256, 256)}


@dataclass(frozen=True)
class WeightTally:
    """Bytes and parameters one GPU holds (experts, embedding and tower counted apart)."""

    bytes: float
    params: float
    expert_bytes: float
    expert_params: float
    embedding_params: float
    vision_bytes: float = 0.0
    mla_copy_bytes: float = 0.0
    local_experts: int = 0


@dataclass
class _Tally:
    bytes: float = 0.0
    params: float = 0.0
    expert_bytes: float = 0.0
    expert_params: float = 0.0
    embedding_params: float = 0.0
    vision_bytes: float = 0.0
    mla_copy_bytes: float = 0.0
    local_experts: int = 0

    def add(self, nbytes: float, params: float, expert: bool = False) -> None:
        self.bytes += nbytes
        self.params += params
        if expert:
            self.expert_bytes += nbytes
            self.expert_params += params

    def freeze(self) -> WeightTally:
        return WeightTally(self.bytes, self.params, self.expert_bytes, self.expert_params, self.embedding_params,
                           self.vision_bytes, self.mla_copy_bytes, self.local_experts)


def padded_vocab(vocab_size: int) -> int:
    return math.ceil(vocab_size / VOCAB_PADDING) * VOCAB_PADDING


@dataclass(frozen=True)
class _Shard:
    """How one GPU's share is cut: TP size, expert parallelism, MXFP4 padding."""

    tp: int
    ep: bool
    runtime: bool
    mxfp4: tuple[int, int]


@lru_cache(maxsize=512)
def weight_tally(arch: Architecture, tp: int, runtime: bool = True, ep: bool = False,
                 mxfp4_backend: str = "triton") -> WeightTally:
    """Weights held by one of `tp` GPUs, sharded as vLLM shards them (module docstring).

    `ep`: experts dealt out whole over the TP ranks (--enable-expert-parallel);
    the figure is for the rank holding the most. `mxfp4_backend`: the MoE
    backend vLLM picks for MXFP4 experts on the GPU (MXFP4_PADDING).
    """
    s = _Shard(tp if runtime else 1, ep and runtime, runtime, MXFP4_PADDING[mxfp4_backend] if runtime else (1, 1))
    t = _Tally()
    h, d = arch.hidden_size, DTYPE_BYTES
    vocab = math.ceil((padded_vocab(arch.vocab_size) if runtime else arch.vocab_size) / s.tp)
    t.add(vocab * h * d, vocab * h)
    t.embedding_params = vocab * h
    if not arch.tie_word_embeddings:
        t.add(vocab * h * d, vocab * h)  # LM head: kept in 16 bits by every supported method
    kinds = arch.kinds
    for layer in range(arch.num_layers):
        if kinds[layer] == "linear":
            _gated_delta_net(t, arch, s, layer)
        elif kinds[layer] == "mla":
            _mla_attention(t, arch, s, layer)
        else:
            _attention(t, arch, s, layer)
        if layer in arch.moe_layers:
            _moe_mlp(t, arch, s, layer)
        else:
            _mlp(t, arch, s.tp, f"model.layers.{layer}.mlp", arch.intermediate_size)
    t.add(h * d, h)  # final norm
    if arch.vision is not None:
        _vision(t, arch, s)
    if runtime:
        for positions in arch.rope_cache_positions or (arch.max_position_embeddings,):
            t.add(positions * arch.rotary_dim * d, 0)  # RoPE cos/sin caches (see Architecture.rope_cache_positions)
    return t.freeze()


def param_count(arch: Architecture) -> int:
    """Parameters of the checkpoint (compare with the model card)."""
    return int(weight_tally(arch, 1, runtime=False).params)


def _linear(t: _Tally, arch: Architecture, name: str, fan_in: int, fan_out: int, expert: bool = False,
            count: int = 1) -> None:
    q = arch.quantization
    if q is not None and not (q.experts_only and not expert) and not _skipped(q, name):
        nbytes = q.linear_bytes(fan_in, fan_out)
    else:
        nbytes = fan_in * fan_out * DTYPE_BYTES
    t.add(nbytes * count, fan_in * fan_out * count, expert)


@lru_cache(maxsize=65536)
def _skipped(q: Quantization, name: str) -> bool:
    return q.skips(name)


def _attention(t: _Tally, arch: Architecture, s: _Shard, layer: int) -> None:
    """Q/K/V/O with GQA (Qwen3-Next: q_proj also emits the output gate)."""
    h, d, prefix = arch.hidden_size, DTYPE_BYTES, f"model.layers.{layer}.self_attn"
    q_out = arch.num_heads // s.tp * arch.head_dim
    kv_out = max(1, arch.num_kv_heads // s.tp) * arch.head_dim
    _linear(t, arch, f"{prefix}.q_proj", h, q_out * (2 if arch.attention_output_gate else 1))
    _linear(t, arch, f"{prefix}.k_proj", h, kv_out)
    _linear(t, arch, f"{prefix}.v_proj", h, kv_out)
    _linear(t, arch, f"{prefix}.o_proj", q_out, h)
    norms = arch.norms_per_layer * h + (2 * arch.head_dim if arch.qk_norm else 0)
    biases = ((q_out + 2 * kv_out) if arch.qkv_bias else 0) + (h if arch.o_bias else 0)
    sinks = arch.num_heads // s.tp if arch.attention_sinks else 0
    t.add((norms + biases + sinks) * d, norms + biases + sinks)


def _mla_attention(t: _Tally, arch: Architecture, s: _Shard, layer: int) -> None:
    """DeepSeek V2/V3 MLA (models/deepseek_v2.py DeepseekV2MLAAttention).

    q_a ‖ kv_a_with_mqa are replicated (disable_tp); q_b, kv_b and o are split by
    heads. At run time MLAAttention.process_weights_after_loading also keeps a
    dequantized copy of kv_b_proj as W_UK/W_UV (model dtype):
    heads/TP x kv_lora_rank x (qk_nope + v) x 2 B per layer.
    """
    m, h, d, prefix = arch.mla, arch.hidden_size, DTYPE_BYTES, f"model.layers.{layer}.self_attn"
    heads = arch.num_heads // s.tp
    qk_head = m.qk_nope_head_dim + m.qk_rope_head_dim
    if m.q_lora_rank:
        _linear(t, arch, f"{prefix}.q_a_proj", h, m.q_lora_rank)
        _linear(t, arch, f"{prefix}.q_b_proj", m.q_lora_rank, heads * qk_head)
    else:
        _linear(t, arch, f"{prefix}.q_proj", h, heads * qk_head)
    _linear(t, arch, f"{prefix}.kv_a_proj_with_mqa", h, m.kv_lora_rank + m.qk_rope_head_dim)
    _linear(t, arch, f"{prefix}.kv_b_proj", m.kv_lora_rank, heads * (m.qk_nope_head_dim + m.v_head_dim))
    _linear(t, arch, f"{prefix}.o_proj", heads * m.v_head_dim, h)
    norms = arch.norms_per_layer * h + m.kv_lora_rank + m.q_lora_rank
    t.add(norms * d, norms)
    if s.runtime:
        copy = heads * m.kv_lora_rank * (m.qk_nope_head_dim + m.v_head_dim) * d
        t.add(copy, 0)
        t.mla_copy_bytes += copy


def _gated_delta_net(t: _Tally, arch: Architecture, s: _Shard, layer: int) -> None:
    """Qwen3-Next linear attention (layers/mamba/gdn/qwen_gdn_linear_attn.py):
    in_proj_qkvz and in_proj_ba column-parallel, a depthwise conv1d over the
    q/k/v channels, per-value-head dt_bias and A_log, a gated RMSNorm over the
    value head dim, out_proj row-parallel; all sharded over TP except the norm."""
    g, h, d, prefix = arch.linear_attention, arch.hidden_size, DTYPE_BYTES, f"model.layers.{layer}.linear_attn"
    tp = s.tp
    _linear(t, arch, f"{prefix}.in_proj_qkvz", h, (2 * g.key_dim + 2 * g.value_dim) // tp)
    _linear(t, arch, f"{prefix}.in_proj_ba", h, 2 * g.num_value_heads // tp)
    _linear(t, arch, f"{prefix}.out_proj", g.value_dim // tp, h)
    small = g.conv_dim // tp * g.conv_kernel + 2 * g.num_value_heads // tp + g.value_head_dim
    norms = arch.norms_per_layer * h
    t.add((small + norms) * d, small + norms)


def _mlp(t: _Tally, arch: Architecture, tp: int, prefix: str, size: int, expert: bool = False, count: int = 1):
    h, inner = arch.hidden_size, size // tp
    if arch.gated_mlp:
        _linear(t, arch, f"{prefix}.gate_proj", h, inner, expert, count)
    _linear(t, arch, f"{prefix}.up_proj", h, inner, expert, count)
    _linear(t, arch, f"{prefix}.down_proj", inner, h, expert, count)
    if arch.mlp_bias:
        bias = ((2 if arch.gated_mlp else 1) * inner + h) * count
        t.add(bias * DTYPE_BYTES, bias, expert)


def local_experts(arch: Architecture, tp: int, ep: bool) -> int:
    """Experts on the busiest GPU: all of them under TP sharding, else ceil(E / TP)."""
    return math.ceil(arch.num_experts / tp) if ep else arch.num_experts


def _moe_mlp(t: _Tally, arch: Architecture, s: _Shard, layer: int) -> None:
    """Routed experts (TP-sharded along the intermediate size, or whole under EP),
    router, shared experts (TP-sharded dense MLPs, never EP-split)."""
    prefix, h, d = f"model.layers.{layer}.mlp", arch.hidden_size, DTYPE_BYTES
    experts = local_experts(arch, s.tp, s.ep)
    t.local_experts = experts
    inner_tp = 1 if s.ep else s.tp
    q = arch.quantization
    if q is not None and q.method == "mxfp4":
        _mxfp4_experts(t, arch, s, experts, arch.moe_intermediate_size // inner_tp)
    else:
        _mlp(t, arch, inner_tp, f"{prefix}.experts.0", arch.moe_intermediate_size, expert=True, count=experts)
        if arch.expert_bias:
            bias = experts * (2 * arch.moe_intermediate_size // inner_tp + h)
            t.add(bias * d, bias, expert=True)
    router = h * arch.num_experts + (arch.num_experts if arch.router_bias else 0)
    t.add(router * d, router)  # GateLinear: replicated, unquantized
    if arch.router_score_bias:
        t.add(arch.num_experts * 4, arch.num_experts)  # e_score_correction_bias, fp32
    if arch.shared_expert_intermediate_size:
        name = "shared_experts" if arch.model_type in _SHARED_EXPERTS_PLURAL else "shared_expert"
        _mlp(t, arch, s.tp, f"{prefix}.{name}", arch.shared_expert_intermediate_size)
        if arch.shared_expert_gate:
            t.add(h * d, h)


def _mxfp4_experts(t: _Tally, arch: Architecture, s: _Shard, experts: int, inner: int) -> None:
    """MXFP4 w13 [E, 2I, H/2] + e8m0 scales [E, 2I, H/32], w2 [E, H, I/2] + [E, H, I/32],
    with H and I padded for the backend; gpt-oss's expert biases stay 16-bit."""
    h_align, i_align = s.mxfp4
    hp = math.ceil(arch.hidden_size / h_align) * h_align
    ip = math.ceil(inner / i_align) * i_align
    per_expert = 2 * ip * hp // 2 + 2 * ip * hp // 32 + hp * ip // 2 + hp * ip // 32
    params = 3 * arch.hidden_size * inner
    t.add(experts * per_expert, experts * params, expert=True)
    if arch.expert_bias:
        bias = experts * (2 * ip + hp)
        t.add(bias * DTYPE_BYTES, experts * (2 * inner + arch.hidden_size), expert=True)


def _vision(t: _Tally, arch: Architecture, s: _Shard) -> None:
    v = arch.vision
    nbytes = (v.sharded_params / s.tp + v.replicated_params) * DTYPE_BYTES
    t.add(nbytes, v.params if not s.runtime else v.sharded_params / s.tp + v.replicated_params)
    t.vision_bytes = nbytes
