"""Token-policy RL laid over 2 CPU devices (``batch_sharding``) equals the
one-device program up to float rounding. Runs tests/sequence_devices_worker.py
in a fresh interpreter (a process's device count is fixed when JAX starts)."""

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


def test_jaxpg_lm_lays_its_seeds_over_the_devices(report):
    # Seeds are independent: the same updates on their own devices, so the
    # metrics agree up to float rounding (a seed run twice or dropped: O(1)).
    assert report["cli_seed_devices"] == [1, 2]
    for name, diff in report["cli_metrics_max_diff"].items():
        assert diff < 1e-4, name
