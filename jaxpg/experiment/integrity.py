r"""Checksums of a run directory's files: recorded on write, verified on read.

``DIR/checksums.json`` holds the size and SHA-256 of every file the run
wrote outside its checkpoints: ``config.json``, each ``metrics/*.npz`` chunk,
and every file of ``params/`` and ``obs_norm/``. (Each checkpoint carries its
own manifest, see :mod:`jaxpg.experiment.checkpoint`.) The writer records a
file after writing it (atomically: the manifest is rewritten by rename), and
readers call :func:`problems` before trusting a file, so a corrupted,
truncated or deleted file is named before any work starts.

A file written but not yet recorded (a crash between the two) is not an
error: the write itself was atomic. A directory without ``checksums.json``
(written by an older jaxpg) is read unverified; :func:`problems` returns
``None`` for it so that callers can warn.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

__all__ = ["CHECKSUMS", "digest", "digests", "forget", "problems", "record"]

CHECKSUMS = "checksums.json"
_FORMAT = 1


def digest(path: str | os.PathLike) -> list:
    """``[size, sha256 hex]`` of one file."""
    h = hashlib.sha256()
    with Path(path).open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return [Path(path).stat().st_size, h.hexdigest()]


def digests(root: str | os.PathLike, skip: tuple[str, ...] = ()) -> dict[str, list]:
    """``{relative path: [size, sha256]}`` of every file under ``root`` (a
    file or a folder), relative to ``root`` for a folder; names in ``skip``
    are left out."""
    root = Path(root)
    if root.is_file():
        return {root.name: digest(root)}
    out = {}
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.name not in skip:
            out[path.relative_to(root).as_posix()] = digest(path)
    return out


# What _read returns for a checksums file it cannot parse: no file can be
# vouched for (problems() reports it; record() starts a new record).
_DAMAGED: dict[str, list] = {}


def _read(directory: Path) -> dict[str, list] | None:
    try:
        text = (directory / CHECKSUMS).read_text()
    except FileNotFoundError:
        return None
    try:
        return dict(json.loads(text)["files"])
    except (ValueError, KeyError, TypeError):
        return _DAMAGED


def _write(directory: Path, files: dict[str, list]) -> None:
    path = directory / CHECKSUMS
    tmp = path.with_name(path.name + ".tmp")
    try:
        tmp.write_text(json.dumps({"format": _FORMAT, "files": files}, indent=0))
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _under(name: str, entry: str) -> bool:
    return name == entry or name.startswith(entry + "/")


def record(directory: str | os.PathLike, *entries: str) -> None:
    """Record the checksums of ``entries`` (files or folders, relative to
    ``directory``), replacing what was recorded for them."""
    directory = Path(directory)
    files = dict(_read(directory) or {})  # a damaged record starts again
    for entry in entries:
        files = {k: v for k, v in files.items() if not _under(k, entry)}
        path = directory / entry
        if path.is_file():
            files[entry] = digest(path)
        elif path.is_dir():
            for rel, value in digests(path).items():
                files[f"{entry}/{rel}"] = value
    _write(directory, files)


def forget(directory: str | os.PathLike, *entries: str) -> None:
    """Drop ``entries`` (files or folders) from the record (their files were
    deleted on purpose)."""
    directory = Path(directory)
    files = _read(directory)
    if files is None or files is _DAMAGED:
        return
    kept = {k: v for k, v in files.items() if not any(_under(k, e) for e in entries)}
    if kept != files:
        _write(directory, kept)


def problems(
    directory: str | os.PathLike, *entries: str
) -> list[tuple[str, str]] | None:
    """What is wrong with the recorded files under ``entries`` (all recorded
    files when none is given): ``(name, message)`` per bad file, ``name``
    relative to ``directory``, ``message`` ``"FILE is missing"`` or ``"FILE
    does not match its checksum ..."``; ``[]`` when all match, ``None`` when
    the directory has no ``checksums.json``."""
    directory = Path(directory)
    files = _read(directory)
    if files is None:
        return None
    if files is _DAMAGED:
        return [
            (
                CHECKSUMS,
                f"{directory / CHECKSUMS} is damaged: the run's files cannot "
                "be verified",
            )
        ]
    out = []
    for name, expected in sorted(files.items()):
        if entries and not any(_under(name, e) for e in entries):
            continue
        path = directory / name
        if not path.is_file():
            out.append((name, f"{path} is missing"))
            continue
        found = digest(path)
        if found != list(expected):
            out.append(
                (
                    name,
                    f"{path} does not match its checksum (size {found[0]} bytes, "
                    f"recorded {expected[0]}): it changed after the run wrote it",
                )
            )
    return out
