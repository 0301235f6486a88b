r"""Many seeds of the token-policy RL program, in compiled chunks of updates.

The library side of ``jaxpg lm``: XLA options for the RL program on CPU,
the seed layout over devices, and the chunk loop that trains every seed.
Shapes: ``S`` seeds, ``U`` updates.
"""

from __future__ import annotations

import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxpg.drivers import parallel
from jaxpg.drivers.progress import compiling
from jaxpg.sequence import rl as rlm

__all__ = ["NO_YNN", "compiler_options", "seed_layout", "train_seeds"]


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


def train_seeds(
    task, model_cfg, rl_cfg, ref_params, num_seeds, chunk, options=None,
    devices=None, on_chunk=None, show_compile=False,
):  # fmt: skip
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

    Returns:
      ``(metrics {name: [S, U]}, [S] final params, compile_s, run_s,
      options used)``.
    """
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
    t0 = time.perf_counter()
    pieces = []
    for _ in range(rl_cfg.num_updates // chunk):
        states, m = compiled(states, ref_params)
        m = jax.device_get(m)
        pieces.append(m)
        if on_chunk is not None:
            on_chunk(chunk, m)
    run_s = time.perf_counter() - t0
    metrics = {k: np.concatenate([p[k] for p in pieces], axis=1) for k in pieces[0]}
    return metrics, states.params, compile_s, run_s, options
