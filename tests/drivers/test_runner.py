"""jaxpg.drivers.runner: chunked multi-seed training equals the single jitted program;
chunks are chosen in constant time; host memory stays flat with streamed
metrics; the progress bar counts env steps."""

from __future__ import annotations

import gc
import time
import tracemalloc

import jax
import numpy as np
import pytest

import jaxpg
from jaxpg.drivers import programs
from jaxpg.drivers.progress import ProgressBar
from jaxpg.drivers.runner import (
    RunResult,
    chunk_plan,
    default_chunk,
    run,
)
from jaxpg.drivers.train import seed_keys

NUM_SEEDS = 2
# 4 envs x 8 steps per update, 7 updates run as chunks of 3, 3 and a remainder
# of 1; episodes run past the start window (REINFORCE), so seeds end with
# different step counts. tests/test_checkpoint.py uses the same run (the
# compiled programs are shared within the process).
CFG = jaxpg.Config(num_envs=4, rollout_steps=8, total_steps=4 * 8 * 7, lr=1e-2)
CHUNK = 3


@pytest.fixture(scope="module")
def chunked() -> RunResult:
    return run(CFG, NUM_SEEDS, chunk_updates=CHUNK, progress=False)


@pytest.fixture(scope="module")
def reference():
    train = jaxpg.make_train(CFG)
    return jax.jit(jax.vmap(train))(seed_keys(NUM_SEEDS))


def test_runner_with_remainder_chunk_matches_single_jitted_program(chunked, reference):
    assert chunk_plan(CFG.num_updates, CHUNK) == (3, 2, 1)
    # Both lengths ran through one compiled program, of the longer.
    progs = programs.cached(CFG, NUM_SEEDS)
    assert sorted(progs.chunks) == [1, 3] and list(progs.compiled) == [3]
    ref_metrics = jax.device_get(reference.metrics)
    assert set(chunked.metrics) == set(ref_metrics)
    for name, expected in ref_metrics.items():
        got = chunked.metrics[name]
        assert got.shape == (NUM_SEEDS, CFG.num_updates), name
        assert got.dtype == expected.dtype, name
        np.testing.assert_allclose(
            got, expected, rtol=1e-5, atol=1e-6, equal_nan=True, err_msg=name
        )
    # The same random draws: the same env steps exactly.
    np.testing.assert_array_equal(
        chunked.metrics["env_steps"], ref_metrics["env_steps"]
    )
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6),
        chunked.params,
        reference.params,
    )
    np.testing.assert_array_equal(
        jax.random.key_data(chunked.state.key),
        jax.random.key_data(reference.state.key),
    )


def test_run_result_reports_timings_and_throughput(chunked):
    assert chunked.compile_s > 0 and chunked.run_s > 0
    steps = chunked.metrics["env_steps"][:, -1].sum()
    assert steps >= NUM_SEEDS * CFG.total_steps  # REINFORCE spends its budget
    assert chunked.steps_per_s == pytest.approx(steps / chunked.run_s)
    assert int(chunked.state.update_idx[0]) == CFG.num_updates
    assert chunked.updates_done == CFG.num_updates and not chunked.interrupted
    leaves = jax.tree.leaves(chunked.params)
    assert all(leaf.shape[0] == NUM_SEEDS for leaf in leaves)


@pytest.mark.parametrize(
    ("num_updates", "expected"),
    [
        (600, 30),  # an exact divisor at U / 20
        (585, 29 + 1),  # no divisor within 25% of 29.25: ceil, remainder 15
        (100, 5),
        (1009, 51),  # prime: 19 chunks of 51 and one of 40, not 1009 of 1
        (6, 1),
        (1, 1),
        (20_000, 1000),
    ],
)
def test_default_chunk_is_near_a_twentieth_with_bounded_calls(num_updates, expected):
    chunk = default_chunk(num_updates)
    assert chunk == expected
    _, full, rem = chunk_plan(num_updates, chunk)
    assert full * chunk + rem == num_updates
    assert full + (rem > 0) <= 21  # about 20 calls, whatever U is


def test_default_chunk_takes_constant_time_for_huge_update_counts():
    # A search over every divisor of 10**15 would not end; 64 candidates do.
    t0 = time.perf_counter()
    for n in (10**15, 10**15 + 37, 2**61 - 1):  # 2**61 - 1 is prime
        chunk = default_chunk(n)
        assert abs(chunk - n / 20) <= 0.25 * n / 20
    assert time.perf_counter() - t0 < 0.1


@pytest.mark.parametrize("chunk", [0, -1, 2.0, True])
def test_run_rejects_invalid_chunk(chunk):
    with pytest.raises(ValueError, match="chunk_updates"):
        run(CFG, 2, chunk_updates=chunk, progress=False)


@pytest.mark.parametrize("num_seeds", [0, -1, 1.5, True])
def test_run_rejects_bad_num_seeds(num_seeds):
    with pytest.raises(ValueError, match="num_seeds"):
        run(CFG, num_seeds, progress=False)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(resume=True), "resume=True given without checkpoint_dir"),
        (dict(overwrite=True, eval_episodes=3),
         "overwrite=True, eval_episodes=3 given without checkpoint_dir"),
        (dict(checkpoint_every=2), "checkpoint_every=2 given without"),
        (dict(checkpoint_dir="x", start_over=True), "start_over=True needs resume"),
        (dict(checkpoint_dir="x", resume=True, overwrite=True), "give one of them"),
    ],
)  # fmt: skip
def test_run_refuses_options_it_would_ignore(kwargs, match, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ValueError, match=match):
        run(CFG, 2, progress=False, **kwargs)
    assert not (tmp_path / "x").exists()  # refused before anything is written


def test_progress_bar_counts_env_steps_and_shows_latest_return(capsys):
    pytest.importorskip("tqdm")
    bar = ProgressBar(True, total_steps=120, num_seeds=2)
    bar.advance(
        {
            "env_steps": np.array([[10, 20], [15, 30]]),
            "episode_return": np.array([[5.0, np.nan], [np.nan, np.nan]]),
        }
    )
    # Seed 1 has no episode yet: the mean is over seed 0 only.
    np.testing.assert_array_equal(bar.latest, [5.0, np.nan])
    assert bar.shown == 50
    bar.advance(
        {
            "env_steps": np.array([[40, 50], [45, 60]]),
            "episode_return": np.array([[7.0, 9.0], [3.0, np.nan]]),
        }
    )
    np.testing.assert_array_equal(bar.latest, [9.0, 3.0])
    assert bar.shown == 110
    bar.finish()  # the budget is the end, even when REINFORCE stops short of it
    assert bar.shown == 120
    bar.close()
    err = capsys.readouterr().err
    assert "120/120" in err
    assert "mean_return=6.0" in err


def test_progress_bar_off_is_silent(capsys):
    bar = ProgressBar(False, total_steps=4, num_seeds=2)
    bar.advance({"env_steps": np.zeros((2, 1)), "episode_return": np.zeros((2, 1))})
    bar.close()
    assert capsys.readouterr().err == ""


# Memory: many seeds, one update per chunk, so each chunk brings
# MEM_SEEDS x (number of metrics) values to the host. An 8-wide torso: the
# metrics do not depend on the network, whose updates of 512 seeds took most
# of the test's time at the default (64, 64).
MEM_SEEDS = 512
MEM_CFG = jaxpg.Config(
    algo="a2c",
    num_envs=2,
    rollout_steps=4,
    total_steps=2 * 4 * 14,
    lr=1e-2,
    hidden=(8,),
)


def _traced_after_each_chunk(**kwargs) -> tuple[np.ndarray, int]:
    """Python-heap bytes (tracemalloc, which sees NumPy's buffers) after each
    chunk's callback, and the bytes of one chunk's metrics."""
    samples, chunk_bytes = [], []

    def callback(info):
        chunk_bytes.append(sum(v.nbytes for v in info.metrics.values()))
        # Collect cyclic garbage first: its release at random times is noise
        # of the size of a chunk's metrics.
        gc.collect()
        samples.append(tracemalloc.get_traced_memory()[0])

    # Compiled before tracing starts (tracemalloc slows tracing tenfold); the
    # runs below reuse the process's programs.
    programs.chunk(programs.cached(MEM_CFG, MEM_SEEDS), 1)
    if kwargs.get("checkpoint_dir"):  # imported untraced too (seconds under it)
        pytest.importorskip("orbax.checkpoint")
    # What exists now is not scanned by the collections above (they only need
    # the run's own garbage): each takes milliseconds, not 0.2 s.
    gc.collect()
    gc.freeze()
    tracemalloc.start()
    try:
        run(
            MEM_CFG,
            MEM_SEEDS,
            chunk_updates=1,
            progress=False,
            callback=callback,
            **kwargs,
        )
    finally:
        tracemalloc.stop()
        gc.unfreeze()
    return np.asarray(samples), chunk_bytes[0]


def test_host_memory_is_flat_in_chunks_when_metrics_stream_to_disk(tmp_path):
    # Issue 9: the runner's host memory does not grow with the number of
    # chunks beyond what it writes. Measured after chunks 4..14 (the first
    # chunks warm up JAX's caches): with the metrics streamed to the run
    # directory and not kept, the growth over those 10 chunks must stay under
    # a quarter of one chunk's metrics; keeping them in memory (the control)
    # grows by at least 9 chunks' worth, so the measurement can see it.
    streamed, chunk_bytes = _traced_after_each_chunk(
        checkpoint_dir=tmp_path / "run", keep_metrics=False
    )
    kept, _ = _traced_after_each_chunk(keep_metrics=True)
    assert streamed.size == kept.size == MEM_CFG.num_updates
    assert chunk_bytes >= MEM_SEEDS * 10 * 4  # >= 10 float32 metrics per seed
    growth = streamed[-1] - streamed[3]
    control = kept[-1] - kept[3]
    assert control >= 9 * chunk_bytes, (control, chunk_bytes)
    assert growth < 0.25 * chunk_bytes, (growth, chunk_bytes)


def _wait_for(condition, timeout=5.0):
    """Sleeps in short steps until ``condition()``: the interpreter runs a
    pending signal handler between steps even when the OS delivered the
    signal to another thread (XLA's), where one long sleep is not
    interrupted."""
    deadline = time.perf_counter() + timeout
    while not condition() and time.perf_counter() < deadline:
        time.sleep(0.01)
    return condition()


@pytest.mark.parametrize("name", ["SIGINT", "SIGTERM"])
def test_signal_requests_a_stop_and_a_second_signal_gets_the_old_handler(name):
    """SIGINT (Ctrl-C) and SIGTERM (a scheduler's preemption) request a stop;
    the first one puts the previous handler back, so a second Ctrl-C raises."""
    import os
    import signal

    from jaxpg.drivers.signals import Stopper

    signum = getattr(signal, name)
    start = signal.default_int_handler if name == "SIGINT" else signal.SIG_DFL
    previous = signal.signal(signum, start)
    try:
        with Stopper(True) as stopper:
            os.kill(os.getpid(), signum)
            assert _wait_for(lambda: stopper.stop)
            assert stopper.signum == signum
            assert signal.getsignal(signum) is start
            if name == "SIGINT":
                with pytest.raises(KeyboardInterrupt):
                    os.kill(os.getpid(), signum)
                    _wait_for(lambda: False)
        assert signal.getsignal(signum) is start
    finally:
        signal.signal(signum, previous)


class _Captured(Exception):
    pass


def test_network_and_optimizer_keywords_reach_make_algorithm(monkeypatch):
    seen = []

    def fake_make_algorithm(cfg, env=None, env_params=None, **kwargs):
        seen.append(kwargs)
        raise _Captured

    monkeypatch.setattr("jaxpg.drivers.runoptions.make_algorithm", fake_make_algorithm)
    sentinel = object()
    with pytest.raises(_Captured):
        run(CFG, 2, progress=False, optimizer=sentinel)
    with pytest.raises(_Captured):
        run(CFG, 2, progress=False, policy_network=sentinel, critic_network=sentinel)
    with pytest.raises(_Captured):
        run(CFG, 2, progress=False, policy_obs=("a",), action_mask_fn=len)
    # Passed only when given (None is never forwarded).
    assert seen == [
        {"optimizer": sentinel},
        {"policy_network": sentinel, "critic_network": sentinel},
        {"policy_obs": ("a",), "action_mask_fn": len},
    ]


def test_custom_parts_are_described_without_memory_addresses():
    # config.json records them; an address would differ in the process that
    # resumes and make the run look changed.
    import flax.linen as nn
    import optax

    from jaxpg.drivers.runstate import describe as _describe

    assert _describe(None) is None
    adam = _describe(optax.adam(1e-3))
    assert adam.startswith("optax._src.base.GradientTransformationExtraArgs#")
    assert "features = 3" in _describe(nn.Dense(3))
    assert "0x" not in adam + _describe(nn.Dense(3))
    # A class (an NNX torso) by its import path, not as ``builtins.type``.
    assert _describe(ProgressBar) == "jaxpg.drivers.progress:ProgressBar"


def test_views_and_functions_without_an_import_path_are_described_by_content():
    """A view given as keys by its keys; a lambda or a nested function by its
    code and what it closes over (``lambda o: o["a"]`` and ``o["b"]``
    differ, the same source twice does not); a record from before, which
    held ``builtins.function`` alone, still matches; a ``functools.partial``'s
    string keyword is described as before (old records stay valid)."""
    import functools

    from jaxpg.drivers.runstate import describe, describe_part
    from jaxpg.experiment.rundir import same_part

    assert describe_part("critic_obs", ("secret", "target")) == "('secret', 'target')"
    assert describe_part("policy_obs", "obs") == "'obs'"

    def view(key):
        return lambda o: o[key]

    a, b = describe(lambda o: o["a"]), describe(lambda o: o["b"])
    assert a.startswith("builtins.function#") and a != b
    assert describe(lambda o: o["a"]) == a
    assert describe(view("x")) == describe(view("x")) != describe(view("y"))
    assert same_part("builtins.function", a)
    assert describe(functools.partial(sorted, key="x")).endswith("key=builtins.str)")


def test_an_optimizer_is_described_by_its_hyperparameters():
    import optax

    from jaxpg.drivers.runstate import describe as _describe

    def schedule(n):
        return optax.linear_schedule(1e-3, 0.0, n)

    same = [
        (optax.adam(1e-3), optax.adam(1e-3)),
        (optax.adam(schedule(100)), optax.adam(schedule(100))),
        (optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3)),
         optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3))),
    ]  # fmt: skip
    for a, b in same:  # new objects, the same hyperparameters
        assert _describe(a) == _describe(b)
    differ = [
        (optax.adam(1e-3), optax.adam(3e-4)),
        (optax.adam(schedule(100)), optax.adam(schedule(200))),
        (optax.chain(optax.clip_by_global_norm(0.5), optax.adam(1e-3)),
         optax.chain(optax.clip_by_global_norm(1.0), optax.adam(1e-3))),
        (optax.adamw(1e-3, weight_decay=1e-4), optax.adamw(1e-3, weight_decay=1e-2)),
        (optax.adam(1e-3), optax.sgd(1e-3)),
    ]  # fmt: skip
    for a, b in differ:
        assert _describe(a) != _describe(b)


def test_closure_digest_is_order_free_and_sees_classes_and_defaults():
    from jaxpg.drivers.runstate import closure_digest

    # 0 and 8 share a slot of a small set's table: the insertion order decides
    # the iteration order, which must not enter the digest.
    a, b = {0, 8}, set()
    b.add(8)
    b.add(0)
    assert list(a) != list(b)
    assert closure_digest(a) == closure_digest(b)
    assert closure_digest({0, 8}) != closure_digest({0, 9})
    # Classes by import path (not as ``builtins.type``), functions by their
    # defaults too.
    assert closure_digest((int,)) != closure_digest((float,))
    assert closure_digest(lambda x=1: x) != closure_digest(lambda x=2: x)
    # Arrays by value, typed PRNG keys by their data.
    assert closure_digest(np.arange(3)) != closure_digest(np.arange(1, 4))
    assert closure_digest(jax.random.key(0)) != closure_digest(jax.random.key(1))


def test_records_of_older_versions_match_their_parts():
    # Before digests, an optimizer was recorded by its type and a class as
    # ``builtins.type``: such a record still resumes with a part of that type.
    from jaxpg.experiment import rundir

    config = rundir.config_to_dict(CFG)

    def record(**custom):
        return {"config": config, "custom": custom}

    opt = "optax._src.base.GradientTransformationExtraArgs"
    now = record(optimizer=f"{opt}#d18b58b36a0e0ea5", policy_network="m:Torso")
    assert (
        rundir.diff_run(record(optimizer=opt, policy_network="builtins.type"), now)
        == []
    )
    assert rundir.diff_run(record(optimizer=f"{opt}#0123456789abcdef",
                                  policy_network="m:Torso"), now) == [
        f"custom: optimizer: '{opt}#0123456789abcdef' -> '{opt}#d18b58b36a0e0ea5'"
    ]  # fmt: skip
    assert rundir.diff_run(record(optimizer="other.Type"), now) != []


def test_a_resume_with_other_env_params_or_optimizer_is_refused(tmp_path):
    import gymnax
    import optax

    from jaxpg.drivers.runstate import fingerprint
    from jaxpg.experiment import rundir

    env, params = gymnax.make("CartPole-v1")
    other = params.replace(max_steps_in_episode=5)
    assert fingerprint(params) == fingerprint(params.replace())  # values, not ids
    assert fingerprint(params) != fingerprint(other)
    cfg = CFG.replace(total_steps=4 * 8 * 2)
    out = tmp_path / "run"
    parts = {"env": env, "progress": False, "checkpoint_dir": out}
    run(cfg, 1, env_params=params, optimizer=optax.adam(1e-3), **parts)
    recorded = rundir.load_run(out)[1]["custom"]["env_params"]
    assert recorded == fingerprint(params)
    with pytest.raises(rundir.RunDirError, match=r"custom: env_params"):
        run(cfg, 1, resume=True, env_params=other, optimizer=optax.adam(1e-3), **parts)
    with pytest.raises(rundir.RunDirError, match=r"custom: optimizer"):
        run(cfg, 1, resume=True, env_params=params, optimizer=optax.adam(3e-3), **parts)
    # The same values resume (here: a finished run, returned as it is).
    res = run(cfg, 1, resume=True, env_params=params.replace(),
              optimizer=optax.adam(1e-3), **parts)  # fmt: skip
    assert res.updates_done == cfg.num_updates


def test_a_chunk_compiled_mid_run_counts_the_live_state_once(monkeypatch):
    """A timed run meets a shorter chunk length after its probes and checks
    its memory then: the live train state, already in use, is that program's
    own donated argument. A device with room for the largest program (plus 1
    KiB) finishes; counting the state twice refused it mid-run."""
    import itertools

    from jaxpg.drivers import memory, runner

    cfg = jaxpg.Config(num_envs=4, rollout_steps=8, total_steps=4 * 8 * 100,
                       hidden=(64, 64))  # fmt: skip
    progs = programs.cached(cfg, 2)
    upfront = [progs.init, programs.chunk(progs, 5), programs.chunk(progs, 1)]
    limit = max(memory.program_bytes(p) for p in upfront) + 1024

    # The fake device holds what this run allocates (other tests' arrays in
    # this process are not on it).
    before = sum(x.nbytes for x in jax.live_arrays())

    def live() -> int:
        return sum(x.nbytes for x in jax.live_arrays()) - before

    monkeypatch.setattr(
        memory, "available_bytes", lambda d: (limit - live(), "fake", False)
    )
    ticks = itertools.count()
    monkeypatch.setattr(runner, "_clock", lambda: float(next(ticks)))
    res = run(cfg, 2, chunk_seconds=3.5, progress=False)  # 1 s per probe
    assert res.updates_done == cfg.num_updates
    assert 3 in progs.chunks  # the length met mid-run, after the probes
    assert list(progs.compiled) == [5]  # every length ran through one program
