"""jaxpg.analysis.stats: IQM and (stratified) percentile bootstrap intervals."""

from __future__ import annotations

import numpy as np
import pytest

from jaxpg.analysis.stats import bootstrap_ci, iqm, stratified_bootstrap_ci


def _iqm_loop(x: np.ndarray) -> float:
    """Reference: sort, drop floor(n/4) from each end, average (a loop)."""
    values = sorted(float(v) for v in np.ravel(x))
    k = len(values) // 4
    kept = values[k : len(values) - k]
    total = 0.0
    for v in kept:
        total += v
    return total / len(kept)


@pytest.mark.parametrize(
    ("x", "expected"),
    [
        ([1.0, 2.0, 3.0, 4.0], 2.5),  # k=1: mean(2, 3)
        ([1.0, 2.0, 3.0, 4.0, 100.0], 3.0),  # k=1: mean(2, 3, 4), outlier gone
        ([7.0, 1.0, 1000.0, 3.0, 6.0, 2.0, 5.0, 4.0], 4.5),  # k=2: mean(3..6)
        ([5.0, 1.0, 3.0], 3.0),  # n=3: k=0, the plain mean
        ([2.0], 2.0),
    ],
)
def test_iqm_hand_cases(x, expected):
    assert iqm(x) == pytest.approx(expected)


@pytest.mark.parametrize("n", [1, 2, 4, 5, 7, 16, 33])
def test_iqm_matches_loop_reference_and_scipy_trim_mean(n):
    x = np.random.default_rng(n).normal(size=n) ** 3
    assert iqm(x) == pytest.approx(_iqm_loop(x), rel=1e-12)
    scipy_stats = pytest.importorskip("scipy.stats")
    assert iqm(x) == pytest.approx(scipy_stats.trim_mean(x, 0.25), rel=1e-12)


def test_iqm_pools_runs_and_tasks_by_default_and_reduces_an_axis():
    x = np.random.default_rng(0).normal(size=(10, 3))
    assert iqm(x) == pytest.approx(_iqm_loop(x))
    per_task = iqm(x, axis=0)
    assert per_task.shape == (3,)
    np.testing.assert_allclose(per_task, [_iqm_loop(x[:, j]) for j in range(3)])


def test_iqm_rejects_nan_and_empty():
    with pytest.raises(ValueError, match="NaN"):
        iqm([1.0, np.nan])
    with pytest.raises(ValueError, match="no values"):
        iqm([])


def test_bootstrap_ci_of_constant_runs_is_a_point():
    ci = bootstrap_ci(np.full(8, 3.0))
    assert (ci.estimate, ci.low, ci.high) == (3.0, 3.0, 3.0)


def test_bootstrap_ci_single_run_is_degenerate():
    ci = bootstrap_ci([4.0], stat=iqm)
    assert (ci.estimate, ci.low, ci.high) == (4.0, 4.0, 4.0)


def test_bootstrap_ci_of_the_mean_is_close_to_the_normal_interval():
    # For N=50 normal runs the percentile bootstrap of the mean is close to
    # mean ± 1.96 sd / sqrt(N) (its width is ~sqrt((N-1)/N) of that).
    x = np.random.default_rng(3).normal(10.0, 2.0, size=50)
    ci = bootstrap_ci(x, num_resamples=4000)
    half = 1.96 * x.std(ddof=1) / np.sqrt(len(x))
    assert ci.estimate == pytest.approx(x.mean())
    assert ci.low < ci.estimate < ci.high
    assert ci.high - ci.low == pytest.approx(2 * half, rel=0.15)
    assert (ci.low + ci.high) / 2 == pytest.approx(x.mean(), abs=0.2 * half)


def test_bootstrap_ci_is_reproducible_and_depends_on_seed():
    x = np.random.default_rng(0).normal(size=12)
    assert bootstrap_ci(x, seed=5) == bootstrap_ci(x, seed=5)
    assert bootstrap_ci(x, seed=5) != bootstrap_ci(x, seed=6)


def test_bootstrap_ci_higher_confidence_is_wider():
    x = np.random.default_rng(1).normal(size=20)
    narrow = bootstrap_ci(x, confidence=0.5)
    wide = bootstrap_ci(x, confidence=0.99)
    assert wide.low < narrow.low < narrow.high < wide.high


def test_bootstrap_ci_array_statistic_gives_a_band():
    curves = np.random.default_rng(2).normal(size=(6, 30)).cumsum(axis=1)
    band = bootstrap_ci(curves, stat=lambda c: c.mean(axis=0), num_resamples=500)
    assert band.estimate.shape == band.low.shape == band.high.shape == (30,)
    np.testing.assert_allclose(band.estimate, curves.mean(axis=0))
    assert np.all(band.low <= band.high)
    assert np.all(band.low >= curves.min(axis=0))
    assert np.all(band.high <= curves.max(axis=0))


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"confidence": 1.0}, "confidence"),
        ({"confidence": 0.0}, "confidence"),
        ({"num_resamples": 0}, "num_resamples"),
        ({"num_resamples": 10.5}, "num_resamples"),
    ],
)
def test_bootstrap_rejects_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        bootstrap_ci([1.0, 2.0], **kwargs)
    with pytest.raises(ValueError, match=match):
        stratified_bootstrap_ci([[1.0], [2.0]], **kwargs)


def test_bootstrap_rejects_no_runs():
    with pytest.raises(ValueError, match="at least one run"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match=r"\[N runs, M tasks\]"):
        stratified_bootstrap_ci([1.0, 2.0])


def test_stratified_with_one_task_is_the_ordinary_bootstrap():
    x = np.random.default_rng(4).normal(size=10)
    assert stratified_bootstrap_ci(x[:, None], stat=iqm) == bootstrap_ci(x, stat=iqm)


def test_stratified_resamples_stay_within_their_task():
    # Task 0 scores lie in [0, 1), task 1 in [10, 11): a resample that mixed
    # tasks would put a value of one in the column of the other.
    rng = np.random.default_rng(5)
    scores = np.stack([rng.random(9), 10 + rng.random(9)], axis=1)
    ci = stratified_bootstrap_ci(
        scores,
        stat=lambda a: float(np.all(a[:, 0] < 1) and np.all(a[:, 1] >= 10)),
        num_resamples=300,
    )
    assert (ci.low, ci.high) == (1.0, 1.0)


def test_stratified_resamples_tasks_independently():
    # Identical columns stay identical only if every task reuses the same run
    # indices; independent draws almost never do (chance 8**-8 per resample).
    scores = np.tile(np.arange(8.0)[:, None], (1, 2))
    ci = stratified_bootstrap_ci(
        scores,
        stat=lambda a: float(np.array_equal(a[:, 0], a[:, 1])),
        num_resamples=300,
    )
    assert ci.estimate == 1.0
    assert ci.high == 0.0


def test_stratified_default_is_pooled_iqm_with_a_sane_interval():
    scores = np.random.default_rng(6).normal(size=(10, 4)) + np.arange(4)
    ci = stratified_bootstrap_ci(scores)
    assert ci.estimate == pytest.approx(_iqm_loop(scores))
    assert ci.low < ci.estimate < ci.high
