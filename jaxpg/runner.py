r"""Run many seeds with a progress bar: compiled chunks of updates, driven from
the host.

``train_seeds`` compiles the whole run into one program, which shows nothing
until it ends. :func:`run` compiles ``vmap(init)`` and one *chunk* program,
``vmap`` over seeds of a ``lax.scan`` of ``update`` over ``chunk`` updates, and
calls the chunk ``num_updates / chunk`` times, so a progress bar can advance
between calls. Only one chunk shape is compiled; the result is the same as
``jax.jit(jax.vmap(make_train(cfg)))(seed_keys(S))`` (the same random draws,
metrics equal up to float rounding). There are no host callbacks inside the
program: the host reads each chunk's metrics while the next chunk runs.

Shapes: ``S`` seeds, ``U = cfg.num_updates`` updates.
"""

from __future__ import annotations

import time
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpg.algorithms.base import TrainState
from jaxpg.batching import SEED_AXIS
from jaxpg.config import Config
from jaxpg.train import make_algorithm, seed_keys, shard_seeds

__all__ = ["RunResult", "default_chunk", "run"]


class RunResult(NamedTuple):
    """What :func:`run` returns.

    Attributes:
      params: ``[S, ...]`` final policy parameters (pytree, on device).
      metrics: ``{name: np.ndarray [S, U]}`` per-update metrics on the host
        (see :class:`jaxpg.TrainOutput`).
      state: the final ``[S]``-batched :class:`~jaxpg.TrainState` (on device).
      compile_s: seconds spent lowering and compiling ``init`` and the chunk.
      run_s: seconds spent running them (init, every chunk, reading metrics).
      steps_per_s: real env steps of all seeds together per second of
        ``run_s``.
    """

    params: Any
    metrics: dict[str, np.ndarray]
    state: TrainState
    compile_s: float
    run_s: float
    steps_per_s: float


def default_chunk(num_updates: int, num_chunks: int = 20) -> int:
    """The divisor of ``num_updates`` closest to ``num_updates / num_chunks``
    (the larger one on a tie)."""
    target = num_updates / num_chunks
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), -d))


def run(
    cfg: Config,
    num_seeds: int,
    *,
    env: Any = None,
    env_params: Any = None,
    chunk_updates: int | None = None,
    progress: bool = True,
    first_seed: int = 0,
) -> RunResult:
    """Train seeds ``first_seed .. first_seed + num_seeds - 1`` in chunks.

    Seed ``i`` is ``make_train(cfg)(jax.random.key(i))``.

    Args:
      cfg: the run's configuration.
      num_seeds: ``S >= 1``.
      env, env_params: a gymnax-API environment (see :func:`jaxpg.make_train`).
      chunk_updates: updates per compiled call; must divide ``cfg.num_updates``.
        Default: :func:`default_chunk` (about 20 calls).
      progress: show a tqdm bar (updates; postfix: env steps of all seeds and
        the latest mean episode return). Needs ``tqdm`` (the ``cli`` extra);
        without it the run is silent.
      first_seed: seed of the first run.

    Returns:
      :class:`RunResult`.

    Raises:
      ValueError: ``num_seeds`` or ``chunk_updates`` is invalid, or the
        environment cannot be resolved.
    """
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds!r} is invalid: must be an int >= 1")
    num_updates = cfg.num_updates
    chunk = default_chunk(num_updates) if chunk_updates is None else chunk_updates
    if (
        isinstance(chunk, bool)
        or not isinstance(chunk, int)
        or chunk < 1
        or num_updates % chunk
    ):
        raise ValueError(
            f"chunk_updates={chunk_updates!r} is invalid: must be a positive "
            f"divisor of cfg.num_updates={num_updates}"
        )
    algo = make_algorithm(cfg, env, env_params)

    def run_chunk(state: TrainState):
        def one_seed(s):
            return jax.lax.scan(lambda c, _: algo.update(c), s, None, length=chunk)

        return jax.vmap(one_seed, axis_name=SEED_AXIS)(state)

    keys = shard_seeds(seed_keys(num_seeds, first_seed))
    init_fn = jax.jit(jax.vmap(algo.init, axis_name=SEED_AXIS))
    chunk_fn = jax.jit(run_chunk, donate_argnums=0)

    t0 = time.perf_counter()
    init_exe = init_fn.lower(keys).compile()
    # The chunk is lowered for the state's abstract values *and shardings*.
    state_spec = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        init_exe.out_info,
    )
    chunk_exe = chunk_fn.lower(state_spec).compile()
    compile_s = time.perf_counter() - t0

    num_chunks = num_updates // chunk
    host_chunks: list[dict[str, np.ndarray]] = []
    bar = _ProgressBar(progress, num_updates, num_seeds)
    try:
        t0 = time.perf_counter()
        state = init_exe(keys)
        state, pending = chunk_exe(state)
        for i in range(1, num_chunks + 1):
            # Dispatch the next chunk before reading this one's metrics, so
            # the device does not wait for the host.
            following = None
            if i < num_chunks:
                state, following = chunk_exe(state)
            host_chunks.append(jax.device_get(pending))
            bar.advance(host_chunks[-1], chunk)
            pending = following
        state = jax.block_until_ready(state)
        run_s = time.perf_counter() - t0
    finally:
        bar.close()

    metrics = {
        name: np.concatenate([c[name] for c in host_chunks], axis=1)
        for name in host_chunks[0]
    }
    total_steps = float(np.sum(np.asarray(state.env_steps, dtype=np.int64)))
    return RunResult(
        params=state.params["policy"],
        metrics=metrics,
        state=state,
        compile_s=compile_s,
        run_s=run_s,
        steps_per_s=total_steps / run_s,
    )


class _ProgressBar:
    """A tqdm bar over updates (a no-op without ``progress`` or tqdm)."""

    def __init__(self, progress: bool, num_updates: int, num_seeds: int):
        self.bar = None
        # Each seed's most recent finite episode return: ``[S]``.
        self.latest = np.full((num_seeds,), np.nan)
        if not progress:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        plural = "s" if num_seeds > 1 else ""
        self.bar = tqdm(
            total=num_updates,
            unit="update",
            desc=f"training {num_seeds} seed{plural}",
            dynamic_ncols=True,
        )

    def advance(self, host: dict[str, np.ndarray], num: int) -> None:
        """Move by ``num`` updates whose metrics are ``host`` (``[S, num]``)."""
        if self.bar is None:
            return
        returns = host["episode_return"]
        finite = np.isfinite(returns)
        last = returns.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
        found = returns[np.arange(returns.shape[0]), last]
        self.latest = np.where(finite.any(axis=1), found, self.latest)
        steps = int(np.sum(host["env_steps"][:, -1], dtype=np.int64))
        mean_return = (
            f"{np.nanmean(self.latest):.1f}" if np.isfinite(self.latest).any() else "-"
        )
        self.bar.set_postfix(
            env_steps=f"{steps:,}", mean_return=mean_return, refresh=False
        )
        self.bar.update(num)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
