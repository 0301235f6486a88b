"""``jaxpg sweep`` from the command line: the table, JSON and plot it
writes, its default folder, a bad environment as one error line. (Compared
runs, which compile with XLA's default code generators, stay in
tests/drivers/test_sweep.py.)"""

from __future__ import annotations

import argparse
import json

import numpy as np


def test_sweep_cli_writes_table_json_and_png(tmp_path, capsys):
    from jaxpg.cli import sweep as sweep_cli

    parser = argparse.ArgumentParser(prog="jaxpg")
    sweep_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(
        [
            "sweep",
            "--no-preset",
            "--grid",
            "lr=1e-3,3e-2",
            "--seeds",
            "2",
            "--set",
            "num_envs=4",
            "--set",
            "rollout_steps=8",
            "--set",
            "total_steps=96",
            "--set",
            "hidden=8",
            "--eval-episodes",
            "4",
            "--solved-at",
            "20",
            "--out",
            str(tmp_path),
        ]
    )
    assert args.func is sweep_cli.run
    assert args.func(args) == 0
    captured = capsys.readouterr()
    text = captured.out
    # It trains in chunks with a bar over env steps that ends full
    # (2 settings x 2 seeds x 96 steps).
    assert "compiling CartPole-v1 / reinforce, 4 members..." in captured.err
    assert "training 4 members" in captured.err and "384/384" in captured.err
    record = json.loads((tmp_path / "sweep.json").read_text())
    assert [r["setting"] for r in record["results"]] == [{"lr": 1e-3}, {"lr": 3e-2}]
    best = record["best"]
    iqms = [r["iqm"]["estimate"] for r in record["results"]]
    assert best == int(np.argmax(iqms))
    for r in record["results"]:
        assert len(r["mean_per_seed"]) == len(r["std_per_seed"]) == 2
        assert r["iqm"]["low"] <= r["iqm"]["estimate"] <= r["iqm"]["high"]
        assert r["seeds_solved"] == sum(v >= 20 for v in r["mean_per_seed"])
    rows = [line for line in text.splitlines() if "lr=" in line]
    assert [row.startswith("*") for row in rows] == [i == best for i in range(2)]
    assert (tmp_path / "sweep.png").stat().st_size > 0


def test_sweep_default_folder_is_the_first_free_one(tmp_path, monkeypatch):
    from jaxpg.cli.options import first_free

    monkeypatch.chdir(tmp_path)
    base = tmp_path / "runs" / "sweep-CartPole-v1-ppo"
    assert first_free(base) == base
    base.mkdir(parents=True)
    (base / ".jaxpg-lock").write_text("")  # jaxpg's own leftover: still free
    assert first_free(base) == base
    (base / "sweep.json").write_text("{}")
    (base.with_name(base.name + "-2") / "x").mkdir(parents=True)
    assert first_free(base) == base.with_name(base.name + "-3")


def test_sweep_with_an_environment_it_cannot_build_is_one_error_line(capsys):
    from jaxpg.cli.main import main

    assert main(["sweep", "--env", "custom", "--grid", "lr=1e-3", "--seeds", "1",
                 "--no-progress"]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert err.startswith("jaxpg sweep: error: ") and "Traceback" not in err
    assert "custom" in err
