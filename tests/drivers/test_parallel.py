"""jaxpg.drivers.parallel: members over several devices and processes (train_seeds,
the chunked runner and ``jaxpg train``).

A JAX process's device count is fixed when its backend starts, so the
multi-device checks run ``tests/helpers/parallel_worker.py`` in subprocesses:
one with 4 forced CPU devices, and one job of 2 processes of 2 CPU devices
joined by ``jax.distributed`` (which also runs the README's two-process ``jaxpg
train`` command); the tests compare what they write. Subprocesses are bounded
by timeouts.

Tolerances: the sharded and the one-device program run the same per-member
arithmetic, but a device vmaps 2 members in one and 6 in the other, so XLA may
sum matmuls in another order: float results agree to float32 rounding
(measured differences about 1e-8 after 4 updates; the bound 1e-5 relative plus
1e-6 absolute leaves room for a few more rounding steps and still catches any
member trained with the wrong key or hyperparameters, which moves parameters
by about 1e-2). Integer results (step counts, PRNG key data) are exact.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jax
import numpy as np
import pytest

from jaxpg.cli import options
from jaxpg.drivers import parallel
from jaxpg.drivers.evaluation import load_policy

WORKER = Path(__file__).parents[1] / "helpers" / "parallel_worker.py"
sys.path.insert(0, str(WORKER.parent))
import parallel_worker  # noqa: E402

TIMEOUT_S = 480


def _env() -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        [str(WORKER.parents[2]), env.get("PYTHONPATH", "")]
    )
    env["JAXPG_CACHE_DIR"] = ""
    return env


def _run(args: list[str], out: Path) -> None:
    result = subprocess.run(
        [sys.executable, str(WORKER), *args],
        env=_env(),
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
    )
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def _assert_same(got: dict, want: dict) -> None:
    assert sorted(got) == sorted(want)
    for name in want:
        a, b = got[name], want[name]
        assert a.shape == b.shape, name
        if b.dtype.kind == "f":
            # Surrogate losses are sums of O(1) terms that cancel to ~1e-4
            # (standardised advantages have mean 0): float32 rounding of a
            # few hundred terms in another order moves them by ~1e-6, so their
            # absolute tolerance is 1e-5. Everything else: 1e-6.
            atol = 1e-5 if name.endswith("loss']") else 1e-6
            np.testing.assert_allclose(
                a, b, rtol=1e-5, atol=atol, equal_nan=True, err_msg=name
            )
        else:
            np.testing.assert_array_equal(a, b, err_msg=name)


@pytest.fixture(scope="module")
def four_devices(tmp_path_factory):
    out = tmp_path_factory.mktemp("devices")
    _run(["devices", str(out)], out)
    report = json.loads((out / "report.json").read_text())
    return out, report


def test_six_members_are_sharded_over_four_devices(four_devices):
    _, report = four_devices
    algo = parallel_worker.ALGOS[0]
    assert report["devices"] == 4
    # 6 members padded to 8: 2 per device, on all 4 devices (no fallback).
    assert report[algo]["padded"] == 8
    assert report[algo]["shard_rows"] == [2, 2, 2, 2]
    assert report[algo]["shard_devices"] == [0, 1, 2, 3]


def test_sharded_run_equals_one_device_run(four_devices):
    out, _ = four_devices
    sharded = dict(np.load(out / "sharded.npz"))
    single = dict(np.load(out / "single.npz"))
    _assert_same(sharded, single)
    # Every member was trained with its own key: members differ.
    params = [v for k, v in sharded.items() if k.startswith(".params")]
    assert params and all(p.shape[0] == parallel_worker.NUM_MEMBERS for p in params)
    assert not all(np.allclose(p[0], p[1]) for p in params)


@pytest.mark.parametrize("algo", [*parallel_worker.ALGOS, parallel_worker.CHUNKED])
def test_no_collective_inside_training_loops(four_devices, algo):
    _, report = four_devices
    assert report[algo]["loop_collectives"] == []


def test_loop_collective_check_has_power(four_devices):
    _, report = four_devices
    # A psum inside a fori_loop of a 4-device shard_map is found.
    assert any("all-reduce" in c for c in report["probe_loop_collectives"])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def _run_two_processes(out: Path) -> None:
    """Run the worker's ``train`` mode as processes 0 and 1 of one ``jax.distributed``
    job on localhost; both must exit 0 within ``TIMEOUT_S``."""
    port = _free_port()
    procs = [
        subprocess.Popen(
            [sys.executable, str(WORKER), "train", str(out), str(port), str(i)],
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for i in range(2)
    ]
    logs = []
    try:
        for p in procs:
            logs.append(p.communicate(timeout=TIMEOUT_S)[0])
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory):
    """The worker's ``train`` mode as processes 0 and 1 of one job (both
    two-process checks read it: one start of the job, one import each)."""
    pytest.importorskip("orbax.checkpoint")
    pytest.importorskip("matplotlib")
    if not hasattr(jax.config, "jax_cpu_collectives_implementation"):
        pytest.skip("this jaxlib has no CPU collectives (gloo) for two processes")
    out = tmp_path_factory.mktemp("two_processes")
    _run_two_processes(out)
    return out


def test_two_processes_gather_the_single_process_result(four_devices, two_processes):
    out, _ = four_devices
    infos = [
        json.loads((two_processes / f"process_{i}.json").read_text()) for i in range(2)
    ]
    assert [i["process_index"] for i in infos] == [0, 1]
    assert all(i["process_count"] == 2 and i["global_devices"] == 4 for i in infos)
    # Each process trains its own contiguous block: members 0-3 on process 0,
    # members 4-5 (+ padding, a copy of member 5) on process 1.
    assert infos[0]["first_member_of_local_shards"] == [0, 2]
    assert infos[1]["first_member_of_local_shards"] == [4, 5]
    gathered = dict(np.load(two_processes / "process_gathered.npz"))
    _assert_same(gathered, dict(np.load(out / "single.npz")))


def test_token_policy_seeds_over_two_processes(four_devices, two_processes):
    """``jaxpg.sequence.seeds.train_seeds`` (what ``jaxpg lm`` runs) lays
    its seeds over the devices of both processes as over the 4 devices of
    one; a SIGTERM to process 1 alone stops both at the same chunk, with a
    checkpoint that process 0 reads and process 1 receives on resume. The
    resumed two-process run ends as the uninterrupted one-process run on 4
    devices, bit for bit: both run the same per-device programs, and a
    resume continues bit-identically."""
    out, _ = four_devices
    infos = [json.loads((two_processes / f"lm_{i}.json").read_text()) for i in range(2)]
    assert infos[0] == infos[1]
    assert infos[0]["devices"] == 4 and infos[0]["resumed_done"] == 5
    assert infos[0]["cut_at"] == 2 and infos[0]["cut_signal"] == signal.SIGTERM
    single = dict(np.load(out / "lm_single.npz"))
    assert single["m.reward"].shape == (parallel_worker.LM_SEEDS, 5)
    resumed = dict(np.load(two_processes / "lm_resumed.npz"))
    assert sorted(resumed) == sorted(single)
    for name in single:
        np.testing.assert_array_equal(resumed[name], single[name], err_msg=name)


# The chunked runner (jaxpg.drivers.runner.run, jaxpg train) on several devices and
# processes. Same tolerances as above: the sharded run and the one-device
# program differ only in float rounding (measured: at most 6e-6 absolute in a
# mean return of about 20, 1e-8 in parameters); integers and PRNG keys are
# exact, and an interrupted and resumed run on the same layout is
# bit-identical.


@pytest.fixture(scope="module")
def runner_four_devices(four_devices):
    """The runner's part of the worker's ``devices`` process."""
    pytest.importorskip("orbax.checkpoint")
    out, _ = four_devices
    return out, json.loads((out / "runner.json").read_text())


def test_runner_splits_six_seeds_over_four_devices(runner_four_devices):
    _, report = runner_four_devices
    # 6 seeds padded to 8: 2 per device on all 4 devices, in the compiled
    # chunks (full and remainder) and in the live state; the result holds 6.
    assert report["padded"] == 8
    assert report["chunk_devices"] == {"1": [4], "3": [4]}
    assert report["state_shard_rows"] == [2]
    assert report["state_shard_devices"] == [0, 1, 2, 3]
    assert report["result_rows"] == [parallel_worker.RUNNER_SEEDS]


def test_runner_on_four_devices_equals_the_one_device_program(runner_four_devices):
    out, _ = runner_four_devices
    sharded = dict(np.load(out / "runner_sharded.npz"))
    one = dict(np.load(out / "runner_one.npz"))
    _assert_same(sharded, one)  # params, metrics and the whole state
    params = [v for k, v in sharded.items() if k.startswith("['params']")]
    assert params and not all(np.allclose(p[0], p[1]) for p in params)


def test_runner_streams_checkpoints_and_resumes_the_real_seeds(runner_four_devices):
    out, report = runner_four_devices
    sharded = dict(np.load(out / "runner_sharded.npz"))
    # Streamed metrics are the returned ones, 6 rows (no padding).
    streamed = dict(np.load(out / "runner_streamed.npz"))
    assert streamed
    for name, value in streamed.items():
        assert value.shape[0] == parallel_worker.RUNNER_SEEDS, name
        np.testing.assert_array_equal(value, sharded[f"['metrics']['{name}']"])
    # The final checkpoint holds exactly the returned [6] state.
    assert report["checkpoint_step"] == parallel_worker.runner_config().num_updates
    ckpt = dict(np.load(out / "runner_checkpoint.npz"))
    assert ckpt
    for name, value in ckpt.items():
        np.testing.assert_array_equal(value, sharded[f"['state']{name}"], name)
    # Interrupted after the first chunk and resumed (padded again): bit-identical.
    resumed = dict(np.load(out / "runner_resumed.npz"))
    assert sorted(resumed) == sorted(sharded)
    for name, value in sharded.items():
        np.testing.assert_array_equal(resumed[name], value, name)


def _flat_metrics(directory: Path) -> dict:
    from jaxpg.experiment import rundir

    return parallel_worker.flat({"metrics": rundir.read_metrics(directory)})


def test_two_process_train_writes_the_single_process_run(two_processes, tmp_path):
    """The README's two-process ``jaxpg train`` command (the worker's
    :func:`parallel_worker.train_argv`), against the same seeds in one process."""
    from jaxpg.cli.main import main
    from jaxpg.experiment import checkpoint, rundir

    run_dir = two_processes
    infos = [json.loads((run_dir / f"train_{i}.json").read_text()) for i in range(2)]
    assert [i["code"] for i in infos] == [0, 0]
    assert all(i["process_count"] == 2 and i["global_devices"] == 4 for i in infos)
    # Process 1 ran the same command in its own folder and wrote nothing.
    assert list((run_dir / "cwd_1").iterdir()) == []
    # The same seeds in one process on one device.
    single = tmp_path / "single"
    code = main(["train", *parallel_worker.TRAIN_ARGS, "--out", str(single)])
    assert code == 0
    multi = run_dir / "cwd_0" / "run"
    assert sorted(p.name for p in multi.iterdir()) == sorted(
        p.name for p in single.iterdir()
    )
    # The same run (config, seeds, chunking; not the creation time) and end.
    records = [json.loads((d / "config.json").read_text()) for d in (multi, single)]
    assert rundir.diff_run(*records) == []
    assert json.loads((multi / "progress.json").read_text()) == json.loads(
        (single / "progress.json").read_text()
    )
    assert checkpoint.list_steps(multi / "checkpoints") == checkpoint.list_steps(
        single / "checkpoints"
    )
    summary = json.loads((multi / "summary.json").read_text())
    assert summary["processes"] == 2 and summary["num_seeds"] == 6
    _assert_same(_flat_metrics(multi), _flat_metrics(single))
    params = [load_policy(d)[2] for d in (multi, single)]
    _assert_same(*(parallel_worker.flat(p) for p in params))
    # Every process returns the whole gathered state, that of the CLI's run.
    full = [dict(np.load(run_dir / f"train_{i}_full.npz")) for i in range(2)]
    assert full[0] and sorted(full[0]) == sorted(full[1])
    for name, value in full[0].items():
        assert value.shape[0] == 6, name
        np.testing.assert_array_equal(full[1][name], value, name)
    network = {k: v for k, v in params[0].items() if k != "obs_norm"}
    for name, value in parallel_worker.flat(network).items():
        np.testing.assert_array_equal(value, full[0][f".params['policy']{name}"])
    # SIGTERM to process 1 alone: both stopped after the same update (2),
    # both by SIGTERM, and `jaxpg train` exits 128 + signal = 143 on each.
    assert [i["cut_signal"] for i in infos] == [signal.SIGTERM] * 2
    assert [i["cut_code"] for i in infos] == [128 + signal.SIGTERM] * 2
    # Resumed with `jaxpg train --resume` across both: bit-identical to the
    # uninterrupted run, and process 1 still wrote nothing.
    assert [(i["cut_at"], i["resume_code"]) for i in infos] == [(2, 0)] * 2
    cut = run_dir / "cwd_0" / "cut"
    assert list((run_dir / "cwd_1").iterdir()) == []
    got, want = _flat_metrics(cut), _flat_metrics(multi)
    assert sorted(got) == sorted(want)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], name)
    resumed = parallel_worker.flat(load_policy(cut)[2])
    for name, value in parallel_worker.flat(params[0]).items():
        np.testing.assert_array_equal(resumed[name], value, name)


# In-process checks (one CPU device here).


def test_layout_pads_to_a_multiple_of_the_device_count():
    devices = jax.devices()
    lay = parallel.layout(5, devices)
    assert lay.num_members == 5
    assert lay.padded % len(devices) == 0
    assert lay.padded - len(devices) < 5 <= lay.padded


def test_place_repeats_the_last_member_and_collect_drops_it():
    lay = parallel.Layout(parallel.layout(1).mesh, 3, 4)  # as if on 4 devices
    placed = parallel.place((np.array([7, 8, 9]),), lay)
    np.testing.assert_array_equal(np.asarray(placed[0]), [7, 8, 9, 9])
    np.testing.assert_array_equal(
        np.asarray(parallel.collect(placed, lay)[0]), [7, 8, 9]
    )


def test_run_members_with_hparams_matches_vmap():
    def train(key, scale):
        return {"x": jax.random.normal(key, (3,)) * scale, "key": key}

    seeds = np.array([3, 1, 4])
    scale = np.array([1.0, 2.0, 3.0], np.float32)
    got = parallel.run_members(train, seeds, scale)
    want = jax.vmap(train)(jax.vmap(jax.random.key)(seeds), scale)
    # jit vs eager may round the normal draw's last bit; a wrong key or scale
    # would move it by O(1).
    np.testing.assert_allclose(np.asarray(got["x"]), np.asarray(want["x"]), rtol=1e-6)
    np.testing.assert_array_equal(
        np.asarray(jax.random.key_data(got["key"])),
        np.asarray(jax.random.key_data(want["key"])),
    )


def test_run_members_traces_the_member_function_once():
    # The output structure (which leaves are keys) is read off the one trace
    # that builds the program: a second trace only to learn it would double
    # the tracing time of a large training function.
    traces = []

    def train(key):
        traces.append(None)
        return {"x": jax.random.uniform(key), "key": jax.random.split(key)[0]}

    got = parallel.run_members(train, np.arange(3))
    assert len(traces) == 1
    assert jax.dtypes.issubdtype(got["key"].dtype, jax.dtypes.prng_key)
    assert got["x"].shape == (3,) and got["key"].shape == (3,)


def test_sharded_state_with_keys_feeds_back_chunk_after_chunk():
    # A chunked driver: init from seeds, then step the [P] state twice on the
    # devices; equals two steps of the plain vmap.
    def init(seed):
        return {"key": jax.random.key(seed), "x": jax.numpy.zeros(())}

    def step(state):
        key, sub = jax.random.split(state["key"])
        return {"key": key, "x": state["x"] + jax.random.normal(sub)}

    lay = parallel.layout(3)
    state = parallel.sharded(init, lay, raw_keys=False)(
        *parallel.place((np.arange(3, dtype=np.int32),), lay)
    )
    chunk = parallel.sharded(step, lay, raw_keys=False)
    got = parallel.collect(chunk(chunk(state)), lay)
    want = jax.vmap(lambda s: step(step(init(s))))(np.arange(3, dtype=np.int32))
    np.testing.assert_array_equal(
        np.asarray(jax.random.key_data(got["key"])),
        np.asarray(jax.random.key_data(want["key"])),
    )
    np.testing.assert_allclose(np.asarray(got["x"]), np.asarray(want["x"]), rtol=1e-6)


@pytest.mark.parametrize(
    ("seeds", "match"),
    [
        ([], "non-empty"),
        ([[1, 2]], "1-D"),
        ([0.5], "ints"),
        ([-1], r"\[0, 2\*\*31\)"),
    ],
)
def test_run_members_rejects_bad_seeds(seeds, match):
    with pytest.raises(ValueError, match=match):
        parallel.run_members(lambda k: k, np.asarray(seeds))


def test_layout_rejects_bad_counts():
    with pytest.raises(ValueError, match="num_members=0"):
        parallel.layout(0)
    with pytest.raises(ValueError, match="repeated"):
        parallel.layout(2, [jax.devices()[0]] * 2)


def test_distributed_arguments_parse_and_validate(monkeypatch):
    monkeypatch.delenv("JAX_COORDINATOR_ADDRESS", raising=False)
    monkeypatch.setenv("JAX_NUM_PROCESSES", "4")
    parser = argparse.ArgumentParser()
    options.add_distributed_arguments(parser)
    args = parser.parse_args(["--coordinator", "h:1234", "--process-id", "2"])
    assert (args.coordinator, args.num_processes, args.process_id) == ("h:1234", 4, 2)
    # No coordinator, no processes: one process, nothing initialised.
    monkeypatch.delenv("JAX_NUM_PROCESSES")
    parser = argparse.ArgumentParser()
    options.add_distributed_arguments(parser)
    assert options.initialize_from_args(parser.parse_args([])) is False
    assert parallel.initialize(None, 1, 0) is False
    with pytest.raises(ValueError, match="need a coordinator"):
        parallel.initialize(None, 2, 0)
    with pytest.raises(ValueError, match="process_id=2 is invalid"):
        parallel.initialize("h:1", 2, 2)
    with pytest.raises(ValueError, match="num_processes=None is invalid"):
        parallel.initialize("h:1", None, 0)
    with pytest.raises(ValueError, match="timeout=0 is invalid"):
        parallel.initialize("h:1", 2, 0, timeout=0)
    with pytest.raises(ValueError, match="coordinator='h' is invalid: must be HOST"):
        parallel.initialize("h", 2, 1)


def test_a_bad_process_count_in_the_environment_is_a_usage_error(monkeypatch, capsys):
    """Read when the option is parsed: only the commands that take it refuse
    it, with argparse's one-line error naming the option and the variable."""
    from jaxpg.cli.main import build_parser

    monkeypatch.setenv("JAX_NUM_PROCESSES", "abc")
    parser = build_parser()  # building every subcommand's parser is fine
    assert parser.parse_args(["eval", "runs/x"]).command == "eval"
    with pytest.raises(SystemExit) as stopped:
        parser.parse_args(["train"])
    assert stopped.value.code == 2
    err = capsys.readouterr().err
    assert "argument --num-processes: 'abc' is not an integer" in err
    assert "$JAX_NUM_PROCESSES" in err


# Start-up faults: nothing is computed, each subprocess ends in seconds.


def _train_process(port: int, process_id: int, *extra: str):
    """``jaxpg train`` as process ``process_id`` of 2 joining localhost:port:
    ``(exit status, stderr, seconds)``."""
    t0 = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "jaxpg.cli", "train", "--no-progress",
         "--coordinator", f"localhost:{port}", "--num-processes", "2",
         "--process-id", str(process_id), *extra],
        env=_env(), capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    return done.returncode, done.stderr, time.monotonic() - t0


def test_process_0_refuses_a_coordinator_port_in_use_naming_it():
    with socket.socket() as taken:
        taken.bind(("localhost", 0))
        taken.listen()
        port = taken.getsockname()[1]
        code, err, _ = _train_process(port, 0)
    assert code == 2, err
    assert err.startswith(
        f"jaxpg train: error: --coordinator localhost:{port}: port {port} is "
        "already in use on this host"
    ), err
    assert "Traceback" not in err and err.count("\n") == 1


def test_a_process_without_its_coordinator_gives_up_within_the_timeout():
    port = _free_port()  # nobody listens: process 0 never started
    code, err, took = _train_process(port, 1, "--coordinator-timeout", "2")
    assert code == 2, err
    assert (
        "process 1 could not reach the coordinator within 2 s: start process 0" in err
    ), err
    assert "Traceback" not in err
    # 2 s of waiting plus the interpreter's start (a few seconds on a loaded
    # 2-core machine); without the bound it would wait JAX's 300 s.
    assert took < 60


def _free_slurm_port() -> int:
    """A free port among those JAX derives from a SLURM job id
    (``65535 - 4095 + id % 4096``)."""
    for port in range(65535 - 4095, 65536):
        with socket.socket() as s:
            try:
                s.bind(("localhost", port))
            except OSError:
                continue
            return port
    pytest.skip("no free port in JAX's SLURM range")


def test_coordinator_auto_reads_a_slurm_allocation():
    """``--coordinator auto`` (``parallel.initialize("auto")``) under a SLURM
    job step of 2 tasks on this host: each process learns the coordinator,
    the process count and its id from SLURM's variables alone and joins."""
    job_id = _free_slurm_port() - (65535 - 4095)
    code = (
        "import jax; from jaxpg.drivers import parallel;"
        "joined = parallel.initialize('auto', timeout=60);"
        "print(joined, jax.process_count(), jax.process_index())"
    )
    procs = []
    for task in (0, 1):
        env = {
            **_env(),
            "SLURM_JOB_ID": str(job_id), "SLURM_STEP_NODELIST": "localhost",
            "SLURM_NTASKS": "2", "SLURM_PROCID": str(task),
            "SLURM_LOCALID": str(task), "SLURM_STEP_NUM_NODES": "1",
        }  # fmt: skip
        for name in ("JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES", "JAX_PROCESS_ID"):
            env.pop(name, None)
        procs.append(
            subprocess.Popen(
                [sys.executable, "-c", code],
                env=env,
                text=True,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
        )
    outs = [p.communicate(timeout=120) for p in procs]
    for task, (p, (out, err)) in enumerate(zip(procs, outs, strict=True)):
        assert p.returncode == 0, err
        assert out.split() == ["True", "2", str(task)], (out, err)
