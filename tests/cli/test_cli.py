"""The ``jaxpg`` command end to end (train into a run directory, Ctrl-C and
resume, eval), its config resolution, and the learning curve it draws
(jaxpg.analysis.plotting)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest
from cli_capture import run_main as _main

import jaxpg
from jaxpg import presets
from jaxpg.analysis.plotting import common_grid_curves, plot_learning_curve
from jaxpg.cli.compare import eval_summary, print_eval
from jaxpg.cli.main import build_parser, config_from_args, main
from jaxpg.cli.train_options import default_out
from jaxpg.config import Config
from jaxpg.experiment import checkpoint, rundir

pytest.importorskip("matplotlib")

# 2 seeds, 6 updates of 4 envs x 8 steps, 5 evaluation episodes per seed.
TINY = [
    "--seeds", "2", "--num-envs", "4", "--rollout-steps", "8", "--steps", "192",
    "--eval-episodes", "5", "--hidden", "16,16", "--set", "normalise_obs=true",
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
    code, stdout, stderr = _main("train", *TINY, "--out", str(out_dir))
    return code, stdout, stderr, out_dir


def test_train_exits_zero_and_writes_a_run_directory(cli_run):
    code, _, stderr, out_dir = cli_run
    assert code == 0
    # It says what it is doing during the compile, before the first update.
    assert "compiling CartPole-v1 / reinforce, 2 seeds..." in stderr
    assert re.search(r"compiled CartPole-v1 / reinforce, 2 seeds in \d+\.\d s", stderr)
    for name in ("config.json", "versions.json", "progress.json", "summary.json"):
        assert (out_dir / name).is_file(), name
    png = (out_dir / "learning_curve.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 5_000
    assert checkpoint.list_steps(out_dir / "checkpoints") == [6]
    assert checkpoint.verify(out_dir / "checkpoints", 6) is None
    assert (out_dir / "params").is_dir()
    # Metrics streamed per chunk (6 updates: chunks of one).
    assert len(list((out_dir / "metrics").glob("*.npz"))) == 6


def test_config_json_rebuilds_the_run(cli_run):
    _, _, _, out_dir = cli_run
    record = _strict_json((out_dir / "config.json").read_text())
    cfg = rundir.config_from_dict(record["config"])
    expected = presets.get("CartPole-v1").replace(
        total_steps=192,
        num_envs=4,
        rollout_steps=8,
        hidden=(16, 16),
        normalise_obs=True,
    )
    assert cfg == expected
    assert record["num_seeds"] == 2 and record["first_seed"] == 0
    assert record["num_updates"] == 6 and record["chunk_updates"] == 1


def test_metrics_keep_no_episode_apart_from_nan_return(cli_run):
    _, _, _, out_dir = cli_run
    metrics = rundir.read_metrics(out_dir)
    for name in ("episode_return", "env_steps", "loss", "grad_norm", "nonfinite"):
        assert metrics[name].shape == (2, 6), name
    assert np.all(np.diff(metrics["env_steps"], axis=1) >= 0)
    # NaN return exactly where no episode ended (none diverged here).
    np.testing.assert_array_equal(
        np.isnan(metrics["episode_return"]), metrics["num_episodes"] == 0
    )


def test_summary_json_is_small_strict_json_with_every_part(cli_run):
    _, _, _, out_dir = cli_run
    text = (out_dir / "summary.json").read_text()
    assert len(text) < 5_000  # per seed, never per update or per episode
    record = _strict_json(text)
    ev = record["eval"]
    assert ev["episodes"] == 5 and len(ev["mean_per_seed"]) == 2
    assert all(x >= 1 for x in ev["mean_per_seed"])
    assert ev["nonfinite_seeds"] == {}
    assert ev["iqm"]["low"] <= ev["iqm"]["estimate"] <= ev["iqm"]["high"]
    assert ev["solved_threshold"] == 475 and ev["seeds_solved"] == 0
    assert record["train"]["rejected_updates"] == [0, 0]
    # REINFORCE spent the budget before its last update slot, and the last
    # training return is that of its last update with data.
    m = rundir.read_metrics(out_dir, ("episode_return", "update"))
    assert np.all(m["update"][:, -1] < 6)
    assert np.all(np.isfinite(m["episode_return"][:, -1]))
    assert record["train"]["last_return"] == m["episode_return"][:, -1].tolist()
    timings = record["timings"]
    assert timings["compile_s"] > 0 and timings["run_s"] > 0
    steps = rundir.read_metrics(out_dir, ("env_steps",))["env_steps"]
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
    assert "rejected" in lines[header]
    assert [line.split()[0] for line in lines[header + 1 : header + 3]] == ["0", "1"]
    assert "IQM" in stdout and "95% CI" in stdout
    assert "seeds solved (eval return >= 475): 0 of 2" in stdout
    assert "env steps/s" in stdout and "compile" in stdout and "device" in stdout
    assert str(out_dir / "summary.json") in stdout
    # The progress bar counts env steps and ends full: 2 seeds x 192 steps.
    assert "384/384" in stderr


def test_sigint_checkpoints_exits_cleanly_and_resume_is_bit_identical(
    cli_run, tmp_path
):
    _, _, _, full_dir = cli_run
    out = tmp_path / "cut"
    env = {**os.environ, "JAXPG_CACHE_DIR": ""}
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxpg.cli", "train", *TINY, "--out", str(out),
         "--no-progress"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        # config.json is written once the signal handlers are in place, before
        # compiling: a SIGINT now stops the run at the first chunk boundary.
        deadline = time.monotonic() + 600
        while not (out / "config.json").exists():
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=600)
    finally:
        proc.kill()
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    ours = [line for line in err.splitlines() if line.startswith("jaxpg")]
    assert ours == [
        f"jaxpg train: interrupted (SIGINT) at update 1/6; checkpoint saved; "
        f"resume with: jaxpg train --resume {out}"
    ]
    assert checkpoint.list_steps(out / "checkpoints") == [1]
    assert checkpoint.verify(out / "checkpoints", 1) is None
    assert rundir.read_progress(out)["status"] == "interrupted"

    # Resume in this process (another process than the interrupted run),
    # with TensorBoard logging on, which does not change the run.
    code, stdout, err = _main("train", "--resume", str(out), "--tensorboard",
                              "--eval-episodes", "5")  # fmt: skip
    assert code == 0, err
    assert f"resumed {out}" in stdout
    full = rundir.read_metrics(full_dir)
    resumed = rundir.read_metrics(out)
    assert set(full) == set(resumed)
    for name in full:
        np.testing.assert_array_equal(full[name], resumed[name], err_msg=name)
    target = _params_target(full_dir)
    a = checkpoint.restore_tree(full_dir / "params", target)
    b = checkpoint.restore_tree(out / "params", target)
    jax.tree.map(np.testing.assert_array_equal, a, b)
    ours = _strict_json((out / "summary.json").read_text())["eval"]
    theirs = _strict_json((full_dir / "summary.json").read_text())["eval"]
    assert ours["mean_per_seed"] == theirs["mean_per_seed"]
    # One TensorBoard run per seed, written between chunks.
    for seed in (0, 1):
        events = list((out / "tensorboard" / f"seed_{seed}").glob("events.*"))
        assert events and b"train/episode_return" in events[0].read_bytes()


def test_set_values_are_typed_like_the_fields():
    import argparse

    from jaxpg.cli.options import parse_setting

    assert parse_setting("lr=0.01") == ("lr", 0.01)
    assert parse_setting("num_envs=8") == ("num_envs", 8)
    assert parse_setting("hidden=8,4") == ("hidden", (8, 4))
    assert parse_setting("normalise_obs=true") == ("normalise_obs", True)
    assert parse_setting("max_grad_norm=none") == ("max_grad_norm", None)
    assert parse_setting("policy_obs=image") == ("policy_obs", "image")
    assert parse_setting("policy_obs=image, state") == (
        "policy_obs",
        ("image", "state"),
    )
    with pytest.raises(argparse.ArgumentTypeError, match="not a valid int"):
        parse_setting("num_envs=eight")
    with pytest.raises(argparse.ArgumentTypeError, match="FIELD one of"):
        parse_setting("env=CartPole-v1")


def test_tensorboard_on_a_new_run_and_over_a_finished_one(tmp_path):
    """--tensorboard writes its event files once training starts, so the run
    directory is still empty (or holds the run being replaced) when it is
    checked: a new run and an --overwrite both train and log."""
    out = tmp_path / "tb"
    for extra in ([], ["--overwrite"]):
        code, _, err = _main("train", *TINY, "--out", str(out), "--tensorboard",
                             "--no-progress", *extra)  # fmt: skip
        assert code == 0, err
        assert (out / "summary.json").is_file()
        for seed in (0, 1):
            events = list((out / "tensorboard" / f"seed_{seed}").glob("events.*"))
            assert len(events) == 1  # the replaced run's events were cleared
            assert b"train/episode_return" in events[0].read_bytes()


def _params_target(run_dir):
    from jaxpg.drivers.evaluation import policy_target

    cfg, record = rundir.load_run(run_dir)
    return policy_target(cfg, record["num_seeds"], 0).params["policy"]


def test_eval_restores_the_saved_policies(cli_run):
    _, _, _, out_dir = cli_run
    # Round 0 with training's episode count: the very evaluation training did.
    code, stdout, err = _main("eval", str(out_dir), "--episodes", "5", "--round", "0")
    assert code == 0, err
    record = _strict_json((out_dir / "eval.json").read_text())
    summary = _strict_json((out_dir / "summary.json").read_text())["eval"]
    assert record["mean_per_seed"] == summary["mean_per_seed"]
    assert record["evaluated"] == "final parameters"
    assert (out_dir / "obs_norm").is_dir()  # the statistics the policy acts through
    assert "IQM" in stdout and "seeds solved" in stdout
    # Default round 1: fresh episodes, another sample.
    assert _main("eval", str(out_dir), "--episodes", "5")[0] == 0
    fresh = _strict_json((out_dir / "eval.json").read_text())
    assert fresh["mean_per_seed"] != summary["mean_per_seed"]
    # From Python, the saved policy is what training returns: it carries its
    # observation statistics, and the documented evaluate call takes it.
    from jaxpg.drivers.evaluation import load_policy

    cfg, _, params, _ = load_policy(out_dir)
    first = jax.tree.map(lambda x: x[0], params)
    assert "obs_norm" in first
    assert jaxpg.evaluate(cfg, first, jax.random.key(0), num_episodes=2).shape == (2,)


def test_eval_of_a_folder_without_a_run_is_an_error(tmp_path):
    code, _, err = _main("eval", str(tmp_path))
    assert code == 2 and "not a jaxpg run directory" in err


def test_existing_run_or_file_is_refused_before_training(cli_run, tmp_path):
    _, _, _, out_dir = cli_run
    t0 = time.perf_counter()
    code, stdout, err = _main("train", *TINY, "--out", str(out_dir))
    assert code == 2 and "already holds a run" in err and "--overwrite" in err
    a_file = tmp_path / "file"
    a_file.write_text("")
    code, stdout, err = _main("train", *TINY, "--out", str(a_file))
    assert code == 2 and "is a file" in err
    assert stdout == ""  # nothing trained, nothing printed
    assert time.perf_counter() - t0 < 30  # no compile happened


def test_resume_with_a_different_option_names_it(cli_run):
    _, _, _, out_dir = cli_run
    code, stdout, err = _main("train", "--resume", str(out_dir), "--lr", "0.5")
    assert code == 2 and stdout == ""
    run_lr = json.loads((out_dir / rundir.CONFIG).read_text())["config"]["lr"]
    assert f"lr: run has {run_lr}, command line 0.5" in err
    code, _, err = _main("train", "--resume", str(out_dir), "--seeds", "3")
    assert code == 2 and "seeds: run has 2, command line 3" in err


def test_default_out_is_numbered_when_taken(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = presets.get("CartPole-v1")
    assert default_out(cfg) == Path("runs/CartPole-v1-reinforce")
    taken = Path("runs/CartPole-v1-reinforce")
    taken.mkdir(parents=True)
    assert default_out(cfg) == taken  # empty: used
    (taken / "config.json").write_text("{}")
    assert default_out(cfg) == Path("runs/CartPole-v1-reinforce-2")


def test_nonfinite_evaluation_is_reported_and_kept_out_of_the_statistics(capsys):
    returns = np.array(
        [[10.0, 12.0], [np.nan, 1.0], [np.inf, 3.0], [20.0, 22.0], [30.0, 30.0]]
    )
    summary = eval_summary(returns, 0, 2, False, 0, threshold=20.0)
    text = json.dumps(summary, allow_nan=False)  # strict JSON: no NaN/inf
    assert summary["mean_per_seed"] == [11.0, None, None, 21.0, 30.0]
    assert summary["nonfinite_seeds"] == {"1": "nan", "2": "inf"}
    # IQM over the three finite seeds (n = 3 keeps all: their mean).
    assert summary["iqm"]["estimate"] == pytest.approx((11 + 21 + 30) / 3)
    assert summary["seeds_solved"] == 2
    print_eval(json.loads(text))
    out = capsys.readouterr().out
    assert "over 3 seeds" in out and "seeds 1 (nan), 2 (inf)" in out
    assert "2 of 5" in out
    nothing = eval_summary(np.full((2, 3), np.nan), 0, 3, False, 0, None)
    assert nothing["iqm"] is None and nothing["seeds_solved"] is None
    print_eval(nothing)
    assert "no seed has a finite return" in capsys.readouterr().out


def test_help_exits_zero_and_documents_options(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["train", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for option in ("--env", "--algo", "--baseline", "--seeds", "--steps", "--lr",
                   "--num-envs", "--rollout-steps", "--gamma", "--ent-coef",
                   "--hidden", "--eval-episodes", "--out", "--no-progress",
                   "--preset", "--no-preset", "--resume", "--overwrite",
                   "--checkpoint-every", "--tensorboard", "examples:"):  # fmt: skip
        assert option in text, option
    assert "default: 16" in text  # --seeds


@pytest.mark.parametrize("command", [[], ["train"], ["eval"], ["compare"],
                                     ["sweep"], ["lm"]])  # fmt: skip
def test_help_is_in_plain_words(capsys, command):
    """No Sphinx markup (double backticks, roles), no cross-reference to
    jaxpg's modules and no unformatted ``%%`` in any help text, and every
    option of every command says what it does."""
    with pytest.raises(SystemExit) as exc:
        main([*command, "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    assert "`" not in text and not re.search(r":(func|mod|class|data|math):", text)
    assert "%%" not in text
    assert not re.findall(r"jaxpg(?:\.[a-z_]+){2,}", text)
    # No word split at a hyphen, no bracket lost with a dropped reference.
    assert not re.search(r"\w-\n", text), re.search(r".*\w-\n.*", text)
    closed = re.sub(r"\[[^\]()]*\)", "", text)  # a half-open interval: [0, N)
    assert closed.count("(") == closed.count(")")
    for action in build_parser()._actions:
        if not hasattr(action, "choices") or not isinstance(action.choices, dict):
            continue
        for name, parser in action.choices.items():
            undocumented = [
                a.option_strings[0]
                for a in parser._actions
                if a.option_strings and not a.help
            ]
            assert not undocumented, f"jaxpg {name}: {undocumented}"


def test_no_command_prints_help_and_exits_two(capsys):
    assert main([]) == 2
    err = capsys.readouterr().err
    for command in ("train", "eval", "compare", "sweep", "lm"):
        assert command in err, command


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


def test_learning_curve_draws_every_seed_the_mean_and_the_threshold(tmp_path):
    steps = np.array([[10, 20, 30], [10, 20, 30], [10, 20, 30]])
    returns = np.array([[1.0, 2.0, 3.0], [2.0, 2.0, 2.0], [0.0, 5.0, 9.0]])
    path = tmp_path / "curve.png"
    fig = plot_learning_curve(steps, returns, path, "t", threshold=4.0)
    assert path.read_bytes().startswith(PNG_MAGIC)
    lines = fig.axes[0].get_lines()
    thin = [line for line in lines if line.get_linewidth() == 0.6]
    assert len(thin) == 3  # one per seed
    np.testing.assert_allclose(thin[2].get_ydata()[[0, -1]], [0.0, 9.0])
    mean = next(line for line in lines if line.get_linewidth() == 2.0)
    np.testing.assert_allclose(mean.get_ydata()[[0, -1]], [1.0, 14.0 / 3])
    assert any(set(line.get_ydata()) == {4.0} for line in lines)  # threshold


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
