"""Several processes (hosts) joined with JAX's own runtime,
:func:`jax.distributed.initialize`: :func:`initialize` with a bounded start-up
(a taken coordinator port, or a coordinator that never answers, fails within a
timeout with :class:`CoordinatorError`), and process 0's values on every
process (:func:`broadcast_object`, :func:`broadcast_arrays`).
:mod:`jaxpg.drivers.parallel` lays members over the devices of all joined
processes (and re-exports these names)."""

from __future__ import annotations

import errno
import json
import socket
import sys
import threading
import time
from typing import Any

import jax
import jax.extend.backend
import numpy as np

__all__ = [
    "JOIN_TIMEOUT_S",
    "CoordinatorError",
    "broadcast_arrays",
    "broadcast_object",
    "initialize",
]


# How long a process waits for the others to join (jax.distributed's
# initialization_timeout) unless told otherwise: JAX's own default.
JOIN_TIMEOUT_S = 300


class CoordinatorError(ValueError):
    """The processes cannot join: the coordinator's port is taken (process
    0), or the coordinator cannot be reached in time (the others)."""


def initialize(
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    timeout: float = JOIN_TIMEOUT_S,
) -> bool:
    """Join the processes of a multi-host run with :func:`jax.distributed.initialize`.

    Call it before any JAX computation. Nothing happens when no coordinator is
    given (or ``num_processes == 1``): one process. ``coordinator="auto"``
    leaves the coordinator, process count and id to JAX's cluster detection.
    CPU collectives (needed to gather results on CPU hosts) are set to gloo
    unless ``jax_cpu_collectives_implementation`` is already set.

    Start-up is bounded: process 0 first checks that it can listen on the
    coordinator's port; every other process waits at most ``timeout``
    seconds for the coordinator to accept connections. Once connected, JAX
    waits at most ``timeout`` seconds for all processes to register
    (``initialization_timeout``) and then ends the process (it aborts, from
    C++); a line on stderr says why just before.

    Args:
      coordinator: ``"host:port"`` of process 0, ``"auto"``, or ``None``.
      num_processes: ``N >= 1``; required with an address.
      process_id: ``0 <= id < N``; required with an address.
      timeout: seconds to wait for the coordinator and for the other
        processes, ``>= 1``.

    Returns:
      Whether ``jax.distributed`` was initialised.

    Raises:
      ValueError: an address without a valid process count and id, a count
        or id given without an address, or a bad ``timeout``.
      CoordinatorError: (process 0) the coordinator's port is in use; (other
        processes) the coordinator accepted no connection within
        ``timeout`` seconds. The message names the address and the fix.
    """
    for name, value in (("num_processes", num_processes), ("process_id", process_id)):
        if value is not None and (
            isinstance(value, bool) or not isinstance(value, int)
        ):
            raise ValueError(f"{name}={value!r} is invalid: must be an int")
    if (
        isinstance(timeout, bool)
        or not isinstance(timeout, int | float)
        or not timeout >= 1
        or timeout == float("inf")
    ):
        raise ValueError(f"timeout={timeout!r} is invalid: must be a number >= 1")
    if coordinator is None:
        if num_processes not in (None, 1) or process_id not in (None, 0):
            raise ValueError(
                f"num_processes={num_processes!r} / process_id={process_id!r} "
                "need a coordinator address (--coordinator HOST:PORT or 'auto')"
            )
        return False
    if coordinator != "auto":
        if num_processes is None or num_processes < 1:
            raise ValueError(
                f"num_processes={num_processes!r} is invalid: with coordinator="
                f"{coordinator!r} it must be an int >= 1"
            )
        if process_id is None or not 0 <= process_id < num_processes:
            raise ValueError(
                f"process_id={process_id!r} is invalid: must be an int in "
                f"[0, {num_processes})"
            )
        if num_processes == 1:
            return False
        host, port = _split_address(coordinator)
        if process_id == 0:
            _check_port_free(coordinator, port)
        else:
            _wait_for_coordinator(coordinator, host, port, process_id, timeout)
    if jax.config.jax_cpu_collectives_implementation in (None, "none"):
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    kwargs: dict[str, Any] = {"initialization_timeout": int(timeout)}
    if coordinator != "auto":
        kwargs.update(
            coordinator_address=coordinator,
            num_processes=num_processes,
            process_id=process_id,
        )
    # JAX ends the process when the others do not register in time; say why
    # first (its own line is a C++ log about a deadline).
    who = f"process {process_id}" if process_id is not None else "this process"
    notice = threading.Timer(
        max(0.0, timeout - 0.5),
        _say,
        (
            f"jaxpg: {who}: not every process joined the coordinator "
            f"{coordinator} within {timeout:g} s; JAX ends this process. Start "
            "all of them with the same --coordinator and --num-processes, each "
            "with its own --process-id",
        ),
    )
    notice.daemon = True
    notice.start()
    try:
        try:
            jax.distributed.initialize(**kwargs)
        except RuntimeError as e:
            if "before any JAX calls" not in str(e):
                raise
            # Importing gymnax (before jaxpg, which drops the backend its own
            # import started) creates a few constant arrays, which starts the
            # local backend before anything has run on it. Drop that backend
            # so that jax.distributed can start the clients of all processes
            # (arrays made so far stay valid on the old client).
            jax.extend.backend.clear_backends()
            jax.distributed.initialize(**kwargs)
    finally:
        notice.cancel()
    return True


def _say(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


def _split_address(coordinator: str) -> tuple[str, int]:
    """``(host, port)`` of ``"host:port"`` (``"[v6]:port"`` too)."""
    host, sep, port = coordinator.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(
            f"coordinator={coordinator!r} is invalid: must be HOST:PORT with a "
            "port in [1, 65535], or 'auto'"
        )
    return host.strip("[]"), int(port)


def _check_port_free(coordinator: str, port: int) -> None:
    """Process 0 hosts the coordinator: refuse a port another program holds
    (JAX would crash on it, and the other processes would wait for it)."""
    for family, address in ((socket.AF_INET6, "::"), (socket.AF_INET, "")):
        try:
            probe = socket.socket(family, socket.SOCK_STREAM)
        except OSError:
            continue  # no IPv6 on this host
        with probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((address, port))
            except OSError as e:
                if e.errno != errno.EADDRINUSE:
                    continue
                raise CoordinatorError(
                    f"--coordinator {coordinator}: port {port} is already in use on "
                    "this host (process 0 runs the coordinator there): choose a "
                    "free port for every process, or end the program that holds "
                    f"it (e.g. a previous run: ss -ltnp 'sport = :{port}')"
                ) from None
            return


def _wait_for_coordinator(
    coordinator: str, host: str, port: int, process_id: int, timeout: float
) -> None:
    """A process other than 0 waits, at most ``timeout`` seconds, until the
    coordinator accepts a TCP connection."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return
        except OSError:
            pass
        if time.monotonic() >= deadline:
            raise CoordinatorError(
                f"--coordinator {coordinator}: process {process_id} could not reach "
                f"the coordinator within {timeout:g} s: start process 0 (--process-id "
                "0) on that host with the same --coordinator and --num-processes, "
                "or raise --coordinator-timeout"
            )
        time.sleep(0.2)


def broadcast_object(obj: Any) -> Any:
    """Process 0's ``obj`` (JSON-serialisable) on every process.

    Every process must call it (a collective); the others' ``obj`` is
    ignored. With one process it returns ``obj``.
    """
    if jax.process_count() == 1:
        return obj
    data = b""
    if jax.process_index() == 0:
        data = json.dumps(obj).encode()
    size = int(broadcast_arrays(np.int64(len(data))))
    buf = np.zeros((size,), np.uint8)
    if jax.process_index() == 0:
        buf[:] = np.frombuffer(data, np.uint8)
    return json.loads(broadcast_arrays(buf).tobytes().decode())


def broadcast_arrays(tree: Any) -> Any:
    """Process 0's NumPy arrays on every process, bit for bit.

    Every process must call it with arrays of the same shapes and dtypes
    (the others' values are ignored). Unlike
    ``multihost_utils.broadcast_one_to_all`` (a sum with zeros), the bits are
    kept: ``-0.0`` and NaN payloads survive. Returns NumPy arrays.
    """
    if jax.process_count() == 1:
        return jax.tree.map(np.asarray, tree)
    from jax.experimental import multihost_utils

    gathered = multihost_utils.process_allgather(tree, tiled=False)
    return jax.tree.map(lambda x: np.array(np.asarray(x)[0]), gathered)
