r"""Per-env selection, and an auto-reset that resets only the envs whose
episode ended, even under ``vmap``.

An adapter steps one env; jaxpg ``vmap``\ s it over ``B`` envs (and over
seeds). Written the plain way, ``where(over, reset(key), state)`` inside the
vmapped step computes the reset for every env on every step: for brax and
MJX, whose reset runs the physics' forward pass, that doubles the work of a
step although ~``B / T`` envs end per step (``T`` the episode length).

:func:`reset_where` has the same value (``reset(key)`` where ``over``, else
``current``; the reset of an env that ended uses that env's own key, so the
result is bit-equal to the plain way) but a batching rule of its own: over a
batch of ``N`` envs (every ``vmap`` level folded into one), it counts the
``n`` envs that ended and resets only those, gathered: none when ``n = 0``;
one batch of ``s = ⌈rate · N⌉`` resets when ``n ≤ s``; otherwise a loop over
``⌈n / c⌉`` chunks of ``c = ⌈N / 16⌉`` resets. The work per step is that of
at most ``n + c - 1`` resets (``0`` on a step where nothing ended), whatever
the fraction of envs that end, with two reset programs compiled (sizes
``s`` and ``c``), not one per size.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from jax.custom_batching import custom_vmap

from jaxpg.kernels.keys import data_to_key, is_key, key_to_data

Array = jax.Array


def _where(pred: Array, a: Array, b: Array) -> Array:
    # A suite may keep plain Python values in its state (Jumanji's Tetris,
    # FlatPack, PacMan): they select like 0-d arrays.
    a, b = jnp.asarray(a), jnp.asarray(b)
    p = pred.reshape(pred.shape + (1,) * (a.ndim - pred.ndim))
    if is_key(a):
        data = jnp.where(p[..., None], key_to_data(a), key_to_data(b))
        return data_to_key(a, data)
    return jnp.where(p, a, b)


def select_envs(pred: Array, on_true: Any, on_false: Any) -> Any:
    """Per-env ``where`` over pytrees (typed PRNG keys included).

    Args:
      pred: bool, ``[B]`` (or ``[]`` for one env): the leading axes of every leaf.
      on_true, on_false: pytrees of the same structure, leaves ``[B, ...]``.
    """
    pred = jnp.asarray(pred)
    return jax.tree.map(lambda a, b: _where(pred, a, b), on_true, on_false)


def _gather_sizes(n: int, rate: float) -> tuple[int, int]:
    """``(s, c)`` for ``n`` envs: the single gather of the few-ended case,
    ``⌈rate · n⌉``, and the chunk of the loop, ``⌈n / 16⌉`` (``s ≤ c ≤ n``)."""
    chunk = -(-n // 16)
    return min(chunk, max(1, math.ceil(rate * n))), chunk


def _flat(x: Array, batched: bool, size: int) -> Array:
    """``[S, N, ...]`` (or an unbatched ``[N, ...]``, broadcast) as ``[S·N, ...]``."""
    if not batched:
        x = jnp.broadcast_to(x[None], (size, *x.shape))
    return x.reshape((size * x.shape[1], *x.shape[2:]))


def _lanes_reset(reset: Callable[[Array], Any], rate: float):
    """``(over [N], keys [N], current [N]) -> new [N]``, resetting only the ended
    envs; an outer ``vmap`` folds its axis into ``N``."""

    @custom_vmap
    def lanes(over, keys, current):
        size = over.shape[0]
        count = jnp.sum(over, dtype=jnp.int32)

        small, chunk = _gather_sizes(size, rate)

        def ended(width):
            """The ended envs' indices first, then ``size`` (dropped by the
            scatter), padded to a multiple of ``width``."""
            padded = -(-size // width) * width
            return jnp.nonzero(over, size=padded, fill_value=size)[0]

        def put(cur, idx):
            new = jax.vmap(reset)(keys[jnp.minimum(idx, size - 1)])
            return jax.tree.map(lambda c, v: c.at[idx].set(v, mode="drop"), cur, new)

        def nothing(_):
            return current

        def few(_):
            return put(current, jnp.nonzero(over, size=small, fill_value=size)[0])

        def many(_):
            order = ended(chunk)

            def body(i, cur):
                idx = jax.lax.dynamic_slice_in_dim(order, i * chunk, chunk)
                return put(cur, idx)

            return jax.lax.fori_loop(0, (count + chunk - 1) // chunk, body, current)

        if small == chunk:  # one reset program: the loop's
            return jax.lax.switch(jnp.minimum(count, 1), [nothing, many], None)
        branch = jnp.where(count == 0, 0, jnp.where(count <= small, 1, 2))
        return jax.lax.switch(branch, [nothing, few, many], None)

    @lanes.def_vmap
    def _fold(axis_size, in_batched, over, keys, current):
        ob, kb, cb = in_batched
        n = over.shape[1] if ob else over.shape[0]
        flat = (
            _flat(over, ob, axis_size),
            _flat(keys, kb, axis_size),
            jax.tree.map(lambda x, b: _flat(x, b, axis_size), current, cb),
        )
        out = lanes(*flat)
        unflat = jax.tree.map(lambda x: x.reshape((axis_size, n, *x.shape[1:])), out)
        return unflat, jax.tree.map(lambda _: True, out)

    return lanes


def reset_where(
    over: Array,
    key: Array,
    current: Any,
    reset: Callable[[Array], Any],
    rate: float = 1.0 / 64,
) -> Any:
    r"""``reset(key)`` if ``over`` else ``current``, for one env; under ``vmap``
    the reset runs only for the envs with ``over`` (see the module docs).

    Args:
      over: bool ``[]``, the episode ended.
      key: the PRNG key of this env's reset.
      current: the pytree kept where ``over`` is false, the structure of
        ``reset(key)``.
      reset: ``key -> pytree``, pure.
      rate: the expected fraction of envs ending per step (``≈ 1 / T``); sets
        the size of the single gather used when few envs ended
        (``⌈rate · N⌉``, at most the loop's chunk ``⌈N / 16⌉``).

    Raises:
      ValueError: ``over`` is not a scalar or ``rate`` not in ``(0, 1]``.
    """
    if jnp.ndim(over) != 0:
        raise ValueError(f"over.shape={jnp.shape(over)} is invalid: a scalar per env")
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"rate={rate!r} is invalid: in (0, 1]")

    @custom_vmap
    def one(over, key, current):
        return jax.lax.cond(over, reset, lambda _: current, key)

    @one.def_vmap
    def _batch(axis_size, in_batched, over, key, current):
        ob, kb, cb = in_batched
        lift = lambda x, b: x if b else jnp.broadcast_to(x[None], (axis_size, *x.shape))  # noqa: E731
        out = _lanes_reset(reset, rate)(
            lift(over, ob),
            lift(key, kb),
            jax.tree.map(lift, current, cb),
        )
        return out, jax.tree.map(lambda _: True, out)

    return one(jnp.asarray(over, jnp.bool_), key, current)
