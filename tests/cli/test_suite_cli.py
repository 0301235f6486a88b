"""``jaxpg train --env SUITE/NAME``: an adapted suite env trains through the
command into a run directory."""

from __future__ import annotations

import contextlib
import io
import json

from suite_checks import needs

from jaxpg.cli.main import main

pytestmark = needs("navix", "matplotlib")


def test_train_a_suite_env_by_name(tmp_path):
    out_dir = tmp_path / "run"
    argv = [
        "train", "--env", "navix/Navix-Empty-5x5-v0", "--algo", "ppo",
        "--seeds", "1", "--num-envs", "4", "--rollout-steps", "8",
        "--steps", "64", "--eval-episodes", "2", "--hidden", "16",
        "--out", str(out_dir),
    ]  # fmt: skip
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(argv)
    assert code == 0, stderr.getvalue()[-3000:]
    config = json.loads((out_dir / "config.json").read_text())
    assert json.dumps(config).count("navix/Navix-Empty-5x5-v0") >= 1
    summary = json.loads((out_dir / "summary.json").read_text())
    assert summary["env"] == "navix/Navix-Empty-5x5-v0"
