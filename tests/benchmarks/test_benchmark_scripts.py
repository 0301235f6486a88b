"""Bookkeeping of the benchmark scripts that does not need a benchmark run:
a failed or stopped child must not lose the rows measured before it."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def scaling():
    spec = importlib.util.spec_from_file_location("scaling", BENCH / "scaling.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _record(seeds, devices=(), memory=()):
    return {
        "date": "2026-01-01T00:00:00+00:00",
        "env": "CartPole-v1",
        "threshold": 475.0,
        "measured": {},
        "seeds": list(seeds),
        "devices": list(devices),
        "memory": list(memory),
        "machine": {
            "platform": "gpu",
            "device_kind": "X",
            "device_count": 1,
            "cpu_count": 4,
        },
        "total_s": 1.0,
        "command": "scaling.py",
    }


def test_a_child_that_times_out_becomes_a_failed_row(scaling):
    row = scaling._spawn("train", 1e-3, algo="ppo", num_seeds=4, updates=2)
    assert row == {
        "seeds": 4,
        "error": "timed out after 0.001 s",
        "algo": "ppo",
        "updates": 2,
    }


def test_markdown_and_plot_keep_good_rows_next_to_failed_ones(scaling, tmp_path):
    good = {
        "algo": "ppo",
        "seeds": 1,
        "updates": 2,
        "steps_per_s": 1000.0,
        "compile_s": 1.0,
        "run_s": 0.5,
    }
    failed = {"algo": "ppo", "seeds": 64, "updates": 0, "error": "CUDA OOM"}
    text = scaling._markdown(_record([good, failed]))
    assert "| ppo | 1 | 2 | 1,000 | 1.0 | 0.5 |" in text
    assert "| ppo | 64 | full | failed |" in text
    assert "- algo=ppo, seeds=64, updates=0: CUDA OOM" in text
    # No device rows: said so, and the figure has no devices panel.
    assert "## Devices\n\nNot measured in this record." in text
    scaling._plot(_record([good, failed]), tmp_path / "fig.png")
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_recorded_command_leaves_out_the_output_directory(scaling):
    argv = ["benchmarks/scaling.py", "--seeds", "1,4", "--out", "/x/y", "--out=/z"]
    assert scaling._command(argv) == "scaling.py --seeds 1,4"


def test_every_finished_child_is_written_at_once(scaling, tmp_path, monkeypatch):
    # A run stopped from outside after its first child keeps that child's row.
    rows = iter([{"algo": "ppo", "seeds": 1, "updates": 2, "steps_per_s": 1.0}])

    def first_then_stop(*_):
        yield next(rows)
        partial = json.loads((tmp_path / "scaling_cpu.partial.json").read_text())
        assert partial["seeds"] == [
            {"algo": "ppo", "seeds": 1, "updates": 2, "steps_per_s": 1.0}
        ]
        raise KeyboardInterrupt

    monkeypatch.setattr(scaling, "_run_seeds", first_then_stop)
    monkeypatch.setattr(scaling, "jax_platform_is_cpu", lambda: True)
    with pytest.raises(KeyboardInterrupt):
        scaling.main(["--algos", "ppo", "--seeds", "1", "--out", str(tmp_path)])


@pytest.fixture(scope="module")
def throughput():
    spec = importlib.util.spec_from_file_location("throughput", BENCH / "throughput.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_learner_split_is_update_less_rollout(throughput):
    """Fake calls of known durations: the learner is the update's time less
    its rollout's, as a share of the update."""
    import time

    split = throughput.time_learner_split(
        lambda: time.sleep(0.004), lambda: time.sleep(0.001), {}, 3, 0, 0.0
    )
    assert len(split["update_times_s"]) == len(split["rollout_times_s"]) >= 3
    assert split["learner_s"] == pytest.approx(split["update_s"] - split["rollout_s"])
    assert 0.3 < split["learner_share"] < 0.95  # 0.75 up to the sleeps' slack
    low, high = split["learner_share_paired_min_max"]
    assert low <= high


@pytest.mark.parametrize("bad", ["0,4", "x", ""])
def test_loop_chunks_are_validated_before_any_work(throughput, bad, capsys):
    with pytest.raises(SystemExit):
        throughput.main(["--loop-chunks", bad])
    assert "--loop-chunks" in capsys.readouterr().err


def test_chunk_table_has_a_row_per_chunk(throughput):
    def chunk(k):
        return {
            "loop_chunk": k,
            "training": {"steps_per_second": 1e5, "lower_s": 1.0, "compile_s": 2.0},
            "ratio": 0.5,
            "ratio_paired_min_max": [0.4, 0.6],
            "learner_split": {
                "update_s": 0.004,
                "rollout_s": 0.001,
                "learner_s": 0.003,
                "learner_share": 0.75,
            },
        }

    rows = [{"seeds": s, "chunks": [chunk(k) for k in (1, 16)]} for s in (1, 256)]
    lines = throughput.chunk_table(rows)
    assert len([line for line in lines if line.startswith("| 1 |")]) == 2
    assert any(line.startswith("| 256 | 16 | 100,000 | 0.500 |") for line in lines)
    assert throughput.chunk_table([{"seeds": 1, "chunks": [chunk(1)]}]) == []


def test_recurrent_speed_tiny_writes_both_arms_and_their_ratio(tmp_path):
    """``benchmarks/recurrent_speed.py --tiny`` (REINFORCE only, to keep it to
    three small compiles): the arms at the same batch, the ratios of their
    steps/s, and the Markdown row."""
    spec = importlib.util.spec_from_file_location(
        "recurrent_speed", BENCH / "recurrent_speed.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "rs.json"
    module.main(["--tiny", "--algos", "reinforce", "--out", str(out)])
    record = json.loads(out.read_text())
    row = record["rows"]["reinforce"]
    gru, mlp, same = (row["arms"][k] for k in ("gru", "mlp", "mlp_same_macs"))
    assert gru["config"]["torso"] == "gru" and mlp["config"]["torso"] == "mlp"
    assert len(same["config"]["hidden"]) == 7  # the encoder, then six products
    assert gru["env_steps"] == mlp["env_steps"] == same["env_steps"] > 0
    assert row["ratio"] == pytest.approx(
        gru["steps_per_s"] / mlp["steps_per_s"], rel=1e-2
    )
    assert row["ratio_same_macs"] == pytest.approx(
        gru["steps_per_s"] / same["steps_per_s"], rel=1e-2
    )
    assert "| reinforce |" in out.with_suffix(".md").read_text()
    with pytest.raises(SystemExit):
        module.main(["--algos", "a2c"])


@pytest.fixture(scope="module")
def brax_trainer():
    spec = importlib.util.spec_from_file_location(
        "brax_trainer", BENCH / "brax_trainer.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_brax_trainer_maps_one_batch_onto_both_trainers(brax_trainer):
    """Same batch, minibatch, epochs and coefficients on both sides: brax's
    minibatch of ``batch_size`` sequences of ``unroll`` steps is jaxpg's
    ``num_envs · rollout_steps / num_minibatches`` transitions."""
    s = brax_trainer.SETTINGS
    steps = brax_trainer.STEPS_PER_SEED
    cfg = brax_trainer.jaxpg_config(s, steps, "brax/inverted_pendulum")
    kw = brax_trainer.brax_kwargs(s, steps, epochs=4)
    assert kw["num_envs"] == cfg.num_envs and kw["unroll_length"] == cfg.rollout_steps
    assert kw["batch_size"] * kw["num_minibatches"] == cfg.num_envs
    assert kw["batch_size"] * kw["unroll_length"] == (
        cfg.num_envs * cfg.rollout_steps // cfg.num_minibatches
    )
    assert kw["num_updates_per_batch"] == cfg.num_epochs
    for theirs, ours in [
        ("learning_rate", "lr"),
        ("discounting", "gamma"),
        ("gae_lambda", "gae_lambda"),
        ("clipping_epsilon", "clip_eps"),
        ("entropy_cost", "ent_coef"),
        ("vf_loss_coefficient", "vf_coef"),
        ("normalize_observations", "normalise_obs"),
    ]:
        assert kw[theirs] == getattr(cfg, ours), theirs
    assert kw["num_timesteps"] == cfg.total_steps == steps
    assert kw["num_evals"] == 5 and kw["run_evals"] is False
    with pytest.raises(ValueError, match="total_steps=1000"):
        brax_trainer.brax_kwargs(s, 1000, epochs=4)
    with pytest.raises(ValueError, match="num_envs=30"):
        brax_trainer.brax_kwargs({**s, "num_envs": 30}, steps, epochs=4)


def test_brax_trainer_table_names_both_sides(brax_trainer):
    side = {
        "steps_per_s": 2000.0,
        "compile_s": 3.0,
        "seed_returns": [10.0, 20.0],
        "summary": {"iqm": 15.0, "ci95": [10.0, 20.0]},
    }
    record = {
        "machine": "2-core CPU VM",
        "env": "brax/inverted_pendulum",
        "steps_per_seed": 1024,
        "seeds": 2,
        "episodes": 4,
        "settings": brax_trainer.SETTINGS,
        "jaxpg": {**side, "vmapped_steps_per_s": 5000.0, "vmapped_compile_s": 4.0},
        "brax": {**side, "steps_per_s": 1000.0},
        "ratio": 2.0,
    }
    text = brax_trainer.markdown(record)
    assert "| jaxpg | 2,000 | 3.0 | 15.0 [10.0, 20.0] | 10.0, 20.0 |" in text
    assert "| brax | 1,000 | 3.0 |" in text
    assert "jaxpg / brax steps/s: **2.00**" in text
    assert "5,000 steps/s (all seeds' steps)" in text


def test_env_suites_steps_per_s_are_figures_only_from_a_quiet_run():
    spec = importlib.util.spec_from_file_location("env_suites", BENCH / "env_suites.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    row = {
        "task": "navix/x",
        "env_steps_per_seed": 64,
        "seeds": 2,
        "episodes_per_seed": 2,
        "ppo_mean": 1.0,
        "ppo_se_over_seeds": 0.0,
        "ppo_seed_means": [1.0, 1.0],
        "random_mean": 0.5,
        "random_se": 0.1,
        "gap_in_se": 5.0,
        "beats": True,
        "compile_s": 3.0,
        "train_steps_per_s": 12345.0,
    }
    loaded = module.markdown([row], "2-core CPU VM")
    assert "| (12,345) |" in loaded and "quiet run only" in loaded
    quiet = module.markdown([row], "2-core CPU VM", quiet=True)
    assert "| 3 | 12,345 |" in quiet and "quiet run only" not in quiet


def test_lm_protocol_speed_imports_an_older_tree_beside_jaxpg(tmp_path):
    """``benchmarks/lm_protocol_speed.py`` renames an older checkout's package
    to ``jaxpg_old`` so both versions import in one process: its modules must
    import each other, not today's ``jaxpg``."""
    spec = importlib.util.spec_from_file_location(
        "lm_protocol_speed", BENCH / "lm_protocol_speed.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    tree = tmp_path / "tree"
    (tree / "jaxpg" / "sub").mkdir(parents=True)
    (tree / "jaxpg" / "__init__.py").write_text("from jaxpg.sub import leaf\n")
    (tree / "jaxpg" / "sub" / "__init__.py").write_text("")
    (tree / "jaxpg" / "sub" / "leaf.py").write_text(
        "import jaxpg.sub\nNAME = 'jaxpg'\nWHO = jaxpg.sub.__name__\n"
    )
    try:
        old = module.import_old(tree, tmp_path / "copy")
        assert old.__name__ == "jaxpg_old"
        assert old.leaf.WHO == "jaxpg_old.sub"
        assert old.leaf.NAME == "jaxpg"  # strings are left alone
    finally:
        sys.path.remove(str(tmp_path / "copy"))
        for name in [m for m in sys.modules if m.split(".")[0] == "jaxpg_old"]:
            del sys.modules[name]


def test_vmap_trace_tiny_times_both_arms_of_one_program(tmp_path):
    """``benchmarks/vmap_trace.py --tiny``: both arms traced and lowered, the
    same lowered program, the library's functions put back after the
    unbatched arm."""
    spec = importlib.util.spec_from_file_location("vmap_trace", BENCH / "vmap_trace.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = module.train_module._batched_from_start, module.rl.batched_like
    out = tmp_path / "vt.json"
    module.main(["--tiny", "--out", str(out)])
    row = json.loads(out.read_text())["result"]["reinforce"]
    assert row["same_results"]  # the lowered text may place broadcasts elsewhere
    batched, unbatched = (row["arms"][a]["trace_s"] for a in module.ARMS)
    assert batched > 0 and unbatched > 0
    assert row["trace_ratio"] == pytest.approx(batched / unbatched, rel=1e-2)
    assert "| reinforce |" in out.with_suffix(".md").read_text()
    assert (module.train_module._batched_from_start, module.rl.batched_like) == shipped
    with pytest.raises(SystemExit):
        module.main(["--programs", "sac"])


def test_chunk_programs_smoke_runs_both_arms_alike_and_puts_chunk_back():
    """``benchmarks/chunk_programs.py --smoke``: both arms run ``jaxpg train``
    in this process to the same evaluation, the per-length arm's replacement
    of ``programs.chunk`` is undone, and a record renders as a table."""
    from jaxpg.drivers import programs

    spec = importlib.util.spec_from_file_location(
        "chunk_programs", BENCH / "chunk_programs.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    shipped = programs.chunk
    arms = module.main(["--smoke"])["arms"]
    assert programs.chunk is shipped
    (one,), (per,) = (arms[a] for a in module.ARMS)
    assert one["eval_iqm"] == per["eval_iqm"]  # the chunking changes no number
    assert one["run_s"] > 0 and per["run_s"] > 0
    record = {"command": module.COMMAND, "repeats": 1, "machine": "m", "arms": arms}
    table = module.markdown(record)
    assert "| one program |" in table and "| per length |" in table
