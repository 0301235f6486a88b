"""``jaxpg lm`` through its own parser (the top-level CLI wires ``register``)."""

from __future__ import annotations

import argparse
import json

import pytest

from jaxpg.sequence import cli, sft


def _parse(argv):
    parser = argparse.ArgumentParser(prog="jaxpg")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    return parser.parse_args(argv)


TINY = [
    "--width", "8", "--layers", "1", "--heads", "2", "--sft-steps", "3",
    "--updates", "4", "--chunk", "2", "--prompts", "2", "--group", "2",
    "--seeds", "2", "--no-progress",
]  # fmt: skip


def test_lm_runs_sft_then_rl_and_records_the_reference_version(tmp_path, capsys):
    out = tmp_path / "run"
    args = _parse(["lm", "--task", "sort_proxy", "--out", str(out), *TINY])
    assert args.func(args) == 0
    record = json.loads((out / "metrics.json").read_text())
    ref_info = json.loads((out / "reference" / "reference.json").read_text())
    params, _, _ = sft.load_reference(out / "reference")
    assert record["reference_version"] == ref_info["version"] == sft.params_hash(params)
    assert record["rl"]["advantage"] == "grpo" and record["seeds"] == 2
    for name in ("reward", "true_reward", "accuracy", "kl_exact", "kl_estimate",
                 "entropy", "response_length", "clip_frac"):  # fmt: skip
        assert len(record["metrics"][name]) == 2
        assert len(record["metrics"][name][0]) == 4
    assert len(record["summary"]["final_accuracy"]) == 2
    assert (out / "curves.png").stat().st_size > 1000
    printed = capsys.readouterr().out
    assert ref_info["version"] in printed and "hacked at" in printed


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk", "3"], "--chunk=3 must be >= 1 and divide --updates=4"),
        (["--seeds", "0"], "--seeds=0 is invalid"),
        (["--epochs", "2", "--clip-eps", "0"], "epochs=2 reuses samples"),
    ],
)
def test_lm_rejects_bad_settings(tmp_path, capsys, extra, message):
    args = _parse(["lm", "--out", str(tmp_path), *TINY, *extra])
    assert args.func(args) == 2
    assert message in capsys.readouterr().err


def test_lm_refuses_a_reference_of_another_shape(tmp_path, capsys):
    import jax

    from jaxpg.sequence import model

    cfg = model.TransformerConfig(vocab_size=14, width=16, num_heads=2, max_len=8)
    params = jax.eval_shape(lambda k: model.init(k, cfg), jax.random.key(0))
    params = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), params)
    sft.save_reference(tmp_path / "ref", params, cfg)
    args = _parse(
        ["lm", "--out", str(tmp_path), "--reference", str(tmp_path / "ref"), *TINY]
    )
    assert args.func(args) == 2
    assert "differs from the requested" in capsys.readouterr().err
