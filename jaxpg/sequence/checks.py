r"""Validation of the token side's settings and of a user's reward functions.

Every check raises ``ValueError`` naming the setting (``RLConfig.lr``,
``make_sft(lr=...)``), the value given and what is allowed, as
:class:`jaxpg.Config` does on the gymnax side. Numbers are checked where they
are used, in float32: ``1e-50`` is 0 there and ``1e39`` is inf.

Learning rates are bounded by :data:`MAX_LR`: Adam moves every parameter by
about the learning rate per step, so a rate above 1 is a typo (``3`` for
``3e-3``, ``1e30``), not a setting.
"""

from __future__ import annotations

import math
from typing import Any

import jax
import numpy as np

from jaxpg.checks import positive_int

__all__ = ["MAX_LR", "check_rewards", "learning_rate", "number", "positive_int"]

MAX_LR = 1.0
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
) -> float:
    """``value`` as a float that is finite in float32 and in ``[low, high]``
    (``(low, high]`` with ``low_open``; a missing bound is not checked),
    else ValueError naming ``name``, the value and the allowed range."""
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low:g}")
    if high is not None:
        bounds.append(f"<= {high:g}")
    allowed = " ".join(["a finite number", " and ".join(bounds)]).strip()
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        raise ValueError(
            f"{name}={value!r} is invalid: must be {allowed}, "
            f"got {type(value).__name__}"
        )
    x = float(value)
    in_float32 = float(np.float32(x)) if abs(x) <= _FLOAT32_MAX else math.inf
    ok = math.isfinite(in_float32)
    if ok and low is not None:
        ok = in_float32 > low if low_open else in_float32 >= low
    if ok and high is not None:
        ok = x <= high
    if not ok:
        raise ValueError(f"{name}={value!r} is invalid: must be {allowed}")
    return x


def learning_rate(name: str, value: Any) -> float:
    """A learning rate: finite, ``> 0`` in float32 and ``<=`` :data:`MAX_LR`."""
    return number(name, value, 0.0, MAX_LR, low_open=True)


def check_rewards(name: str, value: Any, n: int, what: str) -> jax.Array:
    """A reward function's output, which must be ``[n]`` (one number per
    response); ValueError naming the function ``name``, the shape it returned
    and the expected one (``what`` says where ``n`` comes from). Checked at
    trace time: free when compiled."""
    shape = tuple(np.shape(value))
    if shape != (n,):
        raise ValueError(
            f"{name} returned shape {list(shape)}: a reward function must return "
            f"[N] = [{n}], one number per response ({what})"
        )
    dtype = jax.numpy.result_type(value)
    if not any(np.issubdtype(dtype, k) for k in (np.floating, np.integer, np.bool_)):
        raise ValueError(
            f"{name} returned dtype {dtype}: a reward function must return numbers"
        )
    return jax.numpy.asarray(value, jax.numpy.float32)
