r"""What a long run shows while it works: a line with the elapsed time while
XLA compiles, then a tqdm bar over env steps.

Both write to standard error and are no-ops when not ``shown`` (another
process than 0, ``progress=False``); the bar also without ``tqdm``.
"""

from __future__ import annotations

import contextlib
import sys
import threading
import time
from collections.abc import Iterator

import numpy as np

__all__ = ["ProgressBar", "UpdateBar", "compiling", "elapsed"]


def compiling(what: str, shown: bool = True, every: float = 1.0):
    """Show ``compiling <what>... 3 s`` while the block runs (the count ticks
    every ``every`` seconds on a terminal; elsewhere one line at the start),
    then ``compiled <what> in 12.3 s``. A compile cached on disk ends at once."""
    return elapsed(f"compiling {what}", shown, every, f"compiled {what}")


@contextlib.contextmanager
def elapsed(
    doing: str, shown: bool = True, every: float = 1.0, done: str | None = None
) -> Iterator[None]:
    """Show ``<doing>... 3 s`` while the block runs (ticking every ``every``
    seconds on a terminal; elsewhere one line at the start), then ``<done> in
    12.3 s`` (default: ``done: <doing>``), or ``<doing>: stopped after 2.1 s``
    when the block raises (an error, Ctrl-C)."""
    if not shown:
        yield
        return
    stream = sys.stderr
    live = stream.isatty()
    t0 = time.perf_counter()
    stop = threading.Event()

    def tick() -> None:
        while not stop.wait(every):
            stream.write(f"\r{doing}... {time.perf_counter() - t0:.0f} s")
            stream.flush()

    stream.write(f"{doing}..." + ("" if live else "\n"))
    stream.flush()
    ticker = threading.Thread(target=tick, daemon=True) if live else None
    if ticker is not None:
        ticker.start()
    finished = False
    try:
        yield
        finished = True
    finally:
        stop.set()
        if ticker is not None:
            ticker.join()
        end = "\r" if live else ""
        seconds = time.perf_counter() - t0
        if finished:
            stream.write(f"{end}{done or f'done: {doing}'} in {seconds:.1f} s\n")
        else:  # an error or Ctrl-C: not done
            stream.write(f"{end}{doing}: stopped after {seconds:.1f} s\n")
        stream.flush()


class ProgressBar:
    """A tqdm bar over env steps of all seeds (a no-op without ``progress``
    or tqdm); ``what`` names the runs (``"member"`` for a sweep's)."""

    def __init__(
        self,
        progress: bool,
        total_steps: int,
        num_seeds: int,
        initial: int = 0,
        what: str = "seed",
    ):
        self.bar = None
        self.total = total_steps
        self.shown = min(initial, total_steps)
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
            total=total_steps,
            initial=self.shown,
            unit="step",
            unit_scale=True,
            desc=f"training {num_seeds} {what}{plural}",
            dynamic_ncols=True,
        )

    def advance(self, host: dict[str, np.ndarray]) -> None:
        """Move to the env steps at the end of ``host`` (metrics ``[S, n]``)."""
        returns = host["episode_return"]
        finite = np.isfinite(returns)
        last = returns.shape[1] - 1 - np.argmax(finite[:, ::-1], axis=1)
        found = returns[np.arange(returns.shape[0]), last]
        self.latest = np.where(finite.any(axis=1), found, self.latest)
        if self.bar is None:
            return
        steps = int(np.sum(host["env_steps"][:, -1], dtype=np.int64))
        mean_return = (
            f"{np.nanmean(self.latest):.1f}" if np.isfinite(self.latest).any() else "-"
        )
        self.bar.set_postfix(mean_return=mean_return, refresh=False)
        target = min(steps, self.total)
        self.bar.update(target - self.shown)
        self.shown = target

    def finish(self) -> None:
        """Fill the bar (REINFORCE may stop just short of its budget)."""
        if self.bar is not None and self.shown < self.total:
            self.bar.update(self.total - self.shown)
            self.shown = self.total

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


class UpdateBar:
    """A tqdm bar over updates (a no-op without ``progress`` or tqdm), its
    postfix the mean over seeds of the latest value of each metric in
    ``postfix`` (``{label: metric name}``)."""

    def __init__(
        self,
        progress: bool,
        num_updates: int,
        postfix: dict[str, str] | None = None,
        initial: int = 0,
        desc: str = "training",
    ):
        self.bar = None
        self.total = num_updates
        self.postfix = dict(postfix or {})
        if not progress:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(
            total=num_updates, initial=initial, unit="upd", desc=desc, file=sys.stderr
        )

    def advance(self, host: dict[str, np.ndarray]) -> None:
        """Move on by the updates of ``host`` (metrics ``[S, n]``)."""
        if self.bar is None:
            return
        self.bar.update(next(iter(host.values())).shape[1])
        self.bar.set_postfix(
            {k: f"{host[v][:, -1].mean():.3f}" for k, v in self.postfix.items()}
        )

    def finish(self) -> None:
        """Nothing to fill: every update is counted."""

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
