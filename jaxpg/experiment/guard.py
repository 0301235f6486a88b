r"""Opening, resuming and saving a run directory without losing anything.

What :func:`jaxpg.drivers.runner.run` and ``jaxpg train`` rely on, before and
while they train into a run directory (:mod:`jaxpg.experiment.rundir`):

* :func:`prepare_run_dir` takes the directory's lock
  (:mod:`jaxpg.experiment.lock`: a live run is never overwritten or resumed
  twice), then checks it *before anything is compiled*: a file, an unwritable
  folder, a folder of something else, a run that is neither resumed nor
  overwritten, and, for a resume, a damaged ``config.json`` or metrics chunk
  (:mod:`jaxpg.experiment.integrity`) or checkpoints of which none is intact.
* :func:`restore` restores the newest checkpoint that restores; when none
  does, it refuses (nothing deleted) unless ``start_over`` is given.
* :func:`save_checkpoint` turns a failed save (a full disk) into a
  :class:`SaveFailedError` that names the previous good checkpoint; the
  checkpoints already there are untouched.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import warnings
from pathlib import Path
from typing import Any

from jaxpg.experiment import integrity, lock, rundir

__all__ = [
    "RUN_ENTRIES",
    "SaveFailedError",
    "newest_intact_checkpoint",
    "prepare_run_dir",
    "restore",
    "save_checkpoint",
    "write_progress",
]

# Entries of a run directory that ``overwrite=True`` removes (nothing else).
RUN_ENTRIES = (
    rundir.CONFIG,
    rundir.VERSIONS,
    rundir.PROGRESS,
    rundir.CHUNKS,
    integrity.CHECKSUMS,
    rundir.METRICS,
    rundir.CHECKPOINTS,
    rundir.PARAMS,
    rundir.OBS_NORM,
    rundir.SUMMARY,
    "eval.json",
    "learning_curve.png",
    "tensorboard",
)

# What a finished run wrote beside its history: starting over removes them.
_OUTPUTS = RUN_ENTRIES[RUN_ENTRIES.index(rundir.PARAMS) :]

_START_OVER = (
    "nothing was deleted; to start the run again from update 0 (deleting its "
    "metrics and checkpoints) resume with start_over=True (jaxpg train --resume "
    "DIR --start-over)"
)


class SaveFailedError(rundir.RunDirError):
    """A checkpoint or the final parameters could not be written.

    Attributes:
      no_space: the disk is full.
      previous: the update count of the newest intact checkpoint (``None``:
        none).
    """

    def __init__(self, message: str, no_space: bool, previous: int | None):
        super().__init__(message)
        self.no_space = no_space
        self.previous = previous


def newest_intact_checkpoint(out: Path) -> int | None:
    """The newest checkpoint of ``out`` whose files match their manifest."""
    from jaxpg.experiment.checkpoint import list_steps, verify

    ckpt = out / rundir.CHECKPOINTS
    for step in reversed(list_steps(ckpt)):
        if verify(ckpt, step) is None:
            return step
    return None


def _check_resumable(out: Path, start_over: bool) -> None:
    """Refuse a resume that would lose or misread the run's history, before
    anything is compiled."""
    from jaxpg.experiment.checkpoint import list_steps

    rundir.load_run(out)  # config.json readable and matching its checksum
    if start_over:
        # Starting over deletes what does not restore; what a checkpoint
        # continues from must still be whole.
        newest = newest_intact_checkpoint(out)
        if newest is not None:
            rundir.check_metrics(out, upto=newest)
        return
    if integrity.problems(out) is None:
        warnings.warn(
            f"{out} has no {integrity.CHECKSUMS} (written by an older jaxpg): "
            "its files are not verified",
            stacklevel=4,
        )
    steps = list_steps(out / rundir.CHECKPOINTS)
    newest = newest_intact_checkpoint(out)
    if steps and newest is None:
        raise rundir.RunDirError(
            f"cannot resume {out}: none of its checkpoints {steps} is intact; "
            + _START_OVER
        )
    if not steps and rundir.metric_chunks(out):
        raise rundir.RunDirError(
            f"cannot resume {out}: it has metrics but no checkpoint to continue "
            "from; " + _START_OVER
        )
    # The metrics that the resumed run keeps must be whole.
    rundir.check_metrics(out, upto=newest or 0)


def _is_jaxpg_config(path: Path) -> bool:
    """Whether ``path`` is a ``config.json`` that jaxpg wrote (its record's
    keys), so that ``overwrite`` never deletes another program's folder."""
    try:
        record = rundir.read_json(path)
    except (OSError, ValueError):
        return False
    return isinstance(record, dict) and {"config", "num_seeds", "custom"} <= set(record)


def prepare_run_dir(
    out: Path, resume: bool, overwrite: bool, start_over: bool = False
) -> tuple[bool, int | None]:
    """Check (and with ``overwrite``, clear) a run directory before any
    training; ``(resuming, the run's chunk_updates)``.

    The caller should hold the directory's lock for the whole run
    (:func:`jaxpg.experiment.lock.hold`); it is taken here too, so that
    nothing is deleted under a live run.

    Raises:
      jaxpg.experiment.rundir.RunDirError: ``out`` is a file, is not
        writable, is in use by another process, holds a run while neither
        ``resume`` nor ``overwrite`` is set, is a non-empty folder that is
        not a run directory, or (resuming) holds a damaged file or no
        checkpoint that can be restored while ``start_over`` is not set.
    """
    if out.exists() and not out.is_dir():
        raise rundir.RunDirError(f"checkpoint_dir={str(out)!r} is a file, not a folder")
    from jaxpg.experiment.checkpoint import check_path

    try:
        check_path(out)  # before anything is trained
    except ValueError as e:
        raise rundir.RunDirError(f"checkpoint_dir={e}") from None
    with lock.hold(out):
        has_run = (out / rundir.CONFIG).is_file()
        if has_run and not _is_jaxpg_config(out / rundir.CONFIG):
            raise rundir.RunDirError(
                f"{out} holds a {rundir.CONFIG} that is not a jaxpg run's; "
                "choose a new or empty folder (nothing was deleted)"
            )
        if not has_run and not rundir.is_empty(out):
            raise rundir.RunDirError(
                f"{out} is not empty and holds no jaxpg run (no {rundir.CONFIG}); "
                "choose a new or empty folder"
            )
        if has_run and not (resume or overwrite):
            raise rundir.RunDirError(
                f"{out} already holds a run: resume it (resume=True, jaxpg train "
                "--resume) or replace it (overwrite=True, --overwrite)"
            )
        try:
            probe = out / ".jaxpg-write-test"
            probe.write_text("")
            probe.unlink()
        except OSError as e:
            raise rundir.RunDirError(
                f"cannot write to {out}: {e.strerror or e}"
            ) from None
        if has_run and resume:
            _check_resumable(out, start_over)
            return True, rundir.read_json(out / rundir.CONFIG).get("chunk_updates")
        if has_run:
            _remove(out, RUN_ENTRIES)
    return False, None


def _remove(out: Path, names: tuple[str, ...]) -> None:
    """Delete the entries ``names`` (files or folders) of ``out``."""
    for name in names:
        path = out / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def restore(
    out: Path, target: Any, start_over: bool, stacklevel: int = 3
) -> tuple[int, Any]:
    """``(step, state)`` of the newest checkpoint of ``out`` that restores
    into ``target``, or ``(0, None)`` when there is none and nothing is lost
    (or none restores and ``start_over``: then the run's metrics and
    checkpoints are deleted).

    Raises:
      jaxpg.experiment.rundir.RunDirError: checkpoints (or metrics) exist but
        none restores, and not ``start_over``; nothing is deleted.
    """
    from jaxpg.experiment.checkpoint import CheckpointError, list_steps, restore_latest

    ckpt_dir = out / rundir.CHECKPOINTS
    skipped: list = []
    if list_steps(ckpt_dir):
        try:
            with warnings.catch_warnings(record=True) as skipped:
                warnings.simplefilter("always")
                step, state = restore_latest(ckpt_dir, target)
        except CheckpointError as e:
            if not start_over:
                why = "; ".join(str(w.message) for w in skipped)
                raise rundir.RunDirError(
                    f"cannot resume {out}: {e} ({why}); " + _START_OVER
                ) from None
        else:
            for w in skipped:
                warnings.warn(str(w.message), stacklevel=stacklevel)
            return step, state
    elif rundir.metric_chunks(out) and not start_over:
        raise rundir.RunDirError(
            f"cannot resume {out}: it has metrics but no checkpoint; " + _START_OVER
        )
    # Nothing to continue from: start again (with start_over, deleting the
    # checkpoints that did not restore, every metric, and the outputs of the
    # run abandoned, which the new one must not be read as).
    shutil.rmtree(ckpt_dir, ignore_errors=True)
    _remove(out, _OUTPUTS)
    integrity.forget(out, *_OUTPUTS)
    warnings.warn(f"{out}: starting from update 0", stacklevel=stacklevel)
    rundir.drop_metrics_from(out, 0)
    return 0, None


def write_progress(
    out: Path, done: int, total: int, status: str, checkpoint: int | None
) -> None:
    """Write ``progress.json``: updates done / total, status, latest
    checkpoint."""
    rundir.write_json(
        out / rundir.PROGRESS,
        {
            "updates_done": int(done),
            "num_updates": int(total),
            "status": status,
            "latest_checkpoint": checkpoint,
        },
    )


def save_checkpoint(
    out: Path,
    step: int,
    state: Any,
    keep: int,
    done: int,
    total: int,
    command: str = "train",
) -> None:
    """Save checkpoint ``step`` of ``out``, prune to ``keep`` and record it
    in ``progress.json``. ``command``: the ``jaxpg`` subcommand that resumes
    the run (named in the error).

    Raises:
      SaveFailedError: the save failed; the message names the previous good
        checkpoint and how to resume; ``progress.json`` says ``failed``.
    """
    from jaxpg.experiment.checkpoint import CheckpointError, prune, save

    ckpt_dir = out / rundir.CHECKPOINTS
    try:
        save(ckpt_dir, step, state)
    except CheckpointError as e:
        raise _failed(out, e, done, total, command) from None
    prune(ckpt_dir, keep)
    write_progress(out, done, total, "running", step)


def save_final(out: Path, trees: dict[str, Any], done: int, total: int) -> None:
    """Save the final ``{entry: tree}`` (``params``, ``obs_norm``) with
    orbax and record their checksums.

    Raises:
      SaveFailedError: as :func:`save_checkpoint`.
    """
    from jaxpg.experiment.checkpoint import CheckpointError, save_tree

    try:
        for entry, tree in trees.items():
            save_tree(out / entry, tree)
    except CheckpointError as e:
        raise _failed(out, e, done, total) from None
    integrity.record(out, *trees)


def _failed(
    out: Path, error: Any, done: int, total: int, command: str = "train"
) -> SaveFailedError:
    previous = newest_intact_checkpoint(out)
    if previous is None:
        where = "there is no earlier checkpoint: the run must start again"
    else:
        folder = out / rundir.CHECKPOINTS / f"{previous:012d}"
        resume = f"jaxpg {command} --resume {shlex.quote(str(out))}"
        where = (
            f"the previous good checkpoint is update {previous} ({folder}); "
            f"free space, then resume with: {resume}"
            if error.no_space
            else f"the previous good checkpoint is update {previous} ({folder}); "
            f"resume with: {resume}"
        )
    with contextlib.suppress(OSError):  # the disk may be full
        write_progress(out, done, total, "failed", previous)
    return SaveFailedError(f"{error}; {where}", error.no_space, previous)
