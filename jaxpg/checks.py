"""Argument checks shared by every layer.

Each raises ``ValueError`` naming the argument, the value given and what is
allowed, so that a bad count reads the same wherever it is given.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["positive_int"]


def positive_int(name: str, value: Any, low: int = 1) -> int:
    """``value`` as an int ``>= low`` (a bool is not an int, a NumPy integer
    is), else ValueError naming ``name``."""
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        raise ValueError(
            f"{name}={value!r} is invalid: must be an int >= {low}, "
            f"got {type(value).__name__}"
        )
    if value < low:
        raise ValueError(f"{name}={value!r} is invalid: must be an int >= {low}")
    return int(value)
