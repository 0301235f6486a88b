"""A recurrent policy inside the tooling: ``Config.torso`` names it, so ``jaxpg
train --torso gru`` makes one, its run directory records it, and ``jaxpg eval``
and ``jaxpg compare`` rebuild the GRU from config.json; config.json files
written before the field existed still load (as the MLP they were)."""

from __future__ import annotations

import json

import pytest
from cli_capture import run_main as _main

import jaxpg
from jaxpg.experiment import rundir

pytest.importorskip("matplotlib")
pytest.importorskip("orbax.checkpoint")

# 2 seeds, 4 PPO updates of 4 envs x 4 steps, a GRU of 8 units after an
# 8-wide encoder; 3 evaluation episodes per seed.
TINY = [
    "--env", "MemoryChain-bsuite", "--algo", "ppo", "--no-preset",
    "--torso", "gru", "--recurrent-size", "8", "--hidden", "8",
    "--seeds", "2", "--num-envs", "4", "--rollout-steps", "4", "--steps", "64",
    "--set", "max_episode_steps=8", "--eval-episodes", "3",
    "--chunk-seconds", "0", "--no-progress", "--no-compile-cache",
]  # fmt: skip


@pytest.fixture(scope="module")
def gru_run(tmp_path_factory):
    """``jaxpg train --torso gru`` through ``main`` (what the ``jaxpg`` script
    calls)."""
    out = tmp_path_factory.mktemp("gru") / "run"
    code, stdout, stderr = _main("train", *TINY, "--out", out)
    assert code == 0, stderr[-3000:]
    return out, stdout


def test_train_records_the_recurrent_torso(gru_run):
    out, stdout = gru_run
    cfg, _ = rundir.load_run(out)
    assert (cfg.torso, cfg.recurrent_size, cfg.hidden) == ("gru", 8, (8,))
    assert "torso=gru(8)" in stdout
    # The saved parameters are the GRU's (a GRU cell's gates), one per seed.
    from jaxpg.drivers.evaluation import load_policy

    _, _, params, _ = load_policy(out)
    cell = params["torso"]["params"]["GRUCell_0"]
    assert cell["hn"]["kernel"].shape == (2, 8, 8)


def test_eval_and_compare_rebuild_the_recurrent_policy(gru_run, tmp_path):
    out, _ = gru_run
    # Round 0 with training's episode count repeats training's own
    # evaluation: the same GRU, run with its carry, gives the same returns.
    code, _, err = _main("eval", out, "--episodes", "3", "--round", "0")
    assert code == 0, err
    again = rundir.read_json(out / "eval.json")["mean_per_seed"]
    assert again == rundir.read_json(out / rundir.SUMMARY)["eval"]["mean_per_seed"]
    code, _, err = _main(
        "compare", out, "--scores", "eval", "--raw", "--reps", 50,
        "--out", tmp_path / "cmp",
    )  # fmt: skip
    assert code == 0, err
    assert (tmp_path / "cmp" / "compare.json").is_file()


def test_config_json_without_the_torso_fields_loads_as_the_mlp():
    cfg = jaxpg.Config(env="CartPole-v1", hidden=(16,))
    fields = json.loads(json.dumps(rundir.config_to_dict(cfg)))
    old = {k: v for k, v in fields.items() if k not in ("torso", "recurrent_size")}
    assert rundir.config_from_dict(old) == cfg
    assert (cfg.torso, cfg.recurrent_size) == ("mlp", 64)
