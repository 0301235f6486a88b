r"""The ``jaxpg`` command: train, evaluate and compare multi-seed runs.

Subcommands (argparse subparsers, one module-level function each; other
modules add theirs through a ``register(subparsers)`` function, see
:data:`SUBCOMMANDS`):

* ``jaxpg train`` (:mod:`jaxpg.cli.train`; its options in
  :mod:`jaxpg.cli.train_options`) starts from the tuned preset of ``(--env,
  --algo)`` when one exists (else :class:`~jaxpg.config.Config`'s defaults),
  applies the options given on the command line, trains all seeds with
  :func:`jaxpg.drivers.runner.run` into a run directory
  (:mod:`jaxpg.experiment.rundir`: config, versions, streamed metrics,
  checkpoints, final parameters), evaluates every seed's final policy, prints
  a summary and writes ``summary.json`` and ``learning_curve.png``. Ctrl-C /
  SIGTERM checkpoint and exit (status 130 / 143) with the command that
  resumes: ``jaxpg train --resume DIR``. With ``--coordinator``/
  ``--num-processes``/``--process-id`` (one process per host) the seeds are
  split over the devices of all processes and process 0 writes the run
  directory.
* ``jaxpg eval DIR`` and ``jaxpg compare DIR [DIR ...]``: see
  :mod:`jaxpg.cli.compare`.
* ``jaxpg sweep`` (:mod:`jaxpg.cli.sweep`) and ``jaxpg lm``
  (:mod:`jaxpg.cli.lm`).

Needs the ``cli`` extra (matplotlib, tqdm) and ``checkpoint`` (orbax).
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import jaxpg
from jaxpg.cli.options import PlainHelpFormatter, parse_setting
from jaxpg.cli.train_options import config_from_args

__all__ = ["SUBCOMMANDS", "build_parser", "config_from_args", "main", "parse_setting"]


def _register_builtin(sub: Any) -> None:
    from jaxpg.cli import compare as cli_compare
    from jaxpg.cli import train as train_cli

    train_cli.register(sub)
    cli_compare.register(sub)


def _register_sweep(sub: Any) -> None:
    from jaxpg.cli import sweep as sweep_cli

    sweep_cli.register(sub)


def _register_lm(sub: Any) -> None:
    from jaxpg.cli import lm as sequence_cli

    sequence_cli.register(sub)


# Functions that add subcommands: each takes argparse's subparsers object and
# calls ``add_parser(...).set_defaults(func=command)`` with
# ``command(args) -> exit status``.
SUBCOMMANDS: list[Callable[[Any], None]] = [
    _register_builtin,
    _register_sweep,
    _register_lm,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxpg`` argument parser (subcommands from :data:`SUBCOMMANDS`)."""
    parser = argparse.ArgumentParser(
        formatter_class=PlainHelpFormatter,
        prog="jaxpg",
        description="Policy-gradient RL in JAX: many seeds in one compiled program.",
    )
    parser.add_argument("--version", action="version", version=jaxpg.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxpg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"jaxpg {args.command}: interrupted", file=sys.stderr)
        code = 130
    except OSError as e:  # a full or read-only disk, a vanished folder
        where = f" ({e.filename})" if e.filename else ""
        print(f"jaxpg {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        code = 1
    if argv is None:
        _exit_if_stuck(code)
    return code


# How long the command waits, when it is done, for threads a library left
# running (orbax's writers after a failed save) before it exits anyway.
EXIT_GRACE_S = 10.0


def _exit_if_stuck(code: int) -> None:
    """As the ``jaxpg`` command (not when called from Python): exit with
    ``code`` even when a library left a non-daemon thread blocked (Python
    would wait for it forever), after ``EXIT_GRACE_S`` seconds."""
    deadline = time.monotonic() + EXIT_GRACE_S
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            print(
                f"jaxpg: thread {thread.name!r} did not finish; exiting anyway",
                file=sys.stderr,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


if __name__ == "__main__":
    sys.exit(main())
