r"""Comparing runs across environments: the rliable protocol, vectorised in NumPy.

Given, for each compared *method* (an algorithm or setting), a score matrix
``[N runs, M tasks]`` (normalised per task, see :mod:`jaxpg.analysis.scores`), this
module computes what Agarwal et al. (2021) recommend reporting, with the same
definitions as the ``rliable`` 1.2.0 library (tests compare with its numbers):

* aggregates: IQM (25% trimmed mean of all ``N * M`` scores), mean (of the
  per-task means), median (of the per-task means), optimality gap
  ``γ - mean(min(s, γ))`` with ``γ = 1``;
* the probability of improvement ``P(X > Y)``: per task, the Mann-Whitney
  ``U / (N_X N_Y)`` (pairs with ``x > y`` plus half the ties), averaged over
  tasks;
* performance profiles: the fraction of all runs (of all tasks) with a score
  above each threshold ``τ``;
* 95% intervals for all of them from a *stratified* percentile bootstrap:
  every resample draws, within each task independently, ``N`` runs with
  replacement (for ``P(X > Y)``, ``X`` and ``Y`` are resampled
  independently).

The resamples are drawn from ``np.random.default_rng(seed)``: the same call
gives the same intervals; the intervals differ from rliable's (another
generator) only by Monte-Carlo error, which shrinks as ``1/sqrt(reps)``.

Shapes: ``N`` runs, ``M`` tasks, ``R`` bootstrap resamples, ``T`` thresholds;
a leading ``...`` batches resamples.

Reference: R. Agarwal et al., "Deep Reinforcement Learning at the Edge of the
Statistical Precipice", NeurIPS 2021.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from jaxpg.analysis.stats import iqm

__all__ = [
    "AGGREGATES",
    "aggregate_metrics",
    "compare",
    "optimality_gap",
    "probability_of_improvement",
    "score_distribution",
    "stratified_interval",
]

AGGREGATES = ("iqm", "mean", "median", "optimality_gap")
_BATCH_ELEMENTS = 4_000_000  # resamples are drawn in batches of about this size


def _iqm(x: np.ndarray) -> np.ndarray:
    """``[..., N, M] -> [...]``: mean of the middle 50% of all N*M values
    (drop ``floor(n / 4)`` from each end, as ``scipy.stats.trim_mean``)."""
    return np.asarray(iqm(x.reshape(*x.shape[:-2], -1), axis=-1))


def optimality_gap(x: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """``[..., N, M] -> [...]``: ``γ - mean(min(x, γ))`` over runs and tasks."""
    return gamma - np.minimum(x, gamma).mean(axis=(-2, -1))


def aggregate_metrics(x: Any) -> np.ndarray:
    """``[..., N, M] -> [..., 4]``: IQM, mean, median, optimality gap (in
    :data:`AGGREGATES` order) of finite scores (a NaN raises ``ValueError``,
    as :func:`jaxpg.analysis.stats.iqm` does)."""
    x = np.asarray(x, np.float64)
    task_means = x.mean(axis=-2)
    return np.stack(
        [
            _iqm(x),
            task_means.mean(axis=-1),
            np.median(task_means, axis=-1),
            optimality_gap(x),
        ],
        axis=-1,
    )


def probability_of_improvement(x: Any, y: Any) -> np.ndarray:
    """``[..., N, M], [..., K, M] -> [...]``: ``P(X > Y)`` averaged over tasks
    (ties count one half)."""
    x = np.asarray(x, np.float64)[..., :, None, :]
    y = np.asarray(y, np.float64)[..., None, :, :]
    wins = (x > y).mean(axis=(-3, -2)) + 0.5 * (x == y).mean(axis=(-3, -2))
    return wins.mean(axis=-1)


def score_distribution(x: Any, taus: Any) -> np.ndarray:
    """``[..., N, M], [T] -> [..., T]``: fraction of the runs (all tasks
    pooled) with a score above each ``τ``."""
    x = np.asarray(x, np.float64)
    taus = np.asarray(taus, np.float64)
    return (x[..., None] > taus).mean(axis=(-3, -2))


def _resample(rng: np.random.Generator, x: np.ndarray, reps: int) -> np.ndarray:
    """``[N, M] -> [reps, N, M]``: per task, ``N`` runs drawn with
    replacement."""
    n, m = x.shape
    rows = rng.integers(0, n, size=(reps, n, m))
    return x[rows, np.arange(m)]


def stratified_interval(
    fn: Callable[..., np.ndarray],
    *scores: Any,
    reps: int = 50_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    r"""Point estimate and stratified percentile-bootstrap interval of ``fn``.

    Args:
      fn: ``fn(*arrays) -> [..., K]`` (or ``[...]``), vectorised over a
        leading resample axis, e.g. :func:`aggregate_metrics`.
      *scores: one or more ``[N_i, M]`` matrices (same ``M``), resampled
        independently, each within every task.
      reps: ``R >= 1`` resamples.
      confidence: interval level in ``(0, 1)``.
      seed: seed of the NumPy generator.

    Returns:
      ``(point, low, high)``, each ``fn``'s output shape.

    Raises:
      ValueError: a score matrix is not ``[N >= 1, M >= 1]`` with one ``M``,
        holds a non-finite value, or ``reps`` / ``confidence`` is invalid.
    """
    mats = [np.asarray(s, np.float64) for s in scores]
    for i, s in enumerate(mats):
        if s.ndim != 2 or 0 in s.shape:
            raise ValueError(f"scores[{i}] must be [N runs, M tasks], got {s.shape}")
        if not np.isfinite(s).all():
            raise ValueError(f"scores[{i}] holds non-finite values; drop those runs")
    if len({s.shape[1] for s in mats}) != 1:
        raise ValueError(f"score matrices differ in tasks: {[s.shape for s in mats]}")
    if isinstance(reps, bool) or not isinstance(reps, (int, np.integer)) or reps < 1:
        raise ValueError(f"reps={reps!r} is invalid: must be an int >= 1")
    reps = int(reps)
    if not 0.0 < confidence < 1.0:
        raise ValueError(f"confidence={confidence!r} is invalid: must be in (0, 1)")
    rng = np.random.default_rng(seed)
    point = np.asarray(fn(*mats))
    per_rep = max(sum(s.size for s in mats) * max(s.shape[0] for s in mats), 1)
    batch = max(1, min(reps, _BATCH_ELEMENTS // per_rep))
    samples = []
    for start in range(0, reps, batch):
        size = min(batch, reps - start)
        samples.append(np.asarray(fn(*[_resample(rng, s, size) for s in mats])))
    dist = np.concatenate(samples, axis=0)
    tail = 100.0 * (1.0 - confidence) / 2.0
    low, high = np.percentile(dist, [tail, 100.0 - tail], axis=0)
    return point, low, high


def compare(
    scores: Mapping[str, Any],
    *,
    taus: Any = None,
    reps: int = 50_000,
    profile_reps: int = 2_000,
    confidence: float = 0.95,
    seed: int = 0,
) -> dict[str, Any]:
    r"""Everything ``jaxpg compare`` reports, for named ``[N_i, M]`` score
    matrices (normalised scores, tasks in the same column order).

    Args:
      scores: ``{method: [N_i, M]}``.
      taus: ``[T]`` thresholds of the performance profiles; default 41 points
        from ``min(0, lowest score)`` to ``max(1.2, highest score)``.
      reps: resamples for the aggregates and ``P(X > Y)``.
      profile_reps: resamples for the profile bands (rliable's default 2000).
      confidence: interval level.
      seed: seed of the resamples (each statistic gets its own stream).

    Returns:
      A JSON-ready dict: ``aggregates[method][metric] = {estimate, low,
      high}``, ``probability_of_improvement["X > Y"] = {estimate, low,
      high}``, ``profiles = {taus, methods: {method: {fraction, low,
      high}}}``, plus ``reps``, ``confidence``, ``num_runs``.
    """
    if not scores:
        raise ValueError("scores is empty: give at least one method")
    mats = {k: np.asarray(v, np.float64) for k, v in scores.items()}
    for name, v in mats.items():  # before the default taus read them
        if v.ndim != 2 or 0 in v.shape:
            raise ValueError(
                f"scores[{name!r}] must be [N runs, M tasks], got {v.shape}"
            )
    if taus is None:
        lo = min(0.0, min(float(v.min()) for v in mats.values()))
        hi = max(1.2, max(float(v.max()) for v in mats.values()))
        taus = np.linspace(lo, hi, 41)
    taus = np.asarray(taus, np.float64)
    out: dict[str, Any] = {
        "reps": reps,
        "profile_reps": profile_reps,
        "confidence": confidence,
        "num_runs": {k: int(v.shape[0]) for k, v in mats.items()},
        "aggregates": {},
        "probability_of_improvement": {},
        "profiles": {"taus": taus.tolist(), "methods": {}},
    }
    for i, (name, x) in enumerate(mats.items()):
        point, low, high = stratified_interval(
            aggregate_metrics, x, reps=reps, confidence=confidence, seed=seed + i
        )
        out["aggregates"][name] = {
            metric: {
                "estimate": float(point[j]),
                "low": float(low[j]),
                "high": float(high[j]),
            }
            for j, metric in enumerate(AGGREGATES)
        }
        frac, flow, fhigh = stratified_interval(
            lambda s: score_distribution(s, taus),
            x,
            reps=profile_reps,
            confidence=confidence,
            seed=seed + 1000 + i,
        )
        out["profiles"]["methods"][name] = {
            "fraction": frac.tolist(),
            "low": flow.tolist(),
            "high": fhigh.tolist(),
        }
    names = list(mats)
    for i, a in enumerate(names):
        for j, b in enumerate(names):
            if a == b:
                continue
            point, low, high = stratified_interval(
                probability_of_improvement,
                mats[a],
                mats[b],
                reps=reps,
                confidence=confidence,
                seed=seed + 2000 + i * len(names) + j,
            )
            out["probability_of_improvement"][f"{a} > {b}"] = {
                "estimate": float(point),
                "low": float(low),
                "high": float(high),
            }
    return out
