r"""The compiled programs of a chunked run (:mod:`jaxpg.drivers.runner`):
``init`` from seeds, and one chunk program per chunk length, compiled when
first needed and kept with the others.

Shapes: ``P`` padded seeds.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec

from jaxpg.algorithms.base import TrainState
from jaxpg.config import Config
from jaxpg.drivers import parallel
from jaxpg.drivers.train import make_algorithm

__all__ = ["Programs", "cached", "chunk", "compile_run"]


class Programs(NamedTuple):
    """A run's compiled programs over the layout of its seeds.

    Attributes:
      layout: the seeds over all devices (:func:`jaxpg.drivers.parallel.layout`).
      init: ``[P]`` int32 seeds (placed) -> ``[P]`` state.
      chunks: ``{length: [P] state -> ([P] state, [P, length] metrics)}``,
        the state donated; grows as :func:`chunk` compiles lengths.
      member: the abstract state of one seed.
      restore: ``[P]`` state with raw key data (placed) -> ``[P]`` state.
      build: ``length -> `` the compiled chunk of ``length`` updates.
    """

    layout: parallel.Layout
    init: Any
    chunks: dict[int, Any]
    member: Any
    restore: Any
    build: Callable[[int], Any]


def chunk(progs: Programs, length: int) -> Any:
    """The compiled chunk of ``length`` updates (compiled now if needed)."""
    if length not in progs.chunks:
        progs.chunks[length] = progs.build(length)
    return progs.chunks[length]


def compile_run(algo: Any, num_seeds: int) -> Programs:
    """The programs of a run of ``num_seeds`` seeds: ``init`` compiled,
    chunks compiled by :func:`chunk` (``restore`` on first use)."""
    lay = parallel.layout(num_seeds)

    def init_one(seed: jax.Array) -> TrainState:
        return algo.init(jax.random.key(seed))

    def chunk_program(length: int):
        def one_seed(s):
            return jax.lax.scan(lambda c, _: algo.update(c), s, None, length=length)

        return parallel.sharded(one_seed, lay, raw_keys=False, donate_argnums=0)

    seeds = jax.ShapeDtypeStruct(
        (lay.padded,),
        np.int32,
        sharding=NamedSharding(lay.mesh, PartitionSpec(parallel.MEMBER_AXIS)),
    )
    init_exe = parallel.sharded(init_one, lay, raw_keys=False).lower(seeds).compile()
    # Chunks are lowered for the state's abstract values *and shardings*.
    state_spec = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        init_exe.out_info,
    )

    def build(n: int) -> Any:
        return chunk_program(n).lower(state_spec).compile()

    member = jax.eval_shape(init_one, jax.ShapeDtypeStruct((), np.int32))

    def restore_one(raw: Any) -> TrainState:
        return jax.tree.map(parallel._data_to_key, member, raw)

    restore = parallel.sharded(restore_one, lay, raw_keys=False)
    return Programs(lay, init_exe, {}, member, restore, build)


@functools.lru_cache(maxsize=4)
def cached(cfg: Config, num_seeds: int) -> Programs:
    """:func:`compile_run` for a config-built run, kept for the process: running
    or resuming the same run again in one process does not compile again
    (the seeds are an argument: any ``first_seed`` reuses them)."""
    return compile_run(make_algorithm(cfg), num_seeds)
