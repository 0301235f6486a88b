r"""Does a compiled run fit in memory? Checked after compiling, before running.

A run too large for its device may not fail cleanly: XLA was seen to block in
a transfer, deaf to signals, instead of raising. :func:`check_fits` compares
what the compiled programs need (XLA's ``memory_analysis``: arguments,
outputs and temporaries, less what is donated) with what the device has free
(``memory_stats``: its limit less what is in use; on CPU, the host's
available memory, shared by all CPU devices) and refuses with both numbers
and the largest member count that fits.

The largest count assumes memory grows in proportion to the members of a
device (no fixed part), so it errs on the small side.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import jax

__all__ = ["OutOfMemoryError", "available_bytes", "check_fits", "program_bytes"]


class OutOfMemoryError(ValueError):
    """The compiled run needs more memory than its devices have free."""


def program_bytes(compiled: Any) -> int | None:
    """Bytes one device needs to run ``compiled`` (a ``jax.stages.Compiled``),
    or ``None`` when XLA does not say."""
    try:
        m = compiled.memory_analysis()
    except Exception:  # not implemented on this backend
        return None
    if m is None:
        return None
    return int(
        m.argument_size_in_bytes
        + m.output_size_in_bytes
        - m.alias_size_in_bytes
        + m.temp_size_in_bytes
        + m.generated_code_size_in_bytes
    )


def _host_available() -> int | None:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def available_bytes(device: Any) -> tuple[int, str, bool] | None:
    """``(bytes free, what they are, shared by all local devices)`` for
    ``device``, or ``None`` when unknown."""
    stats = None
    try:
        stats = device.memory_stats()
    except Exception:  # not implemented on this backend
        stats = None
    if stats and "bytes_limit" in stats:
        free = int(stats["bytes_limit"]) - int(stats.get("bytes_in_use", 0))
        return free, f"{device.device_kind} memory", False
    if device.platform == "cpu":
        free = _host_available()
        if free is not None:
            return free, "available host memory", True
    return None


def _size(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1024
    raise AssertionError  # pragma: no cover


def check_fits(
    programs: Iterable[Any],
    num_members: int,
    per_device: int,
    num_devices: int,
    what: str = "seeds",
    held: int = 0,
) -> None:
    """Refuse a run whose largest compiled program does not fit.

    Args:
      programs: the compiled programs the run calls (``jax.stages.Compiled``).
      num_members: members (seeds) of the run.
      per_device: members each device holds (padded).
      num_devices: devices the members are spread over.
      what: the members' name in the message.
      held: bytes per device already in use by the program's own arguments
        (a live train state that it is given, and donates): they count as
        free, as the program's bytes include them.

    Raises:
      OutOfMemoryError: with the bytes needed and free, and the largest
        member count that fits.
    """
    needs = [b for b in (program_bytes(p) for p in programs) if b is not None]
    device = jax.local_devices()[0]
    free = available_bytes(device)
    if not needs or free is None:
        return
    need, (avail, where, shared) = max(needs), free
    avail += held
    sharing = jax.local_device_count() if shared else 1
    if need * sharing <= avail:
        return
    # Each member costs need / per_device on its device; a pool of memory
    # (a device, or the host's for all its CPU devices) holds avail of it.
    per_member = need / per_device
    fit = int(avail // per_member) * max(1, num_devices // sharing)
    total = f"{_size(need)} per device" + (
        f" x {sharing} devices" if sharing > 1 else ""
    )
    raise OutOfMemoryError(
        f"{num_members} {what} need {total} (the largest compiled program: "
        f"arguments, outputs and temporaries) but {_size(avail)} of {where} "
        f"is free: at most about {fit} {what} fit; use fewer {what} or more "
        "devices"
    )
