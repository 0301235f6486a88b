r"""An OS-level lock on a run directory: one process at a time trains, resumes
or overwrites it.

The lock is ``fcntl.flock`` on ``DIR/.jaxpg-lock``, held for as long as the
process works on the directory. The operating system releases it when the
process ends, however it ends (``kill -9`` included), so a lock left by a dead
process never blocks: there is nothing stale to clean up. The file itself
stays (it holds the pid of the last holder, for the message); removing it
would let two processes lock two different files of the same name.

Within one process the lock is re-entrant (counted per directory), so the
command line and :func:`jaxpg.drivers.runner.run` may both take it.

Needs a POSIX system (``fcntl``); elsewhere locking is skipped with a warning.
"""

from __future__ import annotations

import contextlib
import os
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path

from jaxpg.experiment.rundir import RunDirError

__all__ = ["LOCK", "RunLockedError", "hold", "locked_by"]

LOCK = ".jaxpg-lock"

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX
    fcntl = None  # type: ignore[assignment]

# {resolved directory: [fd, count]} of the locks this process holds.
_HELD: dict[str, list[int]] = {}
_GUARD = threading.Lock()


class RunLockedError(RunDirError):
    """Another live process holds the run directory."""


def locked_by(directory: str | os.PathLike) -> int | None:
    """The pid written by the last holder of ``directory``'s lock (or
    ``None``); it only names the holder in messages."""
    try:
        text = (Path(directory) / LOCK).read_text().strip()
    except OSError:
        return None
    return int(text) if text.isdigit() else None


def _acquire(directory: Path) -> None:
    key = str(directory.resolve())
    with _GUARD:
        if key in _HELD:
            _HELD[key][1] += 1
            return
        if fcntl is None:  # pragma: no cover
            warnings.warn("no fcntl: run directories are not locked", stacklevel=3)
            _HELD[key] = [-1, 1]
            return
        path = directory / LOCK
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise RunDirError(
                f"cannot write to {directory}: {e.strerror or e}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            pid = locked_by(directory)
            who = f"process {pid}" if pid is not None else "another process"
            raise RunLockedError(
                f"{directory} is in use by {who} (a live run holds {LOCK}); "
                "wait for it to end or stop it first (SIGINT/SIGTERM checkpoint "
                "it), then resume or overwrite"
            ) from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        _HELD[key] = [fd, 1]


def _release(directory: Path) -> None:
    key = str(directory.resolve())
    with _GUARD:
        entry = _HELD.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            del _HELD[key]
            if entry[0] >= 0:
                os.close(entry[0])  # closing the descriptor releases the lock


@contextlib.contextmanager
def hold(directory: str | os.PathLike) -> Iterator[Path]:
    """Hold the lock of ``directory`` (created if missing) for the ``with``
    block.

    Raises:
      RunLockedError: another live process holds it (the message names the
        directory and the holder's pid).
    """
    directory = Path(directory)
    if directory.exists() and not directory.is_dir():
        raise RunDirError(f"{directory} is a file, not a folder")
    try:
        directory.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise RunDirError(f"cannot create {directory}: {e.strerror or e}") from None
    _acquire(directory)
    try:
        yield directory
    finally:
        _release(directory)
