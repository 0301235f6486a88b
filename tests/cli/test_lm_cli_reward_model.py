"""``jaxpg lm --reward-model``: a reward model trained from gold-labelled
pairs (one tiny run through the command's entry point), its version recorded beside the
reference's, a changed one refused on ``--resume``; the options checked
before anything runs."""

from __future__ import annotations

import argparse
import json

import jax
import pytest
from cli_capture import run_main

from jaxpg.cli import lm as cli
from jaxpg.cli import lm_reward_model as rm_cli
from jaxpg.sequence import model, reward_model, sft

TINY = [
    "--task", "sort", "--digits", "1", "--width", "8", "--layers", "1",
    "--heads", "2", "--sft-steps", "20", "--sft-lr", "0.03", "--updates", "2",
    "--chunk", "2", "--prompts", "2", "--group", "2", "--seeds", "1",
    "--no-progress",
]  # fmt: skip
RM = ["--reward-model", "--rm-pairs", "32", "--rm-steps", "3", "--rm-heldout",
      "32", "--rm-batch", "8"]  # fmt: skip


def _parse(argv):
    parser = argparse.ArgumentParser(prog="jaxpg")
    cli.register(parser.add_subparsers(dest="command"))
    return parser.parse_args(argv)


@pytest.fixture(scope="module")
def rm_run(tmp_path_factory):
    """One tiny ``jaxpg lm --reward-model`` run, through ``main`` (what the
    ``jaxpg`` script calls)."""
    out = tmp_path_factory.mktemp("lm-rm") / "run"
    shown = [a for a in TINY if a != "--no-progress"]  # its progress lines too
    code, printed, err = run_main("lm", *shown, *RM, "--out", out)
    assert code == 0, err
    # It says what it trains while it does, and for how long.
    assert "training the reward model (32 pairs, 3 steps" in err
    assert "trained the reward model in " in err
    return out, printed


def test_lm_trains_a_reward_model_records_its_version_and_tracks_gold(rm_run):
    out, printed = rm_run
    params, backbone, info = reward_model.load_reward_model(out / rm_cli.FOLDER)
    version = sft.params_hash(params)
    record = json.loads((out / "metrics.json").read_text())
    config = json.loads((out / cli.RUN_FILE).read_text())
    # The version, beside the reference's, in metrics.json and lm_config.json.
    assert record["reward_model_version"] == version == info["version"]
    assert config["reward_model_version"] == version
    assert record["reference_version"] != version
    assert f"reward model {version} (trained on 32 pairs" in printed
    # Trained from noisy gold-labelled pairs; held-out accuracy reported.
    rec = record["reward_model"]
    assert (rec["pairs"], rec["noise"], rec["steps"]) == (32, 0.1, 3)
    assert 0 <= rec["ties_dropped"] < 32
    assert rec["heldout_accuracy"] is None or 0 <= rec["heldout_accuracy"] <= 1
    assert backbone.width == 8  # the policy's architecture
    # RL optimised the learned reward; the gold one is tracked beside it.
    assert record["task"] == "sort+rm"
    assert len(record["metrics"]["reward"][0]) == len(
        record["metrics"]["true_reward"][0]
    ) == 2  # fmt: skip
    assert record["metrics"]["reward"] != record["metrics"]["true_reward"]


def test_lm_resume_refuses_a_changed_reward_model_naming_it(rm_run, capsys):
    """The run's reward model replaced by another: ``--resume`` names the
    folder and both versions, and changes nothing (refused before RL)."""
    out, _ = rm_run
    folder = out / rm_cli.FOLDER
    params, backbone, info = reward_model.load_reward_model(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    config = (out / cli.RUN_FILE).read_text()
    changed = jax.tree.map(lambda x: x + 1.0, params)
    new = reward_model.save_reward_model(folder, changed, backbone)
    try:
        args = _parse(["lm", "--resume", str(out), "--no-progress"])
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert f"the reward model in {folder} has version {new}" in err
        assert f"trained against version {info['version']}" in err
        assert (out / cli.RUN_FILE).read_text() == config
    finally:
        for name, data in before.items():
            (folder / name).write_bytes(data)


def _saved(path, max_len):
    cfg = model.TransformerConfig(vocab_size=14, width=8, num_heads=2, max_len=max_len)
    params = jax.eval_shape(
        lambda k: reward_model.init_reward_model(k, cfg), jax.random.key(0)
    )
    params = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), params)
    reward_model.save_reward_model(path, params, cfg)
    return path


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--rm-noise", "0.7"], "--rm-noise=0.7 is invalid"),
        (["--rm-pairs", "0"], "--rm-pairs=0 is invalid"),
        (["--rm-lr", "nan"], "--rm-lr=nan is invalid"),
        (["--reward-model", "{tmp}/none"], "--reward-model {tmp}/none: no such"),
        (["--reward-model", "{tmp}"], "reward_model.json, reward_model.msgpack"),
        # Sort of one digit reads 2 + 2 tokens; this one holds 3.
        (["--reward-model", "{short}"], "max_len 3) does not fit task 'sort'"),
    ],
)
def test_lm_reward_model_options_are_checked_first(tmp_path, capsys, extra, message):
    short = _saved(tmp_path / "short", 3)
    extra = [e.format(tmp=tmp_path, short=short) for e in extra]
    args = _parse(["lm", *TINY, "--out", str(tmp_path / "out"), *extra])
    assert args.func(args) == 2
    assert message.format(tmp=tmp_path, short=short) in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_lm_names_rm_options_that_are_not_used():
    defaults = _parse(["lm"]).defaults
    args = _parse(["lm", "--rm-pairs", "8", "--rm-noise", "0.2"])
    assert rm_cli.unused_options(args, defaults) == ["--rm-pairs", "--rm-noise"]
    args = _parse(["lm", "--reward-model", "--rm-pairs", "8"])
    assert rm_cli.unused_options(args, defaults) == []
    args = _parse(["lm", "--reward-model", "some/dir", "--rm-pairs", "8"])
    assert rm_cli.unused_options(args, defaults) == ["--rm-pairs"]
