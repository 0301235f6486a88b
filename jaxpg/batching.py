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
