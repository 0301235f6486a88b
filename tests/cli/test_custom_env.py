"""A user's environment stays inside the tooling: ``jaxpg train --env
my_envs:make_env`` (tests/helpers/my_envs.py) writes the summary and the
learning curve, records the path so that ``--resume``, ``jaxpg eval`` and
``jaxpg compare`` build the env again, and ``jaxpg compare`` normalises with
the user's reference scores (none: a clear error; ``--raw``: no optimality
gap). ``jaxpg.drivers.runner.run(env=...)`` writes the same report."""

from __future__ import annotations

import json

import numpy as np
import pytest
from cli_capture import run_main as _main
from my_envs import TwoArms

from jaxpg.cli.main import build_parser, config_from_args
from jaxpg.drivers import runner
from jaxpg.experiment import rundir

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

PATH = "my_envs:make_env"
# 2 seeds, 8 updates of 4 envs x 8 steps, 4 evaluation episodes per seed.
TINY = [
    "--env", PATH, "--algo", "a2c", "--seeds", "2", "--num-envs", "4",
    "--rollout-steps", "8", "--steps", "256", "--eval-episodes", "4",
    "--hidden", "8", "--chunk-seconds", "0", "--no-progress",
]  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("custom") / "run"
    code, stdout, stderr = _main("train", *TINY, "--out", out)
    assert code == 0, stderr
    # Kept: a test below resumes the run, which evaluates it again.
    trained_summary = rundir.read_json(out / rundir.SUMMARY)
    return out, stdout, trained_summary


def test_train_by_import_path_records_it_and_writes_the_report(trained):
    out, stdout, _ = trained
    cfg, _ = rundir.load_run(out)
    assert cfg.env == PATH
    summary = rundir.read_json(out / rundir.SUMMARY)
    assert summary["env"] == PATH and len(summary["eval"]["mean_per_seed"]) == 2
    assert summary["eval"]["solved_threshold"] is None  # jaxpg has no anchors
    assert (out / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    assert f"wrote {out / rundir.SUMMARY}" in stdout


def test_eval_and_resume_rebuild_the_env_from_the_run_directory(trained):
    out, _, _ = trained
    code, _, stderr = _main("eval", out, "--episodes", "3")
    assert code == 0, stderr
    assert len(rundir.read_json(out / "eval.json")["mean_per_seed"]) == 2
    # Resuming the finished run rebuilds the env from config.json, has
    # nothing left to train, and evaluates and reports it again.
    code, stdout, stderr = _main(
        "train", "--resume", out, "--no-progress", "--eval-episodes", "4"
    )
    assert code == 0, stderr
    assert f"wrote {out / rundir.SUMMARY}" in stdout


def test_compare_uses_the_users_references_and_raw_has_no_gap(trained, tmp_path):
    out, _, _ = trained
    means = np.array(rundir.read_json(out / rundir.SUMMARY)["eval"]["mean_per_seed"])
    code, _, stderr = _main("compare", out, "--out", tmp_path / "a", "--reps", 50)
    assert code == 2 and "--reference ENV=RANDOM,SOLVED" in stderr
    # Random 5, solved 10: a seed's score is (mean - 5) / 5.
    ref = f"{PATH}=5,10"
    code, stdout, stderr = _main(
        "compare", out, "--reference", ref, "--out", tmp_path / "b", "--reps", 50
    )
    assert code == 0, stderr
    got = json.loads((tmp_path / "b" / "compare.json").read_text())
    np.testing.assert_allclose(np.ravel(got["scores"]["a2c"]), (means - 5) / 5)
    assert got["references"] == {PATH: {"random": 5.0, "solved": 10.0}}
    assert "optimality gap" in stdout
    # The same anchors from a JSON file.
    refs = tmp_path / "refs.json"
    refs.write_text(json.dumps({PATH: {"random": 5, "solved": 10}}))
    code, _, stderr = _main(
        "compare", out, "--references", refs, "--out", tmp_path / "c", "--reps", 50
    )
    assert code == 0, stderr
    again = json.loads((tmp_path / "c" / "compare.json").read_text())
    assert again["scores"] == got["scores"]
    # Raw returns: no optimality gap, in the table or compare.json.
    code, stdout, stderr = _main(
        "compare", out, "--raw", "--out", tmp_path / "d", "--reps", 50
    )
    assert code == 0, stderr
    raw = json.loads((tmp_path / "d" / "compare.json").read_text())
    assert "optimality gap" not in stdout
    assert "optimality_gap" not in raw["aggregates"]["a2c"]
    np.testing.assert_allclose(np.ravel(raw["scores"]["a2c"]), means, rtol=1e-12)


def test_runner_with_an_env_object_writes_the_same_report(trained, tmp_path):
    """``run(env=...)`` from Python: the summary and curve of ``jaxpg train``
    (the same evaluation keys: the same per-seed returns for the same run)."""
    args = build_parser().parse_args(["train", *TINY])
    cfg, _ = config_from_args(args)
    custom = cfg.replace(env="custom")
    env, params = TwoArms(), TwoArms().default_params
    result = runner.run(
        custom, 2, env=env, env_params=params, progress=False,
        checkpoint_dir=tmp_path / "py", chunk_updates=cfg.num_updates,
        eval_episodes=4,
    )  # fmt: skip
    summary = rundir.read_json(tmp_path / "py" / rundir.SUMMARY)
    assert summary == jaxpg_summary(result)
    assert (tmp_path / "py" / "learning_curve.png").read_bytes()[:8] == PNG_MAGIC
    cli = trained[2]
    assert summary["eval"]["mean_per_seed"] == cli["eval"]["mean_per_seed"]


def jaxpg_summary(result):
    return json.loads(json.dumps(result.summary))
