r"""Many seeds of the token-policy RL program, in compiled chunks of updates.

The library side of ``jaxpg lm``: XLA options for the RL program on CPU,
the seed layout over devices, and the chunk loop that trains every seed.
Shapes: ``S`` seeds, ``U`` updates.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxpg.drivers import parallel
from jaxpg.drivers.progress import compiling
from jaxpg.drivers.signals import Stopper
from jaxpg.experiment import rundir
from jaxpg.sequence import rl as rlm

__all__ = ["NO_YNN", "SeedsResult", "compiler_options", "seed_layout", "train_seeds"]


NO_YNN = {"xla_cpu_experimental_ynn_fusion_type": ""}


def compiler_options(xla_ynn: str, backend: str) -> dict[str, str] | None:
    """XLA options of the RL program: ``NO_YNN`` for ``--xla-ynn off`` on the
    CPU backend, else ``None`` (XLA's defaults)."""
    if xla_ynn not in ("on", "off"):
        raise ValueError(f"--xla-ynn={xla_ynn!r} is not one of ('on', 'off')")
    return dict(NO_YNN) if xla_ynn == "off" and backend == "cpu" else None


def seed_layout(num_seeds: int, devices: Any = None) -> Any:
    """``(seed sharding, replicated sharding)`` over ``devices`` (default: all)
    when there are several and ``num_seeds`` is a multiple of their number;
    ``None`` otherwise (one device)."""
    lay = parallel.layout(num_seeds, devices)  # seeds are members
    if lay.num_devices < 2 or lay.padded != num_seeds:
        return None
    return (
        NamedSharding(lay.mesh, PartitionSpec(parallel.MEMBER_AXIS)),
        NamedSharding(lay.mesh, PartitionSpec()),
    )


class SeedsResult(NamedTuple):
    """What :func:`train_seeds` returns.

    Attributes:
      metrics: ``{name: [S, u]}`` of updates ``[0, u)`` (from the run
        directory too, on resume).
      params: ``[S]`` final (or, when interrupted, latest) parameters.
      compile_s, run_s: seconds compiling, and running this call's updates.
      options: the XLA options the program was compiled with.
      updates_done: ``u``.
      interrupted: a signal stopped the run at a chunk boundary (checkpointed
        when there is a run directory).
      signal: that signal's number, else ``None``.
    """

    metrics: dict[str, np.ndarray]
    params: Any
    compile_s: float
    run_s: float
    options: dict[str, str] | None
    updates_done: int
    interrupted: bool = False
    signal: int | None = None


def train_seeds(
    task, model_cfg, rl_cfg, ref_params, num_seeds, chunk, options=None,
    devices=None, on_chunk=None, show_compile=False, run_dir=None, resume=False,
    handle_signals=None,
) -> SeedsResult:  # fmt: skip
    """Train seeds ``0..num_seeds-1`` of :func:`jaxpg.sequence.make_rl` from
    the reference ``ref_params``, ``chunk`` updates per compiled call.

    Seed ``i`` starts from ``jax.random.key(i)``. The seeds are laid over
    ``devices`` (default: all) by :func:`seed_layout`, or run on the first
    device (with a printed notice) when their count is not a multiple.

    Args:
      options: XLA compiler options (:func:`compiler_options`); an XLA that
        does not know them compiles with its defaults (printed).
      on_chunk: called after every chunk with ``(updates in the chunk,
        that chunk's metrics {name: [S, chunk]})``.
      show_compile: print a line with the elapsed time while XLA compiles.
      run_dir: a directory for the run's metrics (streamed per chunk, as
        :mod:`jaxpg.experiment.rundir` writes them) and its checkpoints
        (``run_dir/checkpoints``: at the end and when a signal stops the run).
      resume: continue from the newest valid checkpoint in ``run_dir``; the
        result is bit-identical to the uninterrupted run.
      handle_signals: stop at the next chunk boundary on SIGINT/SIGTERM (and
        checkpoint) instead of raising; default: when there is a ``run_dir``.

    Returns:
      :class:`SeedsResult`.

    Raises:
      jaxpg.experiment.checkpoint.CheckpointError: ``resume`` and no valid
        checkpoint (nothing on disk is changed).
    """
    num_updates = rl_cfg.num_updates
    if num_updates % chunk:
        raise ValueError(f"chunk={chunk} must divide num_updates={num_updates}")
    algo = rlm.make_rl(task, model_cfg, rl_cfg)

    def run_chunk(states, ref):
        return jax.vmap(lambda s: rlm.run_updates(algo, s, ref, chunk))(states)

    keys = jax.vmap(jax.random.key)(jnp.arange(num_seeds))
    init = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))
    t0 = time.perf_counter()
    states = init(keys, ref_params)
    devices = list(jax.devices() if devices is None else devices)
    layout = seed_layout(num_seeds, devices)
    if layout is not None:
        states = jax.device_put(states, layout[0])
        ref_params = jax.device_put(ref_params, layout[1])
    elif len(devices) > 1:
        print(
            f"jaxpg lm: --seeds={num_seeds} is not a multiple of the "
            f"{len(devices)} devices; running on one"
        )
    start = 0
    ckpt_dir = None if run_dir is None else Path(run_dir) / rundir.CHECKPOINTS
    if ckpt_dir is not None:
        from jaxpg.experiment import checkpoint  # orbax: the checkpoint extra
    if resume:
        if ckpt_dir is None:
            raise ValueError("resume=True needs run_dir")
        start, states = checkpoint.restore_latest(ckpt_dir, states)
        if start % chunk or start > num_updates:
            raise ValueError(
                f"checkpoint at update {start} does not fall on a chunk boundary "
                f"of {chunk} updates in {num_updates}"
            )
        rundir.drop_metrics_from(run_dir, start)
    lowered = jax.jit(run_chunk).lower(states, ref_params)
    with compiling(f"the RL program, {num_seeds} seeds", show_compile):
        try:
            compiled = lowered.compile(options)
        except Exception as e:  # an XLA without this option: its defaults
            if options is None or "compile option" not in str(e):
                raise
            print(f"jaxpg lm: XLA options {options} not supported; using the defaults")
            options, compiled = None, lowered.compile()
    compile_s = time.perf_counter() - t0
    enabled = run_dir is not None if handle_signals is None else handle_signals
    enabled = enabled and threading.current_thread() is threading.main_thread()
    t0 = time.perf_counter()
    done, pieces = start, []
    with Stopper(enabled) as stopper:
        while done < num_updates and not stopper.stop:
            states, m = compiled(states, ref_params)
            m = {k: np.array(v) for k, v in jax.device_get(m).items()}
            if run_dir is not None:
                rundir.write_metrics_chunk(run_dir, done, m)
            else:
                pieces.append(m)
            done += chunk
            if on_chunk is not None:
                on_chunk(chunk, m)
        if ckpt_dir is not None and done > start:
            checkpoint.save(ckpt_dir, done, states)
            checkpoint.prune(ckpt_dir, 2)
    run_s = time.perf_counter() - t0
    if run_dir is not None:
        metrics = rundir.read_metrics(run_dir) if done else {}
    else:
        metrics = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
    return SeedsResult(
        metrics, states.params, compile_s, run_s, options, done,
        done < num_updates, stopper.signum,
    )  # fmt: skip
