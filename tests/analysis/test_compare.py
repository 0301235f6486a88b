"""jaxpg.analysis.compare and ``jaxpg compare``: the rliable protocol, checked against
numbers that rliable 1.2.0 itself computed on the same scores
(tests/helpers/fixtures/rliable_reference.json, made by
tests/helpers/fixtures/make_rliable_fixture.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from cli_capture import run_main as _main

from jaxpg.analysis.compare import (
    AGGREGATES,
    aggregate_metrics,
    compare,
    probability_of_improvement,
    score_distribution,
    stratified_interval,
)
from jaxpg.analysis.scores import ENV_SCORES, normalise
from jaxpg.config import Config
from jaxpg.experiment import rundir

FIXTURE = Path(__file__).parents[1] / "helpers" / "fixtures" / "rliable_reference.json"
REF = json.loads(FIXTURE.read_text())
SCORES = {k: np.asarray(v) for k, v in REF["scores"].items()}
# rliable's resample counts per statistic (fewer than its default 50,000 for
# P(X > Y) and the profiles, whose rliable bootstrap is slow); ours: 50,000.
REPS = REF["reps"]
OUR_REPS = 50_000


@pytest.fixture(scope="module")
def ours():
    return compare(
        SCORES, taus=REF["taus"], reps=OUR_REPS, profile_reps=OUR_REPS, seed=7
    )


def _mc_tolerance(fn, *scores, p: float, rliable_reps: int) -> float:
    r"""Monte-Carlo tolerance of a percentile-bootstrap endpoint.

    With ``R`` resamples the empirical p-quantile sits at rank ``R p`` give or
    take ``sqrt(R p (1 - p))`` (binomial): in probability terms its error has
    standard deviation ``sqrt(p (1 - p) / R)``. The difference of two
    independent estimates (rliable's with ``R_1``, ours with ``R_2``) has
    ``σ = sqrt(p (1 - p) (1 / R_1 + 1 / R_2))``; the tolerance is the width of
    the bootstrap distribution between its quantiles ``p - 4σ`` and
    ``p + 4σ`` (estimated from 20,000 fresh resamples), plus float rounding.
    An endpoint on an atom of a discrete statistic gets (near) zero width and
    must match exactly.
    """
    from jaxpg.analysis.compare import _resample

    rng = np.random.default_rng(123)
    dist = np.asarray(fn(*[_resample(rng, s, 20_000) for s in scores]))
    sigma = np.sqrt(p * (1 - p) * (1 / rliable_reps + 1 / OUR_REPS))
    lo, hi = np.quantile(dist, [max(p - 4 * sigma, 0), min(p + 4 * sigma, 1)], axis=0)
    return hi - lo + 1e-9


@pytest.mark.parametrize("method", sorted(SCORES))
def test_aggregate_point_estimates_equal_rliable(method):
    np.testing.assert_allclose(
        aggregate_metrics(SCORES[method]),
        REF["aggregates"][method]["point"],
        rtol=1e-12,
        atol=1e-12,
    )


@pytest.mark.parametrize("method", sorted(SCORES))
def test_aggregate_intervals_match_rliable_within_monte_carlo_error(ours, method):
    ref = REF["aggregates"][method]
    got = ours["aggregates"][method]
    for bound, p in (("low", 0.025), ("high", 0.975)):
        tol = _mc_tolerance(
            aggregate_metrics, SCORES[method], p=p, rliable_reps=REPS["aggregates"]
        )
        for j, metric in enumerate(AGGREGATES):
            assert abs(got[metric][bound] - ref[bound][j]) <= tol[j], (
                metric,
                bound,
                got[metric][bound],
                ref[bound][j],
                tol[j],
            )


def test_probability_of_improvement_equals_rliable(ours):
    for pair, ref in REF["probability_of_improvement"].items():
        x, y = (SCORES[k] for k in pair.split(","))
        assert probability_of_improvement(x, y) == pytest.approx(
            ref["point"], abs=1e-12
        )
        got = ours["probability_of_improvement"][pair.replace(",", " > ")]
        assert got["estimate"] == pytest.approx(ref["point"], abs=1e-12)
        for bound, p in (("low", 0.025), ("high", 0.975)):
            tol = _mc_tolerance(
                probability_of_improvement,
                x,
                y,
                p=p,
                rliable_reps=REPS["probability_of_improvement"],
            )
            assert abs(got[bound] - ref[bound]) <= tol, (pair, bound, tol)


def test_performance_profiles_match_rliable(ours):
    taus = np.asarray(REF["taus"])
    for method, ref in REF["profiles"].items():
        np.testing.assert_allclose(
            score_distribution(SCORES[method], taus), ref["point"], atol=1e-12
        )
        got = ours["profiles"]["methods"][method]
        np.testing.assert_allclose(got["fraction"], ref["point"], atol=1e-12)
        for bound, p in (("low", 0.025), ("high", 0.975)):
            tol = _mc_tolerance(
                lambda s: score_distribution(s, taus),
                SCORES[method],
                p=p,
                rliable_reps=REPS["profiles"],
            )
            assert np.all(np.abs(np.asarray(got[bound]) - ref[bound]) <= tol), (
                method,
                bound,
            )


def test_probability_of_improvement_by_hand():
    # One task: x = [1, 2], y = [2, 0]: pairs (1>2 no, 1>0 yes, 2=2 half,
    # 2>0 yes) -> 2.5 / 4.
    x, y = np.array([[1.0], [2.0]]), np.array([[2.0], [0.0]])
    assert probability_of_improvement(x, y) == 0.625
    assert probability_of_improvement(y, x) == 0.375
    assert probability_of_improvement(x, x) == 0.5


def test_stratified_interval_is_reproducible_and_never_mixes_tasks():
    # Task 0 is all zeros, task 1 all ones: every resample keeps one of each
    # per run, so the mean is exactly 0.5 in every resample.
    x = np.stack([np.zeros(6), np.ones(6)], axis=1)
    point, low, high = stratified_interval(aggregate_metrics, x, reps=500, seed=3)
    assert point[1] == low[1] == high[1] == 0.5
    again = stratified_interval(aggregate_metrics, x, reps=500, seed=3)
    np.testing.assert_array_equal(again[1], low)


@pytest.mark.parametrize(
    ("scores", "match"),
    [
        (np.zeros((0, 2)), r"\[N runs, M tasks\]"),
        (np.array([[1.0, np.nan]]), "non-finite"),
    ],
)
def test_stratified_interval_rejects_bad_scores(scores, match):
    with pytest.raises(ValueError, match=match):
        stratified_interval(aggregate_metrics, scores, reps=10)


def test_compare_names_an_empty_method_and_takes_numpy_integer_reps():
    with pytest.raises(ValueError, match=r"scores\['a'\] must be \[N runs, M tasks\]"):
        compare({"a": np.zeros((0, 2))}, reps=10)
    point, low, high = stratified_interval(
        aggregate_metrics, np.ones((4, 2)), reps=np.int64(10)
    )
    np.testing.assert_array_equal(low, point)  # every resample is the same
    np.testing.assert_array_equal(high, point)


def test_normalise_maps_random_to_zero_and_solved_to_one():
    for env, ref in ENV_SCORES.items():
        np.testing.assert_allclose(normalise(env, [ref.random, ref.solved]), [0, 1])
    with pytest.raises(ValueError, match="CartPole-v1"):
        normalise("custom", [1.0])


def _fake_run(root: Path, name: str, env: str, algo: str, means: list) -> Path:
    """A run directory with what compare reads: config.json and summary.json."""
    path = root / name
    path.mkdir()
    cfg = Config(env=env, algo=algo)
    rundir.write_json(
        path / "config.json",
        rundir.run_record(cfg, len(means), 0, 1, {"env": None}),
    )
    rundir.write_json(
        path / "summary.json",
        {"eval": {"seeds": list(range(len(means))), "mean_per_seed": means}},
    )
    return path


def test_compare_command_normalises_per_env_and_reports_everything(tmp_path):
    rng = np.random.default_rng(0)
    cart = {a: list(rng.uniform(200, 500, size=6)) for a in ("ppo", "a2c")}
    acro = {a: list(rng.uniform(-300, -80, size=6)) for a in ("ppo", "a2c")}
    cart["a2c"][2] = None  # a diverged seed: reported, left out
    runs = [
        _fake_run(tmp_path, f"{env}-{algo}", env, algo, table[algo])
        for env, table in (("CartPole-v1", cart), ("Acrobot-v1", acro))
        for algo in ("ppo", "a2c")
    ]
    out = tmp_path / "cmp"
    code, stdout, err = _main(
        "compare", *map(str, runs), "--out", str(out), "--reps", "2000"
    )
    assert code == 0, err
    result = json.loads((out / "compare.json").read_text())
    assert result["tasks"] == ["Acrobot-v1", "CartPole-v1"]
    assert result["dropped_nonfinite_seeds"] == {"a2c/CartPole-v1": [2]}
    # a2c keeps its first 5 finite seeds on each env.
    expected_a2c = np.stack(
        [
            normalise("Acrobot-v1", acro["a2c"][:5]),
            normalise("CartPole-v1", [x for x in cart["a2c"] if x is not None][:5]),
        ],
        axis=1,
    )
    np.testing.assert_allclose(result["scores"]["a2c"], expected_a2c)
    direct = compare({k: np.asarray(v) for k, v in result["scores"].items()}, reps=2000)
    assert result["aggregates"] == direct["aggregates"]
    assert set(result["probability_of_improvement"]) == {"ppo > a2c", "a2c > ppo"}
    for name in ("aggregates.png", "profiles.png", "improvement.png"):
        assert (out / name).read_bytes().startswith(b"\x89PNG")
    assert "IQM" in stdout.upper() and "ppo > a2c" in stdout
    assert "seeds [2] have non-finite scores" in stdout
    cart_a2c = result["per_task"]["a2c"]["CartPole-v1"]
    finite = [x for x in cart["a2c"] if x is not None]
    assert cart_a2c["seeds"] == 5
    assert cart_a2c["solved"] == sum(x >= 475 for x in finite)
    assert cart_a2c["iqm"] == pytest.approx(np.mean(sorted(finite)[1:4]))
    assert f"CartPole-v1 {cart_a2c['iqm']:.1f} ({cart_a2c['solved']}/5)" in stdout


def test_compare_command_errors_name_the_problem(tmp_path):
    a = _fake_run(tmp_path, "a", "CartPole-v1", "ppo", [400.0, 450.0])
    b = _fake_run(tmp_path, "b", "Acrobot-v1", "a2c", [-90.0, -95.0])
    code, _, err = _main("compare", str(a), str(b), "--out", str(tmp_path / "o"))
    assert code == 2 and "ppo has no run on Acrobot-v1" in err
    code, _, err = _main("compare", str(a), str(b), "--raw")
    assert code == 2 and "--raw needs runs of one environment" in err
    code, _, err = _main("compare", str(tmp_path / "nothing"))
    assert code == 2 and "not a jaxpg run directory" in err


def test_user_references_normalise_an_env_jaxpg_has_no_scores_for(tmp_path):
    from jaxpg.analysis.scores import (
        EnvScores,
        load_references,
        parse_reference,
        solved_threshold,
    )

    env, ref = parse_reference("my_envs:make_env=5,10")  # the path keeps its ':'
    assert (env, ref) == ("my_envs:make_env", EnvScores(random=5.0, solved=10.0))
    refs = {env: ref}
    # (7 - 5) / (10 - 5) = 0.4; (10 - 5) / 5 = 1.
    assert normalise(env, [7.0, 10.0], refs).tolist() == [0.4, 1.0]
    assert solved_threshold(env, refs) == 10.0 and solved_threshold(env) is None
    with pytest.raises(ValueError, match="--reference ENV=RANDOM,SOLVED"):
        normalise(env, [7.0])
    # jaxpg's own anchors stay when the user gives others for another env.
    assert normalise("CartPole-v1", [475.0], refs).tolist() == [1.0]
    path = tmp_path / "refs.json"
    path.write_text(json.dumps({env: {"random": 5, "solved": 10}}))
    assert load_references(path) == refs


@pytest.mark.parametrize(
    "text, match",
    [
        ("my_envs:make_env", "must be ENV=RANDOM,SOLVED"),
        ("e=1", "must be ENV=RANDOM,SOLVED"),
        ("e=1,1", "solved != random"),
        ("e=1,nan", "two finite numbers"),
        ("e=a,2", "two finite numbers"),
    ],
)
def test_a_bad_reference_is_refused_naming_it(text, match):
    from jaxpg.analysis.scores import parse_reference

    with pytest.raises(ValueError, match=match):
        parse_reference(text)


def test_a_bad_references_file_names_the_file_and_entry(tmp_path):
    from jaxpg.analysis.scores import load_references

    path = tmp_path / "refs.json"
    path.write_text(json.dumps({"e": {"random": 1}}))
    with pytest.raises(ValueError, match=r"refs.json: 'e' must map to"):
        load_references(path)
    with pytest.raises(ValueError, match="cannot read it"):
        load_references(tmp_path / "missing.json")
