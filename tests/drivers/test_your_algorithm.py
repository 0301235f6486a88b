"""A user's algorithm runs through jaxpg's drivers: ``make_train``,
``train_seeds``, ``sweep``, the runner and ``jaxpg train --algorithm``."""

from __future__ import annotations

import contextlib
import functools
import io
import json

import jax
import numpy as np
import pytest
import tiny
from my_algorithms import SIGN_STEP, half_step_a2c, sign_step_a2c

import jaxpg
from jaxpg.algorithms import a2c_policy_loss, make_actor_critic
from jaxpg.drivers import runner
from jaxpg.experiment import rundir

CFG = tiny.config("a2c", updates=3)
SAME_AS_A2C = functools.partial(make_actor_critic, policy_loss=a2c_policy_loss)


def _leaves(tree):
    return [np.asarray(x) for x in jax.tree.leaves(tree)]


def _assert_same(a, b):
    for x, y in zip(_leaves(a), _leaves(b), strict=True):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def default_a2c():
    return jax.jit(jaxpg.make_train(CFG))(jax.random.key(0))


@pytest.fixture(scope="module")
def half_step():
    """The user's :func:`half_step_a2c` trained by the single jitted program
    (seed 0): what every driver that takes it must train."""
    return jax.jit(jaxpg.make_train(CFG, algorithm=half_step_a2c))(jax.random.key(0))


@pytest.fixture(scope="module")
def a2c_estimate():
    """A train state of A2C (jitted ``init``) and A2C's gradient estimate at
    it (jitted ``estimate``)."""
    algo = jaxpg.make_algorithm(CFG)
    state = jax.jit(algo.init)(jax.random.key(1))
    return state, jax.jit(algo.estimate)(state)[0]


def test_a_composition_equal_to_a2c_trains_bit_identically(default_a2c):
    out = jax.jit(jaxpg.make_train(CFG, algorithm=SAME_AS_A2C))(jax.random.key(0))
    _assert_same(out.params, default_a2c.params)
    _assert_same(out.metrics, default_a2c.metrics)


def test_the_users_loss_is_the_one_that_trains(default_a2c, half_step, a2c_estimate):
    out = half_step
    # Same data in the first update (same keys, same initial policy) ...
    np.testing.assert_array_equal(
        out.metrics["env_steps"], default_a2c.metrics["env_steps"]
    )
    # ... but half the policy-gradient step: other parameters.
    assert not np.allclose(
        _leaves(out.params)[0], _leaves(default_a2c.params)[0], atol=0, rtol=0
    )
    # The estimate is half A2C's policy gradient at the same state.
    state, theirs = a2c_estimate
    ours = jax.jit(jaxpg.make_algorithm(CFG, algorithm=half_step_a2c).estimate)(state)
    ours = ours[0]
    for x, y in zip(_leaves(ours["policy"]), _leaves(theirs["policy"]), strict=True):
        np.testing.assert_allclose(x, 0.5 * y, rtol=1e-5, atol=1e-7)


def test_train_seeds_sweep_and_runner_take_the_algorithm(default_a2c, half_step):
    outs = jaxpg.train_seeds(CFG, num_seeds=2, algorithm=SAME_AS_A2C)
    np.testing.assert_allclose(
        _leaves(jax.tree.map(lambda x: x[0], outs.params))[0],
        _leaves(default_a2c.params)[0],
        rtol=1e-5,
    )
    _, swept = jaxpg.sweep(CFG, {"lr": [CFG.lr]}, 1, algorithm=half_step_a2c)
    single = half_step
    np.testing.assert_allclose(
        _leaves(jax.tree.map(lambda x: x[0, 0], swept.params))[0],
        _leaves(single.params)[0],
        rtol=1e-5,
    )
    result = runner.run(CFG, 1, progress=False, algorithm=half_step_a2c)
    np.testing.assert_allclose(
        _leaves(jax.tree.map(lambda x: x[0], result.params))[0],
        _leaves(single.params)[0],
        rtol=1e-5,
    )


def test_an_invalid_algorithm_is_named():
    with pytest.raises(TypeError, match=r"algorithm=3 is invalid"):
        jaxpg.make_train(CFG, algorithm=3)
    with pytest.raises(TypeError, match=r"returned dict.*jaxpg.Algorithm"):
        jaxpg.make_train(CFG, algorithm=lambda cfg, parts: {})


def test_jaxpg_train_takes_an_algorithm_by_import_path(tmp_path, half_step):
    pytest.importorskip("orbax.checkpoint")
    from jaxpg.cli.main import main

    out = tmp_path / "run"
    # Without the preset: the run is CFG's, whose single program is shared.
    argv = [
        "train", "--env", "CartPole-v1", "--algo", "a2c", "--no-preset",
        *tiny.train_args(1, 3, "--eval-episodes", "2", "--no-progress"),
        "--algorithm", "my_algorithms:half_step_a2c", "--out", str(out),
    ]  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        assert main(argv) == 0, stderr.getvalue()
        record = json.loads((out / "config.json").read_text())
        assert record["custom"]["algorithm"] == "my_algorithms:half_step_a2c"
        assert main(["eval", str(out), "--episodes", "2"]) == 0, stderr.getvalue()
        bad = [*argv[:-4], "--algorithm", "my_algorithms:nope", "--out", str(out)]
        assert main([*bad, "--overwrite"]) == 2
    assert "my_algorithms:nope" in stderr.getvalue()
    # The final parameters are those of the user's algorithm.
    from jaxpg.drivers.evaluation import load_policy

    cfg = rundir.load_run(out)[0]
    assert cfg == CFG  # so ``half_step`` is the single program of this run
    saved = jax.tree.map(lambda x: x[0], load_policy(out)[2])
    np.testing.assert_allclose(
        _leaves(saved)[0], _leaves(half_step.params)[0], rtol=1e-5
    )
    # jaxpg sweep takes it by the same path: its setting at the run's lr is
    # evaluated as the run was.
    swept = tmp_path / "sweep"
    sweep_argv = [
        "sweep", "--env", "CartPole-v1", "--algo", "a2c", "--no-preset",
        "--seeds", "1", "--steps", "96", "--set", "num_envs=4",
        "--set", "rollout_steps=8", "--set", "hidden=8", "--grid", f"lr={cfg.lr!r}",
        "--eval-episodes", "2", "--no-progress",
        "--algorithm", "my_algorithms:half_step_a2c", "--out", str(swept),
    ]  # fmt: skip
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(sweep_argv) == 0
    result = json.loads((swept / "sweep.json").read_text())
    summary = json.loads((out / "summary.json").read_text())["eval"]
    assert result["algorithm"] == "my_algorithms:half_step_a2c"
    np.testing.assert_allclose(
        result["results"][0]["mean_per_seed"], summary["mean_per_seed"], rtol=1e-6
    )


def test_a_value_baseline_without_a_critic_is_refused():
    """REINFORCE with baseline="value" and a user's Parts without a critic
    would otherwise train with another baseline, silently."""
    from jaxpg.algorithms import reinforce
    from jaxpg.drivers.train import make_parts

    cfg = CFG.replace(algo="reinforce", baseline="value")
    parts = make_parts(cfg)
    assert parts.critic is not None
    reinforce(cfg, parts)  # with its critic: fine
    with pytest.raises(ValueError, match="baseline='value' needs a critic"):
        reinforce(cfg, parts._replace(critic=None))


def test_an_update_written_by_hand_runs_through_the_drivers(tmp_path, a2c_estimate):
    """Not a composition of jaxpg's losses: an ``update`` the user wrote
    (sign steps of A2C's gradient). One update is exactly that rule, and the
    command line trains, summarises, evaluates and loads it by import path."""
    from jaxpg.cli.main import main

    algo = jaxpg.make_algorithm(CFG, algorithm=sign_step_a2c)
    state, grads = a2c_estimate  # A2C's state and gradient, computed apart
    after, metrics = jax.jit(algo.update)(state)
    expected = jax.tree.map(
        lambda p, g: p - SIGN_STEP * np.sign(g), state.params, grads
    )
    _assert_same(after.params, expected)
    assert float(metrics["nonfinite"]) == 0.0

    out = tmp_path / "run"
    argv = [
        "train", "--env", "CartPole-v1", "--algo", "a2c",
        *tiny.train_args(2, 3, "--eval-episodes", "2", "--no-progress"),
        "--algorithm", "my_algorithms:sign_step_a2c", "--out", str(out),
    ]  # fmt: skip
    stderr = io.StringIO()
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(stderr):
        assert main(argv) == 0, stderr.getvalue()
        assert main(["eval", str(out), "--episodes", "2"]) == 0, stderr.getvalue()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["train"]["rejected_updates"] == [0, 0]
    assert len(summary["eval"]["mean_per_seed"]) == 2
    cfg = rundir.load_run(out)[0]
    single = jax.jit(jaxpg.make_train(cfg, algorithm=sign_step_a2c))(jax.random.key(1))
    saved = jax.tree.map(lambda x: x[1], jaxpg.load_policy(out)[2])
    _assert_same(saved, single.params)
