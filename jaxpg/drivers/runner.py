r"""Run many seeds in compiled chunks, driven from the host: progress, streamed
metrics, checkpoints, exact resume.

``train_seeds`` compiles the whole run into one program, which shows nothing
until it ends and keeps ``[S, U]`` metrics of every seed in memory. :func:`run`
compiles ``vmap(init)`` and a *chunk* program (``vmap`` over seeds of a
``lax.scan`` of ``update`` over ``chunk`` updates), and calls it repeatedly,
so between calls the host can advance a progress bar, write the chunk's
metrics to disk, call a user callback and save a checkpoint. There are no host
callbacks inside the program: the host reads a chunk's metrics while the next
chunk runs. The result equals ``jax.jit(jax.vmap(make_train(cfg)))`` of the
same keys (the same random draws, metrics equal up to float rounding).

Chunking (:mod:`jaxpg.drivers.chunking`): ``chunk`` updates per call
(:func:`default_chunk`: a divisor of ``U`` near ``U / 20`` when one is close,
found in constant time), then one *remainder* chunk of ``U mod chunk``
updates when ``chunk`` does not divide ``U`` (a second compiled program,
never ``U`` calls of one update). With ``chunk_seconds=T`` chunks are sized by
time instead: two first chunks of one update measure the speed, the next
ones last at most about ``T`` (never longer than the fixed chunk) and the last
updates run one at a time (no program for a shorter last chunk), so a stop
request (SIGINT/SIGTERM, the callback) waits at most about ``2 T`` (the chunk
running and the one queued behind it) plus a checkpoint's save. Metrics are
still written in files of about a fixed chunk's updates (and at every
checkpoint).

Run directory (``checkpoint_dir``, see :mod:`jaxpg.experiment.rundir`): metrics are
appended per chunk, a checkpoint of the whole ``[S]`` train state is written
at chunk boundaries (every ``checkpoint_every`` updates, rounded up to the
next boundary, at the end, and on SIGINT/SIGTERM), and ``resume=True``
continues from the newest valid checkpoint with the same chunking, so an
interrupted and resumed run ends bit-identical to the uninterrupted one on the
same machine.

Devices and processes: the seeds are split over all devices of all processes
by :mod:`jaxpg.drivers.parallel` (``shard_map`` over a mesh, each device ``vmap``\ s
its share), any seed count: ``S`` is padded to ``P``, a multiple of the
device count, by repeating the last seed, and the padding never leaves the
runner. Metrics (streamed, returned, given to the callback), checkpoints and
the returned state hold exactly the ``S`` real seeds; on resume the ``[S]``
checkpoint is padded again the same way, so resuming stays bit-identical.
With several processes (after :func:`jax.distributed.initialize`, see
:func:`jaxpg.drivers.parallel.initialize`) every process calls :func:`run` with the
same arguments and trains its share on its own devices; process 0 alone
reads and writes the run directory (the others may pass the same path: they
never touch it), the state and metrics are gathered on every process at
checkpoints and at the end, and a stop (signal or callback) on any process
stops all of them at the same chunk boundary.

Shapes: ``S`` seeds, ``P`` padded seeds, ``U = cfg.num_updates`` updates.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpg.algorithms.base import TrainState
from jaxpg.config import Config
from jaxpg.drivers import chunking, memory, parallel, programs
from jaxpg.drivers.chunking import (
    ChunkPlan,
    chunk_plan,
    default_chunk,
    fixed_plan,
    timed_plan,
)
from jaxpg.drivers.progress import ProgressBar, compiling
from jaxpg.drivers.signals import Stopper
from jaxpg.drivers.train import make_algorithm, policy_params
from jaxpg.experiment import guard, integrity, lock, rundir
from jaxpg.experiment.guard import prepare_run_dir

__all__ = [
    "DEFAULT_CHUNK_SECONDS",
    "ChunkInfo",
    "RunResult",
    "chunk_plan",
    "default_chunk",
    "prepare_run_dir",
    "run",
]


class RunResult(NamedTuple):
    """What :func:`run` returns.

    Attributes:
      params: ``[S, ...]`` final policy parameters as
        :attr:`jaxpg.TrainOutput.params` (carrying the observation statistics
        with ``cfg.normalise_obs``; on this process's first local device; the
        same on every process).
      metrics: ``{name: np.ndarray [S, u]}`` per-update metrics on the host
        for the ``u`` updates done (see :class:`jaxpg.TrainOutput`); empty
        with ``keep_metrics=False``. On a resumed run with several
        processes, processes other than 0 (which do not read the run
        directory) hold only the updates this call ran.
      state: the ``[S]``-batched :class:`~jaxpg.TrainState` (as ``params``).
      compile_s: seconds spent lowering and compiling ``init`` and chunks.
      run_s: seconds spent running this call's chunks (restore included).
      steps_per_s: real env steps of all seeds together per second of
        ``run_s``, for the updates this call ran.
      updates_done: ``u``, updates done (``U`` unless interrupted).
      interrupted: stopped early by SIGINT/SIGTERM or the callback; the run
        directory then holds a checkpoint at ``updates_done``.
      signal: the signal number that stopped the run, else ``None``.
      run_dir: the run directory, or ``None`` (also on processes other than
        0, which do not write it).
    """

    params: Any
    metrics: dict[str, np.ndarray]
    state: TrainState
    compile_s: float
    run_s: float
    steps_per_s: float
    updates_done: int = 0
    interrupted: bool = False
    signal: int | None = None
    run_dir: Path | None = None


class ChunkInfo(NamedTuple):
    """What the ``callback`` of :func:`run` receives after every chunk.

    Attributes:
      start: index of the chunk's first update.
      metrics: ``{name: np.ndarray [S, n]}`` the chunk's metrics (host).
      num_updates: ``U``.
    """

    start: int
    metrics: dict[str, np.ndarray]
    num_updates: int


# What ``jaxpg train`` passes as ``chunk_seconds`` unless told otherwise.
DEFAULT_CHUNK_SECONDS = 5.0
# The clock timed chunks are measured with (a test may replace it).
_clock = time.perf_counter


def _check_int(name: str, value: Any, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}={value!r} is invalid: must be an int >= {low}")


def run(
    cfg: Config,
    num_seeds: int,
    *,
    env: Any = None,
    env_params: Any = None,
    chunk_updates: int | None = None,
    chunk_seconds: float | None = None,
    progress: bool = True,
    first_seed: int = 0,
    checkpoint_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    start_over: bool = False,
    checkpoint_every: int | None = None,
    keep_checkpoints: int = 2,
    keep_metrics: bool = True,
    callback: Callable[[ChunkInfo], bool | None] | None = None,
    handle_signals: bool | None = None,
    policy_network: Any = None,
    critic_network: Any = None,
    optimizer: Any = None,
    algorithm: Any = None,
) -> RunResult:
    """Train seeds ``first_seed .. first_seed + num_seeds - 1`` in chunks.

    Seed ``i`` is ``make_train(cfg)(jax.random.key(i))``, on whichever device
    and process trains it. The seeds are split over all devices of all
    processes (see the module docstring); with several processes call it on
    every process with the same arguments.

    Args:
      cfg: the run's configuration.
      num_seeds: ``S >= 1``.
      env, env_params: a gymnax-API environment (see :func:`jaxpg.make_train`).
      chunk_updates: updates per compiled call, ``>= 1`` (the last call runs
        the remainder). Default: :func:`default_chunk`; on resume, the run's
        own.
      chunk_seconds: size chunks by time instead, ``> 0``: after two
        chunks of one update, chunks of at most about this many seconds (and
        at most the default chunk), so that a stop waits at most about twice
        this plus a checkpoint's save (see :mod:`jaxpg.drivers.chunking`).
        ``None``: fixed chunks; on resume, the run's own. Not with
        ``chunk_updates``.
      progress: show a tqdm bar over env steps (postfix: the latest mean
        episode return). Needs ``tqdm`` (the ``cli`` extra); without it the run
        is silent.
      first_seed: seed of the first run.
      checkpoint_dir: a run directory (:mod:`jaxpg.experiment.rundir`): config, versions
        and progress files, metrics streamed per chunk, checkpoints, final
        parameters. ``None``: nothing is written. With several processes
        only process 0 reads and writes it.
      resume: continue the run in ``checkpoint_dir`` from its newest valid
        checkpoint (its config must equal ``cfg``); start it when the directory
        holds no run yet. Refused, with nothing deleted, when the run has
        checkpoints of which none restores, or metrics but no checkpoint.
      overwrite: replace a run already in ``checkpoint_dir``.
      start_over: with ``resume``, start the run again from update 0 when no
        checkpoint restores (its metrics and checkpoints are deleted).
      checkpoint_every: also checkpoint at the first chunk boundary at least
        this many updates after the previous checkpoint (``None``: only at the
        end and on a signal). Chunks are no longer than this.
      keep_checkpoints: newest valid checkpoints kept, ``>= 1``.
      keep_metrics: return the metrics in :attr:`RunResult.metrics`. With a run
        directory and ``False``, host memory stays flat however many chunks
        run (the metrics are on disk).
      callback: called on the host after each chunk with a
        :class:`ChunkInfo`; a truthy return stops the run at this boundary
        (with a checkpoint when there is a run directory). With several
        processes it is called on every process with the metrics of all
        seeds, and a truthy return on any of them stops all.
      handle_signals: on SIGINT/SIGTERM, stop at the next chunk boundary and
        checkpoint instead of raising (a second signal raises). Default: on
        when there is a run directory and this is the main thread.
      policy_network, critic_network, optimizer, algorithm: passed to
        :func:`jaxpg.make_algorithm` when not ``None``.

    Returns:
      :class:`RunResult`.

    Raises:
      ValueError: an invalid argument (the message names it).
      jaxpg.drivers.memory.OutOfMemoryError: the compiled run needs more memory
        than the device has free (checked before running; the message gives
        both numbers and the largest seed count that fits).
      jaxpg.experiment.rundir.RunDirError: ``checkpoint_dir`` holds another run, a run
        with a different config (the differing fields are listed), or is a
        non-empty directory that is not a run directory; another process is
        using it (:mod:`jaxpg.experiment.lock`); a resume cannot restore or
        finds a damaged file (named); or a save failed
        (:class:`jaxpg.experiment.guard.SaveFailedError`, naming the previous
        good checkpoint).
    """
    _check_int("num_seeds", num_seeds, 1)
    _check_int("first_seed", first_seed, 0)
    if first_seed + num_seeds > 2**31:
        raise ValueError(
            f"first_seed={first_seed} + num_seeds={num_seeds} is invalid: seeds "
            "must be below 2**31"
        )
    _check_int("keep_checkpoints", keep_checkpoints, 1)
    if checkpoint_every is not None:
        _check_int("checkpoint_every", checkpoint_every, 1)
    if chunk_updates is not None:
        _check_int("chunk_updates", chunk_updates, 1)
    if chunk_seconds is not None:
        timed_plan(1, chunk_seconds, 1)  # ValueError naming a bad value
        if chunk_updates is not None:
            raise ValueError(
                f"chunk_updates={chunk_updates} and chunk_seconds={chunk_seconds}: "
                "give one of them (fixed chunks, or chunks sized by time)"
            )
    enabled = (
        handle_signals
        if handle_signals is not None
        else checkpoint_dir is not None
        and threading.current_thread() is threading.main_thread()
    )
    # Signals are caught from here on: one that arrives while compiling stops
    # the run at the first chunk boundary, with a checkpoint. ``held`` keeps
    # the run directory's lock (process 0) until the run ends.
    with contextlib.ExitStack() as held, Stopper(enabled) as stopper:
        return _run(
            cfg,
            num_seeds,
            stopper,
            held,
            env=env,
            env_params=env_params,
            chunk_updates=chunk_updates,
            chunk_seconds=chunk_seconds,
            progress=progress,
            first_seed=first_seed,
            checkpoint_dir=checkpoint_dir,
            resume=resume,
            overwrite=overwrite,
            start_over=start_over,
            checkpoint_every=checkpoint_every,
            keep_checkpoints=keep_checkpoints,
            keep_metrics=keep_metrics,
            callback=callback,
            policy_network=policy_network,
            critic_network=critic_network,
            optimizer=optimizer,
            algorithm=algorithm,
        )


def _run(
    cfg: Config,
    num_seeds: int,
    stopper: Stopper,
    held: contextlib.ExitStack,
    *,
    env: Any,
    env_params: Any,
    chunk_updates: int | None,
    chunk_seconds: float | None,
    progress: bool,
    first_seed: int,
    checkpoint_dir: str | Path | None,
    resume: bool,
    overwrite: bool,
    start_over: bool,
    checkpoint_every: int | None,
    keep_checkpoints: int,
    keep_metrics: bool,
    callback: Callable[[ChunkInfo], bool | None] | None,
    policy_network: Any,
    critic_network: Any,
    optimizer: Any,
    algorithm: Any,
) -> RunResult:
    num_updates = cfg.num_updates
    parts = {
        "policy_network": policy_network,
        "critic_network": critic_network,
        "optimizer": optimizer,
        "algorithm": algorithm,
    }
    custom = {
        "env": _describe(env),
        **{k: _describe(v) for k, v in parts.items()},
    }

    has_dir = checkpoint_dir is not None
    # Process 0 alone reads and writes the run directory: ``out`` is None on
    # the others, and ``has_dir`` (the same everywhere) drives the collective
    # steps (gathering the state for a checkpoint).
    out = Path(checkpoint_dir) if has_dir and jax.process_index() == 0 else None

    def open_run_dir() -> dict[str, Any]:
        resuming, given_chunk, seconds = False, chunk_updates, chunk_seconds
        if out is not None:
            if not out.is_file():  # (a file is refused just below)
                held.enter_context(lock.hold(out))
            resuming, stored_chunk = prepare_run_dir(out, resume, overwrite, start_over)
            if given_chunk is None and stored_chunk is not None:
                given_chunk = stored_chunk
            if resuming and seconds is None:
                seconds = rundir.read_json(out / rundir.CONFIG).get("chunk_seconds")
        chunk = given_chunk or default_chunk(num_updates)
        if checkpoint_every is not None and given_chunk is None:
            chunk = min(chunk, checkpoint_every)
        chunk = min(chunk, num_updates)
        record = rundir.run_record(cfg, num_seeds, first_seed, chunk, custom, seconds)
        stored_plan = None
        if out is not None and resuming:
            stored = rundir.read_json(out / rundir.CONFIG)
            differ = rundir.diff_run(stored, record)
            if differ:
                raise rundir.RunDirError(
                    f"cannot resume {out}: the run differs from the stored one in "
                    + "; ".join(differ)
                )
            if seconds is not None:
                stored_plan = _read_plan(out)
        elif out is not None:
            out.mkdir(parents=True, exist_ok=True)
            rundir.write_json(out / rundir.CONFIG, record)
            integrity.record(out, rundir.CONFIG)
            rundir.write_json(out / rundir.VERSIONS, rundir.versions())
        return {
            "resuming": resuming,
            "chunk": chunk,
            "seconds": seconds,
            "plan": stored_plan,
        }

    opened = _from_process_zero(open_run_dir) if has_dir else open_run_dir()
    resuming, chunk = opened["resuming"], opened["chunk"]
    if opened["plan"] is not None:
        plan = ChunkPlan.from_json(opened["plan"])
    elif opened["seconds"] is not None:
        plan = timed_plan(num_updates, opened["seconds"], chunk)
    else:
        plan = fixed_plan(num_updates, chunk)

    given = {k: v for k, v in parts.items() if v is not None}
    if given:
        accepted = inspect.signature(make_algorithm).parameters
        unknown = [k for k in given if k not in accepted]
        takes_any = any(p.kind is p.VAR_KEYWORD for p in accepted.values())
        if unknown and not takes_any:
            raise TypeError(
                f"this jaxpg's make_algorithm does not accept {', '.join(unknown)}"
            )
    if plan.chunk_seconds is None:
        _, num_full, remainder = chunk_plan(num_updates, chunk)
        lengths = tuple(sorted({chunk if num_full else 0, remainder} - {0}))
    else:
        # The probe's, the longest (memory is checked for it: a shorter
        # chunk needs less) and the one in use; others when first needed.
        lengths = tuple(sorted({1, plan.cap, plan.segments[-1][1]}))
    t0 = time.perf_counter()
    plural = "s" if num_seeds > 1 else ""
    with compiling(
        f"{cfg.env} / {cfg.algo}, {num_seeds} seed{plural}",
        progress and jax.process_index() == 0,
    ):
        if env is None and env_params is None and not given:
            progs = programs.cached(cfg, num_seeds)
        else:
            algo = make_algorithm(cfg, env, env_params, **given)
            progs = programs.compile_run(algo, num_seeds)
        ready = [programs.chunk(progs, n) for n in lengths]
    compile_s = time.perf_counter() - t0
    lay = progs.layout
    # Before anything runs: a run too large for the device can hang in XLA.
    memory.check_fits([progs.init, *ready], num_seeds, lay.per_device, lay.num_devices)
    del ready

    t0 = time.perf_counter()
    start = 0
    state = None
    if resuming:
        start, state = _resume(out, progs, plan, start_over)
    if plan.chunk_seconds is not None:
        if state is None:  # from update 0: measure again
            plan = timed_plan(num_updates, plan.chunk_seconds, plan.cap)
        plan.resume_at(start)
        if out is not None:
            _write_plan(out, plan)
    if state is None:
        seeds = np.arange(first_seed, first_seed + num_seeds, dtype=np.int32)
        state = progs.init(*parallel.place((seeds,), lay))
    steps_before = _total_steps(parallel.real_members(state.env_steps, lay))
    kept: list[dict[str, np.ndarray]] = []
    total = chunking.step_budget(cfg, num_seeds, num_updates)
    shown = progress and jax.process_index() == 0
    bar = ProgressBar(shown, total, num_seeds, initial=steps_before)
    last_ckpt = start
    done = start
    if out is not None:
        guard.write_progress(
            out, start, num_updates, "running", start if resuming and start else None
        )

    late_compile = [0.0]  # seconds spent compiling chunk lengths met late

    def dispatch(state, at):
        size = plan.length_at(at)
        if size not in progs.chunks:
            t = time.perf_counter()
            program = programs.chunk(progs, size)
            memory.check_fits([program], num_seeds, lay.per_device, lay.num_devices)
            late_compile[0] += time.perf_counter() - t
        new_state, metrics = progs.chunks[size](state)
        return new_state, (at, metrics, _clock())

    # Metrics are written in files of at least ``chunk`` updates (and at
    # every checkpoint), however short timed chunks are.
    pending: list[tuple[int, dict[str, np.ndarray]]] = []  # (first, metrics)

    def buffered() -> int:
        return sum(next(iter(h.values())).shape[1] for _, h in pending)

    def flush() -> None:
        if out is not None and pending:
            joined = {
                k: np.concatenate([h[k] for _, h in pending], axis=1)
                for k in pending[0][1]
            }
            rundir.write_metrics_chunk(out, pending[0][0], joined)
        pending.clear()

    try:
        u = start  # updates dispatched so far
        inflight = None  # (first update, metrics on device, dispatch time)
        ready_at = None  # when the previous chunk's metrics were read
        if u < num_updates:
            state, inflight = dispatch(state, u)
            u += plan.length_at(inflight[0])
        while inflight is not None:
            first, metrics, sent = inflight
            due = has_dir and (
                u == num_updates
                or (checkpoint_every is not None and u - last_ckpt >= checkpoint_every)
            )
            # While a timed plan measures its speed, each one-update chunk is
            # read before the next is dispatched: its time sets the length.
            probe = plan.measuring
            following = None
            if u < num_updates and not due and not probe and not _agree(stopper):
                # Dispatch the next chunk before reading this one's
                # metrics, so the device does not wait for the host.
                state, following = dispatch(state, u)
                u += plan.length_at(following[0])
            host = parallel.host_members(metrics, lay)
            now = _clock()
            size = next(iter(host.values())).shape[1]
            done = first + size
            if plan.chunk_seconds is not None:
                took = now - max(sent, ready_at if ready_at is not None else sent)
                if jax.process_count() > 1:  # every process plans alike
                    took = float(parallel.broadcast_object(took))
                cold = first == start  # this process's first call
                if plan.observe(size, took, u, cold) is not None and out is not None:
                    _write_plan(out, plan)
            ready_at = now
            if out is not None:
                pending.append((first, host))
                if buffered() >= chunk:
                    flush()
            if keep_metrics:
                kept.append(host)
            bar.advance(host)
            if callback is not None and callback(ChunkInfo(first, host, num_updates)):
                stopper.stop = True
            del host, metrics
            if following is None:
                # ``state`` is at the boundary ``done == u``.
                stop = _agree(stopper)
                if has_dir and (due or stop):
                    flush()  # the metrics up to a checkpoint are on disk first
                    real = parallel.real_members(state, lay)  # every process
                    if out is not None:  # process 0
                        guard.save_checkpoint(
                            out, done, real, keep_checkpoints, done, num_updates
                        )
                    del real
                    last_ckpt = done
                if u == num_updates or stop:
                    break
                state, following = dispatch(state, u)
                u += plan.length_at(following[0])
            inflight = following
        flush()
        if done == num_updates:
            bar.finish()
        state = jax.block_until_ready(state)
        run_s = time.perf_counter() - t0 - late_compile[0]
        compile_s += late_compile[0]
    finally:
        bar.close()
    state = parallel.real_members(state, lay)

    interrupted = done < num_updates
    if out is not None:
        if not interrupted:
            final = {rundir.PARAMS: state.params["policy"]}
            if cfg.normalise_obs:
                final[rundir.OBS_NORM] = state.obs_norm
            guard.save_final(out, final, done, num_updates)
        guard.write_progress(
            out,
            done,
            num_updates,
            "interrupted" if interrupted else "finished",
            done if last_ckpt == done else last_ckpt,
        )
    metrics: dict[str, np.ndarray] = {}
    if keep_metrics:
        if out is not None and start > 0:
            metrics = rundir.read_metrics(out)
        elif kept:
            metrics = {k: np.concatenate([c[k] for c in kept], axis=1) for k in kept[0]}
    steps = _total_steps(state.env_steps) - steps_before
    return RunResult(
        params=policy_params(cfg, state),
        metrics=metrics,
        state=state,
        compile_s=compile_s,
        run_s=run_s,
        steps_per_s=steps / run_s if run_s > 0 else 0.0,
        updates_done=done,
        interrupted=interrupted,
        signal=stopper.signum,
        run_dir=out,
    )


def _describe(part: Any) -> str | None:
    """A stable description of a part passed as a Python object: a flax
    module's repr (its fields), else the type (a repr with a memory address
    would differ in every process and block resuming)."""
    if part is None:
        return None
    import flax.linen as nn

    if isinstance(part, nn.Module):
        return repr(part)
    if isinstance(part, functools.partial):
        given = ", ".join(f"{k}={_describe(v)}" for k, v in part.keywords.items())
        return f"partial({_describe(part.func)}, {given})"
    if inspect.isfunction(part) and "<" not in part.__qualname__:
        return f"{part.__module__}:{part.__qualname__}"  # an import path
    name = f"{type(part).__module__}.{type(part).__qualname__}"
    env_name = getattr(part, "name", None)
    return f"{name}({env_name!r})" if isinstance(env_name, str) else name


def _restore(
    out: Path, state_spec: Any, plan: ChunkPlan, start_over: bool
) -> tuple[int, Any]:
    step, state = guard.restore(out, state_spec, start_over, stacklevel=4)
    if state is None:
        return 0, None
    if not plan.is_boundary(step):
        raise rundir.RunDirError(
            f"checkpoint at update {step} is not a chunk boundary of the run ({plan!r})"
        )
    rundir.drop_metrics_from(out, step)
    return step, state


def _read_plan(out: Path) -> dict[str, Any] | None:
    """The chunk plan recorded in ``out`` (``None``: none yet)."""
    path = out / rundir.CHUNKS
    if not path.is_file():
        return None
    bad = integrity.problems(out, rundir.CHUNKS)
    if bad:
        raise rundir.RunDirError(bad[0][1])
    try:
        return rundir.read_json(path)
    except ValueError as e:
        raise rundir.RunDirError(f"{path} is unreadable: {e}") from None


def _write_plan(out: Path, plan: ChunkPlan) -> None:
    rundir.write_json(out / rundir.CHUNKS, plan.to_json())
    integrity.record(out, rundir.CHUNKS)


def _total_steps(env_steps: Any) -> int:
    return int(np.sum(np.asarray(jax.device_get(env_steps), dtype=np.int64)))


def _resume(
    out: Path | None, progs: programs.Programs, plan: ChunkPlan, start_over: bool
) -> tuple[int, Any]:
    """``(start, [P] state or None)``: process 0 restores the ``[S]``
    checkpoint, every process receives it and places its share (padded as at
    the start, by repeating the last seed)."""
    lay = progs.layout
    device = jax.local_devices()[0]
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            (lay.num_members, *x.shape),
            x.dtype,
            sharding=jax.sharding.SingleDeviceSharding(device),
        ),
        progs.member,
    )
    restored: dict[str, Any] = {}

    def read() -> dict[str, Any]:
        assert out is not None
        start, state = _restore(out, target, plan, start_over)
        restored["state"] = state
        return {"start": start, "restored": state is not None}

    info = _from_process_zero(read)
    if not info["restored"]:
        return info["start"], None
    state = restored.get("state")
    if state is None:  # not process 0: receives process 0's arrays
        spec = jax.eval_shape(lambda t: jax.tree.map(parallel._key_to_data, t), target)
        raw = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), spec)
    else:
        raw = jax.tree.map(lambda x: np.asarray(parallel._key_to_data(x)), state)
    raw = parallel.broadcast_arrays(raw)
    return info["start"], progs.restore(*parallel.place((raw,), lay))


def _agree(stopper: Stopper) -> bool:
    """Whether to stop at this boundary: ``stopper.stop``, with several
    processes OR-ed over all of them (a collective) so that all stop at the
    same boundary; a signal that stopped one process is then the stop's
    signal on every process (``jaxpg train`` exits 143 on all of them after
    a SIGTERM to one)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        mine = np.array([stopper.stop, stopper.signum or 0], np.int32)
        flags = np.asarray(multihost_utils.process_allgather(mine))
        stopper.stop = bool(np.any(flags[:, 0]))
        signals = flags[:, 1][flags[:, 1] > 0]
        if stopper.signum is None and signals.size:
            stopper.signum = int(signals[0])
    return stopper.stop


def _from_process_zero(fn: Callable[[], Any]) -> Any:
    """``fn()`` (a JSON-serialisable result) run on process 0 alone and
    returned on every process; what it raises is raised on every process
    (:class:`~jaxpg.experiment.rundir.RunDirError` as itself, anything else as a
    ``RuntimeError`` on the other processes)."""
    if jax.process_count() == 1:
        return fn()
    reply: dict[str, Any] | None = None
    error: Exception | None = None
    if jax.process_index() == 0:
        try:
            reply = {"ok": fn()}
        except Exception as e:  # shared, then raised here too
            error = e
            reply = {
                "error": str(e),
                "type": type(e).__name__,
                "run_dir": isinstance(e, rundir.RunDirError),
            }
    reply = parallel.broadcast_object(reply)
    if error is not None:
        raise error
    if "error" in reply:
        if reply["run_dir"]:
            raise rundir.RunDirError(reply["error"])
        raise RuntimeError(f"process 0 failed: {reply['type']}: {reply['error']}")
    return reply["ok"]
