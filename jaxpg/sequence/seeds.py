r"""Many seeds of the token-policy RL program, in compiled chunks of updates.

The library side of ``jaxpg lm``: XLA options for the RL program on CPU,
the seed layout over devices, and the training of every seed in chunks,
through the chunk loop ``jaxpg train`` uses (:mod:`jaxpg.drivers.loop`).
Shapes: ``S`` seeds, ``U`` updates.
"""

from __future__ import annotations

import functools
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxpg.drivers import executables, loop, parallel, updates
from jaxpg.drivers.progress import UpdateBar, compiling
from jaxpg.drivers.signals import Stopper
from jaxpg.experiment import guard, rundir
from jaxpg.kernels.keys import data_to_key, is_key
from jaxpg.sequence import checks
from jaxpg.sequence import rl as rlm

__all__ = ["NO_YNN", "SeedsResult", "compiler_options", "seed_layout", "train_seeds"]


NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}
# What the progress bar shows: {label: metric}, means over seeds.
_POSTFIX = {"reward": "reward", "acc": "accuracy", "kl": "kl_exact"}


def compiler_options(xla_ynn: str, backend: str) -> dict[str, str] | None:
    """XLA options of the RL program: ``NO_YNN`` for ``--xla-ynn off`` on the
    CPU backend, else ``None`` (XLA's defaults)."""
    if xla_ynn not in ("on", "off"):
        raise ValueError(f"--xla-ynn={xla_ynn!r} is not one of ('on', 'off')")
    return dict(NO_YNN) if xla_ynn == "off" and backend == "cpu" else None


def seed_layout(num_seeds: int, devices: Any = None) -> parallel.Layout:
    """The seeds over ``devices`` (default: all devices of all processes), as
    the gymnax runner lays its members (:func:`jaxpg.drivers.parallel.layout`):
    ``S`` padded to ``P``, a multiple of the device count, by repeating the
    last seed; the padding never leaves :func:`train_seeds`."""
    return parallel.layout(num_seeds, devices)  # seeds are members


class SeedsResult(NamedTuple):
    """What :func:`train_seeds` returns.

    Attributes:
      metrics: ``{name: [S, u]}`` of updates ``[0, u)`` (from the run
        directory too, on resume; with several processes, the processes
        other than 0, which do not read it, hold this call's updates).
      params: ``[S]`` final (or, when interrupted, latest) parameters.
      compile_s, run_s: seconds compiling, and running this call's updates.
      options: the XLA options the program was compiled with.
      updates_done: ``u``.
      interrupted: a signal stopped the run at a chunk boundary (checkpointed
        when there is a run directory).
      signal: that signal's number, else ``None``.
      devices: devices the seeds were laid over (:func:`seed_layout`).
    """

    metrics: dict[str, np.ndarray]
    params: Any
    compile_s: float
    run_s: float
    options: dict[str, str] | None
    updates_done: int
    interrupted: bool = False
    signal: int | None = None
    devices: int = 1


def train_seeds(
    task, model_cfg, rl_cfg, ref_params, num_seeds, chunk, options=None,
    devices=None, on_chunk=None, show_compile=False, run_dir=None, resume=False,
    handle_signals=None, first_seed=0, progress=False, description=None,
    checkpoint_every=None,
) -> SeedsResult:  # fmt: skip
    """Train seeds ``first_seed .. first_seed + num_seeds - 1`` of
    :func:`jaxpg.sequence.make_rl` from the reference ``ref_params``,
    ``chunk`` updates per compiled call.

    Seed ``i`` starts from ``jax.random.key(i)``. The seeds are laid over
    ``devices`` (default: all devices of all processes) by
    :func:`seed_layout`: any seed count on any device count, the last seed
    repeated on the last devices to fill them (that padding is computed and
    dropped: it is in no metric, checkpoint or result). Each seed's updates
    stay on its device (no collective); a seed's run equals its run on one
    device up to float rounding.

    Args:
      task, model_cfg, rl_cfg: what :func:`jaxpg.sequence.make_rl` takes.
      ref_params: the frozen reference, which every seed starts from.
      num_seeds: ``S >= 1``.
      chunk: updates per compiled call, ``>= 1`` (the last call runs what
        is left). One program runs every call (:mod:`jaxpg.drivers.updates`),
        so the result does not depend on ``chunk``, bit for bit.
      options: XLA compiler options (:func:`compiler_options`); an XLA that
        does not know them compiles with its defaults (printed).
      on_chunk: called after every chunk with ``(updates in the chunk,
        that chunk's metrics {name: [S, chunk]})``.
      show_compile: print a line with the elapsed time while XLA compiles.
      run_dir: a directory for the run's metrics (streamed per chunk, as
        :mod:`jaxpg.experiment.rundir` writes them) and its checkpoints
        (``run_dir/checkpoints``: at the end, when a signal stops the run,
        and every ``checkpoint_every`` updates when given; the newest two are
        kept), and ``progress.json`` (updates done, status, latest
        checkpoint). With several processes process 0 alone writes it.
      resume: continue from the newest valid checkpoint in ``run_dir``; the
        result is bit-identical to the uninterrupted run.
      handle_signals: stop at the next chunk boundary on SIGINT/SIGTERM (and
        checkpoint) instead of raising; default: when there is a ``run_dir``.
      first_seed: the first seed's number (a seed alone: ``num_seeds=1``).
      progress: show a bar over updates (reward, accuracy and KL: the
        latest means over seeds); needs tqdm.
      checkpoint_every: also checkpoint at the first chunk boundary at least
        this many updates after the previous checkpoint (``None``: only at
        the end and on a signal); needs ``run_dir``.
      description: JSON-able, what determines ``task``, ``model_cfg`` and
        ``rl_cfg`` (the command line's options): with it the compiled
        programs are kept on disk and a second identical call loads them
        (:mod:`jaxpg.drivers.executables`); ``None``: compiled every time.

    Returns:
      :class:`SeedsResult`.

    Raises:
      jaxpg.experiment.checkpoint.CheckpointError: ``resume`` and no valid
        checkpoint (nothing on disk is changed).
      jaxpg.experiment.guard.SaveFailedError: a checkpoint could not be
        saved; the message names the previous good one.
    """
    num_updates = rl_cfg.num_updates
    chunk = checks.positive_int("chunk", chunk)
    chunk = min(chunk, num_updates)
    if checkpoint_every is not None:
        checkpoint_every = checks.positive_int("checkpoint_every", checkpoint_every)
        if run_dir is None:
            raise ValueError(
                f"checkpoint_every={checkpoint_every} needs run_dir (where to save)"
            )
    algo = rlm.make_rl(task, model_cfg, rl_cfg)

    lay = seed_layout(num_seeds, devices)
    members = NamedSharding(lay.mesh, PartitionSpec(parallel.MEMBER_AXIS))
    replicated = NamedSharding(lay.mesh, PartitionSpec())
    t0 = time.perf_counter()
    ref_params = jax.device_put(ref_params, replicated)
    init = jax.jit(
        jax.vmap(lambda seed, ref: algo.init(jax.random.key(seed), ref), (0, None)),
        out_shardings=members,
    )
    seeds = np.arange(first_seed, first_seed + num_seeds, dtype=np.int32)
    placed = parallel.place((seeds,), lay)

    def kept(what: str) -> dict[str, Any] | None:  # the programs' descriptions
        return executables.describe(
            description, program=what, seeds=num_seeds, chunk=chunk
        )

    init_exe = executables.load_or_compile(
        lambda: init.lower(*placed, ref_params), description=kept("init")
    )
    states = init_exe(*placed, ref_params)
    start = 0
    ckpt_dir = None if run_dir is None else Path(run_dir) / rundir.CHECKPOINTS
    if resume:
        if ckpt_dir is None:
            raise ValueError("resume=True needs run_dir")
        start, states = _resumed(ckpt_dir, states, lay, num_updates)
        if jax.process_index() == 0:
            rundir.drop_metrics_from(run_dir, start)
    with compiling(f"the RL program, {num_seeds} seeds", show_compile):
        compiled, options = _compile_updates(
            algo, lay, chunk, states, ref_params, options, kept("chunk")
        )
    compile_s = time.perf_counter() - t0
    chunks = {
        n: updates.Chunk(compiled, n, chunk, lay)
        for n in {chunk, num_updates % chunk}
        if n
    }

    def length_at(at: int) -> int:
        return min(chunk, num_updates - at)

    enabled = run_dir is not None if handle_signals is None else handle_signals
    enabled = enabled and threading.current_thread() is threading.main_thread()
    t0 = time.perf_counter()
    # The shared chunk loop (jaxpg.drivers.loop), each chunk read before the
    # next starts (a stop waits for one chunk): metrics streamed to the run
    # directory, the caller's hook, the bar, a checkpoint at the end and
    # when a signal stops the run.
    writes = run_dir is not None and jax.process_index() == 0
    writer = loop.MetricsWriter(Path(run_dir) if writes else None, chunk)
    keeper = loop.MetricsKeeper()
    hooks: list[loop.Hook] = [writer if writes else keeper]
    if on_chunk is not None:
        hooks.append(loop.Callback(lambda c: on_chunk(c.size, c.metrics) and None))
    bar = UpdateBar(progress, num_updates, _POSTFIX, initial=start, desc="RL")
    hooks.append(loop.Progress(bar))
    saved: list[Any] = []  # the newest [S] state saved (every process gathers it)

    def save(done: int, states: Any) -> None:
        real = parallel.real_members(states, lay)  # every process
        saved[:] = [real]
        if writes:
            guard.save_checkpoint(
                Path(run_dir), done, real, 2, done, num_updates, command="lm"
            )

    saver = loop.Checkpointer(save, num_updates, start, checkpoint_every, writer)
    if ckpt_dir is not None:
        hooks.append(saver)
    if writes:
        Path(run_dir).mkdir(parents=True, exist_ok=True)
        guard.write_progress(Path(run_dir), start, num_updates, "running", None)
    with Stopper(enabled) as stopper:
        states, done = loop.run_chunks(
            states,
            start,
            num_updates,
            length_at,
            lambda s, at: chunks[length_at(at)](s, ref_params),
            lambda m: parallel.host_members(m, lay),
            hooks,
            stopper=stopper,
            overlap=False,
        )
    states = saved[-1] if saved else parallel.real_members(states, lay)
    run_s = time.perf_counter() - t0
    if writes:
        status = "finished" if done == num_updates else "interrupted"
        guard.write_progress(Path(run_dir), done, num_updates, status, saver.last)
        metrics = rundir.read_metrics(run_dir) if done else {}
    else:
        metrics = keeper.joined()
    return SeedsResult(
        metrics, states.params, compile_s, run_s, options, done,
        done < num_updates, stopper.signum, lay.num_devices,
    )  # fmt: skip


def _compile_updates(
    algo: Any,
    lay: parallel.Layout,
    chunk: int,
    states: Any,
    ref_params: Any,
    options: dict[str, str] | None,
    description: dict[str, Any] | None,
) -> tuple[Any, dict[str, str] | None]:
    """``(program, options)``: the one program for every chunk length (the
    last chunk's remainder included), a while loop over a count every seed
    shares, compiled with ``options``, or with XLA's defaults (``None``
    returned) when this XLA does not know them. Lowered once: the fallback
    compiles the same program, not traced again."""
    lower = functools.cache(
        lambda: updates.lower(
            lambda s, ref: algo.update(s, ref), lay, chunk, states, ref_params
        )
    )
    try:
        return executables.load_or_compile(lower, options, description), options
    except Exception as e:  # an XLA without this option: its defaults
        if options is None or "compile option" not in str(e):
            raise
        print(f"jaxpg lm: XLA options {options} not supported; using the defaults")
        return executables.load_or_compile(lower, None, description), None


def _resumed(
    ckpt_dir: Path, states: Any, lay: parallel.Layout, num_updates: int
) -> tuple[int, Any]:
    """``(start, [P] states)`` from the newest valid checkpoint, placed as
    ``states`` (the freshly initialised ones) are."""
    start, raw = _restore(ckpt_dir, states, lay)
    if start > num_updates:
        raise ValueError(
            f"checkpoint at update {start} is past the run's {num_updates} updates"
        )
    return start, _placed(raw, states, lay)


def _real_spec(states: Any, lay: parallel.Layout) -> Any:
    """The abstract ``[S]`` states on this process's first device (what a
    checkpoint holds: the real seeds, whatever the layout)."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            (lay.num_members, *x.shape[1:]), x.dtype, sharding=device
        ),
        states,
    )


def _restore(ckpt_dir: Path, states: Any, lay: parallel.Layout) -> tuple[int, Any]:
    """``(update, [S] states as raw arrays)`` of the newest valid checkpoint:
    process 0 reads it, every process receives it bit for bit (no process
    but 0 needs the run directory). A checkpoint error is raised on every
    process (on process 0 as itself)."""
    from jaxpg.drivers.runstate import restore_from_process_zero
    from jaxpg.experiment import checkpoint  # orbax: the checkpoint extra

    spec = _real_spec(states, lay)
    return restore_from_process_zero(
        lambda: checkpoint.restore_latest(ckpt_dir, spec), spec
    )


def _placed(raw: Any, states: Any, lay: parallel.Layout) -> Any:
    """``[S]`` raw states padded to ``[P]`` (the last seed repeated, as at
    the start) and laid over the devices, keys wrapped as in ``states``."""
    placed = parallel.place(raw, lay)
    members = NamedSharding(lay.mesh, PartitionSpec(parallel.MEMBER_AXIS))
    return jax.tree.map(
        lambda like, x: (
            jax.device_put(data_to_key(like, x), members) if is_key(like) else x
        ),
        states,
        placed,
    )
