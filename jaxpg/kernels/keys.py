"""Typed PRNG keys as raw key data and back, leaf by leaf.

Checkpoints, host copies and the device layout handle arrays of numbers;
a train state holds typed keys (``jax.random.key``). These three functions
convert one leaf, so that ``jax.tree.map`` converts a whole state; any other
leaf passes through unchanged.
"""

from __future__ import annotations

from typing import Any

import jax

__all__ = ["data_to_key", "is_key", "key_to_data"]


def is_key(x: Any) -> bool:
    """Whether ``x`` (an array, an abstract value, or anything) holds typed
    PRNG keys."""
    return hasattr(x, "dtype") and jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)


def key_to_data(x: Any) -> Any:
    """``x``'s raw key data ``[..., k]`` when it holds keys ``[...]``, else
    ``x``."""
    return jax.random.key_data(x) if is_key(x) else x


def data_to_key(like: Any, x: Any) -> Any:
    """Raw key data ``x`` wrapped as keys of ``like``'s implementation when
    ``like`` (an array or an abstract value) holds keys, else ``x``."""
    if not is_key(like):
        return x
    # The key type of an abstract value carries its implementation.
    return jax.random.wrap_key_data(x, impl=getattr(like.dtype, "_impl", None))
