"""``jaxpg lm`` through its own parser (the top-level CLI wires ``register``)."""

from __future__ import annotations

import argparse
import json

import jax
import pytest

from jaxpg.cli import lm as cli
from jaxpg.sequence import model, seeds, sft


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
    # On CPU the RL program ran with YNNPACK off (the default), recorded.
    expected = seeds.NO_YNN if jax.default_backend() == "cpu" else None
    assert record["compiler_options"] == expected


@pytest.mark.parametrize(
    ("xla_ynn", "backend", "expected"),
    [
        ("off", "cpu", seeds.NO_YNN),
        ("on", "cpu", None),
        ("off", "gpu", None),
    ],
)
def test_lm_compiler_options(xla_ynn, backend, expected):
    assert seeds.compiler_options(xla_ynn, backend) == expected
    with pytest.raises(ValueError, match="--xla-ynn='maybe'"):
        seeds.compiler_options("maybe", backend)
    assert _parse(["lm"]).xla_ynn == "off"


def test_lm_falls_back_to_default_xla_options_when_one_is_unknown(capsys):
    args = _parse(["lm", *TINY, "--updates", "2", "--seeds", "1"])
    task, model_cfg, rl_cfg = cli.build_config(args)
    params = model.init(jax.random.key(0), model_cfg)
    unknown = {"xla_no_such_option_for_this_test": "1"}
    metrics, _, _, _, used = seeds.train_seeds(
        task, model_cfg, rl_cfg, params, 1, 2, unknown
    )
    assert used is None
    assert "not supported; using the defaults" in capsys.readouterr().out
    assert metrics["reward"].shape == (1, 2)


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
    cfg = model.TransformerConfig(vocab_size=14, width=16, num_heads=2, max_len=8)
    params = jax.eval_shape(lambda k: model.init(k, cfg), jax.random.key(0))
    params = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), params)
    sft.save_reference(tmp_path / "ref", params, cfg)
    args = _parse(
        ["lm", "--out", str(tmp_path), "--reference", str(tmp_path / "ref"), *TINY]
    )
    assert args.func(args) == 2
    assert "differs from the requested" in capsys.readouterr().err
