r"""One compiled program for every chunk length of a chunked run.

A chunked driver calls a program that runs ``n`` updates of every member.
With the length fixed in the program (a ``lax.scan`` of ``n``), every length
a run meets is a program of its own: a timed run needs its probe's, its
longest and the one in use, and compiling each costs as much as the whole
training program. :func:`updates_program` compiles the update loop once for
any ``n <= cap``: ``n`` is an argument (a ``lax.while_loop`` count shared by
every member), the metrics go to a ``[cap]`` buffer of which the first ``n``
rows are returned (:class:`Chunk`). The update itself is the same
computation as in a scan: a run gives the same result, bit for bit, whatever
its chunk lengths.

Shapes: ``P`` padded members, ``cap`` the longest chunk.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxpg.checks import positive_int
from jaxpg.drivers import parallel
from jaxpg.kernels.batching import batched_like

__all__ = ["Chunk", "lower", "updates_program"]


def updates_program(
    update: Callable[..., tuple[Any, Any]],
    lay: parallel.Layout,
    cap: int,
    num_shared: int = 0,
) -> Callable[..., tuple[Any, Any]]:
    """``(state [P], n, *shared) -> (state [P], metrics {name: [P, cap]})``:
    ``n <= cap`` updates of every member, ``n`` a replicated int32 scalar
    (:func:`jaxpg.drivers.parallel.replicate`); rows ``n:`` of the metrics
    are zeros. The state is donated.

    Args:
      update: one member's ``(state, *shared) -> (state, metrics)``.
      lay: the members' layout.
      cap: the longest chunk, ``>= 1``.
      num_shared: arguments after the count that every member shares,
        replicated over the mesh (a token policy's frozen reference).
    """
    cap = positive_int("cap", cap)
    # Traced once: the metrics' shapes below and the loop's body share it.
    step = jax.jit(update)

    def one(state: Any, n: jax.Array, *shared: Any) -> tuple[Any, Any]:
        _, like = jax.eval_shape(step, state, *shared)
        buffer = jax.tree.map(lambda m: jnp.zeros((cap, *m.shape), m.dtype), like)
        # Batched from the start under vmap: the loop's body is batched once.
        buffer = batched_like(buffer, state)

        def body(carry: tuple[jax.Array, Any, Any]) -> tuple[jax.Array, Any, Any]:
            i, state, buffer = carry
            state, metrics = step(state, *shared)
            buffer = jax.tree.map(
                lambda b, m: jax.lax.dynamic_update_index_in_dim(b, m, i, 0),
                buffer,
                metrics,
            )
            return i + 1, state, buffer

        start = (jnp.zeros((), jnp.int32), state, buffer)
        _, state, buffer = jax.lax.while_loop(lambda c: c[0] < n, body, start)
        return state, buffer

    return parallel.sharded(
        one,
        lay,
        raw_keys=False,
        donate_argnums=0,
        shared_argnums=tuple(range(1, 2 + num_shared)),
    )


def lower(
    update: Callable[..., tuple[Any, Any]],
    lay: parallel.Layout,
    cap: int,
    state: Any,
    *shared: Any,
) -> Any:
    """:func:`updates_program` lowered for ``state`` (arrays, or abstract
    values with their shardings), the count :class:`Chunk` passes (an int32
    scalar replicated over ``lay``'s mesh) and the ``shared`` arguments
    (replicated)."""
    count = jax.ShapeDtypeStruct(
        (), np.int32, sharding=NamedSharding(lay.mesh, PartitionSpec())
    )
    program = updates_program(update, lay, cap, len(shared))
    return program.lower(state, count, *shared)


class Chunk:
    """``(state [P], *shared) -> (state [P], metrics {name: [P, n]})``: ``n``
    updates through a compiled :func:`updates_program` of a longer or equal
    ``cap``. Its attributes are the compiled program's (``memory_analysis``,
    shardings)."""

    def __init__(self, compiled: Any, n: int, cap: int, lay: parallel.Layout):
        if not 1 <= n <= cap:
            raise ValueError(f"n={n!r} is invalid: must be in [1, cap={cap}]")
        self.compiled, self.n, self.cap = compiled, n, cap
        self._count = parallel.replicate(np.int32(n), lay)

    def __call__(self, state: Any, *shared: Any) -> tuple[Any, Any]:
        state, metrics = self.compiled(state, self._count, *shared)
        if self.n < self.cap:
            metrics = _head(metrics, self.n)
        return state, metrics

    def __getattr__(self, name: str) -> Any:
        if name == "compiled":  # not set yet: no recursion
            raise AttributeError(name)
        return getattr(self.compiled, name)


@partial(jax.jit, static_argnums=1)
def _head(metrics: Any, n: int) -> Any:
    # One program for the whole tree (leaf by leaf would be one per shape).
    return jax.tree.map(lambda m: m[:, :n], metrics)
