r"""Loop conditions that stay cheap under ``vmap``.

A ``lax.while_loop`` whose predicate differs across a ``vmap``-ed batch is
lowered with a ``select`` of the *whole carry* at every iteration; for a
rollout that carries a ``[L, B, ...]`` buffer that is a copy of the buffer per
step. jaxpg's drivers vmap over named axes (:data:`SEED_AXIS`,
:data:`SWEEP_AXIS`); :func:`any_across` reduces a loop predicate over the
named axes that are bound, so the predicate is the same for every member of
the batch and the loop runs without the select (members that are done run
masked iterations that change nothing). Under a user's unnamed ``vmap`` it is
the identity: the result is the same, only slower.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

SEED_AXIS = "jaxpg_seed"
SWEEP_AXIS = "jaxpg_sweep"
_AXES = (SEED_AXIS, SWEEP_AXIS)


def any_across(pred: jax.Array) -> jax.Array:
    """``pred`` OR-reduced over the bound jaxpg vmap axes (a scalar bool)."""
    x = pred.astype(jnp.int32)
    for axis in _AXES:
        try:
            x = jax.lax.pmax(x, axis)
        except NameError:
            continue
    return x > 0


def permutation(key: jax.Array, n: int, rounds: int = 2) -> jax.Array:
    """A random permutation of ``range(n)``: ``[n]`` int32.

    Cheaper than :func:`jax.random.permutation` under ``vmap`` on CPU, where a
    key-value sort costs several times a plain one: each round sorts ``n``
    uint32 words whose high bits are random and whose low ``⌈log2 n⌉`` bits are
    the position, and reads the permutation off the low bits. A round is a
    uniform shuffle except that entries whose random bits tie keep their
    order (about ``n² / 2^(33 - ⌈log2 n⌉)`` tied pairs per round: 1 for
    ``n = 2048``); ``rounds`` independent rounds make that a higher-order
    effect, as in JAX's own shuffle. Falls back to
    :func:`jax.random.permutation` for ``n > 2**20``.
    """
    if n < 1:
        raise ValueError(f"n={n!r} is invalid: must be an int >= 1")
    index_bits = max(1, (n - 1).bit_length())
    if index_bits > 20:
        return jax.random.permutation(key, n)
    position = jnp.arange(n, dtype=jnp.uint32)
    low = jnp.uint32((1 << index_bits) - 1)
    perm = None
    for key_round in jax.random.split(key, rounds):
        word = jax.random.bits(key_round, (n,), jnp.uint32) & ~low | position
        order = jnp.sort(word) & low
        perm = order if perm is None else perm[order]
    return perm.astype(jnp.int32)
