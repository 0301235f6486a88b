"""Token-policy RL laid over 2 CPU devices (``batch_sharding``, and the seeds
of ``jaxpg lm``) equals the one-device program up to float rounding; a NaN
reward in one seed is rejected there and leaves the others unaffected. Runs
tests/helpers/sequence_devices_worker.py in a fresh interpreter (a process's
device count is fixed when JAX starts)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

WORKER = Path(__file__).parents[1] / "helpers" / "sequence_devices_worker.py"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("sequence_devices")
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORKER.parents[2]), env.get("PYTHONPATH", "")]
    )
    result = subprocess.run(
        [sys.executable, str(WORKER), str(out)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return json.loads((out / "report.json").read_text())


def test_the_batch_is_laid_over_both_devices_with_the_same_draws(report):
    assert report["devices"] == 2
    assert report["responses_devices"] == 2
    assert report["responses_equal"]
    assert report["advantages_max_diff"] == 0.0


def test_gradients_and_updates_match_one_device(report):
    # Sums over 12 responses in another order: float32 rounding, ~1e-7
    # relative; a missing or doubled shard would be O(1).
    assert report["grad_max_diff_rel"] < 1e-5
    # 3 SGD steps of lr 1e-2 on parameters O(1): rounding of ~1e-7 per step.
    assert report["params_max_diff"] < 1e-5
    for name, diff in report["metrics_max_diff"].items():
        assert diff < 1e-4, name


def test_gradients_are_combined_across_devices(report):
    assert report["all_reduce_in_program"]


def test_prompts_that_do_not_split_evenly_are_refused(report):
    message = report["uneven_error"]
    assert message is not None
    assert "batch_sharding=" in message and "[3, 4]" in message


def test_jaxpg_lm_lays_three_seeds_over_two_devices_as_on_one(report):
    """3 seeds on 2 devices (padded to 4 by repeating the last seed, as the
    gymnax runner does; no fallback to one device) against the same 3 seeds
    on one device: the padding is dropped, the draws are the same (rewards
    and lengths exactly) and the rest agrees up to float rounding (each
    device sums a batch of 2 seeds instead of 3)."""
    assert report["cli_seed_devices"] == [1, 2]
    assert report["cli_shapes"] == [[3, 2], [3, 2]]
    for name, diff in report["cli_metrics_max_diff"].items():
        # Metrics are means over 6 responses; a seed run twice, dropped or
        # swapped would differ by O(1), rounding by ~1e-7.
        exact = name in ("reward", "true_reward", "accuracy", "response_length")
        assert diff == 0.0 if exact else diff < 1e-4, name
    # Two Adam steps of lr 1e-2: Adam's first steps are sign-like, so the
    # rounding of near-zero gradient entries can move a parameter by a
    # fraction of one step (3.6e-4 measured); another seed's parameters would
    # differ by whole steps (>= 1e-2).
    assert report["cli_params_max_diff"] < 2e-3


def test_sequence_train_seeds_lays_the_seeds_over_both_devices(report):
    """``jaxpg.sequence.train_seeds`` (one program, the seeds laid out as
    ``jaxpg.train_seeds`` lays them, no fallback to one device) against the
    chunked ``jaxpg lm`` driver's run of the same 3 seeds on one device: the
    same draws (rewards and lengths exactly), the rest up to float rounding,
    with the bounds of the test above and for the same reasons."""
    assert report["py_devices"] == 2
    assert report["py_shapes"] == [3, 2]
    for name, diff in report["py_metrics_max_diff"].items():
        exact = name in ("reward", "true_reward", "accuracy", "response_length")
        assert diff == 0.0 if exact else diff < 1e-4, name
    assert report["py_params_max_diff"] < 2e-3


def test_a_nan_reward_in_one_seed_is_rejected_and_the_others_unaffected(report):
    """Seed 1's first update gets a NaN reward (a user reward_fn): that update
    is rejected and reported (``nonfinite``), on one device and on two; its
    parameters stay finite; seeds 0 and 2 are bit-identical to the same
    program's run without the NaN, and to their own runs alone (one seed).

    Alone is bit-identical as the suite compiles (without LLVM's passes). With
    XLA's default code on a CPU with FMA, a batch of 3 and a batch of 1 may
    round a parameter's last bit differently (2.3e-10 measured): LLVM's
    vectorised loop fuses multiply-adds where the scalar remainder does not;
    ``--xla_cpu_max_isa=AVX`` makes them equal again (docs/experiments.md)."""
    want = [[0.0, 0.0], [1.0, 0.0], [0.0, 0.0]]
    assert report["cli_nonfinite"] == [want, want]
    assert report["cli_clean_nonfinite"] == [[0.0, 0.0]] * 3
    assert report["cli_params_finite"] == [True, True]
    assert report["cli_others_identical"]
    assert report["cli_others_identical_alone"] == [True, True]
