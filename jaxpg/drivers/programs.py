r"""The compiled programs of a chunked run (:mod:`jaxpg.drivers.runner`):
``init`` from seeds, and the chunk program (:mod:`jaxpg.drivers.updates`),
which runs any number of updates up to the longest chunk compiled, so a run
compiles one whatever its chunk lengths.

Shapes: ``P`` padded seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxpg.algorithms.base import Algorithm, TrainState
from jaxpg.config import Config
from jaxpg.drivers import executables, memory, parallel, updates
from jaxpg.drivers.chunking import ChunkPlan, chunk_plan
from jaxpg.drivers.progress import compiling
from jaxpg.drivers.train import make_algorithm
from jaxpg.kernels.keys import data_to_key

__all__ = ["Programs", "cached", "chunk", "compile_run", "for_run"]


class Programs(NamedTuple):
    """A run's compiled programs over the layout of its seeds.

    Attributes:
      layout: the seeds over all devices (:func:`jaxpg.drivers.parallel.layout`).
      init: ``[P]`` int32 seeds (placed) -> ``[P]`` state.
      chunks: ``{length: [P] state -> ([P] state, [P, length] metrics)}``
        (:class:`jaxpg.drivers.updates.Chunk`), the state donated; grows as
        :func:`chunk` meets lengths.
      member: the abstract state of one seed.
      restore: ``[P]`` state with raw key data (placed) -> ``[P]`` state.
      build: ``cap -> `` the compiled
        :func:`~jaxpg.drivers.updates.updates_program` of up to ``cap``
        updates.
      compiled: ``{cap: compiled program}``, those built so far.
    """

    layout: parallel.Layout
    init: Any
    chunks: dict[int, Any]
    member: Any
    restore: Any
    build: Callable[[int], Any]
    compiled: dict[int, Any]


def chunk(progs: Programs, length: int) -> Any:
    """The chunk of ``length`` updates: through the shortest program compiled
    for at least ``length`` updates, else one compiled now for ``length``."""
    if length not in progs.chunks:
        cap = min((c for c in progs.compiled if c >= length), default=length)
        if cap not in progs.compiled:
            progs.compiled[cap] = progs.build(cap)
        progs.chunks[length] = updates.Chunk(
            progs.compiled[cap], length, cap, progs.layout
        )
    return progs.chunks[length]


def compile_run(
    algo: Algorithm | Callable[[], Algorithm],
    num_seeds: int,
    description: Any | None = None,
) -> Programs:
    """The programs of a run of ``num_seeds`` seeds: ``init`` compiled,
    chunks compiled by :func:`chunk` (``restore`` on first use).

    Args:
      algo: the algorithm, or a function returning it (called only when a
        program has to be traced).
      num_seeds: the run's seeds.
      description: JSON-able, what determines the algorithm (a config-built
        run's config); with it, the compiled programs are kept and loaded by
        :func:`jaxpg.drivers.executables.load_or_compile`; ``None``: compiled
        every time (a user's own parts cannot be described).
    """
    lay = parallel.layout(num_seeds)
    get = algo if callable(algo) else (lambda: algo)

    def init_one(seed: jax.Array) -> TrainState:
        return get().init(jax.random.key(seed))

    seeds = jax.ShapeDtypeStruct(
        (lay.padded,),
        np.int32,
        sharding=NamedSharding(lay.mesh, PartitionSpec(parallel.MEMBER_AXIS)),
    )
    init_exe = executables.load_or_compile(
        lambda: parallel.sharded(init_one, lay, raw_keys=False).lower(seeds),
        description=executables.describe(description, program="init", seeds=num_seeds),
    )
    # Chunks are lowered for the state's abstract values *and shardings*.
    state_spec = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        init_exe.out_info,
    )

    def build(cap: int) -> Any:
        return executables.load_or_compile(
            lambda: updates.lower(lambda s: get().update(s), lay, cap, state_spec),
            description=executables.describe(
                description, program="updates", cap=cap, seeds=num_seeds
            ),
        )

    # One seed's abstract state: the init program's output without the seeds.
    member = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), init_exe.out_info
    )

    def restore_one(raw: Any) -> TrainState:
        return jax.tree.map(data_to_key, member, raw)

    restore = parallel.sharded(restore_one, lay, raw_keys=False)
    return Programs(lay, init_exe, {}, member, restore, build, {})


def cached(cfg: Config, num_seeds: int) -> Programs:
    """:func:`_cached` under the JAX options in force (a process that changes
    them gets programs compiled under the new ones)."""
    return _cached(cfg, num_seeds, tuple(sorted(executables.jax_options().items())))


@functools.lru_cache(maxsize=4)
def _cached(cfg: Config, num_seeds: int, options: tuple) -> Programs:
    """:func:`compile_run` for a config-built run, kept for the process: running
    or resuming the same run again in one process does not compile again
    (the seeds are an argument: any ``first_seed`` reuses them). Its programs
    are kept on disk too (:mod:`jaxpg.drivers.executables`), unless the
    environment is a user's import path (its code is not in the key)."""
    algo = functools.cache(lambda: make_algorithm(cfg))
    description = None if ":" in cfg.env else repr(cfg)
    return compile_run(algo, num_seeds, description)


def for_run(
    cfg: Config,
    num_seeds: int,
    plan: ChunkPlan,
    chunk_length: int,
    build: Callable[[], Any] | None = None,
    shown: bool = False,
) -> tuple[Programs, float]:
    """``(programs, compile seconds)`` of a run of the runner, with the chunk
    lengths it needs first compiled and their memory checked against the
    devices' before anything runs (a run too large can hang in XLA).

    Args:
      cfg, num_seeds: the run.
      plan: its chunk plan; fixed: the chunk and remainder lengths; timed:
        the probe's, the longest and the one in use; all run through one
        program, compiled for the longest (a later, shorter length reuses
        it).
      chunk_length: the fixed plan's chunk length.
      build: ``() -> Algorithm`` of a run with custom parts (compiled anew),
        else ``None`` (the config's, kept by :func:`cached`).
      shown: show a ``compiling ...`` line while it compiles.

    Raises:
      jaxpg.drivers.memory.OutOfMemoryError: see :func:`memory.check_fits`.
    """
    import time

    num_updates = cfg.num_updates
    if plan.chunk_seconds is None:
        _, num_full, remainder = chunk_plan(num_updates, chunk_length)
        fixed = {chunk_length if num_full else 0, remainder}
        lengths = tuple(sorted(fixed - {0}))
    else:
        lengths = tuple(sorted({1, plan.cap, plan.segments[-1][1]}))
    t0 = time.perf_counter()
    plural = "s" if num_seeds > 1 else ""
    with compiling(f"{cfg.env} / {cfg.algo}, {num_seeds} seed{plural}", shown):
        if build is None:
            progs = cached(cfg, num_seeds)
        else:
            progs = compile_run(build(), num_seeds)
        # The longest first: the shorter ones run through its program.
        ready = [chunk(progs, n) for n in sorted(lengths, reverse=True)]
    compile_s = time.perf_counter() - t0
    lay = progs.layout
    memory.check_fits([progs.init, *ready], num_seeds, lay.per_device, lay.num_devices)
    return progs, compile_s
