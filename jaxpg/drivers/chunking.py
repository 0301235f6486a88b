r"""How a run's updates are cut into compiled chunks: fixed lengths, or lengths
sized by time so that a stop request waits only seconds.

A chunk is one call of a compiled program that runs ``n`` updates; the host
acts only between chunks (metrics, checkpoints, a stop on SIGINT/SIGTERM), so
a stop waits for the chunk running and the one queued behind it.

* Fixed (:func:`fixed_plan`): chunks of ``chunk`` updates and a last, shorter
  one when ``chunk`` does not divide ``U`` (:func:`default_chunk`: about a
  twentieth of the run).
* Timed (:func:`timed_plan`, ``chunk_seconds=T``): two *probe* chunks of
  one update each; the second (the first pays one-time costs: buffers, thread
  pools) measures the seconds per update; from then on chunks are as long
  as fit in ``T`` at the measured speed, never longer than the fixed plan's
  chunk; a chunk that takes more than ``OVERRUN * T`` (updates that grew
  slower, as REINFORCE's do when its episodes lengthen) makes the following
  ones shorter. The updates left when fewer than a chunk remain run as
  one-update chunks (the probe's program), so no program is compiled for a
  last, shorter chunk. Lengths only shrink, so every length runs through
  the one program compiled for the longest (:mod:`jaxpg.drivers.updates`).

A plan is a list of *segments* ``(start, length)``: from update ``start`` on,
chunks have ``length`` updates (near ``U``: cut to what is left, or in a timed
plan one update at a time). A segment starts
at a chunk boundary. The run directory records the plan
(:meth:`ChunkPlan.to_json`), so a resume finds its checkpoint on a boundary
and continues with the length in use there, compiling nothing new.

Shapes: ``U`` updates.
"""

from __future__ import annotations

import math
from typing import Any

from jaxpg.config import Config

__all__ = [
    "OVERRUN",
    "ChunkPlan",
    "chunk_plan",
    "default_chunk",
    "fixed_plan",
    "step_budget",
    "timed_plan",
]

_WINDOW = 64  # divisor candidates looked at (constant time)
# A timed chunk longer than OVERRUN * chunk_seconds shortens the next ones.
OVERRUN = 1.5


def default_chunk(num_updates: int, num_chunks: int = 20) -> int:
    """Updates per compiled call, chosen in constant time.

    The divisor of ``num_updates`` nearest ``num_updates / num_chunks`` among
    the candidates within 25% of it (at most 64 are tried); without one,
    ``ceil(num_updates / num_chunks)``, and the run ends with a remainder
    chunk.
    """
    if num_updates < 1 or num_chunks < 1:
        raise ValueError(
            f"num_updates={num_updates!r}, num_chunks={num_chunks!r}: both must be >= 1"
        )
    target = num_updates / num_chunks
    if target <= 1:
        return 1
    centre = round(target)
    for offset in range(_WINDOW // 2):
        for d in (centre + offset, centre - offset):
            near = 0 < d <= num_updates and abs(d - target) <= 0.25 * target
            if near and num_updates % d == 0:
                return d
    return -(-num_updates // num_chunks)


def chunk_plan(num_updates: int, chunk: int) -> tuple[int, int, int]:
    """``(chunk, num_full, remainder)``: ``num_full`` calls of ``chunk``
    updates, then one of ``remainder`` (0: none)."""
    return chunk, num_updates // chunk, num_updates % chunk


class ChunkPlan:
    """The chunk lengths of one run (see the module docstring).

    Attributes:
      num_updates: ``U``.
      segments: ``[(start, length), ...]``, starts increasing from 0.
      chunk_seconds: the target seconds per chunk, or ``None`` (fixed).
      cap: the longest chunk a timed plan uses.
      seconds_per_update: the latest measured speed (timed plans), or ``None``.
    """

    def __init__(
        self,
        num_updates: int,
        segments: list[tuple[int, int]],
        chunk_seconds: float | None = None,
        cap: int | None = None,
        seconds_per_update: float | None = None,
    ):
        self.num_updates = num_updates
        self.segments = [(int(s), int(n)) for s, n in segments]
        self.chunk_seconds = chunk_seconds
        self.cap = cap if cap is not None else self.segments[0][1]
        self.seconds_per_update = seconds_per_update

    def length_at(self, update: int) -> int:
        """Updates of the chunk that starts at ``update`` (a boundary)."""
        length = next(n for s, n in reversed(self.segments) if s <= update)
        left = self.num_updates - update
        if length <= left:
            return length
        return 1 if self.chunk_seconds is not None else left

    def is_boundary(self, update: int) -> bool:
        """Whether a chunk starts or the run ends at ``update``."""
        if update == self.num_updates or update == 0:
            return True
        if not 0 < update < self.num_updates:
            return False
        start, length = next((s, n) for s, n in reversed(self.segments) if s <= update)
        full_end = start + (self.num_updates - start) // length * length
        tail = self.chunk_seconds is not None and update >= full_end
        return tail or (update - start) % length == 0

    @property
    def lengths(self) -> set[int]:
        """The chunk lengths planned so far (the last chunk's cut excluded)."""
        return {n for _, n in self.segments}

    @property
    def measuring(self) -> bool:
        """A timed plan that has not measured its speed yet (its chunks are
        one update, each read before the next is dispatched)."""
        return self.chunk_seconds is not None and self.seconds_per_update is None

    def observe(
        self, length: int, seconds: float, next_start: int, cold: bool = False
    ) -> int | None:
        """Account for a chunk of ``length`` updates that ran in ``seconds``;
        returns the new length of the chunks from ``next_start`` on (the
        first chunk not yet dispatched, a boundary) when it changes, else
        ``None``. ``cold``: the first call of a process, which pays one-time
        costs (buffers, thread pools): not the speed, ignored. A fixed plan
        never changes."""
        if (
            self.chunk_seconds is None
            or cold
            or length < 1
            or next_start >= self.num_updates
        ):
            return None
        probing = self.seconds_per_update is None
        per_update = max(seconds, 1e-9) / length
        self.seconds_per_update = per_update
        current = self.segments[-1][1]
        fits = max(1, min(self.cap, math.floor(self.chunk_seconds / per_update)))
        overrun = current * per_update > OVERRUN * self.chunk_seconds
        if not probing and not (overrun and fits < current):
            return None
        new = fits
        if new == current:
            return None
        self.segments.append((next_start, new))
        return new

    def resume_at(self, update: int) -> None:
        """Forget the segments that start after ``update`` (a resume from the
        checkpoint there plans the rest again)."""
        self.segments = [(s, n) for s, n in self.segments if s <= update]

    def to_json(self) -> dict[str, Any]:
        return {
            "num_updates": self.num_updates,
            "chunk_seconds": self.chunk_seconds,
            "cap": self.cap,
            "seconds_per_update": self.seconds_per_update,
            "segments": [list(s) for s in self.segments],
        }

    @classmethod
    def from_json(cls, record: dict[str, Any]) -> ChunkPlan:
        return cls(
            record["num_updates"],
            [tuple(s) for s in record["segments"]],
            record.get("chunk_seconds"),
            record.get("cap"),
            record.get("seconds_per_update"),
        )

    def __repr__(self) -> str:
        return f"ChunkPlan({self.to_json()})"


def fixed_plan(num_updates: int, chunk: int) -> ChunkPlan:
    """Chunks of ``chunk`` updates, the last one cut at ``num_updates``."""
    return ChunkPlan(num_updates, [(0, min(chunk, num_updates))])


def timed_plan(num_updates: int, chunk_seconds: float, cap: int) -> ChunkPlan:
    """Two probe chunks of one update, then chunks of at most
    ``chunk_seconds`` at the speed the second measured and at most ``cap``
    updates, and one-update chunks for the last updates.

    Raises:
      ValueError: ``chunk_seconds`` is not a finite number > 0.
    """
    if (
        isinstance(chunk_seconds, bool)
        or not isinstance(chunk_seconds, int | float)
        or not math.isfinite(chunk_seconds)
        or chunk_seconds <= 0
    ):
        raise ValueError(
            f"chunk_seconds={chunk_seconds!r} is invalid: must be a finite number > 0"
        )
    cap = max(1, min(cap, num_updates))
    return ChunkPlan(num_updates, [(0, 1)], float(chunk_seconds), cap)


def step_budget(cfg: Config, num_members: int, num_updates: int | None = None) -> int:
    """Env steps of ``num_members`` members at the end of their runs: exact
    for a2c/ppo; for REINFORCE, whose last update may run past
    ``total_steps``, the budget itself (``num_updates``: default
    ``cfg.num_updates``)."""
    if cfg.algo == "reinforce":
        return num_members * cfg.total_steps
    updates = cfg.num_updates if num_updates is None else num_updates
    return num_members * updates * cfg.num_envs * cfg.rollout_steps
