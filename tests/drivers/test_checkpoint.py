"""Run directories, checkpoints and exact resume (jaxpg.drivers.runner,
jaxpg.experiment.rundir, jaxpg.experiment.checkpoint): an interrupted and resumed
run is bit-identical to the uninterrupted one; a corrupt latest checkpoint falls
back to the previous one; a different config is refused, naming the fields."""

from __future__ import annotations

import json
import shutil

import jax
import numpy as np
import pytest
from trees import raw_leaves

import jaxpg
from jaxpg.drivers.runner import run
from jaxpg.experiment import checkpoint, rundir

pytest.importorskip("orbax.checkpoint")

NUM_SEEDS = 2
# The run of tests/test_runner.py (7 updates in chunks of 3, 3, 1), checkpointed
# at every chunk boundary.
# Observation normalisation is on: its statistics are part of the state that
# must survive an interruption.
CFG = jaxpg.Config(
    num_envs=4, rollout_steps=8, total_steps=4 * 8 * 7, lr=1e-2, normalise_obs=True
)
CHUNK = 3
# PPO: 5 updates of 4 envs x 8 steps, chunks of 2, 2, 1.
PPO = jaxpg.Config(
    algo="ppo",
    num_envs=4,
    rollout_steps=8,
    total_steps=4 * 8 * 5,
    num_minibatches=2,
    num_epochs=2,
    hidden=(16,),
    lr=1e-3,
    normalise_obs=True,
    scale_rewards=True,
    anneal_lr=True,
)


def assert_bit_identical(a, b):
    la, lb = raw_leaves(a), raw_leaves(b)
    assert len(la) == len(lb)
    for x, y in zip(la, lb, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)  # NaN == NaN here, bits otherwise


def _stop_after_first_chunk(info):
    return True


def _uninterrupted_and_resumed(cfg, chunk, tmp_path_factory):
    full_dir = tmp_path_factory.mktemp("full") / "run"
    full = run(
        cfg, NUM_SEEDS, chunk_updates=chunk, progress=False,
        checkpoint_dir=full_dir, checkpoint_every=chunk,
    )  # fmt: skip
    cut_dir = tmp_path_factory.mktemp("cut") / "run"
    cut = run(
        cfg, NUM_SEEDS, chunk_updates=chunk, progress=False,
        checkpoint_dir=cut_dir, checkpoint_every=chunk,
        callback=_stop_after_first_chunk,
    )  # fmt: skip
    resumed = run(cfg, NUM_SEEDS, progress=False, checkpoint_dir=cut_dir, resume=True)
    return full, full_dir, cut, cut_dir, resumed


@pytest.fixture(scope="module")
def reinforce_runs(tmp_path_factory):
    return _uninterrupted_and_resumed(CFG, CHUNK, tmp_path_factory)


@pytest.fixture(scope="module")
def ppo_runs(tmp_path_factory):
    return _uninterrupted_and_resumed(PPO, 2, tmp_path_factory)


@pytest.mark.parametrize("runs", ["reinforce_runs", "ppo_runs"])
def test_interrupted_and_resumed_run_is_bit_identical(runs, request):
    full, full_dir, cut, cut_dir, resumed = request.getfixturevalue(runs)
    num_updates = full.updates_done
    assert cut.interrupted and cut.updates_done < num_updates
    assert checkpoint.list_steps(cut_dir / rundir.CHECKPOINTS)[-1] == num_updates
    assert not resumed.interrupted and resumed.updates_done == num_updates
    # The whole train state: params, optimizer, env states, observations,
    # typed keys, counters.
    assert_bit_identical(full.state, resumed.state)
    assert resumed.state.key.dtype == full.state.key.dtype  # still typed keys
    # Metrics on disk and returned: identical, NaN where no episode ended.
    assert_bit_identical(rundir.read_metrics(full_dir), rundir.read_metrics(cut_dir))
    assert_bit_identical(full.metrics, resumed.metrics)
    # Final network params saved with orbax, equal to the state's (the
    # observation statistics the returned policy carries are saved apart).
    target = jax.tree.map(lambda x: x, full.state.params["policy"])
    saved = checkpoint.restore_tree(cut_dir / rundir.PARAMS, target)
    assert_bit_identical(saved, full.state.params["policy"])
    progress = rundir.read_progress(cut_dir)
    assert progress["status"] == "finished"
    assert progress["updates_done"] == num_updates


def test_interrupted_run_leaves_a_usable_checkpoint_and_progress(reinforce_runs):
    _, _, cut, cut_dir, _ = reinforce_runs
    # The cut happened at the first chunk boundary; its checkpoint verified.
    assert cut.updates_done == CHUNK
    assert checkpoint.verify(cut_dir / rundir.CHECKPOINTS, CHUNK) is None
    record = json.loads((cut_dir / rundir.CONFIG).read_text())
    assert rundir.config_from_dict(record["config"]) == CFG
    assert record["num_seeds"] == NUM_SEEDS and record["chunk_updates"] == CHUNK
    versions = json.loads((cut_dir / rundir.VERSIONS).read_text())
    assert versions["jax"] == jax.__version__ and "orbax-checkpoint" in versions


def test_corrupt_latest_checkpoint_falls_back_to_previous(reinforce_runs, tmp_path):
    full, full_dir, _, _, _ = reinforce_runs
    run_dir = tmp_path / "run"
    shutil.copytree(full_dir, run_dir)
    ckpts = run_dir / rundir.CHECKPOINTS
    assert checkpoint.list_steps(ckpts) == [6, 7]  # the newest two are kept
    # Flip one byte of the largest file of the latest checkpoint.
    files = [p for p in (ckpts / f"{7:012d}").rglob("*") if p.is_file()]
    victim = max(files, key=lambda p: p.stat().st_size)
    data = bytearray(victim.read_bytes())
    data[len(data) // 2] ^= 0xFF
    victim.write_bytes(bytes(data))
    assert "checksum" in checkpoint.verify(ckpts, 7)
    with pytest.warns(UserWarning, match="checkpoint 7 .* invalid.*previous"):
        step, state = checkpoint.restore_latest(ckpts, full.state)
    assert step == 6 and int(state.update_idx[0]) == 6
    # Resuming such a run redoes the last chunk and ends where it should.
    with pytest.warns(UserWarning, match="previous"):
        resumed = run(
            CFG, NUM_SEEDS, progress=False, checkpoint_dir=run_dir, resume=True
        )
    assert_bit_identical(full.state, resumed.state)
    assert_bit_identical(full.metrics, resumed.metrics)


def test_incomplete_checkpoint_without_manifest_is_skipped(reinforce_runs, tmp_path):
    full, full_dir, _, _, _ = reinforce_runs
    ckpts = tmp_path / "ckpts"
    shutil.copytree(full_dir / rundir.CHECKPOINTS, ckpts)
    (ckpts / f"{7:012d}" / checkpoint.MANIFEST).unlink()  # a save cut short
    assert "no manifest" in checkpoint.verify(ckpts, 7)
    with pytest.warns(UserWarning, match="no manifest"):
        step, _ = checkpoint.restore_latest(ckpts, full.state)
    assert step == 6


def test_resume_with_a_different_config_names_the_fields(reinforce_runs):
    _, _, _, cut_dir, _ = reinforce_runs
    other = CFG.replace(lr=5e-3, gamma=0.9)
    with pytest.raises(rundir.RunDirError, match=r"gamma: 0\.99 -> 0\.9.*lr"):
        run(other, NUM_SEEDS, progress=False, checkpoint_dir=cut_dir, resume=True)
    with pytest.raises(rundir.RunDirError, match="num_seeds: 2 -> 3"):
        run(CFG, 3, progress=False, checkpoint_dir=cut_dir, resume=True)
    with pytest.raises(rundir.RunDirError, match="chunk_updates: 3 -> 2"):
        run(CFG, 2, chunk_updates=2, progress=False, checkpoint_dir=cut_dir,
            resume=True)  # fmt: skip


def test_a_config_field_added_since_the_run_counts_as_its_default():
    """A run stored before ``loop_chunk`` existed resumes under today's
    default; a value other than the default is still named."""
    current = {"config": rundir.config_to_dict(CFG)}
    stored = {"config": dict(current["config"])}
    del stored["config"]["loop_chunk"]
    assert rundir.diff_run(stored, current) == []
    changed = {"config": rundir.config_to_dict(CFG.replace(loop_chunk=4))}
    assert rundir.diff_run(stored, changed) == ["loop_chunk: None -> 4"]


def test_existing_run_is_refused_without_resume_or_overwrite(reinforce_runs, tmp_path):
    _, full_dir, _, _, _ = reinforce_runs
    with pytest.raises(rundir.RunDirError, match="already holds a run"):
        run(CFG, NUM_SEEDS, progress=False, checkpoint_dir=full_dir)
    not_a_run = tmp_path / "stuff"
    not_a_run.mkdir()
    (not_a_run / "notes.txt").write_text("mine")
    with pytest.raises(rundir.RunDirError, match="not empty"):
        run(CFG, NUM_SEEDS, progress=False, checkpoint_dir=not_a_run)
    a_file = tmp_path / "file"
    a_file.write_text("")
    with pytest.raises(rundir.RunDirError, match="is a file"):
        run(CFG, NUM_SEEDS, progress=False, checkpoint_dir=a_file)
    assert (not_a_run / "notes.txt").read_text() == "mine"


def test_overwrite_replaces_the_run(reinforce_runs, tmp_path):
    full, full_dir, _, _, _ = reinforce_runs
    run_dir = tmp_path / "run"
    shutil.copytree(full_dir, run_dir)
    (run_dir / "summary.json").write_text("{}")
    again = run(CFG, NUM_SEEDS, chunk_updates=CHUNK, progress=False,
                checkpoint_dir=run_dir, overwrite=True)  # fmt: skip
    assert not (run_dir / "summary.json").exists()
    assert checkpoint.list_steps(run_dir / rundir.CHECKPOINTS) == [7]
    assert_bit_identical(full.state, again.state)


def test_resume_of_a_finished_run_changes_nothing(reinforce_runs):
    full, full_dir, _, _, _ = reinforce_runs
    again = run(CFG, NUM_SEEDS, progress=False, checkpoint_dir=full_dir, resume=True)
    assert again.updates_done == full.updates_done and not again.interrupted
    assert_bit_identical(full.state, again.state)


def test_config_round_trips_through_json():
    cfg = jaxpg.presets.get("Pendulum-v1", "ppo").replace(max_grad_norm=None)
    text = json.dumps(rundir.config_to_dict(cfg))
    assert rundir.config_from_dict(json.loads(text)) == cfg
    with pytest.raises(rundir.RunDirError, match="nosuchfield"):
        rundir.config_from_dict({**rundir.config_to_dict(cfg), "nosuchfield": 1})


def test_overwrite_never_deletes_a_folder_whose_config_json_is_not_jaxpgs(tmp_path):
    from jaxpg.experiment.guard import prepare_run_dir

    folder = tmp_path / "my project"
    (folder / "checkpoints").mkdir(parents=True)
    (folder / "config.json").write_text('{"model": "resnet50"}')
    (folder / "train.py").write_text("")
    before = sorted(p.name for p in folder.rglob("*"))
    with pytest.raises(rundir.RunDirError, match="not a jaxpg run's"):
        prepare_run_dir(folder, resume=False, overwrite=True)
    after = sorted(p.name for p in folder.rglob("*") if p.name != ".jaxpg-lock")
    assert after == before


def test_a_run_directory_with_brackets_is_refused_before_training(tmp_path):
    """orbax reads '[...]' as a pattern: what it saved there passed the
    checksums and never restored."""
    with pytest.raises(ValueError, match=r"contains '\[' or '\]'"):
        run(CFG, NUM_SEEDS, progress=False, checkpoint_dir=tmp_path / "lr[1e-3]")
    assert not (tmp_path / "lr[1e-3]").exists()
    with pytest.raises(ValueError, match="cannot restore from"):
        checkpoint.save_tree(tmp_path / "p[0]", {"w": np.zeros(2)})


def test_a_damaged_checksums_file_is_reported_not_trusted(tmp_path):
    from jaxpg.experiment import integrity

    (tmp_path / "params").mkdir()
    (tmp_path / "params" / "data").write_bytes(b"x" * 100)
    integrity.record(tmp_path, "params")
    assert integrity.problems(tmp_path) == []
    (tmp_path / integrity.CHECKSUMS).write_text('{"files": ')  # cut short
    ((name, message),) = integrity.problems(tmp_path)
    assert name == integrity.CHECKSUMS and "is damaged" in message


def test_starting_over_removes_the_abandoned_runs_outputs(reinforce_runs, tmp_path):
    """No checkpoint restores: --start-over deletes the old final parameters
    and summary too, so an interrupted restart is not read as finished."""
    _, full_dir, _, _, _ = reinforce_runs
    run_dir = tmp_path / "run"
    shutil.copytree(full_dir, run_dir)
    (run_dir / rundir.SUMMARY).write_text("{}")  # as a finished CLI run has
    for step in checkpoint.list_steps(run_dir / rundir.CHECKPOINTS):
        (run_dir / rundir.CHECKPOINTS / f"{step:012d}" / checkpoint.MANIFEST).unlink()
    stopped = run(CFG, NUM_SEEDS, progress=False, checkpoint_dir=run_dir,
                  resume=True, start_over=True, callback=lambda info: True)  # fmt: skip
    assert stopped.interrupted
    assert not (run_dir / rundir.PARAMS).exists()
    assert not (run_dir / rundir.SUMMARY).exists()
