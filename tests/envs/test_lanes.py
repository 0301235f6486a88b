"""reset_where: the value of ``where(over, reset(key), current)`` per env,
with the reset computed only for the envs that ended, under one or two
``vmap`` levels."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.envs.lanes import _gather_sizes, reset_where, select_envs

B = 16


def _data(tree):
    return jax.tree.map(
        lambda x: np.asarray(
            jax.random.key_data(x)
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            else x
        ),
        tree,
    )


@pytest.fixture(scope="module")
def case():
    calls = []

    def reset(key):
        jax.debug.callback(calls.append, jax.random.key_data(key))
        return {"x": jax.random.normal(key, (3,)), "k": jax.random.split(key)[0]}

    keys = jax.random.split(jax.random.key(0), B)
    current = jax.vmap(lambda k: {"x": jnp.zeros(3), "k": k})(
        jax.random.split(jax.random.key(1), B)
    )
    fresh = jax.jit(jax.vmap(reset))(keys)
    jax.effects_barrier()
    calls.clear()
    one = lambda o, k, c: reset_where(o, k, c, reset)  # noqa: E731
    return (
        calls,
        keys,
        current,
        fresh,
        jax.jit(jax.vmap(one)),
        jax.jit(jax.vmap(jax.vmap(one))),
    )


@pytest.mark.parametrize("ended", [[], [3], [0, 5], list(range(0, B, 3))])
def test_equals_the_plain_where_and_resets_few_envs(case, ended):
    """B = 16: chunks of 1, so exactly the ended envs are reset."""
    calls, keys, current, fresh, step, _ = case
    over = np.isin(np.arange(B), ended)
    out = step(jnp.asarray(over), keys, current)
    jax.effects_barrier()
    expected = select_envs(jnp.asarray(over), fresh, current)
    jax.tree.map(np.testing.assert_array_equal, _data(out), _data(expected))
    assert len(calls) == len(ended)
    calls.clear()


@pytest.mark.parametrize(
    "ended, resets",
    [
        ([(1, 4)], 1),
        ([(0, 2), (1, 4), (1, 15)], 4),
        ([(s, i) for s in (0, 1) for i in range(B)], 2 * B),
    ],
)
def test_an_outer_vmap_is_folded_into_one_batch(case, ended, resets):
    """Two seeds of B envs folded into N = 32: one ended env takes one reset
    (not 2·B); more take chunks of ⌈N / 16⌉ = 2, the padding dropped."""
    calls, keys, current, fresh, _, nested = case
    over = np.zeros((2, B), bool)
    for s, i in ended:
        over[s, i] = True
    both = lambda x: jnp.stack([x, x])  # noqa: E731
    out = nested(jnp.asarray(over), both(keys), jax.tree.map(both, current))
    jax.effects_barrier()
    assert len(calls) == resets
    calls.clear()
    for s in (0, 1):
        expected = select_envs(jnp.asarray(over[s]), fresh, current)
        jax.tree.map(
            np.testing.assert_array_equal,
            _data(jax.tree.map(lambda x, s=s: x[s], out)),
            _data(expected),
        )


def test_gather_sizes():
    """(single gather, chunk): brax's 256 envs at rate 2/1000 gather 1 env
    alone and 16 per chunk; the gather never exceeds the chunk."""
    assert _gather_sizes(256, 2 / 1000) == (1, 16)
    assert _gather_sizes(256, 0.5) == (16, 16)
    assert _gather_sizes(3, 1.0) == (1, 1)


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="rate=0"):
        reset_where(jnp.bool_(True), jax.random.key(0), 0.0, lambda k: 1.0, rate=0)
    with pytest.raises(ValueError, match=r"over\.shape"):
        reset_where(jnp.ones(2, bool), jax.random.key(0), 0.0, lambda k: 1.0)
