"""Pytree helpers shared by the bit-identity tests."""

import jax
import numpy as np


def raw_leaves(tree) -> list[np.ndarray]:
    """Leaves as NumPy arrays on the host, typed PRNG keys as their raw key
    data (so that ``np.testing.assert_array_equal`` can compare them)."""

    def raw(x):
        if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
            return np.asarray(jax.random.key_data(x))
        return np.asarray(x)

    return [raw(x) for x in jax.tree.leaves(jax.device_get(tree))]
