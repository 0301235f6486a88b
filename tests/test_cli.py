"""The ``jaxpg`` command end to end, its config resolution, and the learning
curve it draws (jaxpg.plotting)."""

from __future__ import annotations

import contextlib
import io
import json

import numpy as np
import pytest

from jaxpg import presets
from jaxpg.cli import build_parser, config_from_args, main
from jaxpg.config import Config
from jaxpg.plotting import common_grid_curves, plot_learning_curve

pytest.importorskip("matplotlib")

# 2 seeds, 6 updates of 4 envs x 8 steps, 5 evaluation episodes per seed.
TINY = [
    "--seeds", "2", "--num-envs", "4", "--rollout-steps", "8", "--steps", "192",
    "--eval-episodes", "5", "--hidden", "16,16",
]  # fmt: skip
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _strict_json(text: str):
    def no_constants(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return json.loads(text, parse_constant=no_constants)


@pytest.fixture(scope="module")
def cli_run(tmp_path_factory):
    """One in-process ``jaxpg train`` on a tiny budget (with a progress bar)."""
    out_dir = tmp_path_factory.mktemp("run") / "out"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["train", *TINY, "--out", str(out_dir)])
    return code, stdout.getvalue(), stderr.getvalue(), out_dir


def test_train_exits_zero_and_writes_outputs(cli_run):
    code, _, _, out_dir = cli_run
    assert code == 0
    assert (out_dir / "metrics.json").is_file()
    png = (out_dir / "learning_curve.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000


def test_metrics_json_is_strict_json_with_every_part(cli_run):
    _, _, _, out_dir = cli_run
    record = _strict_json((out_dir / "metrics.json").read_text())
    cfg = record["config"]
    assert cfg["total_steps"] == 192 and cfg["num_envs"] == 4
    assert cfg["hidden"] == [16, 16]
    assert cfg["lr"] == presets.get("CartPole-v1").lr  # preset, not overridden
    assert Config(**{**cfg, "hidden": tuple(cfg["hidden"])}).num_updates == 6
    metrics = record["metrics"]
    for name in ("episode_return", "env_steps", "loss", "grad_norm"):
        assert np.asarray(metrics[name], dtype=float).shape == (2, 6), name
    steps = np.asarray(metrics["env_steps"])
    assert np.all(np.diff(steps, axis=1) >= 0)
    returns = np.asarray(record["eval"]["returns"], dtype=float)
    assert returns.shape == (2, 5) and np.all(returns >= 1)
    np.testing.assert_allclose(record["eval"]["mean_per_seed"], returns.mean(axis=1))
    iqm = record["eval"]["iqm"]
    assert iqm["low"] <= iqm["estimate"] <= iqm["high"]
    timings = record["timings"]
    assert timings["compile_s"] > 0 and timings["run_s"] > 0
    assert timings["total_env_steps"] == int(steps[:, -1].sum())
    assert timings["steps_per_s"] == pytest.approx(
        timings["total_env_steps"] / timings["run_s"]
    )
    assert record["device"]


def test_summary_table_is_printed(cli_run):
    _, stdout, stderr, out_dir = cli_run
    assert "CartPole-v1 / reinforce" in stdout
    assert "preset CartPole-v1/reinforce" in stdout
    lines = stdout.splitlines()
    header = next(i for i, line in enumerate(lines) if line.split()[:1] == ["seed"])
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["0", "1"]
    assert "IQM" in stdout and "95% CI" in stdout
    assert "env steps/s" in stdout and "compile" in stdout and "device" in stdout
    assert str(out_dir / "metrics.json") in stdout
    assert "6/6" in stderr  # the progress bar reached the end


def test_help_exits_zero_and_documents_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--env", "--algo", "--baseline", "--seeds", "--steps", "--lr",
                   "--num-envs", "--rollout-steps", "--gamma", "--ent-coef",
                   "--hidden", "--eval-episodes", "--out", "--no-progress",
                   "--preset", "--no-preset", "examples:"):  # fmt: skip
        assert option in text, option
    assert "default: 16" in text  # --seeds


def test_no_command_prints_help_and_exits_two(capsys):
    assert main([]) == 2
    assert "train" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("argv", "names"),
    [
        (["--gamma", "2"], "gamma"),
        (["--lr", "-1"], "lr"),
        (["--steps", "10"], "total_steps"),
        (["--seeds", "0"], "--seeds"),
        (["--eval-episodes", "0"], "--eval-episodes"),
        (["--env", "NoSuchEnv-v0"], "CartPole-v1"),  # lists the known envs
        (["--env", "Pendulum-v1", "--preset"], "no preset"),
    ],
)
def test_invalid_value_is_a_one_line_error_with_exit_two(capsys, argv, names):
    assert main(["train", *argv]) == 2
    captured = capsys.readouterr()
    assert captured.out == ""
    err = captured.err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err
    assert err.startswith("jaxpg train: error:") and names in err


def test_malformed_hidden_is_an_argparse_error(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--hidden", "64,x"])
    assert exc.value.code == 2
    assert "--hidden" in capsys.readouterr().err


def _cfg(*argv):
    return config_from_args(build_parser().parse_args(["train", *argv]))[0]


def test_preset_is_the_default_and_options_override_it():
    preset = presets.get("CartPole-v1", "reinforce")
    assert _cfg() == preset
    assert _cfg("--lr", "0.5", "--hidden", "8") == preset.replace(lr=0.5, hidden=(8,))
    assert _cfg("--no-preset") == Config()
    assert _cfg("--no-preset", "--gamma", "0.9") == Config(gamma=0.9)
    # No preset for this pair: Config's defaults with the env set.
    assert _cfg("--env", "Pendulum-v1") == Config(env="Pendulum-v1")


def test_common_grid_interpolates_skips_nan_and_forward_fills():
    steps = np.array([[10, 20, 30], [15, 25, 25], [5, 6, 7]])
    returns = np.array([[1.0, np.nan, 3.0], [2.0, 4.0, np.nan], [np.nan] * 3])
    grid, curves = common_grid_curves(steps, returns, num_points=5)
    np.testing.assert_allclose(grid, [10, 15, 20, 25, 30])
    # Seed 2 never finished an episode: dropped.
    np.testing.assert_allclose(curves, [[1, 1.5, 2, 2.5, 3], [2, 2, 3, 4, 4]])


def test_plot_learning_curve_writes_png_even_without_episodes(tmp_path):
    path = tmp_path / "empty.png"
    plot_learning_curve(np.zeros((2, 3)), np.full((2, 3), np.nan), path, "none")
    assert path.read_bytes().startswith(PNG_MAGIC)
    with pytest.raises(ValueError, match=r"\[S, U\]"):
        plot_learning_curve(np.zeros((2, 3)), np.zeros((3, 2)), path)


def test_set_overrides_any_config_field_typed_like_it():
    preset = presets.get("CartPole-v1", "reinforce")
    cfg = _cfg(
        "--set",
        "policy_head_scale=1.0",
        "--set",
        "max_grad_norm=none",
        "--set",
        "hidden=32,32",
        "--set",
        "max_episode_steps=200",
    )
    assert cfg == preset.replace(
        policy_head_scale=1.0,
        max_grad_norm=None,
        hidden=(32, 32),
        max_episode_steps=200,
    )
    ppo = _cfg("--algo", "ppo", "--set", "clip_value=true", "--set", "lr=3e-4")
    assert ppo == presets.get("CartPole-v1", "ppo").replace(clip_value=True, lr=3e-4)


@pytest.mark.parametrize(
    ("setting", "names"),
    [
        ("nosuchfield=1", "policy_head_scale"),  # lists the settable fields
        ("num_envs=x", "num_envs"),
        ("clip_value=maybe", "clip_value"),
        ("algo=ppo", "FIELD=VALUE"),  # the algorithm is chosen by --algo
    ],
)
def test_malformed_set_is_an_argparse_error(capsys, setting, names):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--set", setting])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "--set" in err and names in err


def test_set_value_rejected_by_config_exits_two(capsys):
    assert main(["train", "--set", "policy_head_scale=-1"]) == 2
    assert "policy_head_scale" in capsys.readouterr().err
