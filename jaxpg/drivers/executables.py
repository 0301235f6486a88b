"""Compiled programs kept on disk under a description of what built them, so
that a second identical command loads its executables instead of tracing,
lowering and compiling them again.

JAX's persistent compilation cache already skips XLA's compile on a repeated
program, but it is keyed by the lowered program: every command still traces
and lowers it first (about a second for ``jaxpg train``). Here the key is what
determines the program before any tracing: the caller's description (for a
config-built run: the :class:`jaxpg.Config`, the seed count and the chunk
length) and a fingerprint of everything else the program depends on: the
source of ``jaxpg``, the versions of JAX, jaxlib and the libraries that define
networks and environments, the devices, ``XLA_FLAGS`` and JAX's numerics
options. Anything that cannot be described so (a user's own network, algorithm
or environment module) is not kept here.

Off until :func:`enable` names a directory. :func:`use_cache` turns on both
this and JAX's persistent compilation cache in one directory, as the ``jaxpg``
commands do by default (:data:`DEFAULT_CACHE_DIR`, ``$JAXPG_CACHE_DIR``).
A file that cannot be read or loaded is compiled afresh and replaced; writes
are atomic (a temporary file renamed), so concurrent processes never read half
a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import tempfile
import warnings
from collections.abc import Callable
from importlib import metadata
from pathlib import Path
from typing import Any

import jax

__all__ = [
    "CACHE_ENV",
    "DEFAULT_CACHE_DIR",
    "cache_directory",
    "describe",
    "directory",
    "enable",
    "fingerprint",
    "load_or_compile",
    "use_cache",
]

# Where the jaxpg commands keep compiled programs unless told otherwise.
CACHE_ENV = "JAXPG_CACHE_DIR"
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "jaxpg" / "xla"

# Libraries whose code ends up in a config-built program (versions in the key).
_PACKAGES = (
    "jax", "jaxlib", "flax", "optax", "numpy", "gymnax", "craftax", "brax",
    "playground", "mujoco", "mujoco-mjx", "jumanji", "navix", "xminigrid", "pgx",
)  # fmt: skip
# JAX options that change what a traced or compiled program computes.
_JAX_OPTIONS = (
    "jax_enable_x64", "jax_numpy_rank_promotion", "jax_default_matmul_precision",
    "jax_threefry_partitionable", "jax_default_prng_impl",
    "jax_disable_most_optimizations", "jax_numpy_dtype_promotion",
    "jax_random_seed_offset", "jax_optimization_level",
    "jax_exec_time_optimization_effort", "jax_memory_fitting_effort",
    "jax_memory_fitting_level",
)  # fmt: skip
_FORMAT = 2  # 2: a sha256 of the program before it
_state: dict[str, Any] = {"dir": None, "fingerprint": None}


def enable(path: str | os.PathLike | None) -> None:
    """Keep executables under ``path`` (``None``: off)."""
    _state["dir"] = None if path is None else Path(path)


def cache_directory(given: str | os.PathLike | None = None) -> Path | None:
    """``given``, else ``$JAXPG_CACHE_DIR``, else :data:`DEFAULT_CACHE_DIR`;
    ``None`` when the one that applies is the empty string (off)."""
    path = os.environ.get(CACHE_ENV, str(DEFAULT_CACHE_DIR)) if given is None else given
    return Path(path) if str(path) else None


def use_cache(path: str | os.PathLike | None) -> Path | None:
    """Keep compiled programs in ``path``: JAX's persistent compilation cache
    there, every program however quickly it compiles (the defaults skip
    those under a second, and a run compiles several), and a config-built
    run's executables in ``path/programs`` (:func:`enable`), loaded without
    tracing. ``None``: keep no executables here (JAX's own cache is left as
    the process set it). Returns ``path``."""
    if path is None:
        enable(None)
        return None
    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    enable(Path(path) / "programs")
    return Path(path)


def directory() -> Path | None:
    """The directory in use, or ``None`` when off."""
    return _state["dir"]


def _source_digest() -> str:
    root = Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    for path in sorted(root.rglob("*.py")):
        h.update(str(path.relative_to(root)).encode())
        h.update(path.read_bytes())
    return h.hexdigest()


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def fingerprint() -> dict[str, Any]:
    """Everything besides the caller's description that a config-built
    program depends on (computed once per process)."""
    if _state["fingerprint"] is None:
        _state["fingerprint"] = {
            "format": _FORMAT,
            "jaxpg_source": _source_digest(),
            "versions": {p: _version(p) for p in _PACKAGES},
            "devices": [
                (d.platform, d.device_kind, d.id, d.process_index)
                for d in jax.devices()
            ],
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
    # Read at every call: a process may change them between programs.
    return {**_state["fingerprint"], "jax_options": jax_options()}


def jax_options() -> dict[str, str]:
    """The current values of the JAX options that change a program (read from
    ``jax.config.values``: most of them are no attributes of ``jax.config``)."""
    return {o: str(jax.config.values.get(o)) for o in _JAX_OPTIONS}


def _path(description: Any) -> Path:
    text = json.dumps([fingerprint(), description], sort_keys=True, default=str)
    return _state["dir"] / f"{hashlib.sha256(text.encode()).hexdigest()}.jaxpg-exe"


def _load(path: Path) -> Any | None:
    from jax.experimental import serialize_executable

    try:
        data = path.read_bytes()
        digest, payload = data[:64].decode(), data[64:]
        if hashlib.sha256(payload).hexdigest() != digest:
            raise ValueError("its checksum does not match (damaged)")
        blob, in_tree, out_tree = pickle.loads(payload)
        return serialize_executable.deserialize_and_load(blob, in_tree, out_tree)
    except FileNotFoundError:
        return None
    except Exception as e:  # a damaged or foreign file: compile afresh
        warnings.warn(
            f"compiled program {path} is unreadable ({e}); compiling again",
            stacklevel=4,
        )
        return None


def _store(path: Path, compiled: Any) -> None:
    from jax.experimental import serialize_executable

    try:
        payload = pickle.dumps(serialize_executable.serialize(compiled))
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
        try:
            with os.fdopen(fd, "wb") as f:
                # A sha256 of the program first: a damaged file is never loaded
                # (a flipped byte could load and crash, or compute wrongly).
                f.write(hashlib.sha256(payload).hexdigest().encode() + payload)
            os.replace(tmp, path)
        finally:
            Path(tmp).unlink(missing_ok=True)
    except Exception:  # not serialisable, or no room: the run goes on
        return


def load_or_compile(
    lower: Callable[[], Any],
    options: dict[str, Any] | None = None,
    description: Any | None = None,
) -> Any:
    """The compiled program: with a ``description``, loaded from
    :func:`directory` when a program with the same description, options and
    :func:`fingerprint` was kept there, else compiled (and kept); without one
    (``None``: the program cannot be described, e.g. a user's own parts) or
    when keeping is off, compiled.

    Args:
      lower: ``() -> jax.stages.Lowered`` of the program, called only when
        the program has to be compiled (a program loaded from disk is never
        traced).
      options: XLA compiler options (part of the key).
      description: JSON-able; must determine the program together with the
        fingerprint (two different programs must never share one);
        :func:`describe` builds one.

    Returns:
      A ``jax.stages.Compiled``.
    """
    if description is None or _state["dir"] is None or jax.process_count() > 1:
        return lower().compile(options)
    path = _path([description, options])
    compiled = _load(path)
    if compiled is None:
        _listen()
        hits = _cache_hits[0]
        compiled = lower().compile(options)
        # An executable that JAX itself loaded from its persistent cache does
        # not serialise whole on the CPU (its code is missing when loaded
        # again): keep only programs XLA compiled here.
        if _cache_hits[0] == hits:
            _store(path, compiled)
    return compiled


def describe(run: Any | None, **what: Any) -> dict[str, Any] | None:
    """The description of one of a run's programs for :func:`load_or_compile`:
    ``{**what, "run": run}``, or ``None`` (not kept) when ``run`` is ``None``."""
    return None if run is None else {**what, "run": run}


_CACHE_HIT = "/jax/compilation_cache/cache_hits"
_cache_hits = [0]


def _count(event: str, **kwargs: Any) -> None:
    if event == _CACHE_HIT:
        _cache_hits[0] += 1


def _listen() -> None:
    if not _state.get("listening"):
        jax.monitoring.register_event_listener(_count)
        _state["listening"] = True
