r"""Run many seeds in compiled chunks, driven from the host: progress, streamed
metrics, checkpoints, exact resume.

``train_seeds`` compiles the whole run into one program, which shows nothing
until it ends and keeps ``[S, U]`` metrics of every seed in memory.
:func:`run` compiles ``vmap(init)`` and a *chunk* program (``vmap`` over seeds
of a loop of ``update``, the count an argument: :mod:`jaxpg.drivers.updates`),
and calls it repeatedly, so between calls the host can advance a progress bar,
write the chunk's metrics to disk, call a user callback and save a checkpoint:
the hooks of the chunk loop that ``jaxpg sweep`` and ``jaxpg lm`` share
(:mod:`jaxpg.drivers.loop`). There are no host callbacks inside the program:
the host reads a chunk's metrics while the next chunk runs. What the run keeps
in its directory besides metrics (the record, the chunk plan, the restored
state) is :mod:`jaxpg.drivers.runstate`; the report of a finished run
(``eval_episodes``) is :mod:`jaxpg.drivers.report`. The result equals
``jax.jit(jax.vmap(make_train(cfg)))`` of the same keys (the same random
draws, metrics equal up to float rounding).

Chunking (:mod:`jaxpg.drivers.chunking`): ``chunk`` updates per call
(:func:`default_chunk`: a divisor of ``U`` near ``U / 20`` when one is close,
found in constant time), then one *remainder* chunk of ``U mod chunk`` updates
when ``chunk`` does not divide ``U``. With ``chunk_seconds=T`` chunks are
sized by time instead: two first chunks of one update measure the speed, the
next ones last at most about ``T`` (never longer than the fixed chunk) and the
last updates run one at a time, so a stop request (SIGINT/SIGTERM, the
callback) waits at most about ``2 T`` (the chunk running and the one queued
behind it) plus a checkpoint's save. Metrics are still written in files of
about a fixed chunk's updates (and at every checkpoint). Every length runs
through the one program compiled for the longest, so a run compiles one chunk
program whatever its lengths.

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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpg.algorithms.base import TrainState
from jaxpg.config import Config
from jaxpg.drivers import (
    chunking,
    loop,
    memory,
    parallel,
    programs,
    report,
    runstate,
)
from jaxpg.drivers.chunking import (
    chunk_plan,
    default_chunk,
    timed_plan,
)
from jaxpg.drivers.progress import ProgressBar
from jaxpg.drivers.runoptions import RunOptions, custom_parts
from jaxpg.drivers.signals import Stopper
from jaxpg.drivers.train import policy_params
from jaxpg.experiment import guard, rundir
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
      summary: what ``summary.json`` holds (:mod:`jaxpg.drivers.report`)
        when ``eval_episodes`` was given and the run finished, else ``None``.
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
    summary: dict[str, Any] | None = None


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
    policy_obs: Any = None,
    critic_obs: Any = None,
    action_mask_fn: Any = None,
    eval_episodes: int | None = None,
    source: str = "",
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
        end and on a signal). Without ``chunk_updates``, chunks are no longer
        than this.
      keep_checkpoints: newest valid checkpoints kept, ``>= 1``.
      keep_metrics: return the metrics in :attr:`RunResult.metrics`. With a run
        directory and ``False``, host memory stays flat however many chunks
        run (the metrics are on disk).
      callback: called on the host after each chunk with a
        :class:`ChunkInfo`; a truthy return stops the run at the next chunk
        boundary (the chunk after this one is already running; it is called
        for that chunk too), with a checkpoint when there is a run
        directory. With several processes it is called on every process with
        the metrics of all seeds, and a truthy return on any of them stops
        all.
      handle_signals: on SIGINT/SIGTERM, stop at the next chunk boundary and
        checkpoint instead of raising (a second signal raises). Default: on
        when there is a run directory and this is the main thread.
      policy_network, critic_network, optimizer, algorithm, policy_obs,
        critic_obs, action_mask_fn: passed to :func:`jaxpg.make_algorithm`
        when not ``None``, and recorded in the run directory (a resume must
        give the same).
      eval_episodes: with a run directory, when the run finishes, evaluate
        every seed's final policy on this many episodes and write
        ``summary.json`` and ``learning_curve.png`` as ``jaxpg train`` does
        (:func:`jaxpg.drivers.report.write_report`; with ``env=``, on that
        environment). ``None``: neither is written.
      source: what the config started from, recorded in ``summary.json``.

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
    parts = {
        "policy_network": policy_network,
        "critic_network": critic_network,
        "optimizer": optimizer,
        "algorithm": algorithm,
        "policy_obs": policy_obs,
        "critic_obs": critic_obs,
        "action_mask_fn": action_mask_fn,
    }
    opts = RunOptions(
        env=env,
        env_params=env_params,
        parts={k: v for k, v in parts.items() if v is not None},
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
        eval_episodes=eval_episodes,
        source=source,
    )
    num_seeds, opts = opts.checked(num_seeds)
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
        return _run(cfg, num_seeds, opts, stopper, held)


def _run(
    cfg: Config,
    num_seeds: int,
    opts: RunOptions,
    stopper: Stopper,
    held: contextlib.ExitStack,
) -> RunResult:
    """Open the run directory, compile, restore or init, run the chunks,
    report."""
    num_updates = cfg.num_updates
    custom, build = custom_parts(cfg, opts)
    # Process 0 alone reads and writes the run directory: ``out`` is None on
    # the others, and ``has_dir`` (the same everywhere) drives the collective
    # steps (gathering the state for a checkpoint).
    has_dir = opts.checkpoint_dir is not None
    out = Path(opts.checkpoint_dir) if has_dir and jax.process_index() == 0 else None
    resuming, chunk, plan = runstate.open_run(
        out,
        has_dir,
        held,
        cfg,
        num_seeds,
        opts.first_seed,
        custom,
        chunk_updates=opts.chunk_updates,
        chunk_seconds=opts.chunk_seconds,
        resume=opts.resume,
        overwrite=opts.overwrite,
        start_over=opts.start_over,
        checkpoint_every=opts.checkpoint_every,
    )
    shown = opts.progress and jax.process_index() == 0
    progs, compile_s = programs.for_run(cfg, num_seeds, plan, chunk, build, shown)
    lay = progs.layout

    t0 = time.perf_counter()
    start, state, plan = _first_state(
        cfg, num_seeds, opts.first_seed, out, progs, plan, resuming, opts.start_over
    )
    steps_before = _total_steps(parallel.real_members(state.env_steps, lay))
    late_compile = [0.0]  # seconds spent on chunk lengths met late (a check)

    def dispatch(state: TrainState, at: int) -> Any:
        size = plan.length_at(at)
        if size not in progs.chunks:
            t = time.perf_counter()
            program = programs.chunk(progs, size)
            # The live state is in memory already and is the program's own
            # (donated) argument: it counts once, not twice.
            held = sum(leaf.nbytes for leaf in jax.tree.leaves(state))
            memory.check_fits(
                [program], num_seeds, lay.per_device, lay.num_devices,
                held=held // max(lay.num_devices, 1),
            )  # fmt: skip
            late_compile[0] += time.perf_counter() - t
        return progs.chunks[size](state)

    def save(done: int, state: Any) -> None:
        real = parallel.real_members(state, lay)  # every process
        if out is not None:  # process 0
            guard.save_checkpoint(
                out, done, real, opts.keep_checkpoints, done, num_updates
            )

    writer = loop.MetricsWriter(out, chunk)
    keeper = loop.MetricsKeeper() if opts.keep_metrics else None
    saver = loop.Checkpointer(save, num_updates, start, opts.checkpoint_every, writer)
    bar = ProgressBar(
        shown, chunking.step_budget(cfg, num_seeds, num_updates), num_seeds,
        initial=steps_before,
    )  # fmt: skip
    # Hooks in the order they see a chunk: the plan first (its time), the
    # user's callback last (its stop is taken at this boundary).
    hooks: list[Any] = [runstate.PlanHook(plan, out), writer]
    if keeper is not None:
        hooks.append(keeper)
    hooks.append(loop.Progress(bar))
    if opts.callback is not None:
        user = opts.callback
        hooks.append(
            loop.Callback(lambda c: user(ChunkInfo(c.first, c.metrics, num_updates)))
        )
    if has_dir:
        hooks.append(saver)
    state, done = loop.run_chunks(
        state,
        start,
        num_updates,
        plan.length_at,
        dispatch,
        lambda metrics: parallel.host_members(metrics, lay),
        hooks,
        stopper=stopper,
        clock=lambda: _clock(),  # read at call time: a test may replace it
    )
    state = parallel.real_members(jax.block_until_ready(state), lay)
    run_s = time.perf_counter() - t0 - late_compile[0]
    compile_s += late_compile[0]
    if out is not None:
        runstate.record_end(out, cfg, state, done, saver.last)

    metrics: dict[str, np.ndarray] = {}
    if keeper is not None:
        resumed = out is not None and start > 0
        metrics = rundir.read_metrics(out) if resumed else keeper.joined()
    steps = _total_steps(state.env_steps) - steps_before
    timings = {
        "compile_s": compile_s,
        "run_s": run_s,
        "steps_per_s": steps / run_s if run_s > 0 else 0.0,
    }
    params = policy_params(cfg, state)
    summary = None
    if out is not None and done >= num_updates and opts.eval_episodes is not None:
        summary = _report(cfg, num_seeds, opts, out, params, timings, start)
    return RunResult(
        params=params,
        metrics=metrics,
        state=state,
        updates_done=done,
        interrupted=done < num_updates,
        signal=stopper.signum,
        run_dir=out,
        summary=summary,
        **timings,
    )


def _first_state(
    cfg: Config,
    num_seeds: int,
    first_seed: int,
    out: Path | None,
    progs: programs.Programs,
    plan: chunking.ChunkPlan,
    resuming: bool,
    start_over: bool,
) -> tuple[int, TrainState, chunking.ChunkPlan]:
    """``(start, [P] state, plan)``: the state the run continues from (a
    resumed run's checkpoint, else ``init`` of the seeds) and a timed plan
    measured again when it starts from update 0; the run directory's
    progress file says it runs."""
    num_updates = cfg.num_updates
    start, state = 0, None
    if resuming:
        start, state = runstate.resume_state(out, progs, plan, start_over)
    if plan.chunk_seconds is not None:
        if state is None:  # from update 0: measure again
            plan = timed_plan(num_updates, plan.chunk_seconds, plan.cap)
        plan.resume_at(start)
        if out is not None:
            runstate.write_plan(out, plan)
    if state is None:
        seeds = np.arange(first_seed, first_seed + num_seeds, dtype=np.int32)
        state = progs.init(*parallel.place((seeds,), progs.layout))
    if out is not None:
        resumed_at = start if resuming and start else None
        guard.write_progress(out, start, num_updates, "running", resumed_at)
    return start, state, plan


def _report(
    cfg: Config,
    num_seeds: int,
    opts: RunOptions,
    out: Path,
    params: Any,
    timings: dict[str, float],
    start: int,
) -> dict[str, Any]:
    """Write a finished run's ``summary.json`` and learning curve
    (:func:`jaxpg.drivers.report.write_report`) and return the summary."""
    if start >= cfg.num_updates:  # a finished run opened again: nothing trained
        timings = _training_timings(out) or timings
    return report.write_report(
        out,
        cfg,
        params,
        num_seeds,
        opts.first_seed,
        opts.eval_episodes,
        timings,
        opts.source,
        {
            "env": opts.env,
            "env_params": opts.env_params,
            **{
                name: opts.parts.get(name)
                for name in ("policy_network", "policy_obs", "action_mask_fn")
            },
        },
    )


def _training_timings(out: Path) -> dict[str, float] | None:
    """The training timings in the run's ``summary.json`` (``None``: none):
    evaluating a finished run again keeps them instead of this call's."""
    try:
        timings = rundir.read_json(out / rundir.SUMMARY)["timings"]
        return {k: float(timings[k]) for k in ("compile_s", "run_s", "steps_per_s")}
    except (OSError, ValueError, KeyError, TypeError):
        return None


def _total_steps(env_steps: Any) -> int:
    return int(np.sum(np.asarray(jax.device_get(env_steps), dtype=np.int64)))
