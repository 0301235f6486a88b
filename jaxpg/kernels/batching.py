r"""Loops and shuffles that stay cheap under ``vmap``, on one device or many.

A ``lax.while_loop`` whose predicate differs across a ``vmap``-ed batch is
lowered by JAX with a ``select`` of the *whole carry* at every iteration; for
a rollout that carries a ``[L, B, ...]`` buffer that is a copy of the buffer
per step. :func:`while_loop` avoids it: under ``vmap`` (a user's plain
``jax.vmap``, nested vmaps, ``vmap`` inside ``scan`` or ``shard_map``) its
predicate is OR-ed over the members of the batch and the body runs for every
member until all are done, with no select. The body must therefore be a
*masked* iteration for a member whose own predicate is already false: it may
advance counters and keys it does not return as results, but must leave the
member's results unchanged. The OR runs over the members that one program
holds, never across devices: sharded members (``shard_map`` over a mesh) each
run their own loop, so there is no collective inside the loop.

:func:`chunked_while_loop` tests its predicate only every ``chunk`` iterations:
its body is a ``lax.scan`` of ``chunk`` iterations, so up to ``chunk - 1``
iterations run after the predicate turns false. With a masked body (the same
guarantee as above, now also unbatched) the results are those of
:func:`while_loop`, bit for bit. On a GPU an iteration of a while loop whose
predicate depends on data ends with the predicate read back by the host; a
scan's trip count is static, so a chunk pays one read-back instead of
``chunk``.

:data:`SEED_AXIS` and :data:`SWEEP_AXIS` name the vmap axes of jaxpg's drivers;
nothing depends on them any more (kept for code that passes them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
from jax import custom_batching

from jaxpg.checks import positive_int

SEED_AXIS = "jaxpg_seed"
SWEEP_AXIS = "jaxpg_sweep"

Carry = TypeVar("Carry")


def while_loop(
    cond_fun: Callable[[Carry], jax.Array],
    body_fun: Callable[[Carry], Carry],
    init_val: Carry,
) -> Carry:
    """``lax.while_loop`` that ``vmap`` batches without a whole-carry select.

    Unbatched, it *is* ``lax.while_loop``. Batched, it runs while any member's
    ``cond_fun`` holds and applies ``body_fun`` to every member each iteration
    (see the module docstring for what the body must then guarantee). Values
    that ``cond_fun`` and ``body_fun`` close over may be batched too.

    Not differentiable (like ``lax.while_loop`` in reverse mode).
    """
    cond_c, cond_consts = _close(cond_fun, init_val)
    body_c, body_consts = _close(body_fun, init_val)
    return _while(cond_c, body_c, init_val, cond_consts, body_consts)


def chunked_while_loop(
    cond_fun: Callable[[Carry], jax.Array],
    body_fun: Callable[[Carry], Carry],
    init_val: Carry,
    chunk: int,
) -> Carry:
    """:func:`while_loop` that tests ``cond_fun`` every ``chunk`` iterations.

    Runs ``body_fun`` ``chunk`` times (a ``lax.scan``) between tests of
    ``cond_fun``, so it may run up to ``chunk - 1`` iterations after
    ``cond_fun`` turned false; ``body_fun`` must make those masked iterations
    (see the module docstring). ``chunk=1`` is :func:`while_loop` itself.

    Raises:
      ValueError: ``chunk`` is not an int >= 1.
    """
    chunk = positive_int("chunk", chunk)
    if chunk == 1:
        return while_loop(cond_fun, body_fun, init_val)

    def chunk_body(carry: Carry) -> Carry:
        return jax.lax.scan(lambda c, _: (body_fun(c), None), carry, length=chunk)[0]

    return while_loop(cond_fun, chunk_body, init_val)


def _close(fun: Callable, example: Any) -> tuple[Callable, list]:
    """``fun`` as ``fun_c(carry, consts)`` with every closed-over array —
    tracers of an enclosing ``vmap`` included — moved into ``consts``."""
    closed, shape = jax.make_jaxpr(fun, return_shape=True)(example)
    out_tree = jax.tree.structure(shape)
    jaxpr = closed.jaxpr

    def fun_c(carry: Any, consts: list) -> Any:
        out = jax.core.eval_jaxpr(jaxpr, consts, *jax.tree.leaves(carry))
        return jax.tree.unflatten(out_tree, out)

    return fun_c, list(closed.consts)


def _while(
    cond_c: Callable, body_c: Callable, init: Any, cond_consts: list, body_consts
) -> Any:
    @custom_batching.custom_vmap
    def loop(init, cond_consts, body_consts):
        return jax.lax.while_loop(
            lambda c: cond_c(c, cond_consts), lambda c: body_c(c, body_consts), init
        )

    @loop.def_vmap
    def rule(axis_size, in_batched, init, cond_consts, body_consts):
        init_b, cond_b, body_b = in_batched
        init = jax.tree.map(lambda x, b: _to_batch(x, b, axis_size), init, init_b)
        axes = lambda flags: [0 if f else None for f in flags]  # noqa: E731
        v_cond = jax.vmap(cond_c, in_axes=(0, axes(cond_b)))
        v_body = jax.vmap(body_c, in_axes=(0, axes(body_b)))
        # Recursing through _while (not lax.while_loop) keeps an enclosing
        # vmap on this same rule.
        out = _while(
            lambda c, k: jnp.any(v_cond(c, k)), v_body, init, cond_consts, body_consts
        )
        return out, jax.tree.map(lambda _: True, out)

    return loop(init, cond_consts, body_consts)


def batched_like(tree: Any, like: Any) -> Any:
    """``tree`` with every leaf batched over the ``vmap`` axes of ``like``.

    Outside ``vmap``, and for a leaf batched already, the identity. Under a
    ``vmap`` over which some leaf of ``like`` is batched, each unbatched leaf
    of ``tree`` is broadcast to that batch (the same values in every member).

    Why: ``lax.scan``'s batching rule batches its body for the carry's
    batching, and again when a carry comes out batched that went in
    unbatched, until nothing changes; each pass re-batches every scan nested
    inside. A train state starts with values that do not depend on the key
    (zero biases, Adam moments, counters), which every update then makes
    per-member: batched like the key from the start, the update body is
    batched once instead of twice per nesting level. The program computes
    the same: the scan broadcasts those values on entry either way.

    Differentiable: tangents pass through unchanged.
    """
    return jax.tree.map(lambda x: _batched_like(x, like), tree)


@jax.custom_jvp
def _batched_like(x: jax.Array, like: Any) -> jax.Array:
    return _broadcast_to_batch(x, like)


@_batched_like.defjvp
def _batched_like_jvp(primals, tangents):
    x, like = primals
    return _batched_like(x, like), tangents[0]


@custom_batching.custom_vmap
def _broadcast_to_batch(x: jax.Array, like: Any) -> jax.Array:
    return x


@_broadcast_to_batch.def_vmap
def _broadcast_to_batch_rule(axis_size, in_batched, x, like):
    return _to_batch(x, in_batched[0], axis_size), True


def _to_batch(x: jax.Array, batched: bool, axis_size: int) -> jax.Array:
    """``x`` with a leading batch axis of ``axis_size`` (inside a batching
    rule): as it is if ``batched``, else the same value in every member."""
    return x if batched else jnp.broadcast_to(x, (axis_size, *x.shape))


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
