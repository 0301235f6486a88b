"""jaxpg.kernels.keys: typed PRNG keys to raw key data and back, leaf by leaf."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.kernels.keys import data_to_key, is_key, key_to_data


def test_a_state_of_keys_round_trips_through_its_raw_data():
    state = {
        "key": jax.random.split(jax.random.key(3), 4),  # [4] typed keys
        "rbg": jax.random.key(5, impl="rbg"),  # another implementation
        "w": jnp.arange(3.0),
        "step": 7,
    }
    raw = jax.tree.map(key_to_data, state)
    assert not any(is_key(x) for x in jax.tree.leaves(raw))
    assert raw["key"].shape == (4, 2) and raw["key"].dtype == jnp.uint32
    assert raw["rbg"].shape == (4,)  # rbg keys hold 4 words
    # Wrapped back against the abstract state: the same keys, same impls.
    like = jax.eval_shape(lambda: state)
    back = jax.tree.map(data_to_key, like, raw)
    assert is_key(back["key"]) and is_key(back["rbg"])
    assert jax.random.key_impl(back["rbg"]) == jax.random.key_impl(state["rbg"])
    np.testing.assert_array_equal(
        jax.random.key_data(back["key"]), jax.random.key_data(state["key"])
    )
    np.testing.assert_array_equal(
        jax.random.uniform(back["key"][2]), jax.random.uniform(state["key"][2])
    )
    assert back["w"] is raw["w"] and back["step"] == 7


def test_is_key_is_false_for_raw_data_and_non_arrays():
    assert is_key(jax.random.key(0))
    assert is_key(jax.ShapeDtypeStruct((2,), jax.random.key(0).dtype))
    assert not is_key(jax.random.key_data(jax.random.key(0)))
    assert not is_key(np.zeros(2)) and not is_key(3) and not is_key(None)
