r"""The run directory of a token-policy run (what ``jaxpg lm`` writes).

A run directory holds ``lm_config.json`` (:data:`RUN_FILE`: the options that
change the run, the jaxpg version, and the versions of the reference and the
reward model the run trains against), the reference (``reference/``), the
reward model, checkpoints and metrics. Here: where a new run goes, the options
of a run to resume (a conflicting option refused, naming it), the reference to
load, and the recorded versions, which ``--resume`` checks: a reference or
reward model that changed since the run started is refused, naming both
versions. Every failure is a ``ValueError`` naming the option and the folder;
nothing is changed on disk before every check has passed.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from jaxpg.experiment import lock
from jaxpg.experiment.rundir import is_empty
from jaxpg.sequence import sft

__all__ = [
    "REFERENCE_FILES",
    "RUN_FILE",
    "check_reference",
    "check_saved",
    "clear",
    "load_reference",
    "new_out",
    "record_version",
    "resume_options",
    "write_run_file",
]

RUN_FILE = "lm_config.json"
# What jaxpg.sequence.sft.save_reference writes.
REFERENCE_FILES = ("reference.json", "reference.msgpack")


def _flag(name: str) -> str:
    return f"--{name.replace('_', '-')}"


def resume_options(
    out: str | Path,
    given: dict[str, Any],
    defaults: dict[str, Any],
    explicit: set[str] | None = None,
) -> dict[str, Any]:
    """The options recorded by the run in ``out``; an option given on the
    command line (named in ``explicit``; without it, one not at its default)
    must agree with the run's, even when it is given at its default.

    Args:
      out: the run directory (``--resume DIR``).
      given: the command line's options that a run records.
      defaults: every option's default.
      explicit: the options that appeared on the command line.

    Raises:
      ValueError: ``out`` holds no run, or options differ (each named with
        both values).
    """
    out = Path(out)
    try:
        stored = json.loads((out / RUN_FILE).read_text())["options"]
    except (OSError, ValueError, KeyError) as e:
        raise ValueError(
            f"--resume {out}: not a jaxpg lm run directory ({e})"
        ) from None
    differ = [
        f"{_flag(k)}: run has {stored[k]!r}, command line {v!r}"
        for k, v in given.items()
        if k in stored
        and (k in explicit if explicit is not None else v != defaults.get(k))
        and v != stored[k]
    ]
    if differ:
        raise ValueError(f"--resume {out}: options differ: " + "; ".join(differ))
    return stored


def new_out(out: str | Path | None, task: str, overwrite: bool) -> Path:
    """The run directory of a new run: ``out``, or (``None``) ``runs/lm-TASK``
    or the first free ``-2``, ``-3``, ... Nothing is deleted here.

    Raises:
      ValueError: ``out`` holds a run and not ``overwrite``.
    """
    if out is None:
        base = Path("runs") / f"lm-{task}"
        path, n = base, 1
        while path.exists():
            n += 1
            path = base.with_name(f"{base.name}-{n}")
        return path
    path = Path(out)
    if (path / RUN_FILE).exists() and not overwrite:
        raise ValueError(
            f"--out {path} holds a jaxpg lm run: continue it with --resume "
            f"{path}, or replace it with --overwrite"
        )
    if path.is_dir() and not (path / RUN_FILE).exists() and not is_empty(path):
        raise ValueError(
            f"--out {path} is not empty and holds no jaxpg lm run (no "
            f"{RUN_FILE}): choose a new or empty folder"
        )
    return path


def clear(out: Path) -> None:
    """Delete everything in ``out`` but its lock file (held by this process:
    deleting it would let another process lock a new file of the same name)."""
    for entry in out.iterdir():
        if entry.name == lock.LOCK:
            continue
        if entry.is_dir() and not entry.is_symlink():
            shutil.rmtree(entry)
        else:
            entry.unlink()


def write_run_file(out: Path, options: dict[str, Any], version: str) -> None:
    """Start the run's record: its options and the jaxpg ``version``."""
    (out / RUN_FILE).write_text(
        json.dumps({"options": options, "jaxpg": version}) + "\n"
    )


def check_saved(
    path: str | Path, option: str, what: str, files: tuple[str, ...], writer: str
) -> Path:
    """The folder given as ``option``, which must hold a saved ``what`` (its
    ``files``; ``writer`` says what writes one).

    Raises:
      ValueError: no such folder, or files missing (naming them).
    """
    directory = Path(path)
    if not directory.is_dir():
        raise ValueError(f"{option} {directory}: no such folder")
    missing = [n for n in files if not (directory / n).is_file()]
    if missing:
        raise ValueError(
            f"{option} {directory} is not a saved {what}: {', '.join(missing)} "
            f"missing ({writer})"
        )
    return directory


def check_reference(path: str | Path) -> None:
    """A ``--reference`` folder must hold a saved reference (ValueError)."""
    check_saved(
        path, "--reference", "reference", REFERENCE_FILES,
        "jaxpg lm writes one to OUT/reference",
    )  # fmt: skip


def load_reference(
    reference: str | None, out: Path, resuming: bool, model_cfg: Any
) -> tuple[Any, str] | None:
    """``(params, version)`` of the reference to load (``reference``, or the
    run's own on resume), or ``None`` when it is to be trained.

    Raises:
      ValueError: it cannot be loaded, or a given ``reference``'s model is
        not ``model_cfg`` (naming the option and the folder).
    """
    if reference:
        option, directory = "--reference", Path(reference)
    elif resuming:
        option, directory = "--resume", out / "reference"
    else:
        return None
    try:
        params, ref_cfg, info = sft.load_reference(directory)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{option} {directory}: cannot load the reference ({e})"
        ) from None
    if reference and ref_cfg != model_cfg:
        raise ValueError(
            f"reference model {ref_cfg} differs from the requested {model_cfg}"
        )
    return params, info["version"]


def record_version(
    out: Path, what: str, version: str, directory: Path, resuming: bool
) -> None:
    """Check and record the version of the ``what`` (``"reference"``,
    ``"reward model"``) the run in ``out`` trains against, as
    ``"<what>_version"`` in :data:`RUN_FILE`: the first time it is recorded;
    on resume it must be the recorded one.

    Args:
      out: the run directory.
      what: what the version is of.
      version: its version (a hash of its parameters).
      directory: where it was loaded from or saved to (for the message).
      resuming: the run is being resumed.

    Raises:
      ValueError: resuming, and ``version`` is not the recorded one (naming
        the folder and both versions; nothing is written).
    """
    key = what.replace(" ", "_") + "_version"
    run_file = out / RUN_FILE
    stored = json.loads(run_file.read_text())
    recorded = stored.get(key)
    if recorded == version:
        return
    if resuming and recorded is not None and recorded != version:
        raise ValueError(
            f"--resume {out}: the {what} in {directory} has version {version}, "
            f"but the run was trained against version {recorded} (recorded in "
            f"{run_file}): restore that {what}, or start a new run"
        )
    stored[key] = version
    run_file.write_text(json.dumps(stored) + "\n")
