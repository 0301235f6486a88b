r"""The token-policy protocol: what the sampler, the teacher-forced log-probs,
SFT, the reference and the learner need from a model.

A :class:`SequenceModel` gives

* ``init(key) -> params``: an initial parameter pytree;
* ``apply(params, tokens [N, L], positions [L], mask [L, L]) -> logits
  [N, L, V]``: one pass without a cache. ``positions`` (int) and ``mask``
  (bool, ``mask[i, j]``: token ``i`` attends to token ``j``) are static NumPy
  arrays shared by every row: the plain causal pass (``0 .. L - 1`` and a
  lower-triangular mask, :func:`causal`) or a packed row (a shared prompt and
  several continuations, :func:`jaxpg.sequence.sampling.packed_layout`);
* optionally a KV cache: ``init_cache(batch, length) -> cache`` and
  ``apply_cached(params, tokens [N, L], start, cache) -> (logits [N, L, V],
  cache)``, which writes positions ``start .. start + L - 1`` (``start`` may be
  traced) and attends to every cached position ``<=`` the query's. Every cache
  leaf has its batch axis at ``cache_batch_axis`` (the sampler repeats a
  group's prefilled prompt along it).

Without a cache the sampler re-runs ``apply`` over the prompt and the response
so far at every step: the same draws, ``R`` times the work (correct, slower).

Implementations: :func:`transformer` (jaxpg's own, :mod:`.model`),
:func:`from_nnx` (a Flax NNX module, split once into its graph and its
``nnx.Param`` state), :func:`from_linen` (a Flax linen module), or a
:class:`SequenceModel` built from plain functions. The module adapters use the
calling convention of the JAX post-training stacks (e.g. Tunix):
``logits, cache = module(tokens, positions=..., attention_mask=..., cache=...)``
with ``positions [N, L]`` int32, ``attention_mask [N, L, S]`` bool (``S = L``
without a cache, the cache length with one) and ``cache=None`` for a pass
without a cache (returning ``logits`` alone is accepted then).

Every function of :mod:`jaxpg.sequence` that takes a model takes a
:class:`SequenceModel` or a :class:`~jaxpg.sequence.model.TransformerConfig`
(read as ``transformer(cfg)``).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.checks import positive_int
from jaxpg.sequence import model as builtin
from jaxpg.sequence.model import TransformerConfig

Array = jax.Array

__all__ = [
    "SequenceModel",
    "as_model",
    "causal",
    "from_linen",
    "from_nnx",
    "transformer",
]


@dataclasses.dataclass(frozen=True, eq=False)
class SequenceModel:
    """A token policy as pure functions (the module docstring's protocol).

    Attributes:
      name: for reports and the saved reference's metadata.
      vocab_size: ``V``.
      max_len: longest prompt + response the model takes.
      init: ``key -> params``.
      apply: ``(params, tokens [N, L], positions [L], mask [L, L]) -> logits
        [N, L, V]``.
      init_cache: ``(batch, length) -> cache``, or ``None`` (no cache).
      apply_cached: ``(params, tokens [N, L], start, cache) -> (logits, cache)``,
        or ``None``; given together with ``init_cache``.
      cache_batch_axis: the batch axis of every cache leaf.
      config: JSON-able description recorded beside a saved reference.

    Hashable by identity (a ``jit`` static): build it once and reuse it.
    """

    name: str
    vocab_size: int
    max_len: int
    init: Callable[[Array], Any]
    apply: Callable[[Any, Array, np.ndarray, np.ndarray], Array]
    init_cache: Callable[[int, int], Any] | None = None
    apply_cached: Callable[[Any, Array, Any, Any], tuple[Array, Any]] | None = None
    cache_batch_axis: int = 0
    config: Mapping[str, Any] | None = None

    def __post_init__(self):
        for field in ("vocab_size", "max_len"):
            value = positive_int(f"SequenceModel.{field}", getattr(self, field))
            object.__setattr__(self, field, value)
        for field in ("init", "apply"):
            if not callable(getattr(self, field)):
                raise TypeError(
                    f"SequenceModel.{field}={getattr(self, field)!r} is not callable"
                )
        if (self.init_cache is None) != (self.apply_cached is None):
            raise ValueError(
                "SequenceModel.init_cache and apply_cached go together: give both "
                f"or neither (got init_cache={self.init_cache!r}, "
                f"apply_cached={self.apply_cached!r})"
            )

    @property
    def has_cache(self) -> bool:
        return self.apply_cached is not None


@functools.cache
def causal(length: int) -> tuple[np.ndarray, np.ndarray]:
    """``(positions [L], mask [L, L])`` of one causal pass over ``L`` tokens."""
    positions = np.arange(length)
    return positions, positions[None, :] <= positions[:, None]


def _is_causal(positions: np.ndarray, mask: np.ndarray) -> bool:
    want_positions, want_mask = causal(len(positions))
    return np.array_equal(positions, want_positions) and np.array_equal(mask, want_mask)


@functools.cache
def transformer(cfg: TransformerConfig) -> SequenceModel:
    """jaxpg's transformer (:mod:`.model`) as a :class:`SequenceModel`; the
    same ``cfg`` gives the same object. A causal pass calls
    :func:`.model.apply` without positions and mask (its default), so the
    built-in path does no extra work."""
    if not isinstance(cfg, TransformerConfig):
        raise TypeError(f"cfg={cfg!r} is not a TransformerConfig")

    def apply(params, tokens, positions, mask):
        if _is_causal(positions, mask):
            return builtin.apply(params, cfg, tokens)[0]
        return builtin.apply(params, cfg, tokens, positions=positions, mask=mask)[0]

    def apply_cached(params, tokens, start, cache):
        return builtin.apply(params, cfg, tokens, start, cache)

    return SequenceModel(
        name="transformer",
        vocab_size=cfg.vocab_size,
        max_len=cfg.max_len,
        init=lambda key: builtin.init(key, cfg),
        apply=apply,
        init_cache=lambda batch, length: builtin.init_cache(cfg, batch, length),
        apply_cached=apply_cached,
        cache_batch_axis=1,  # KVCache leaves are [layers, N, C, H, D/H]
        config=dataclasses.asdict(cfg),
    )


def as_model(model: SequenceModel | TransformerConfig) -> SequenceModel:
    """``model`` itself, or ``transformer(model)`` for a TransformerConfig."""
    if isinstance(model, SequenceModel):
        return model
    if isinstance(model, TransformerConfig):
        return transformer(model)
    raise TypeError(
        f"model={model!r} is invalid: must be a jaxpg.sequence.SequenceModel "
        "(from_nnx, from_linen, or built from functions) or a TransformerConfig"
    )


def _logits(out):
    return out[0] if isinstance(out, tuple) else out


def _cache_length(cache: Any, length_axis: int) -> int:
    """The cache's length: the ``length_axis`` of its leaves that have one
    (bookkeeping leaves such as Tunix's ``end_index [B]`` have not)."""
    lengths = {
        leaf.shape[length_axis]
        for leaf in jax.tree.leaves(cache)
        if jnp.ndim(leaf) > length_axis
    }
    if len(lengths) != 1:
        raise ValueError(
            f"the model's cache must have one length along axis {length_axis} "
            f"of its arrays that have that axis; got {sorted(lengths) or 'none'}"
        )
    return lengths.pop()


def _from_call(
    call: Callable[..., Any],
    init: Callable[[Array], Any],
    *,
    name: str,
    vocab_size: int,
    max_len: int,
    init_cache: Callable[[int, int], Any] | None,
    cache_axes: tuple[int, int],
) -> SequenceModel:
    """A :class:`SequenceModel` from ``call(params, tokens, positions [N, L],
    attention_mask [N, L, S], cache)`` in the module calling convention."""

    def apply(params, tokens, positions, mask):
        n, length = tokens.shape
        pos = jnp.broadcast_to(jnp.asarray(positions, jnp.int32), (n, length))
        attn = jnp.broadcast_to(jnp.asarray(mask, bool), (n, length, length))
        return _logits(call(params, tokens, pos, attn, None))

    apply_cached = None
    if init_cache is not None:

        def apply_cached(params, tokens, start, cache):
            n, length = tokens.shape
            pos = start + jnp.arange(length, dtype=jnp.int32)
            pos = jnp.broadcast_to(pos, (n, length))
            slots = jnp.arange(_cache_length(cache, cache_axes[1]))
            attn = slots[None, None, :] <= pos[:, :, None]
            logits, cache = call(params, tokens, pos, attn, cache)
            return logits, cache

    return SequenceModel(
        name=name,
        vocab_size=vocab_size,
        max_len=max_len,
        init=init,
        apply=apply,
        init_cache=init_cache,
        apply_cached=apply_cached,
        cache_batch_axis=cache_axes[0],
        config={"name": name, "vocab_size": vocab_size, "max_len": max_len},
    )


def from_nnx(
    module: Any,
    *,
    vocab_size: int,
    max_len: int,
    init_cache: Callable[[int, int], Any] | None = None,
    cache_axes: tuple[int, int] = (0, 1),
    name: str | None = None,
) -> SequenceModel:
    """A Flax NNX module as a :class:`SequenceModel`.

    The module is split once (:func:`jaxpg.nnx_bridge.split_params`, as NNX
    torsos are): its ``nnx.Param`` state, as a pure nested dict of arrays, is
    the parameter pytree (what ``init`` returns, the same for every key: the
    module is already initialised); the graph and any other state are
    constants merged back on every call.

    Args:
      module: an ``nnx.Module`` called as in the module docstring.
      vocab_size, max_len: its ``V`` and longest sequence.
      init_cache: ``(batch, length) -> cache`` (an explicit pytree the module
        takes and returns), or ``None`` for no cache.
      cache_axes: ``(batch axis, length axis)`` of every cache leaf.
      name: for reports (default: the module's class name).
    """
    from flax import nnx

    from jaxpg.nnx_bridge import merge_params, split_params

    if not isinstance(module, nnx.Module):
        raise TypeError(f"module={module!r} is not an nnx.Module")
    # Parameters travel as a pure nested dict of arrays (serialisable, what
    # optax and checkpoints expect), put back into a copy of the state.
    parts = split_params(module)

    def call(params, tokens, positions, attention_mask, cache):
        merged = merge_params(parts, params)
        return merged(
            tokens, positions=positions, attention_mask=attention_mask, cache=cache
        )

    return _from_call(
        call, lambda key: parts.params, name=name or type(module).__name__,
        vocab_size=vocab_size, max_len=max_len, init_cache=init_cache,
        cache_axes=cache_axes,
    )  # fmt: skip


def from_linen(
    module: Any,
    *,
    vocab_size: int,
    max_len: int,
    init_cache: Callable[[int, int], Any] | None = None,
    cache_axes: tuple[int, int] = (0, 1),
    name: str | None = None,
) -> SequenceModel:
    """A Flax linen module as a :class:`SequenceModel`: ``init(key)`` is
    ``module.init`` on one causal row of two tokens (its variables dict),
    ``apply`` is ``module.apply``. Arguments as :func:`from_nnx`."""
    import flax.linen as nn

    if not isinstance(module, nn.Module):
        raise TypeError(f"module={module!r} is not a flax.linen Module")

    def call(variables, tokens, positions, attention_mask, cache):
        return module.apply(
            variables,
            tokens,
            positions=positions,
            attention_mask=attention_mask,
            cache=cache,
        )

    def init(key):
        length = min(2, max_len)
        positions, mask = causal(length)
        return module.init(
            key,
            jnp.zeros((1, length), jnp.int32),
            positions=jnp.asarray(positions, jnp.int32)[None],
            attention_mask=jnp.asarray(mask)[None],
            cache=None,
        )

    return _from_call(
        call, init, name=name or type(module).__name__, vocab_size=vocab_size,
        max_len=max_len, init_cache=init_cache, cache_axes=cache_axes,
    )  # fmt: skip
