r"""Run directories: a multi-seed run on disk, self-describing and resumable.

Layout of ``DIR`` (written by :func:`jaxpg.drivers.runner.run` with
``checkpoint_dir=DIR``; ``jaxpg train --out DIR`` adds the rest)::

    config.json        the Config (every field), seeds, chunking: enough to
                       rebuild the run (see load_run)
    versions.json      jaxpg, Python, jax, jaxlib, flax, optax, gymnax, orbax,
                       numpy versions and the device
    progress.json      updates done / total, status (running, interrupted,
                       finished), latest checkpoint
    checksums.json     size and SHA-256 of config.json, every metrics chunk,
                       params/ and obs_norm/ (jaxpg.experiment.integrity)
    .jaxpg-lock        the lock a live run holds (jaxpg.experiment.lock)
    metrics/           one .npz per chunk, {name: [S, n]} for updates
                       [start, start + n): streamed, so a crash keeps them
    checkpoints/       orbax checkpoints of the whole [S] train state
                       (jaxpg.experiment.checkpoint), one folder per update count
    params/            orbax: the final [S] policy parameters
    summary.json       (CLI) evaluation per seed, IQM, seeds solved, timings
    eval.json          (jaxpg eval) a later evaluation
    learning_curve.png (CLI)
    tensorboard/       (--tensorboard) one event-file run per seed

Metrics conventions: ``episode_return`` is NaN where no episode ended in that
update; ``num_episodes`` tells the two NaNs apart (0: none ended; > 0 and a
NaN return: the return itself was NaN). ``nonfinite`` is the number of
rejected (non-finite) gradient steps in the update: 0/1 for REINFORCE and A2C,
0 to ``num_epochs * num_minibatches`` for PPO.

Shapes: ``S`` seeds, ``U`` updates.
"""

from __future__ import annotations

import dataclasses
import datetime
import importlib.metadata
import json
import math
import os
import platform
import sys
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from jaxpg.config import Config
from jaxpg.experiment import integrity

__all__ = [
    "CONFIG",
    "RunDirError",
    "config_from_dict",
    "config_to_dict",
    "diff_run",
    "load_run",
    "read_metrics",
    "read_progress",
    "same_part",
    "versions",
    "write_json",
    "write_metrics_chunk",
]

CONFIG = "config.json"
VERSIONS = "versions.json"
PROGRESS = "progress.json"
METRICS = "metrics"
CHECKPOINTS = "checkpoints"
PARAMS = "params"
# The folder of the observation statistics (cfg.normalise_obs): a name in the
# run directory's layout, kept apart from jaxpg.networks.OBS_NORM (the
# parameters' key) so that renaming that key would not move old runs' files.
OBS_NORM = "obs_norm"
SUMMARY = "summary.json"
CHUNKS = "chunks.json"  # the chunk plan (jaxpg.drivers.chunking), timed runs
FORMAT_VERSION = 1

_PACKAGES = (
    "jaxpg",
    "jax",
    "jaxlib",
    "flax",
    "optax",
    "gymnax",
    "orbax-checkpoint",
    "numpy",
)


class RunDirError(ValueError):
    """The directory is not a run directory, or does not match the run."""


def write_json(path: str | os.PathLike, record: Any) -> None:
    """Write strict JSON atomically (temporary file, then rename); a failed
    write (a full disk) leaves neither the file nor the temporary one."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    text = json.dumps(record, indent=1, allow_nan=False) + "\n"
    try:
        tmp.write_text(text)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def strict_json(obj: Any) -> Any:
    """``obj`` with arrays as nested lists and NaN and inf as ``None``, so
    that ``json.dumps(..., allow_nan=False)`` writes strict JSON."""
    if isinstance(obj, dict):
        return {k: strict_json(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple):
        return [strict_json(v) for v in obj]
    if hasattr(obj, "__array__"):  # NumPy and JAX arrays and scalars
        return strict_json(np.asarray(obj).tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def device_name() -> str:
    """``"platform: count x kind"`` of the devices JAX uses."""
    import jax

    devices = jax.devices()
    return f"{devices[0].platform}: {len(devices)} x {devices[0].device_kind}"


def read_json(path: str | os.PathLike) -> Any:
    return json.loads(Path(path).read_text())


def versions() -> dict[str, str]:
    """Versions of Python, jaxpg and its main dependencies, and the device."""
    out = {"python": sys.version.split()[0], "platform": platform.platform()}
    for name in _PACKAGES:
        try:
            out[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            out[name] = "not installed"
    out["device"] = device_name()
    return out


def config_to_dict(cfg: Config) -> dict[str, Any]:
    """Every Config field as JSON values (tuples become lists)."""
    return json.loads(json.dumps(dataclasses.asdict(cfg)))


def config_from_dict(fields: dict[str, Any]) -> Config:
    """The Config of :func:`config_to_dict` (lists become tuples again).

    Raises:
      RunDirError: a field this jaxpg's Config does not know.
    """
    known = {f.name for f in dataclasses.fields(Config)}
    unknown = sorted(set(fields) - known)
    if unknown:
        raise RunDirError(
            f"config.json has fields this jaxpg does not know: {', '.join(unknown)}"
        )
    return Config(
        **{k: tuple(v) if isinstance(v, list) else v for k, v in fields.items()}
    )


def run_record(
    cfg: Config,
    num_seeds: int,
    first_seed: int,
    chunk_updates: int,
    custom: dict[str, str | None],
    chunk_seconds: float | None = None,
) -> dict[str, Any]:
    """What ``config.json`` holds (``chunk_updates``: the chunk length, or
    with ``chunk_seconds`` the longest chunk)."""
    return {
        "format": FORMAT_VERSION,
        "config": config_to_dict(cfg),
        "num_seeds": num_seeds,
        "first_seed": first_seed,
        "seeds": f"jax.random.key(i) for i in [{first_seed}, {first_seed + num_seeds})",
        "num_updates": cfg.num_updates,
        "chunk_updates": chunk_updates,
        "chunk_seconds": chunk_seconds,
        # Parts passed as Python objects cannot be rebuilt from JSON; their
        # repr says what the run used (resume must pass the same ones).
        "custom": custom,
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
    }


def load_run(directory: str | os.PathLike) -> tuple[Config, dict[str, Any]]:
    """``(config, record)`` of the run in ``directory`` (``config.json``).

    Raises:
      RunDirError: ``directory`` is a file, holds no readable ``config.json``,
        or one that is malformed or differs from its recorded checksum.
    """
    if Path(directory).is_file():
        raise RunDirError(f"{directory} is a file, not a jaxpg run directory")
    path = Path(directory) / CONFIG
    try:
        record = read_json(path)
    except FileNotFoundError:
        raise RunDirError(
            f"{directory} is not a jaxpg run directory (no {CONFIG})"
        ) from None
    except ValueError as e:
        raise RunDirError(f"{path} is not valid JSON: {e}") from None
    except OSError as e:
        raise RunDirError(f"cannot read {path}: {e.strerror or e}") from None
    bad = integrity.problems(directory, CONFIG)
    if bad:
        raise RunDirError(bad[0][1])
    if not isinstance(record, dict):
        raise RunDirError(f"{path} is not a jaxpg run record (not a JSON object)")
    missing = [k for k in ("config", "num_seeds", "first_seed") if k not in record]
    if missing or not isinstance(record["config"], dict):
        raise RunDirError(
            f"{path} is not a jaxpg run record (it lacks "
            f"{', '.join(missing) or 'a config object'})"
        )
    try:
        cfg = config_from_dict(record["config"])
    except TypeError as e:
        raise RunDirError(f"{path}: malformed config: {e}") from None
    except ValueError as e:
        raise RunDirError(f"{path}: invalid config: {e}") from None
    return cfg, record


def diff_run(stored: dict[str, Any], current: dict[str, Any]) -> list[str]:
    """The differing entries of two ``config.json`` records, as
    ``"name: stored -> current"`` (Config fields by name, plus ``num_seeds``,
    ``first_seed``, ``chunk_updates``, ``chunk_seconds`` and custom parts).
    A Config field that the stored record lacks (added to jaxpg since) counts
    as its default."""
    out = []
    # A field added to Config after the run was stored had its default then.
    old = {**config_to_dict(Config()), **stored["config"]}
    new = current["config"]
    for name in sorted(set(old) | set(new)):
        if old.get(name, "<absent>") != new.get(name, "<absent>"):
            out.append(f"{name}: {old.get(name, '<absent>')!r} -> "
                       f"{new.get(name, '<absent>')!r}")  # fmt: skip
    names = ("num_seeds", "first_seed", "chunk_updates", "chunk_seconds")
    for name in names:
        if stored.get(name) != current.get(name):
            out.append(f"{name}: {stored.get(name)!r} -> {current.get(name)!r}")
    old_parts, new_parts = stored.get("custom") or {}, current.get("custom") or {}
    for name in sorted(set(old_parts) | set(new_parts)):
        was, now = old_parts.get(name), new_parts.get(name)
        if not same_part(was, now):
            out.append(f"custom: {name}: {was!r} -> {now!r}")
    return out


def same_part(stored: str | None, current: str | None) -> bool:
    """Whether a recorded part's description matches the current one.

    Records written before optimizers carried a digest of their
    hyperparameters (``TYPE#DIGEST``) hold the type alone, and classes were
    recorded as ``builtins.type``; those still match a part of that type."""
    if stored == current:
        return True
    if stored is None or current is None:
        return False
    if "#" not in stored and current.split("#")[0] == stored:
        return True
    return stored == "builtins.type" and ":" in current


def write_metrics_chunk(
    directory: str | os.PathLike, start: int, metrics: dict[str, np.ndarray]
) -> Path:
    """Write the ``[S, n]`` metrics of updates ``[start, start + n)`` as one
    ``.npz`` (atomically)."""
    n = next(iter(metrics.values())).shape[1]
    folder = Path(directory) / METRICS
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{start:012d}-{start + n:012d}.npz"
    tmp = folder / (path.name + ".tmp")
    try:
        with tmp.open("wb") as f:
            np.savez(f, **metrics)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    integrity.record(directory, f"{METRICS}/{path.name}")
    return path


def metric_chunks(directory: str | os.PathLike) -> list[tuple[int, int, Path]]:
    """``(start, end, path)`` of the metric files, by start."""
    folder = Path(directory) / METRICS
    if not folder.is_dir():
        return []
    out = []
    for path in folder.glob("*.npz"):
        start, _, end = path.stem.partition("-")
        if start.isdigit() and end.isdigit():
            out.append((int(start), int(end), path))
    return sorted(out)


def drop_metrics_from(directory: str | os.PathLike, update: int) -> None:
    """Delete metric files of chunks that end after ``update`` (a resume from
    the checkpoint at ``update`` writes them again)."""
    for _, end, path in metric_chunks(directory):
        if end > update:
            path.unlink()
            integrity.forget(directory, f"{METRICS}/{path.name}")


def read_metrics(
    directory: str | os.PathLike, names: tuple[str, ...] | None = None
) -> dict[str, np.ndarray]:
    """The streamed metrics ``{name: [S, u]}`` of the contiguous updates
    ``[0, u)`` on disk (all metrics, or only ``names``).

    Raises:
      RunDirError: no metrics were written, a name is unknown, or a chunk
        is missing, unreadable or differs from its checksum (named).
    """
    check_metrics(directory)
    parts: list[dict[str, np.ndarray]] = []
    for _, _, path in metric_chunks(directory):
        try:
            with np.load(path) as data:
                keys = data.files if names is None else names
                missing = [k for k in keys if k not in data.files]
                if missing:
                    raise RunDirError(
                        f"unknown metric(s) {missing}; the run has {sorted(data.files)}"
                    )
                parts.append({k: data[k] for k in keys})
        except (OSError, ValueError, zipfile.BadZipFile, EOFError) as e:
            if isinstance(e, RunDirError):
                raise
            raise RunDirError(f"metrics file {path} is unreadable: {e}") from None
    if not parts:
        raise RunDirError(f"{directory} holds no metrics")
    return {k: np.concatenate([p[k] for p in parts], axis=1) for k in parts[0]}


def check_metrics(directory: str | os.PathLike, upto: int | None = None) -> None:
    """Check the metric chunks of updates ``[0, upto)`` (all when ``None``)
    before reading them: contiguous from update 0, each readable size and
    SHA-256 as recorded in ``checksums.json`` (when the run has one).

    Raises:
      RunDirError: naming the first missing or damaged file.
    """
    expected = 0
    for start, end, _ in metric_chunks(directory):
        if upto is not None and start >= upto:
            break
        if start != expected:
            raise RunDirError(
                f"metrics of updates [{expected}, {start}) are missing from "
                f"{Path(directory) / METRICS} (a chunk file was deleted); the "
                f"run's history is incomplete"
            )
        expected = end
    for name, problem in integrity.problems(directory, METRICS) or []:
        start = Path(name).name.partition("-")[0]
        if upto is None or (start.isdigit() and int(start) < upto):
            raise RunDirError(f"metrics file {problem}")


def is_empty(directory: str | os.PathLike) -> bool:
    """Whether ``directory`` holds nothing but jaxpg's own leftovers (its
    lock, a temporary file of an interrupted write)."""
    return not any(
        p.name != ".jaxpg-lock" and not p.name.endswith(".tmp")
        for p in Path(directory).iterdir()
    )


def read_progress(directory: str | os.PathLike) -> dict[str, Any] | None:
    """``progress.json`` of the run, or ``None``."""
    try:
        return read_json(Path(directory) / PROGRESS)
    except FileNotFoundError:
        return None
