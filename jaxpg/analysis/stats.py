r"""Statistics over runs, on the host (NumPy): IQM and bootstrap intervals.

A few seeds of an RL algorithm are a small sample from a wide distribution;
report an aggregate with an interval, not a mean alone. Following Agarwal et
al. (2021), the aggregate of choice is the interquartile mean (robust to
outlier runs, less noisy than the median) and the interval a percentile
bootstrap over runs; over several tasks, a *stratified* bootstrap resamples
the runs of each task independently.

Shapes: ``N`` runs (seeds), ``M`` tasks, ``R`` bootstrap resamples.
Randomness comes from ``np.random.default_rng(seed)``: the same call gives the
same interval.

Reference: R. Agarwal, M. Schwarzer, P. S. Castro, A. Courville, M. G.
Bellemare, "Deep Reinforcement Learning at the Edge of the Statistical
Precipice", NeurIPS 2021 (the ``rliable`` library).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import numpy as np

__all__ = ["ConfidenceInterval", "bootstrap_ci", "iqm", "stratified_bootstrap_ci"]

Stat = Callable[[np.ndarray], Any]


class ConfidenceInterval(NamedTuple):
    """A point estimate with a two-sided interval ``[low, high]``.

    Each field is a float, or an array of the statistic's shape when the
    statistic returns an array (e.g. a mean curve).
    """

    estimate: Any
    low: Any
    high: Any


def iqm(x: Any, axis: int | None = None) -> Any:
    r"""Interquartile mean: the mean of the middle 50% of the values.

    The 25%-trimmed mean of Agarwal et al. (2021), identical to
    ``scipy.stats.trim_mean(x, 0.25, axis)``: sort the ``n`` values, drop
    ``k = floor(n / 4)`` from each end and average the remaining ``n - 2k``.

    .. math:: \mathrm{IQM}(x) = \frac{1}{n - 2k} \sum_{i=k}^{n-k-1} x_{(i)}

    Args:
      x: values, any shape (e.g. ``[N]`` runs or ``[N, M]`` runs × tasks).
      axis: the axis to reduce; ``None`` (default) pools all values, as
        ``rliable`` does for runs × tasks.

    Returns:
      A float (``axis=None``) or an array with ``axis`` removed.

    Raises:
      ValueError: ``x`` is empty along ``axis`` or holds NaN.
    """
    a = np.asarray(x, dtype=np.float64)
    if axis is None:
        a, axis = a.reshape(-1), 0
    n = a.shape[axis]
    if n == 0:
        raise ValueError(f"iqm: x has no values along axis {axis} (shape {a.shape})")
    if np.isnan(a).any():
        raise ValueError("iqm: x holds NaN; drop or fill missing values first")
    k = n // 4
    trimmed = np.take(np.sort(a, axis=axis), np.arange(k, n - k), axis=axis)
    result = trimmed.mean(axis=axis)
    return float(result) if result.ndim == 0 else result


def bootstrap_ci(
    x: Any,
    stat: Stat = np.mean,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    r"""Percentile bootstrap interval of ``stat`` over runs.

    Draws ``R = num_resamples`` samples of ``N`` runs with replacement (rows of
    ``x``), evaluates ``stat`` on each, and returns the ``(1 - c) / 2`` and
    ``(1 + c) / 2`` quantiles of those values with ``c = confidence``; the
    estimate is ``stat(x)``.

    Args:
      x: ``[N, ...]`` one row per run. A scalar ``stat`` (``np.mean``,
        :func:`iqm`) pools each resample; a reducing one such as
        ``lambda a: a.mean(axis=0)`` on ``[N, G]`` gives a band ``[G]``.
      stat: ``[N, ...] -> scalar or array``, the statistic.
      num_resamples: ``R >= 1``.
      confidence: ``c`` in ``(0, 1)``.
      seed: seed of the NumPy generator that draws the resamples.

    Returns:
      :class:`ConfidenceInterval` ``(estimate, low, high)``.

    Raises:
      ValueError: ``x`` has no runs, or ``num_resamples`` / ``confidence`` is
        out of range.
    """
    data = np.asarray(x)
    if data.ndim == 0 or data.shape[0] == 0:
        raise ValueError(f"bootstrap_ci: x needs at least one run, got {data.shape}")
    _check_args(num_resamples, confidence)
    rng = np.random.default_rng(seed)
    n = data.shape[0]
    idx = rng.integers(0, n, size=(num_resamples, n))
    samples = np.stack([np.asarray(stat(data[i])) for i in idx])
    return _interval(stat(data), samples, confidence)


def stratified_bootstrap_ci(
    scores: Any,
    stat: Stat = iqm,
    num_resamples: int = 2000,
    confidence: float = 0.95,
    seed: int = 0,
) -> ConfidenceInterval:
    r"""Stratified percentile bootstrap over runs, for several tasks.

    Each resample draws, for every task independently, ``N`` of that task's
    runs with replacement, then evaluates ``stat`` on the ``[N, M]`` result
    (the default :func:`iqm` pools all runs of all tasks, as in Agarwal et
    al. 2021). Tasks are never mixed: a resample keeps ``N`` runs per task.

    Args:
      scores: ``[N, M]`` scores, ``N`` runs of each of ``M`` tasks (normalise
        them across tasks first when their scales differ).
      stat: ``[N, M] -> scalar or array``, the aggregate.
      num_resamples: ``R >= 1``.
      confidence: ``c`` in ``(0, 1)``.
      seed: seed of the NumPy generator that draws the resamples.

    Returns:
      :class:`ConfidenceInterval` ``(estimate, low, high)``.

    Raises:
      ValueError: ``scores`` is not ``[N, M]`` with ``N, M >= 1``, or
        ``num_resamples`` / ``confidence`` is out of range.
    """
    data = np.asarray(scores)
    if data.ndim != 2 or 0 in data.shape:
        raise ValueError(
            "stratified_bootstrap_ci: scores must be [N runs, M tasks] with "
            f"N, M >= 1, got shape {data.shape}"
        )
    _check_args(num_resamples, confidence)
    rng = np.random.default_rng(seed)
    n, m = data.shape
    rows = rng.integers(0, n, size=(num_resamples, n, m))
    cols = np.arange(m)
    samples = np.stack([np.asarray(stat(data[r, cols])) for r in rows])
    return _interval(stat(data), samples, confidence)


def _check_args(num_resamples: Any, confidence: Any) -> None:
    if (
        isinstance(num_resamples, bool)
        or not isinstance(num_resamples, int | np.integer)
        or num_resamples < 1
    ):
        raise ValueError(f"num_resamples={num_resamples!r} is invalid: must be >= 1")
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is invalid: must be in (0, 1)")


def _interval(
    estimate: Any, samples: np.ndarray, confidence: float
) -> ConfidenceInterval:
    tail = (1.0 - confidence) / 2.0
    low, high = np.quantile(samples, [tail, 1.0 - tail], axis=0)
    if np.ndim(estimate) == 0:
        return ConfidenceInterval(float(estimate), float(low), float(high))
    return ConfidenceInterval(np.asarray(estimate), low, high)
