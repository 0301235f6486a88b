r"""Members (settings × seeds) trained in compiled chunks of updates, so that
the host can show progress between chunks; the result is the one-program
run's, bit for bit.

:func:`train_members` is what a sweep over many members needs from
:mod:`jaxpg.drivers.runner` without its run directory: the same chunking
(``chunk`` updates per call, :func:`~jaxpg.drivers.runner.default_chunk`,
then a remainder chunk) and chunk loop (:mod:`jaxpg.drivers.loop`), the
same layout of members over every device and
host (:mod:`jaxpg.drivers.parallel`), a progress bar over env steps between
calls, and a ``finish`` program per member at the end (evaluation, say)
that sees the member's final train state. Member ``m`` is
``make_train(cfg)(jax.random.key(seeds[m]), hparams[m])`` followed by
``finish(seeds[m], state)``: the chunks run the same updates in the same
order on the same state, so its metrics and what ``finish`` returns equal
that one program's exactly.

Shapes: ``M`` members, ``P`` padded members, ``U = cfg.num_updates``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpg.algorithms.base import Algorithm
from jaxpg.checks import positive_int
from jaxpg.config import Config
from jaxpg.drivers import loop, parallel, updates
from jaxpg.drivers.chunking import chunk_plan, default_chunk, fixed_plan, step_budget
from jaxpg.drivers.progress import ProgressBar, compiling

__all__ = ["MembersResult", "train_members"]


class MembersResult(NamedTuple):
    """What :func:`train_members` returns.

    Attributes:
      metrics: ``{name: np.ndarray [M, U]}`` every member's per-update
        metrics (see :class:`jaxpg.TrainOutput`), on the host.
      final: ``finish``'s output with a leading ``[M]`` axis (``None``
        without ``finish``); PRNG keys in it as raw key data.
      compile_s: seconds spent compiling (and running ``init``).
      run_s: seconds spent running the chunks and ``finish``.
    """

    metrics: dict[str, np.ndarray]
    final: Any
    compile_s: float
    run_s: float


def train_members(
    cfg: Config,
    algo: Algorithm,
    seeds: Any,
    hparams: Any = None,
    *,
    finish: Callable[[jax.Array, Any], Any] | None = None,
    chunk_updates: int | None = None,
    progress: bool = False,
    what: str = "member",
    devices: Any = None,
) -> MembersResult:
    r"""Train ``M`` members in chunks of ``cfg``'s updates over all devices.

    Member ``m`` starts from ``algo.init(jax.random.key(seeds[m]),
    hparams[m])`` and runs ``cfg.num_updates`` updates of ``algo``, then
    ``finish(seeds[m], state)``. With several processes every process calls
    it with the same arguments (the metrics of each chunk are gathered on
    every process).

    Args:
      cfg: the configuration ``algo`` was built from (update count, budget).
      algo: the members' algorithm (:func:`jaxpg.make_algorithm`).
      seeds: ``[M]`` integer seeds in ``[0, 2**31)``.
      hparams: ``None`` (the config's), or a pytree of ``[M]`` arrays
        (a :class:`jaxpg.Hyperparams` of ``[M]`` float32).
      finish: ``finish(seed [] int32, state) -> pytree`` for one member,
        compiled with the rest; e.g. evaluate the final policy.
      chunk_updates: updates per compiled call, ``>= 1`` (default:
        :func:`~jaxpg.drivers.runner.default_chunk`).
      progress: show a ``compiling...`` line, then a bar over the env steps
        of all members (on process 0; the bar needs tqdm).
      what: what the bar counts (``"member"``, ``"seed"``).
      devices: default: all devices of all processes.

    Returns:
      :class:`MembersResult`.

    Raises:
      ValueError: bad ``seeds`` or ``chunk_updates`` (the message names it).
    """
    s = parallel.check_seeds(seeds)
    if chunk_updates is not None:
        chunk_updates = positive_int("chunk_updates", chunk_updates)
    num_updates = cfg.num_updates
    chunk = min(chunk_updates or default_chunk(num_updates), num_updates)
    _, num_full, remainder = chunk_plan(num_updates, chunk)
    lengths = sorted({chunk if num_full else 0, remainder} - {0})
    members = int(s.size)
    lay = parallel.layout(members, devices)
    args = (s,) if hparams is None else (s, hparams)
    placed = parallel.place(args, lay)
    shown = progress and jax.process_index() == 0
    plural = "s" if members > 1 else ""

    def init_one(seed: jax.Array, hp: Any = None) -> Any:
        return algo.init(jax.random.key(seed), hp)

    t0 = time.perf_counter()
    with compiling(f"{cfg.env} / {cfg.algo}, {members} {what}{plural}", shown):
        init = parallel.sharded(init_one, lay, raw_keys=False)
        state = init.lower(*placed).compile()(*placed)
        compiled = updates.lower(algo.update, lay, chunk, state).compile()
        chunks = {n: updates.Chunk(compiled, n, chunk, lay) for n in lengths}
        done = None
        if finish is not None:
            done = parallel.sharded(finish, lay).lower(placed[0], state).compile()
    compile_s = time.perf_counter() - t0

    t0 = time.perf_counter()
    keeper = loop.MetricsKeeper()
    bar = ProgressBar(shown, step_budget(cfg, members), members, what=what)
    state, _ = loop.run_chunks(
        state,
        0,
        num_updates,
        fixed_plan(num_updates, chunk).length_at,
        lambda state, at: chunks[min(chunk, num_updates - at)](state),
        lambda metrics: parallel.host_members(metrics, lay),
        [keeper, loop.Progress(bar)],
    )
    final = None
    if done is not None:
        final = parallel.collect(done(placed[0], state), lay)
    metrics = keeper.joined()
    jax.block_until_ready(final)
    return MembersResult(metrics, final, compile_s, time.perf_counter() - t0)
