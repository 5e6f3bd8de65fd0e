"""The KV cache by layer group, as vLLM's hybrid KV-cache manager plans it.

vLLM gives every attention layer a KV-cache spec (vllm/v1/kv_cache_interface.py,
0.33.0) and groups the layers (vllm/v1/core/kv_cache_planning.py):

- FullAttentionSpec: a request of L tokens holds cdiv(L, block) blocks;
- SlidingWindowSpec.max_admission_blocks_per_request:
  cdiv(min(window - 1 + in-flight tokens, L), block) + 1;
- ChunkedLocalAttentionSpec.max_admission_blocks_per_request:
  cdiv(min(chunk + in-flight tokens, L), block);
- MLAAttentionSpec: one latent of kv_lora_rank + qk_rope_head_dim per token and
  layer, num_kv_heads=1 and max_tp_shards=1 (mla_attention.py get_kv_cache_spec):
  every TP rank holds the whole latent cache; full-attention block count;
- MambaSpec (Gated DeltaNet): one page per sequence and layer whatever its
  length, 1 block per request ("none" mode) or 2 + prefill checkpoints ("align",
  used when prefix caching is on; MambaSpec.max_memory_usage_bytes).

In-flight tokens (VllmConfig.max_in_flight_tokens) are max_concurrent_batches x
max_num_batched_tokens: 2 x with async scheduling (the 0.33 default), 1 x in
the older releases the calibration logs come from.

Grouping (_get_kv_cache_groups_uniform_page_size): layers are bucketed by spec;
group_size = the smallest bucket, or the largest when it is < 1.5 x the
smallest; each bucket is split into cdiv(n, group_size) groups. Every group
draws blocks from one pool whose block is group_size layers x one page
(_get_kv_cache_bytes_per_block), so num_blocks = available // that. A request
needs the sum of its groups' blocks (kv_cache_utils.py
get_max_concurrency_for_kv_cache_config); "GPU KV cache size" is
int(num_blocks / that sum x max_model_len) (get_kv_cache_capacity).

Hybrid attention + Mamba models raise the block size until one attention page
holds a Mamba state, and pad the state to the page
(vllm/platforms/interface.py Platform._align_hybrid_block_size).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

from compose.plan.catalog import DTYPE_BYTES, Architecture

BLOCK_SIZE = 16  # vllm/config/cache.py CacheConfig.DEFAULT_BLOCK_SIZE
# FlashInfer's GDN prefill kernel exports prefill checkpoints on a 64-token grid
# (vllm/v1/attention/backends/gdn_attn.py FLASHINFER_GDN_CHECKPOINT_ALIGNMENT).
GDN_CHECKPOINT_ALIGNMENT = 64
HMA_GROUP_SIZE_RATIO = 1.5  # kv_cache_planning.py: use the largest bucket if max < 1.5 x min


def cdiv(a: int, b: int) -> int:
    return -(-a // b)


@dataclass(frozen=True)
class KVGroup:
    """One KV-cache group: layers sharing a block table."""

    kind: str
    layers: tuple[int, ...]
    window: int | None = None  # sliding window or attention chunk


@dataclass(frozen=True)
class KVLayout:
    """Block accounting of vLLM's KV-cache manager on one GPU."""

    block_size: int
    page_bytes: int  # one layer, one block: the pool's uniform page
    groups: tuple[KVGroup, ...]
    token_bytes: dict  # kind -> bytes per token per layer on one GPU (attention kinds)
    state_bytes: int  # linear attention: bytes of one sequence's state per layer (unpadded)
    in_flight_tokens: int
    linear_blocks: int  # blocks a linear-attention group holds per request
    promoted: bool = False  # sliding/chunked layers sized as full attention (hybrid manager off)

    @property
    def bytes_per_block(self) -> int:
        return max(len(g.layers) for g in self.groups) * self.page_bytes

    @property
    def hybrid(self) -> bool:
        return len(self.groups) > 1 or self.groups[0].kind in ("sliding", "chunked", "linear")

    def num_blocks(self, kv_bytes: float) -> int:
        return max(0, int(kv_bytes // self.bytes_per_block))

    def group_blocks(self, group: KVGroup, tokens: int) -> int:
        """Blocks one request of `tokens` tokens holds in `group`."""
        if group.kind == "linear":
            return self.linear_blocks
        blocks = cdiv(self.cap(group.kind, group.window, tokens), self.block_size)
        return blocks + 1 if group.kind == "sliding" else blocks  # a window may straddle a block

    def cap(self, kind: str, window: int | None, tokens: int) -> int:
        """Tokens of one request a layer of this kind keeps (0: a fixed-size state)."""
        if kind == "sliding":
            return min(window - 1 + self.in_flight_tokens, tokens)
        if kind == "chunked":
            return min(window + self.in_flight_tokens, tokens)
        if kind == "linear":
            return 0
        return tokens

    def blocks_per_request(self, tokens: int) -> int:
        return sum(self.group_blocks(g, tokens) for g in self.groups)

    def bytes_per_token(self) -> int:
        """Bytes one more cached token costs across every attention layer (windows ignored)."""
        return sum(self.token_bytes.get(g.kind, 0) * len(g.layers) for g in self.groups)

    def describe(self, max_model_len: int) -> list[dict]:
        """One entry per layer kind: what `compose plan` prints as kv_layer_groups."""
        out = []
        for kind in dict.fromkeys(g.kind for g in self.groups):
            groups = [g for g in self.groups if g.kind == kind]
            window = groups[0].window
            entry = {
                "kind": kind,
                "layers": sum(len(g.layers) for g in groups),
                "groups": len(groups),
                "page_bytes": self.page_bytes,
                "bytes_per_token_per_layer": self.token_bytes.get(kind, 0),
                "tokens_per_request_cap": self.cap(kind, window, max_model_len),
                "blocks_per_request": sum(self.group_blocks(g, max_model_len) for g in groups),
            }
            if window:
                entry["window" if kind == "sliding" else "chunk"] = window
            if kind == "linear":
                entry["state_bytes_per_layer"] = self.state_bytes
            out.append(entry)
        return out


def attention_token_bytes(arch: Architecture, kind: str, tp: int, kv_dtype_bytes: int) -> int:
    """AttentionSpec page per token per layer: heads x (head_size + head_size_v) x dtype.

    MLA: one latent (kv_lora_rank + qk_rope_head_dim), head_size_v = 0, not
    sharded by TP. Others: max(1, kv_heads // TP) heads of K and V.
    """
    if kind == "mla":
        return arch.mla.latent_dim * kv_dtype_bytes
    return max(1, arch.num_kv_heads // tp) * 2 * arch.head_dim * kv_dtype_bytes


def linear_state_bytes(arch: Architecture, tp: int) -> int:
    """Gated DeltaNet state per sequence and layer on one GPU, in the model dtype
    (layers/mamba/mamba_utils.py gated_delta_net_state_shape; mamba_cache_dtype
    auto): conv [conv_dim / TP, kernel - 1] + recurrent [v_heads / TP, dv, dk]."""
    g = arch.linear_attention
    conv = g.conv_dim // tp * (g.conv_kernel - 1)
    recurrent = g.num_value_heads // tp * g.value_head_dim * g.key_head_dim
    return (conv + recurrent) * DTYPE_BYTES


@lru_cache(maxsize=4096)
def kv_layout(arch: Architecture, tp: int, kv_dtype_bytes: int, batched_tokens: int, *,
              in_flight_batches: int = 1, chunked_hybrid: bool = True, mamba_align: bool = False,
              gdn_flashinfer: bool = False, block_size: int = BLOCK_SIZE) -> KVLayout:
    """The groups, block size and page of `arch` on one of `tp` GPUs.

    `chunked_hybrid`: chunked-local layers get their own groups (off: promoted
    to full attention, as vLLM did for Llama 4 before re-enabling it).
    `mamba_align`: prefix caching on, so Mamba groups hold 2 blocks (+1 checkpoint
    block with FlashInfer's GDN prefill, `gdn_flashinfer`) instead of 1.
    """
    kinds = list(arch.kinds)
    promoted = False
    if not chunked_hybrid and "chunked" in kinds and "full" in kinds:
        kinds = ["full" if k == "chunked" else k for k in kinds]
        promoted = True
    token_bytes = {k: attention_token_bytes(arch, k, tp, kv_dtype_bytes) for k in set(kinds) if k != "linear"}
    state = linear_state_bytes(arch, tp) if "linear" in kinds else 0
    attn_token = max(token_bytes.values()) if token_bytes else 0
    linear_blocks = 1
    if state:
        align = max(BLOCK_SIZE, block_size)
        if mamba_align and gdn_flashinfer:
            align = math.lcm(align, GDN_CHECKPOINT_ALIGNMENT)
        if arch.mla is not None:
            align = max(align, 128)
        needed = align * cdiv(state, align * attn_token)
        block_size = max(block_size, BLOCK_SIZE * cdiv(needed, BLOCK_SIZE))
        linear_blocks = (2 + (1 if gdn_flashinfer else 0)) if mamba_align else 1
    page = block_size * attn_token if attn_token else state
    window = {"sliding": arch.sliding_window, "chunked": arch.attention_chunk_size}
    buckets: dict[str, list[int]] = {}
    for layer, kind in enumerate(kinds):
        buckets.setdefault(kind, []).append(layer)
    if len(buckets) == 1:
        kind, layers = next(iter(buckets.items()))
        groups = (KVGroup(kind, tuple(layers), window.get(kind)),)
    else:
        smallest = min(len(v) for v in buckets.values())
        largest = max(len(v) for v in buckets.values())
        size = largest if largest < smallest * HMA_GROUP_SIZE_RATIO else smallest
        groups = tuple(
            KVGroup(kind, tuple(layers[i::cdiv(len(layers), size)]), window.get(kind))
            for kind, layers in buckets.items()
            for i in range(cdiv(len(layers), size))
        )
    return KVLayout(
        block_size=block_size, page_bytes=page, groups=groups, token_bytes=token_bytes, state_bytes=state,
        in_flight_tokens=in_flight_batches * batched_tokens, linear_blocks=linear_blocks, promoted=promoted,
    )
