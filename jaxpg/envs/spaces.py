"""Action spaces jaxpg adds to gymnax's: :class:`MultiDiscrete`."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class MultiDiscrete:
    """A jittable space of ``K`` independent categorical choices: an int32
    ``[K]`` array whose entry ``k`` lies in ``[0, nvec[k])``.

    The space jaxpg's factorised categorical policy acts in (an env may use any
    space with an ``nvec`` attribute instead, e.g. Jumanji's).
    """

    def __init__(self, nvec: Any):
        self.nvec = np.asarray(nvec, np.int32).reshape(-1)
        if self.nvec.size == 0 or (self.nvec < 1).any():
            raise ValueError(
                f"nvec={nvec!r} is invalid: must be a non-empty sequence of ints >= 1"
            )
        self.shape = (int(self.nvec.size),)
        self.dtype = jnp.int32

    def __repr__(self) -> str:
        return f"MultiDiscrete({self.nvec.tolist()})"

    def sample(self, key: Array) -> Array:
        """``[K]`` int32, uniform in every factor."""
        u = jax.random.uniform(key, self.shape)
        return jnp.floor(u * jnp.asarray(self.nvec)).astype(jnp.int32)

    def contains(self, x: Array) -> Array:
        """Whether ``x`` (``[K]`` ints) lies in the space."""
        x = jnp.asarray(x)
        return jnp.all((x >= 0) & (x < jnp.asarray(self.nvec)))
