r"""The chunk loop every chunked driver runs, with hooks for what happens
between chunks.

A *chunk* is one call of a compiled program that runs ``n`` updates of every
member and returns their metrics ``[P, n]``. :func:`run_chunks` calls chunks
until the run ends or a stop is requested, and between them hands each
chunk's metrics (read to the host, padding dropped) to its *hooks*: the
metrics writer, the checkpointer, the progress bar, the user's callback, the
chunk planner of a run sized by time. The three chunked drivers use it:
:func:`jaxpg.drivers.runner.run` (``jaxpg train``),
:func:`jaxpg.drivers.members.train_members` (``jaxpg sweep``) and
:func:`jaxpg.sequence.seeds.train_seeds` (``jaxpg lm``).

Order of events. With ``overlap`` the next chunk is dispatched *before* the
current one's metrics are read, so the devices do not wait for the host
(``jaxpg train`` and ``jaxpg sweep``); a stop then waits for the chunk
running and the one queued behind it. Without it (``jaxpg lm``) each chunk is
read before the next starts, and a stop waits for one chunk. The loop does not
dispatch ahead, and so reaches a *boundary* with the state after the chunk just
read, when the run ends, when a stop is requested (SIGINT/SIGTERM through
:class:`~jaxpg.drivers.signals.Stopper`, or a hook) or when a hook asks to
see the state there (:meth:`Hook.sync_at`: a checkpoint is due, a timed plan
is still measuring). At a boundary the stop request is agreed over all
processes (:func:`agree`), so all of them stop at the same boundary, and
:meth:`Hook.boundary` runs (the checkpointer saves there).

The loop only orders calls: the chunks run the same updates on the same state
whatever the hooks do, so a run's result does not depend on them.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import jax
import numpy as np

from jaxpg.drivers.signals import Stopper
from jaxpg.experiment import rundir

__all__ = [
    "Checkpointer",
    "Chunk",
    "Hook",
    "MetricsKeeper",
    "MetricsWriter",
    "Progress",
    "agree",
    "run_chunks",
]


class Chunk(NamedTuple):
    """A chunk whose metrics reached the host, as hooks receive it.

    Attributes:
      first: index of the chunk's first update.
      metrics: ``{name: np.ndarray [S, n]}`` the chunk's metrics of the real
        members (the padding dropped; gathered on every process).
      next_start: the first update not yet dispatched (a boundary).
      seconds: host seconds from the chunk's dispatch, or from the previous
        chunk's read when that came later, to this read, less the seconds the
        host spent dispatching the next chunk meanwhile (a compile, when its
        length is new): how long the devices spent on it. A chunk that ran
        while the next one compiled can so be measured short, never long.
      cold: the first chunk of this call (it pays one-time costs).
    """

    first: int
    metrics: dict[str, np.ndarray]
    next_start: int
    seconds: float
    cold: bool

    @property
    def size(self) -> int:
        """``n``, the chunk's updates."""
        return next(iter(self.metrics.values())).shape[1]


class Hook:
    """What a driver does between chunks; every method does nothing here.

    Hooks run in the order given to :func:`run_chunks`."""

    def sync_at(self, update: int) -> bool:
        """Whether the loop must reach a boundary at ``update`` (the end of
        the chunk being read) before dispatching more."""
        return False

    def chunk(self, chunk: Chunk) -> bool | None:
        """After a chunk's metrics are read; a truthy return requests a stop."""
        return None

    def boundary(self, done: int, state: Any, stopping: bool) -> None:
        """At a boundary: ``state`` is the ``[P]`` state after ``done``
        updates; ``stopping``: the run stops here (agreed by all processes)."""

    def end(self, done: int, finished: bool) -> None:
        """After the loop (not when it raised): ``finished``, all updates ran."""

    def close(self) -> None:
        """Always, last (also when the loop raised)."""


def agree(stopper: Stopper) -> bool:
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


def run_chunks(
    state: Any,
    start: int,
    num_updates: int,
    length_at: Callable[[int], int],
    dispatch: Callable[[Any, int], tuple[Any, Any]],
    read: Callable[[Any], dict[str, np.ndarray]],
    hooks: Sequence[Hook] = (),
    *,
    stopper: Stopper | None = None,
    overlap: bool = True,
    clock: Callable[[], float] | None = None,
) -> tuple[Any, int]:
    r"""Run updates ``start .. num_updates - 1`` in chunks; returns ``(state,
    done)``, ``done < num_updates`` when stopped early.

    Args:
      state: the ``[P]`` state after ``start`` updates.
      start: the first update to run.
      num_updates: ``U``.
      length_at: ``update -> n``, the length of the chunk that starts at
        ``update`` (a boundary).
      dispatch: ``(state, update) -> (state, metrics)``, the chunk that
        starts at ``update`` called (asynchronously: JAX returns at once).
      read: the metrics ``[P, n]`` on the devices ``-> {name: [S, n]}`` on
        the host.
      hooks: see :class:`Hook`.
      stopper: its ``stop`` is read at boundaries (and set by a hook that
        requests a stop), agreed over all processes (:func:`agree`, a
        collective at every boundary). Default: a stopper that handles no
        signal, and a stop requested by a hook is not agreed (no collective).
      overlap: dispatch the next chunk before reading the current one's
        metrics (see the module docstring).
      clock: the clock ``Chunk.seconds`` is measured with, read after each
        dispatch, before each dispatch ahead of a read, and after each read
        (default :func:`time.perf_counter`).
    """
    import time

    clock = clock or time.perf_counter
    check = agree if stopper is not None else (lambda s: s.stop)
    stopper = stopper if stopper is not None else Stopper(False)
    hooks = tuple(hooks)

    def send(state: Any, at: int) -> tuple[Any, tuple[int, Any, float]]:
        state, metrics = dispatch(state, at)
        return state, (at, metrics, clock())

    def send_ahead(state: Any, at: int) -> tuple[Any, tuple[int, Any, float], float]:
        """:func:`send` while another chunk runs; also returns the host
        seconds the dispatch took (a new length compiles there), which are
        not the running chunk's."""
        before = clock()
        state, sent = send(state, at)
        return state, sent, sent[2] - before

    done = start
    try:
        u = start  # updates dispatched so far
        inflight = None  # (first update, metrics on device, dispatch time)
        ready_at = None  # when the previous chunk's metrics were read
        if u < num_updates:
            state, inflight = send(state, u)
            u += length_at(inflight[0])
        while inflight is not None:
            first, metrics, sent = inflight
            following = None
            compiling = 0.0  # host seconds of the dispatch ahead
            sync = any(h.sync_at(u) for h in hooks)
            if overlap and u < num_updates and not sync and not check(stopper):
                state, following, compiling = send_ahead(state, u)
                u += length_at(following[0])
            host = read(metrics)
            now = clock()
            took = now - max(sent, ready_at if ready_at is not None else sent)
            took = max(took - compiling, 0.0)
            ready_at = now
            chunk = Chunk(first, host, u, took, first == start)
            done = first + chunk.size
            del metrics
            for hook in hooks:
                if hook.chunk(chunk):
                    stopper.stop = True
            del host, chunk
            if following is None:  # ``state`` is at the boundary ``done == u``
                stop = check(stopper)
                for hook in hooks:
                    hook.boundary(done, state, stop)
                if u == num_updates or stop:
                    break
                state, following = send(state, u)
                u += length_at(following[0])
            inflight = following
        for hook in hooks:
            hook.end(done, done == num_updates)
    finally:
        for hook in hooks:
            hook.close()
    return state, done


class MetricsWriter(Hook):
    """Appends the metrics to a run directory (:mod:`jaxpg.experiment.rundir`)
    in files of at least ``min_updates`` updates, however short the chunks,
    and before every checkpoint (:meth:`flush`). ``out=None`` (another process
    than 0): writes nothing."""

    def __init__(self, out: Path | None, min_updates: int):
        self.out = out
        self.min_updates = min_updates
        self.pending: list[tuple[int, dict[str, np.ndarray]]] = []

    def chunk(self, chunk: Chunk) -> None:
        if self.out is None:
            return
        self.pending.append((chunk.first, chunk.metrics))
        held = sum(next(iter(h.values())).shape[1] for _, h in self.pending)
        if held >= self.min_updates:
            self.flush()

    def flush(self) -> None:
        """Write the buffered metrics as one file."""
        if self.out is not None and self.pending:
            joined = {
                k: np.concatenate([h[k] for _, h in self.pending], axis=1)
                for k in self.pending[0][1]
            }
            rundir.write_metrics_chunk(self.out, self.pending[0][0], joined)
        self.pending.clear()

    def end(self, done: int, finished: bool) -> None:
        self.flush()


class MetricsKeeper(Hook):
    """Keeps every chunk's metrics in host memory (:meth:`joined`)."""

    def __init__(self) -> None:
        self.kept: list[dict[str, np.ndarray]] = []

    def chunk(self, chunk: Chunk) -> None:
        self.kept.append(chunk.metrics)

    def joined(self) -> dict[str, np.ndarray]:
        """``{name: [S, u]}`` of the chunks kept (empty if none)."""
        if not self.kept:
            return {}
        return {
            k: np.concatenate([c[k] for c in self.kept], axis=1) for k in self.kept[0]
        }


class Progress(Hook):
    """Advances a bar (``advance(metrics)``, ``finish()``, ``close()``:
    :class:`jaxpg.drivers.progress.ProgressBar` or
    :class:`~jaxpg.drivers.progress.UpdateBar`) after every chunk, fills it
    when the run finished and closes it at the end."""

    def __init__(self, bar: Any):
        self.bar = bar

    def chunk(self, chunk: Chunk) -> None:
        self.bar.advance(chunk.metrics)

    def end(self, done: int, finished: bool) -> None:
        if finished:
            self.bar.finish()

    def close(self) -> None:
        self.bar.close()


class Checkpointer(Hook):
    """Saves the state at the boundaries where a checkpoint is due (the end
    of the run, ``every`` updates after the previous one when given) and where
    the run stops early, after ``writer`` has written the metrics up to it.

    ``save(done, state)`` receives the ``[P]`` state and is called on every
    process (gathering the real members is a collective; the save itself is
    process 0's business)."""

    def __init__(
        self,
        save: Callable[[int, Any], None],
        num_updates: int,
        start: int = 0,
        every: int | None = None,
        writer: MetricsWriter | None = None,
    ):
        self.save = save
        self.num_updates = num_updates
        self.every = every
        self.writer = writer
        self.last = start  # update of the newest checkpoint (or the start)

    def _due(self, update: int) -> bool:
        return update == self.num_updates or (
            self.every is not None and update - self.last >= self.every
        )

    def sync_at(self, update: int) -> bool:
        return self._due(update)

    def boundary(self, done: int, state: Any, stopping: bool) -> None:
        if self._due(done) or stopping:
            if self.writer is not None:
                self.writer.flush()  # the metrics up to a checkpoint first
            self.save(done, state)
            self.last = done


class Callback(Hook):
    """Calls ``fn(chunk)`` after every chunk; a truthy return requests a stop."""

    def __init__(self, fn: Callable[[Chunk], bool | None]):
        self.fn = fn

    def chunk(self, chunk: Chunk) -> bool | None:
        return self.fn(chunk)
