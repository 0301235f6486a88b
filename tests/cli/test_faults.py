"""Faults a run directory survives (jaxpg.experiment.lock, .integrity, .guard
and the ``jaxpg`` commands): a live run is never overwritten or resumed twice,
a lock left by a killed process never blocks, a resume that cannot restore
deletes nothing, a failed save ends the run with the previous checkpoint named
(no hang, no traceback), damaged files are named before any work, and output
folders are checked before anything is compiled.

Every subprocess has a timeout: a hang fails the test instead of the suite."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import tiny
from cli_capture import run_main as _main

from jaxpg.experiment import checkpoint, integrity, lock, rundir

pytest.importorskip("orbax.checkpoint")
pytest.importorskip("matplotlib")

# 2 seeds, 6 updates of 4 envs x 8 steps (chunks of 1), checkpoints at 2, 4, 6.
TINY = tiny.train_args(
    2, 6, "--eval-episodes", "2", "--set", "normalise_obs=true",
    "--checkpoint-every", "2", "--no-progress",
)  # fmt: skip
HELPERS = Path(__file__).parents[1] / "helpers"
# The subprocesses share the run's compilation cache (``JAXPG_CACHE_DIR``, set
# by tests/conftest.py), as users' commands do, with the suite's numerics
# options (conftest sets rank promotion in-process; jaxpg's kept programs are
# keyed by it): a ``jaxpg train`` of TINY loads the programs the ``finished``
# run compiled instead of tracing and compiling them again.
ENV = {**os.environ, "JAX_NUMPY_RANK_PROMOTION": "raise"}
TIMEOUT = 300  # seconds: far above a tiny run's compile time on a loaded machine


def _snapshot(directory: Path) -> dict[str, str]:
    """Every file under ``directory`` (but the lock) with its SHA-256."""
    return {
        p.relative_to(directory).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(directory.rglob("*"))
        if p.is_file() and p.name != lock.LOCK
    }


def _flip_byte(path: Path, offset: int = -1) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0xFF
    path.write_bytes(bytes(data))


def _largest_file(folder: Path) -> Path:
    return max(
        (p for p in folder.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size
    )


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    """One finished tiny ``jaxpg train`` run (in this process)."""
    out = tmp_path_factory.mktemp("finished") / "run"
    code, _, err = _main("train", *TINY, "--out", out)
    assert code == 0, err
    return out


@pytest.fixture
def copy(finished, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(finished, out)
    return out


def test_every_written_file_is_recorded_and_intact(finished):
    assert integrity.problems(finished) == []
    recorded = json.loads((finished / integrity.CHECKSUMS).read_text())["files"]
    assert rundir.CONFIG in recorded
    assert sum(k.startswith("metrics/") for k in recorded) == 6  # one per chunk
    assert any(k.startswith("params/") for k in recorded)
    assert any(k.startswith("obs_norm/") for k in recorded)
    assert checkpoint.list_steps(finished / "checkpoints") == [4, 6]
    progress = rundir.read_progress(finished)
    assert progress["status"] == "finished" and progress["latest_checkpoint"] == 6


# -- the lock (issue items 2 and 5) --------------------------------------------


def test_overwrite_or_second_resume_of_a_live_run_is_refused_and_it_finishes_intact(
    tmp_path, finished
):
    out = tmp_path / "live"
    proc = subprocess.Popen(
        [sys.executable, "-m", "jaxpg.cli", "train", *TINY, "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + TIMEOUT
        while not (out / rundir.CONFIG).exists():  # written under the lock
            assert proc.poll() is None, proc.communicate()
            assert time.monotonic() < deadline
            time.sleep(0.02)
        # Paused, the run holds its lock for as long as the test needs.
        proc.send_signal(signal.SIGSTOP)
        before = (out / rundir.CONFIG).read_bytes()
        for argv in (
            ["train", *TINY, "--out", out, "--overwrite"],
            ["train", "--resume", out],
            ["train", "--resume", out, "--start-over"],
        ):
            code, stdout, err = _main(*argv)
            assert code == 2 and stdout == "", err
            assert f"in use by process {proc.pid}" in err, err
        assert (out / rundir.CONFIG).read_bytes() == before
        proc.send_signal(signal.SIGCONT)
        _, err = proc.communicate(timeout=TIMEOUT)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    # Intact: every recorded file matches; the metrics equal a run alone.
    assert integrity.problems(out) == []
    alone, live = rundir.read_metrics(finished), rundir.read_metrics(out)
    for name in alone:
        np.testing.assert_array_equal(alone[name], live[name], err_msg=name)
    assert (out / rundir.SUMMARY).is_file()


def test_a_lock_left_by_a_killed_process_does_not_block(tmp_path):
    out = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, str(HELPERS / "fault_worker.py"), "hold-lock", str(out)],
        stdout=subprocess.PIPE, text=True, env=ENV,
    )  # fmt: skip
    try:
        assert holder.stdout.readline().strip() == "locked"
        refused = pytest.raises(lock.RunLockedError, match=f"process {holder.pid}")
        with refused, lock.hold(out):
            pass
        holder.send_signal(signal.SIGKILL)
        holder.wait(timeout=TIMEOUT)
    finally:
        holder.kill()
    assert (out / lock.LOCK).exists()  # the file stays; the lock went with it
    with lock.hold(out), lock.hold(out):  # re-entrant within a process
        pass
    assert lock.locked_by(out) == os.getpid()


# -- resume that cannot restore (item 3) ---------------------------------------


def test_resume_with_every_checkpoint_corrupt_is_refused_and_deletes_nothing(copy):
    for step in checkpoint.list_steps(copy / "checkpoints"):
        _flip_byte(_largest_file(copy / "checkpoints" / f"{step:012d}" / "state"))
    before = _snapshot(copy)
    code, stdout, err = _main("train", "--resume", copy)
    assert code == 2 and stdout == "", err  # refused before compiling
    assert "none of its checkpoints [4, 6] is intact" in err
    assert "nothing was deleted" in err and "--start-over" in err
    assert _snapshot(copy) == before


def test_resume_with_intact_checkpoints_of_another_run_is_refused_then_starts_over(
    copy, finished
):
    # Intact on disk (their manifests match) but of another state: restoring
    # fails after compiling; still nothing is deleted.
    for step in (4, 6):
        checkpoint.save(copy / "checkpoints", step, {"x": np.zeros(3, np.float32)})
    before = _snapshot(copy)
    code, _, err = _main("train", "--resume", copy)
    assert code == 2, err
    assert "cannot resume" in err and "nothing was deleted" in err
    assert "Traceback" not in err
    assert _snapshot(copy) == before
    # Asked explicitly, the run starts again from update 0 and ends as the
    # original did.
    with pytest.warns(UserWarning, match="starting from update 0"):
        code, _, err = _main("train", "--resume", copy, "--start-over")
    assert code == 0, err
    again, first = rundir.read_metrics(copy), rundir.read_metrics(finished)
    for name in first:
        np.testing.assert_array_equal(again[name], first[name], err_msg=name)
    assert integrity.problems(copy) == []


# -- failed saves and full disks (item 4) --------------------------------------


def test_failed_save_ends_the_run_naming_the_previous_checkpoint_without_hanging(
    tmp_path, finished
):
    out = tmp_path / "run"
    t0 = time.monotonic()
    proc = subprocess.run(
        [sys.executable, str(HELPERS / "fault_worker.py"), "save-enospc", "2", "--",
         "train", *TINY, "--out", str(out)],
        capture_output=True, text=True, env=ENV, timeout=TIMEOUT,
    )  # fmt: skip
    assert time.monotonic() - t0 < TIMEOUT
    err = proc.stderr
    assert proc.returncode == 1, err
    assert "Traceback" not in err
    # The thread left blocked (as orbax's writers were) did not hold the exit.
    assert "did not finish; exiting anyway" in err
    assert "saving checkpoint 4" in err and "no space left on device" in err
    assert (
        f"the previous good checkpoint is update 2 ({out / 'checkpoints'}"
        f"/000000000002); free space, then resume with: jaxpg train --resume {out}"
    ) in err
    assert checkpoint.list_steps(out / "checkpoints") == [2]  # no half-written 4
    assert checkpoint.verify(out / "checkpoints", 2) is None
    progress = rundir.read_progress(out)
    assert progress["status"] == "failed" and progress["latest_checkpoint"] == 2
    # The resume the message gives ends as the uninterrupted run.
    code, _, err = _main("train", "--resume", out)
    assert code == 0, err
    resumed, first = rundir.read_metrics(out), rundir.read_metrics(finished)
    for name in first:
        np.testing.assert_array_equal(resumed[name], first[name], err_msg=name)


def test_full_disk_at_start_is_one_sentence_and_leaves_nothing_that_blocks(
    tmp_path, monkeypatch
):
    out = tmp_path / "run"
    real = Path.write_text

    def full(self, data, *args, **kwargs):
        if self.name.endswith(".tmp"):
            real(self, data[: len(data) // 2], *args, **kwargs)  # a partial write
            raise OSError(28, "No space left on device", str(self))
        return real(self, data, *args, **kwargs)

    monkeypatch.setattr(Path, "write_text", full)
    code, _stdout, err = _main("train", *TINY, "--out", out)
    assert code == 1, err
    assert err.strip().splitlines() == [
        f"jaxpg train: error: No space left on device ({out / 'config.json.tmp'})"
    ]
    assert not (out / "config.json.tmp").exists()
    monkeypatch.undo()
    # Space again: the same --out is accepted (checked, not trained here).
    from jaxpg.experiment.guard import prepare_run_dir

    assert prepare_run_dir(out, resume=False, overwrite=False) == (False, None)


# -- damaged files named before any work (item 7) ------------------------------


def test_eval_names_a_corrupted_params_file(copy):
    bad = _largest_file(copy / "params")
    _flip_byte(bad)
    code, _stdout, err = _main("eval", copy, "--episodes", "2")
    assert code == 2 and "Traceback" not in err
    assert f"{bad} does not match its checksum" in err
    assert not (copy / "eval.json").exists()


def test_eval_without_obs_norm_falls_back_to_the_checkpoint(copy):
    shutil.rmtree(copy / "obs_norm")
    with pytest.warns(UserWarning, match="obs_norm is missing"):
        code, stdout, err = _main("eval", copy, "--episodes", "2")
    assert code == 0, err
    assert "checkpoint at update 6" in stdout


@pytest.mark.parametrize("damage", ["delete", "truncate"])
def test_damaged_metrics_chunk_is_named_before_a_resume_starts(copy, damage):
    chunk = copy / "metrics" / "000000000002-000000000003.npz"
    if damage == "delete":
        chunk.unlink()
    else:
        chunk.write_bytes(chunk.read_bytes()[:100])
    t0 = time.perf_counter()
    code, stdout, err = _main("train", "--resume", copy)
    assert code == 2 and stdout == "", err
    named = "[2, 3) are missing" if damage == "delete" else f"{chunk} does not match"
    assert named in err
    with pytest.raises(rundir.RunDirError, match=r"\[2, 3\) are missing|does not"):
        rundir.read_metrics(copy)
    assert time.perf_counter() - t0 < 30  # nothing compiled


def test_a_run_without_checksums_still_loads_with_a_warning(copy):
    (copy / integrity.CHECKSUMS).unlink()
    assert set(rundir.read_metrics(copy)) >= {"episode_return"}
    with pytest.warns(UserWarning, match="not verified"):
        code, _, err = _main("eval", copy, "--episodes", "2")
    assert code == 0, err


# -- outputs checked first, one-sentence errors (items 9 and 11) ---------------


def test_every_output_path_is_checked_before_any_work(finished, tmp_path):
    a_file = tmp_path / "file"
    a_file.write_text("")
    t0 = time.perf_counter()
    for argv in (
        ["sweep", "--grid", "lr=1e-3,3e-3", "--seeds", "1", "--out", a_file],
        ["compare", finished, "--out", a_file],
        ["compare", finished, "--out", a_file / "sub"],
        ["train", *TINY, "--out", a_file],
    ):
        code, stdout, err = _main(*argv)
        assert code == 2 and stdout == "", (argv, err)
        assert str(a_file) in err and "is a file" in err, err
    assert time.perf_counter() - t0 < 30  # nothing compiled


@pytest.mark.parametrize(
    "argv, expected",
    [
        (["eval", "{copy}", "--round", "-1"], "--round=-1 is invalid"),
        (["train", "--resume", "{copy}/config.json"], "is a file, not a jaxpg run"),
        (["eval", "{copy}/config.json"], "is a file, not a jaxpg run"),
        (["train", "--start-over"], "--start-over needs --resume"),
    ],
)
def test_bad_arguments_are_one_sentence(copy, argv, expected):
    code, stdout, err = _main(*[a.format(copy=copy) for a in argv])
    assert code == 2 and stdout == ""
    assert err.count("\n") == 1 and expected in err and "Traceback" not in err


@pytest.mark.parametrize(
    "record",
    ["[1, 2]", '{"config": {"no_such_field": 1}, "num_seeds": 2, "first_seed": 0}',
     '{"num_seeds": 2}', "{not json"],
)  # fmt: skip
def test_malformed_config_json_is_one_sentence(copy, record):
    (copy / rundir.CONFIG).write_text(record)
    # Without its checksum (else that mismatch is the message): the parse.
    (copy / integrity.CHECKSUMS).unlink()
    for argv in (["train", "--resume", copy], ["eval", copy]):
        code, stdout, err = _main(*argv)
        assert code == 2 and stdout == "", err
        assert err.count("\n") == 1 and "config.json" in err, err


@contextlib.contextmanager
def _read_only_copy(run: Path, where: Path):
    """``run`` copied onto a tmpfs mounted read-only (needs root; permissions
    alone do not stop root)."""
    where.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a read-only mount needs root")
    if subprocess.run(["mount", "-t", "tmpfs", "tmpfs", str(where)]).returncode:
        pytest.skip("cannot mount a tmpfs here")
    try:
        shutil.copytree(run, where / "run")
        subprocess.run(["mount", "-o", "remount,ro", str(where)], check=True)
        yield where / "run"
    finally:
        subprocess.run(["umount", str(where)], check=True)


def test_read_only_disk_is_one_sentence_before_any_work(finished, tmp_path):
    with _read_only_copy(finished, tmp_path / "ro") as run:
        for argv in (
            ["train", "--resume", run],
            ["eval", run, "--episodes", "2"],
            ["compare", run, "--out", run.parent / "compare"],
        ):
            code, stdout, err = _main(*argv)
            assert code == 2 and stdout == "", (argv, err)
            assert "Traceback" not in err and err.count("\n") == 1, err
            assert "Read-only file system" in err or "is not writable" in err, err


def test_progress_names_each_checkpoint_as_it_is_written(finished, tmp_path):
    from jaxpg.drivers.runner import run

    cfg, record = rundir.load_run(finished)
    out = tmp_path / "run"
    seen = {}

    def look(info):  # after chunk [start, start + 1), before its checkpoint
        seen[info.start] = rundir.read_progress(out)

    run(cfg, record["num_seeds"], progress=False, checkpoint_dir=out,
        checkpoint_every=2, callback=look)  # fmt: skip
    assert seen[0] == {"updates_done": 0, "num_updates": 6, "status": "running",
                       "latest_checkpoint": None}  # fmt: skip
    assert seen[3]["latest_checkpoint"] == 2 and seen[3]["updates_done"] == 2
    assert seen[5]["latest_checkpoint"] == 4


# -- too many seeds (item 1) ---------------------------------------------------


def test_too_many_seeds_fail_fast_with_both_numbers(finished, tmp_path, monkeypatch):
    from jaxpg.drivers import memory, parallel
    from jaxpg.drivers import programs as compiled
    from jaxpg.drivers.runner import run

    cfg, record = rundir.load_run(finished)
    progs = compiled.cached(cfg, 2)  # compiled before
    # The programs of the run below (fixed chunks); jaxpg train's timed
    # chunks check these and the one-update probe's.
    programs = [progs.init, compiled.chunk(progs, record["chunk_updates"])]
    need = max(memory.program_bytes(p) for p in programs)
    lay = parallel.layout(2)
    # A device with one byte too few (a fake limit: the real one is far away).
    monkeypatch.setattr(memory, "available_bytes", lambda d: (need - 1, "fake", False))
    fit = int((need - 1) // (need / lay.per_device)) * lay.num_devices
    t0 = time.perf_counter()
    with pytest.raises(memory.OutOfMemoryError) as raised:
        run(cfg, 2, progress=False, chunk_updates=record["chunk_updates"])
    message = str(raised.value)
    assert f"2 seeds need {memory._size(need)} per device" in message
    assert f"but {memory._size(need - 1)} of fake is free" in message
    assert f"at most about {fit} seeds fit" in message
    code, _, err = _main("train", *TINY, "--out", tmp_path / "run")
    assert code == 2 and err.count("\n") == 1 and "at most about" in err, err
    assert time.perf_counter() - t0 < 30  # compiled already; nothing ran
    # With exactly enough, the run is allowed.
    monkeypatch.setattr(memory, "available_bytes", lambda d: (need, "fake", False))
    memory.check_fits(programs, 2, lay.per_device, lay.num_devices)


def test_evaluate_names_a_key_that_is_not_a_key_and_params_of_another_env():
    import jax

    import jaxpg

    cfg = jaxpg.Config(hidden=(8,))
    # Zeros of the policy's shapes, without an eager initialisation: both calls
    # are refused on the key's type and the parameters' shapes, not values.
    state = jax.eval_shape(jaxpg.make_algorithm(cfg).init, jax.random.key(0))
    params = jax.tree.map(
        lambda s: jax.numpy.zeros(s.shape, s.dtype), state.params["policy"]
    )
    with pytest.raises(TypeError, match="key=3 is invalid: must be a PRNG key"):
        jaxpg.evaluate(cfg, params, 3, num_episodes=2)
    acrobot = cfg.replace(env="Acrobot-v1")
    with pytest.raises(ValueError, match="params do not fit the policy of cfg"):
        jaxpg.evaluate(acrobot, params, jax.random.key(1), num_episodes=2)


def test_chunk_seconds_is_validated_and_a_resume_keeps_the_runs_own(finished):
    # No compile: refused while the options are read.
    code, _, err = _main("train", *TINY, "--chunk-seconds", "-1", "--out", "x")
    assert code == 2 and "--chunk-seconds=-1.0 is invalid" in err, err
    assert not Path("x").exists()
    # The run was timed by jaxpg train's default; a resume that asks for
    # other chunks is refused, naming the field (its chunking is its own).
    assert rundir.read_json(finished / rundir.CONFIG)["chunk_seconds"] == 5.0
    code, _, err = _main("train", "--resume", finished, "--chunk-seconds", "1")
    assert code == 2, err
    assert "chunk_seconds: run has 5.0, command line 1.0" in err, err


def test_resuming_a_finished_run_keeps_its_training_timings(copy):
    """The documented "always run the same command" pattern: resuming a
    finished run trains nothing and evaluates again; summary.json keeps the
    training's compile time, run time and throughput (this call's are 0)."""
    before = rundir.read_json(copy / rundir.SUMMARY)["timings"]
    assert before["steps_per_s"] > 0
    code, out, err = _main("train", "--resume", copy)
    assert code == 0, err
    after = rundir.read_json(copy / rundir.SUMMARY)["timings"]
    for name in ("compile_s", "run_s", "steps_per_s", "total_env_steps"):
        assert after[name] == before[name], name
    assert f"throughput {before['steps_per_s']:,.0f} env steps/s" in out


def test_a_setting_refused_by_the_algorithm_leaves_no_run_behind(tmp_path):
    """A setting that only the algorithm can check (policy_obs naming keys of
    an array observation) is refused with one line before the run directory
    is written, so the same --out works at once with the setting fixed."""
    out = tmp_path / "run"
    code, _, err = _main("train", *TINY, "--set", "policy_obs=a,b", "--out", out)
    assert code == 2, err
    assert "Traceback" not in err
    assert err.strip().splitlines()[-1].startswith("jaxpg train: error: policy_obs=")
    assert not (out / rundir.CONFIG).exists()
    assert rundir.is_empty(out)
