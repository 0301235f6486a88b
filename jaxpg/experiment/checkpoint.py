r"""Checkpoints of the whole train state: orbax on disk, verified on restore.

A checkpoint is the ``[S]``-batched :class:`~jaxpg.TrainState` of every seed
(parameters, optimizer state, env states, observations, typed PRNG keys,
hyperparameters, counters, and whatever else the state carries), written with
``orbax.checkpoint`` into ``<directory>/<updates:012d>/``. In a multi-process
run process 0 alone writes them, from NumPy copies (PRNG keys as their raw
data, made keys again on restore). The state is treated
as an opaque pytree: its structure comes from the caller's abstract target.

Writing is atomic in two steps: orbax writes to a temporary directory and
renames it, then jaxpg adds ``jaxpg_manifest.json`` (size and SHA-256 of every
file). A step directory without a manifest (a write cut short) or whose files
do not match it (a truncated or corrupted file) is *invalid*;
:func:`restore_latest` skips it with a warning and restores the newest valid
one, so a crash during a save costs at most one checkpoint interval.

Needs the ``checkpoint`` extra (``orbax-checkpoint``).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import threading
import warnings
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxpg.experiment.integrity import digests
from jaxpg.kernels.keys import data_to_key, is_key, key_to_data

__all__ = [
    "MANIFEST",
    "CheckpointError",
    "list_steps",
    "prune",
    "restore",
    "restore_latest",
    "restore_tree",
    "save",
    "save_tree",
    "verify",
]

MANIFEST = "jaxpg_manifest.json"
_STATE = "state"


class CheckpointError(RuntimeError):
    """No valid checkpoint could be restored, or a save failed.

    Attributes:
      no_space: the failure was a full disk (ENOSPC), however orbax or the
        operating system reported it.
    """

    no_space: bool = False


# How long a failed save waits for orbax's writer threads to wind down.
_CLOSE_TIMEOUT_S = 30.0


def _no_space(error: BaseException) -> bool:
    while error is not None:
        if getattr(error, "errno", None) == errno.ENOSPC:
            return True
        text = str(error)
        if "No space left on device" in text or "os_error_code='28'" in text:
            return True
        error = error.__cause__ or error.__context__
    return False


def _close_bounded(ckptr: Any) -> None:
    """Close ``ckptr`` after a failed save without waiting more than
    ``_CLOSE_TIMEOUT_S`` for its writer threads (a failed write may leave
    them blocked)."""
    closer = threading.Thread(target=ckptr.close, daemon=True)
    closer.start()
    closer.join(_CLOSE_TIMEOUT_S)


def _checkpointer():
    try:
        import orbax.checkpoint as ocp
    except ImportError as e:  # pragma: no cover - the extra is installed in CI
        raise ImportError(
            "checkpoints need orbax-checkpoint: pip install 'jaxpg[checkpoint]'"
        ) from e
    if jax.process_count() > 1:
        # In a multi-process run one process (process 0) writes and reads
        # jaxpg's checkpoints, with arrays it holds whole: no barrier with
        # the other processes, which never call this.
        me = jax.process_index()
        options = ocp.options.MultiprocessingOptions(
            primary_host=me, active_processes={me}
        )
        return ocp.StandardCheckpointer(multiprocessing_options=options)
    return ocp.StandardCheckpointer()


def _step_dir(directory: Path, step: int) -> Path:
    # orbax wants absolute paths.
    return Path(directory).absolute() / f"{step:012d}"


def _file_digests(root: Path) -> dict[str, list]:
    return digests(root, skip=(MANIFEST,))


def _write_tree(path: Path, tree: Any, what: str, after: Any = None) -> None:
    """orbax-write ``tree`` to ``path`` (then ``after()``); on failure remove
    what was written and raise :class:`CheckpointError`."""
    ckptr = _checkpointer()
    try:
        ckptr.save(path, _savable(tree))
        ckptr.wait_until_finished()
        if after is not None:
            after()
    except BaseException as e:
        _close_bounded(ckptr)
        shutil.rmtree(path.parent if after is not None else path, ignore_errors=True)
        if not isinstance(e, Exception):
            raise
        reason = "no space left on device" if _no_space(e) else f"{e}"
        error = CheckpointError(f"saving {what} to {path} failed: {reason}")
        error.no_space = _no_space(e)
        raise error from e
    ckptr.close()


def check_path(path: str | os.PathLike) -> None:
    """Refuse a path with ``[`` or ``]``: orbax reads it as a pattern, so what
    it saves there passes the checksums and never restores.

    Raises:
      ValueError: naming the path.
    """
    if any(c in os.fspath(path) for c in "[]"):
        raise ValueError(
            f"{os.fspath(path)!r} contains '[' or ']', which the checkpoint "
            "library (orbax) cannot restore from; choose another name"
        )


def save(directory: str | os.PathLike, step: int, state: Any) -> Path:
    """Write ``state`` as checkpoint ``step`` (updates done) under ``directory``.

    An existing checkpoint of the same step is replaced.

    Args:
      directory: the checkpoints folder (created if missing).
      step: ``>= 0``, the number of updates the state has done.
      state: a pytree of arrays (typed PRNG keys included).

    Returns:
      The step directory.

    Raises:
      CheckpointError: the write failed (a full disk: ``no_space`` is set);
        nothing of the step is left behind, older checkpoints are untouched.
    """
    check_path(directory)
    path = _step_dir(Path(directory), step)
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)

    def manifest() -> None:
        record = {"step": int(step), "files": _file_digests(path)}
        tmp = path / (MANIFEST + ".tmp")
        tmp.write_text(json.dumps(record))
        tmp.replace(path / MANIFEST)

    _write_tree(path / _STATE, state, f"checkpoint {step}", after=manifest)
    return path


def list_steps(directory: str | os.PathLike) -> list[int]:
    """Steps of the checkpoint directories under ``directory``, ascending
    (valid or not)."""
    root = Path(directory)
    if not root.is_dir():
        return []
    return sorted(
        int(p.name) for p in root.iterdir() if p.is_dir() and p.name.isdigit()
    )


def verify(directory: str | os.PathLike, step: int) -> str | None:
    """``None`` if checkpoint ``step`` is complete and intact, else why not."""
    path = _step_dir(Path(directory), step)
    try:
        manifest = json.loads((path / MANIFEST).read_text())
    except FileNotFoundError:
        return "no manifest (the write did not finish)"
    except (OSError, ValueError) as e:
        return f"unreadable manifest ({e})"
    found = _file_digests(path)
    expected = manifest.get("files", {})
    if set(found) != set(expected):
        missing = sorted(set(expected) - set(found))
        extra = sorted(set(found) - set(expected))
        return f"files differ from the manifest (missing {missing}, extra {extra})"
    bad = [name for name in expected if list(expected[name]) != found[name]]
    if bad:
        return f"size or checksum mismatch in {', '.join(bad)}"
    return None


def restore(directory: str | os.PathLike, step: int, target: Any) -> Any:
    """Read checkpoint ``step`` into the structure of ``target``.

    Args:
      directory: the checkpoints folder.
      step: which checkpoint.
      target: a pytree of arrays or ``jax.ShapeDtypeStruct`` (with the
        shardings to restore onto), e.g. ``jax.eval_shape`` of the init.

    Raises:
      CheckpointError: the checkpoint is invalid (see :func:`verify`) or orbax
        cannot read it.
    """
    problem = verify(directory, step)
    if problem is not None:
        raise CheckpointError(f"checkpoint {step} in {directory} is invalid: {problem}")
    abstract = jax.tree.map(_abstract, target)
    ckptr = _checkpointer()
    try:
        restored = ckptr.restore(_step_dir(Path(directory), step) / _STATE, abstract)
        return _keys_like(abstract, restored)
    except Exception as e:
        raise CheckpointError(
            f"checkpoint {step} in {directory} could not be read: {e}"
        ) from e
    finally:
        ckptr.close()


def restore_latest(directory: str | os.PathLike, target: Any) -> tuple[int, Any]:
    """``(step, state)`` of the newest checkpoint that restores.

    Invalid checkpoints newer than it are skipped with a :class:`UserWarning`
    that names them and says why.

    Raises:
      CheckpointError: there is no valid checkpoint.
    """
    steps = list_steps(directory)
    for step in reversed(steps):
        try:
            return step, restore(directory, step, target)
        except CheckpointError as e:
            warnings.warn(f"{e}; falling back to the previous one", stacklevel=2)
    raise CheckpointError(
        f"no valid checkpoint in {directory} (found steps: {steps or 'none'})"
    )


def prune(directory: str | os.PathLike, keep: int) -> None:
    """Delete all but the newest ``keep`` *valid* checkpoints (and every
    invalid one older than the newest valid)."""
    steps = list_steps(directory)
    valid = [s for s in steps if verify(directory, s) is None]
    kept = set(valid[-keep:]) if keep > 0 else set()
    newest = valid[-1] if valid else -1
    for step in steps:
        if step not in kept and step <= newest:
            shutil.rmtree(_step_dir(Path(directory), step), ignore_errors=True)


def _savable(tree: Any) -> Any:
    """``tree`` as orbax saves it from this process. With several processes
    orbax refuses arrays one process holds whole, so the writing process
    saves them as NumPy arrays (PRNG keys as their raw key data)."""
    if jax.process_count() == 1:
        return tree

    def host(x: Any) -> Any:
        x = key_to_data(x)
        return np.asarray(x) if isinstance(x, jax.Array) else x

    return jax.tree.map(host, tree)


def _keys_like(abstract: Any, tree: Any) -> Any:
    """PRNG keys where the target has them (a checkpoint written by a
    multi-process run holds their raw data)."""

    def wrap(like: Any, x: Any) -> Any:
        if is_key(x) or not is_key(like):
            return x
        key = data_to_key(like, x)
        sharding = getattr(like, "sharding", None)
        return key if sharding is None else jax.device_put(key, sharding)

    return jax.tree.map(wrap, abstract, tree)


def _abstract(x: Any) -> Any:
    if isinstance(x, jax.ShapeDtypeStruct):
        return x
    sharding = getattr(x, "sharding", None)
    return jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=sharding)


def save_tree(path: str | os.PathLike, tree: Any) -> Path:
    """Write a pytree of arrays (e.g. final parameters) to ``path`` with
    orbax, replacing what is there."""
    check_path(path)
    path = Path(path).absolute()
    if path.exists():
        shutil.rmtree(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _write_tree(path, tree, path.name)
    return path


def restore_tree(path: str | os.PathLike, target: Any) -> Any:
    """Read :func:`save_tree`'s pytree into the structure of ``target``."""
    ckptr = _checkpointer()
    try:
        abstract = jax.tree.map(_abstract, target)
        return _keys_like(abstract, ckptr.restore(Path(path).absolute(), abstract))
    finally:
        ckptr.close()
