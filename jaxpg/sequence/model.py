r"""A small decoder-only transformer token policy with a pure ``init``/``apply``.

Conventions (the whole :mod:`jaxpg.sequence` package):

* Shapes: ``N`` sequences (``N = P * G``: P prompts, G samples each), ``Lp``
  prompt length (fixed per task), ``R`` response length (``max_new_tokens``),
  ``L`` any token axis, ``V`` vocabulary, ``D`` width, ``H`` heads.
* Tokens are ``int32``. Position ``i`` of the logits predicts token ``i + 1``.
* Pre-LayerNorm blocks: ``x + attn(LN(x))``, then ``x + mlp(LN(x))``; a final
  LayerNorm and an untied output projection. Positions are learned absolute
  embeddings (``positions="learned"``) or rotary (``"rotary"``, Su et al. 2021).
* The KV cache is an explicit pytree (:class:`KVCache`) passed in and returned:
  :func:`apply` with a cache writes the keys/values of ``tokens`` at positions
  ``start .. start + L - 1`` and attends to every cached position ``<=`` the
  query's. Without a cache it is one causal pass over ``tokens``, or, given
  ``positions`` and an attention ``mask``, a packed row: a shared prompt
  followed by several continuations that each attend to the prompt and to
  themselves only.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.checks import positive_int

Array = jax.Array

POSITIONS = ("learned", "rotary")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """Static shape of the token policy (hashable: used as a ``jit`` static).

    Attributes:
      vocab_size: ``V``.
      width: model width ``D`` (divisible by ``num_heads``).
      num_layers: transformer blocks.
      num_heads: attention heads ``H``.
      max_len: longest prompt + response the positions and the cache cover.
      mlp_ratio: hidden width of the MLP is ``mlp_ratio * width``.
      positions: ``"learned"`` or ``"rotary"``.
      init_scale: standard deviation of the embedding initialisation.
    """

    vocab_size: int = 16
    width: int = 64
    num_layers: int = 2
    num_heads: int = 4
    max_len: int = 32
    mlp_ratio: int = 4
    positions: str = "learned"
    init_scale: float = 0.02

    def __post_init__(self):
        for name in ("vocab_size", "width", "num_layers", "num_heads", "max_len"):
            object.__setattr__(self, name, positive_int(name, getattr(self, name)))
        if self.width % self.num_heads:
            raise ValueError(
                f"width={self.width} is invalid: must be divisible by "
                f"num_heads={self.num_heads}"
            )
        if self.positions not in POSITIONS:
            raise ValueError(f"positions={self.positions!r} is not one of {POSITIONS}")
        if self.positions == "rotary" and (self.width // self.num_heads) % 2:
            raise ValueError(
                f"rotary positions need an even head width, got "
                f"width / num_heads = {self.width // self.num_heads}"
            )

    @property
    def head_dim(self) -> int:
        return self.width // self.num_heads


class KVCache(NamedTuple):
    """Keys and values of every layer, written in place by :func:`apply`."""

    k: Array  # [layers, N, C, H, D/H] float32, C <= max_len positions
    v: Array  # [layers, N, C, H, D/H] float32


def init_cache(
    cfg: TransformerConfig, batch: int, length: int | None = None
) -> KVCache:
    """An empty cache for ``batch`` sequences of up to ``length`` positions
    (default ``cfg.max_len``; zeros, masked until written). A shorter cache
    saves attention work over positions a program never reaches."""
    length = cfg.max_len if length is None else length
    if not 1 <= length <= cfg.max_len:
        raise ValueError(f"cache length={length} must be in [1, {cfg.max_len}]")
    shape = (cfg.num_layers, batch, length, cfg.num_heads, cfg.head_dim)
    return KVCache(jnp.zeros(shape, jnp.float32), jnp.zeros(shape, jnp.float32))


def _rotary(x: Array, positions: Array) -> Array:
    """Rotate pairs of channels by position-dependent angles. ``x: [N, L, H, d]``."""
    d = x.shape[-1]
    freqs = 1.0 / (10_000.0 ** (jnp.arange(0, d, 2, dtype=jnp.float32) / d))
    angles = positions.astype(jnp.float32)[:, None] * freqs[None, :]  # [L, d/2]
    cos = jnp.cos(angles)[None, :, None, :]
    sin = jnp.sin(angles)[None, :, None, :]
    x1, x2 = x[..., 0::2], x[..., 1::2]
    out = jnp.stack([x1 * cos - x2 * sin, x1 * sin + x2 * cos], axis=-1)
    return out.reshape(x.shape)


class _Block(nn.Module):
    cfg: TransformerConfig

    @nn.compact
    def __call__(self, x, positions, mask, cache, layer, start):
        cfg = self.cfg
        n, length, _ = x.shape
        # Dense layers see [N L, D] rows: the backward pass's weight gradient
        # is then one plain matrix product (a contraction over a single axis),
        # which XLA's CPU backend runs several times faster than a product
        # contracting both N and L.
        h = nn.LayerNorm(name="ln_attn")(x).reshape(n * length, -1)
        qkv = nn.Dense(3 * cfg.width, name="qkv")(h)
        qkv = qkv.reshape(n, length, 3, cfg.num_heads, cfg.head_dim)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        if cfg.positions == "rotary":
            q, k = _rotary(q, positions), _rotary(k, positions)
        if cache is None:
            keys, values = k, v
        else:
            # Written in place into the stacked [layers, ...] arrays (no
            # per-layer slice and re-stack of the whole cache).
            at = (layer, 0, start, 0, 0)
            cache = KVCache(
                jax.lax.dynamic_update_slice(cache.k, k[None], at),
                jax.lax.dynamic_update_slice(cache.v, v[None], at),
            )
            keys, values = cache.k[layer], cache.v[layer]
            mask = jnp.arange(cache.k.shape[2])[None, :] <= positions[:, None]
        logits = jnp.einsum("nqhd,nkhd->nhqk", q, keys) / jnp.sqrt(
            jnp.float32(cfg.head_dim)
        )
        logits = jnp.where(mask[None, None], logits, jnp.finfo(jnp.float32).min)
        attn = jax.nn.softmax(logits, axis=-1)
        out = jnp.einsum("nhqk,nkhd->nqhd", attn, values).reshape(n * length, -1)
        x = x + nn.Dense(cfg.width, name="attn_out")(out).reshape(x.shape)
        h = nn.LayerNorm(name="ln_mlp")(x).reshape(n * length, -1)
        h = nn.gelu(nn.Dense(cfg.mlp_ratio * cfg.width, name="mlp_in")(h))
        x = x + nn.Dense(cfg.width, name="mlp_out")(h).reshape(x.shape)
        return x, cache


class Transformer(nn.Module):
    """Decoder-only transformer: ``tokens [N, L] -> logits [N, L, V]``."""

    cfg: TransformerConfig

    @nn.compact
    def __call__(
        self, tokens, start=0, cache: KVCache | None = None, positions=None, mask=None
    ):
        cfg = self.cfg
        length = tokens.shape[1]
        emb = nn.Embed(
            cfg.vocab_size,
            cfg.width,
            embedding_init=nn.initializers.normal(cfg.init_scale),
            name="embed",
        )
        x = emb(tokens)
        if positions is None:
            positions = start + jnp.arange(length)
        if cache is None and mask is None:
            mask = jnp.arange(length)[None, :] <= jnp.arange(length)[:, None]
        if cfg.positions == "learned":
            pos_table = self.param(
                "pos_embed",
                nn.initializers.normal(cfg.init_scale),
                (cfg.max_len, cfg.width),
            )
            if isinstance(positions, np.ndarray):
                pos = pos_table[positions]  # static positions of a packed row
            else:
                pos = jax.lax.dynamic_slice_in_dim(pos_table, start, length, axis=0)
            x = x + pos[None]
        positions = jnp.asarray(positions)
        for i in range(cfg.num_layers):
            x, cache = _Block(cfg, name=f"block_{i}")(
                x, positions, mask, cache, i, start
            )
        n = x.shape[0]
        x = nn.LayerNorm(name="ln_final")(x).reshape(n * length, -1)
        logits = nn.Dense(cfg.vocab_size, name="head")(x).reshape(n, length, -1)
        return logits, cache


def init(key: Array, cfg: TransformerConfig) -> dict:
    """Random parameters of the token policy (a pytree)."""
    dummy = jnp.zeros((1, min(2, cfg.max_len)), jnp.int32)
    return Transformer(cfg).init(key, dummy)


def apply(
    params: dict,
    cfg: TransformerConfig,
    tokens: Array,
    start: Array | int = 0,
    cache: KVCache | None = None,
    *,
    positions: np.ndarray | None = None,
    mask: np.ndarray | None = None,
) -> tuple[Array, KVCache | None]:
    """Logits of every position, optionally through a KV cache.

    Args:
      params: from :func:`init`.
      cfg: the model's static configuration.
      tokens: ``[N, L]`` int32 token ids.
      start: position of ``tokens[:, 0]`` (may be traced); only with a cache
        may it be non-zero.
      cache: ``None`` for one causal pass over ``tokens``; a :class:`KVCache`
        to write positions ``start .. start + L - 1`` into and attend over.
      positions, mask: without a cache, a packed row (several sequences
        sharing a prefix in one row): ``positions [L]`` the position of each
        token (static ints ``< max_len``) and ``mask [L, L]`` (static bool)
        whether token ``i`` attends to token ``j``. Defaults: ``0 .. L - 1``,
        causal.

    Returns:
      ``(logits [N, L, V] float32, cache)``; ``cache`` is the updated cache or
      ``None``.
    """
    if tokens.ndim != 2:
        raise ValueError(f"tokens must be [N, L], got shape {tokens.shape}")
    length = tokens.shape[1]
    if (positions is None) != (mask is None) or (
        positions is not None and cache is not None
    ):
        raise ValueError("positions and mask go together, and only without a cache")
    if positions is not None:
        positions, mask = np.asarray(positions), np.asarray(mask, bool)
        if positions.shape != (length,) or mask.shape != (length, length):
            raise ValueError(
                f"positions {positions.shape} and mask {mask.shape} must be "
                f"[{length}] and [{length}, {length}]"
            )
        if positions.min() < 0 or positions.max() >= cfg.max_len:
            raise ValueError(f"positions must be in [0, max_len={cfg.max_len})")
    elif cache is None and length > cfg.max_len:
        raise ValueError(f"tokens has length {length} > cfg.max_len={cfg.max_len}")
    fixed = cache is not None and isinstance(start, int)
    if fixed and start + length > cache.k.shape[2]:
        raise ValueError(
            f"positions {start} .. {start + length - 1} do not fit a cache of "
            f"{cache.k.shape[2]} positions"
        )
    return Transformer(cfg).apply(params, tokens, start, cache, positions, mask)
