"""jaxpg.runner: chunked multi-seed training equals the single jitted program."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxpg
from jaxpg.runner import RunResult, _ProgressBar, default_chunk, run
from jaxpg.train import seed_keys

NUM_SEEDS = 2
# 4 envs x 8 steps per update, 6 updates; episodes run past the start window
# (REINFORCE), so seeds end with different step counts.
CFG = jaxpg.Config(num_envs=4, rollout_steps=8, total_steps=4 * 8 * 6, lr=1e-2)


@pytest.fixture(scope="module")
def chunked() -> RunResult:
    # Two chunks of three updates: state carried across calls and within one.
    return run(CFG, NUM_SEEDS, chunk_updates=3, progress=False)


@pytest.fixture(scope="module")
def reference():
    train = jaxpg.make_train(CFG)
    return jax.jit(jax.vmap(train))(seed_keys(NUM_SEEDS))


def test_runner_matches_single_jitted_program(chunked, reference):
    ref_metrics = jax.device_get(reference.metrics)
    assert set(chunked.metrics) == set(ref_metrics)
    for name, expected in ref_metrics.items():
        got = chunked.metrics[name]
        assert got.shape == (NUM_SEEDS, CFG.num_updates), name
        assert got.dtype == expected.dtype, name
        np.testing.assert_allclose(
            got, expected, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name
        )
    # The same random draws: the same env steps exactly.
    np.testing.assert_array_equal(
        chunked.metrics["env_steps"], ref_metrics["env_steps"]
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        chunked.params,
        reference.params,
    )
    np.testing.assert_array_equal(
        jax.random.key_data(chunked.state.key),
        jax.random.key_data(reference.state.key),
    )


def test_run_result_reports_timings_and_throughput(chunked):
    assert chunked.compile_s > 0 and chunked.run_s > 0
    steps = chunked.metrics["env_steps"][:, -1].sum()
    assert steps >= NUM_SEEDS * CFG.total_steps  # REINFORCE spends its budget
    assert chunked.steps_per_s == pytest.approx(steps / chunked.run_s)
    assert int(chunked.state.update_idx[0]) == CFG.num_updates
    leaves = jax.tree.leaves(chunked.params)
    assert all(leaf.shape[0] == NUM_SEEDS for leaf in leaves)


@pytest.mark.parametrize(
    ("num_updates", "expected"),
    [(585, 39), (6, 1), (20, 1), (40, 2), (100, 5), (7, 1), (1, 1), (600, 30)],
)
def test_default_chunk_is_divisor_nearest_a_twentieth(num_updates, expected):
    assert default_chunk(num_updates) == expected
    assert num_updates % default_chunk(num_updates) == 0


@pytest.mark.parametrize("chunk", [4, 0, 7, 2.0])
def test_run_rejects_chunk_that_does_not_divide_num_updates(chunk):
    with pytest.raises(ValueError, match="chunk_updates"):
        run(CFG, 2, chunk_updates=chunk, progress=False)


@pytest.mark.parametrize("num_seeds", [0, -1, 1.5, True])
def test_run_rejects_bad_num_seeds(num_seeds):
    with pytest.raises(ValueError, match="num_seeds"):
        run(CFG, num_seeds, progress=False)


def test_progress_bar_shows_env_steps_and_latest_return(capsys):
    pytest.importorskip("tqdm")
    bar = _ProgressBar(True, num_updates=4, num_seeds=2)
    bar.advance(
        {
            "env_steps": np.array([[10, 20], [15, 30]]),
            "episode_return": np.array([[5.0, np.nan], [np.nan, np.nan]]),
        },
        2,
    )
    # Seed 1 has no episode yet: the mean is over seed 0 only.
    np.testing.assert_array_equal(bar.latest, [5.0, np.nan])
    bar.advance(
        {
            "env_steps": np.array([[40, 50], [45, 60]]),
            "episode_return": np.array([[7.0, 9.0], [3.0, np.nan]]),
        },
        2,
    )
    np.testing.assert_array_equal(bar.latest, [9.0, 3.0])
    bar.close()
    err = capsys.readouterr().err
    assert "4/4" in err
    assert "env_steps=110" in err
    assert "mean_return=6.0" in err


def test_progress_bar_off_is_silent(capsys):
    bar = _ProgressBar(False, num_updates=4, num_seeds=2)
    bar.advance({"env_steps": np.zeros((2, 1)), "episode_return": np.zeros((2, 1))}, 1)
    bar.close()
    assert capsys.readouterr().err == ""
