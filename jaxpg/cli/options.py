r"""What the ``jaxpg`` commands share: ``--set FIELD=VALUE`` parsing, the
multi-host options, strict JSON, the machine's name and output folders checked
before any work. No computation."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import shlex
import signal
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxpg.config import Config
from jaxpg.drivers import executables, parallel

# Shared with the library (one definition); the commands import them from here.
from jaxpg.experiment.rundir import device_name as device_name
from jaxpg.experiment.rundir import strict_json as strict_json

_FIELDS = {f.name: f for f in dataclasses.fields(Config)}

# Sphinx markup of the docstrings the help texts come from: ":func:`x`",
# "``x``", "`x`" and "~" in a role target.
_ROLE = re.compile(r":(?:func|mod|class|data|attr|meth|math|obj):`~?([^`]*)`")
_LITERAL = re.compile(r"``([^`]*)``|`([^`]*)`")


# A cross-reference to jaxpg's own code, "(:mod:`jaxpg.x`)" or "; see
# :mod:`jaxpg.x`", which says nothing to a command-line user.
_ROLES = r"(?:func|mod|class|data|attr|meth|obj)"
_XREF = re.compile(
    rf"\s*\(:{_ROLES}:`~?jaxpg\.[^`]*`\)|;\s*see\s+:{_ROLES}:`~?jaxpg\.[^`]*`"
)


def plain(text: str) -> str:
    """``text`` without Sphinx markup: cross-references to jaxpg's code are
    dropped, other roles and literals become their words."""
    text = _XREF.sub("", text)
    text = _ROLE.sub(r"\1", text)
    return _LITERAL.sub(lambda m: m.group(1) or m.group(2) or "", text)


class PlainHelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help in plain words: strips the Sphinx markup of docstrings from every
    text; a description's paragraphs are filled to the terminal's width,
    indented lines (examples) kept as they are."""

    def _format_text(self, text: str) -> str:
        width = max(self._width - self._current_indent, 11)
        paragraphs = [
            p
            if any(line[:1].isspace() for line in p.splitlines())
            else textwrap.fill(
                " ".join(p.split()),
                width,
                break_on_hyphens=False,
                break_long_words=False,
            )
            for p in plain(text).split("\n\n")
        ]
        return super()._format_text("\n\n".join(paragraphs))

    def _expand_help(self, action: argparse.Action) -> str:
        return plain(super()._expand_help(action))

    def _split_lines(self, text: str, width: int) -> list[str]:
        # An option's help: never split a word at its hyphen (--clip-eps).
        return textwrap.wrap(
            " ".join(text.split()), width, break_on_hyphens=False,
            break_long_words=False,
        )  # fmt: skip


def hidden_widths(text: str) -> tuple[int, ...]:
    """Parse ``64,64`` into ``(64, 64)`` (an argparse type)."""
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of ints, e.g. 64,64"
        ) from None


_SETTABLE = tuple(name for name in _FIELDS if name not in ("env", "algo"))


def parse_setting(text: str) -> tuple[str, Any]:
    """Parse ``--set FIELD=VALUE`` into ``(field, value)``, typed like the
    field's default (``none`` for an optional field, ``true``/``false`` for a
    flag, comma-separated ints for ``hidden``, comma-separated keys for a
    field that takes several, such as ``policy_obs``)."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep or name not in _SETTABLE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FIELD=VALUE with FIELD one of {', '.join(_SETTABLE)}"
        )
    kind = str(_FIELDS[name].type)
    try:
        if raw.lower() == "none" and "None" in kind:
            return name, None
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return name, raw.lower() in ("true", "1")
        if kind.startswith("tuple"):
            return name, hidden_widths(raw)
        if "tuple[str" in kind and "," in raw:  # keys of a dict observation
            return name, tuple(part.strip() for part in raw.split(","))
        if kind.startswith("int"):
            return name, int(raw)
        if kind.startswith("float"):
            return name, float(raw)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: {raw!r} is not a valid {kind} for {name}"
        ) from None
    return name, raw


_ENV = {
    "coordinator": "JAX_COORDINATOR_ADDRESS",
    "num_processes": "JAX_NUM_PROCESSES",
    "process_id": "JAX_PROCESS_ID",
}


def add_set_argument(parser: Any, help: str) -> None:
    """``--set FIELD=VALUE`` (repeatable) into ``args.settings``, a list of
    ``(field, value)`` pairs (:func:`parse_setting`)."""
    parser.add_argument(
        "--set",
        dest="settings",
        type=parse_setting,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help=help,
    )


def interrupted_status(
    command: str, result: Any, num_updates: int, out: Path | str, say: bool = True
) -> int:
    """Exit status of a run that stopped early (``result.interrupted``): 128 +
    its signal, or 1; with ``say``, first print where it stopped and the
    command that resumes it (``jaxpg COMMAND --resume OUT``) to stderr."""
    if say:
        name = signal.Signals(result.signal).name if result.signal else "stop"
        print(
            f"jaxpg {command}: interrupted ({name}) at update "
            f"{result.updates_done}/{num_updates}; checkpoint saved; resume "
            f"with: jaxpg {command} --resume {shlex.quote(str(out))}",
            file=sys.stderr,
        )
    return 128 + int(result.signal) if result.signal else 1


def add_distributed_arguments(parser: argparse.ArgumentParser) -> None:
    """Add ``--coordinator``, ``--num-processes`` and ``--process-id``.

    Defaults come from ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` and
    ``JAX_PROCESS_ID``; ``--coordinator-timeout`` bounds the start-up
    (:func:`jaxpg.drivers.parallel.initialize`). ``--coordinator auto`` lets
    JAX detect the cluster (SLURM, Open MPI, Kubernetes, Cloud TPU). Without
    any of them the command runs as one process.
    """
    group = parser.add_argument_group(
        "multi-host",
        "one process per host, all started with the same command; members are "
        "split over the devices of all processes and process 0 writes the output",
    )
    group.add_argument(
        "--coordinator",
        metavar="HOST:PORT",
        default=os.environ.get(_ENV["coordinator"]),
        help="address of process 0's coordinator, or 'auto' to detect the "
        "cluster (default: $JAX_COORDINATOR_ADDRESS; none: one process)",
    )
    group.add_argument(
        "--num-processes",
        type=_int_option(_ENV["num_processes"]),
        metavar="N",
        default=os.environ.get(_ENV["num_processes"]) or None,
        help="number of processes (default: $JAX_NUM_PROCESSES)",
    )
    group.add_argument(
        "--process-id",
        type=_int_option(_ENV["process_id"]),
        metavar="I",
        default=os.environ.get(_ENV["process_id"]) or None,
        help="this process's index in [0, N) (default: $JAX_PROCESS_ID)",
    )
    group.add_argument(
        "--coordinator-timeout",
        type=float,
        metavar="S",
        default=parallel.JOIN_TIMEOUT_S,
        help="seconds a process waits for the coordinator and for the other "
        "processes before it gives up with a message (default: %(default)s); "
        "process 0 refuses a coordinator port already in use at once",
    )


def initialize_from_args(args: argparse.Namespace) -> bool:
    """:func:`jaxpg.parallel.initialize` from the options of
    :func:`add_distributed_arguments`.

    Returns:
      Whether ``jax.distributed`` was initialised.
    """
    return parallel.initialize(
        getattr(args, "coordinator", None),
        getattr(args, "num_processes", None),
        getattr(args, "process_id", None),
        getattr(args, "coordinator_timeout", parallel.JOIN_TIMEOUT_S),
    )


def _int_option(env_name: str) -> Callable[[str], int]:
    """argparse ``type`` of an int option whose default is read from the
    environment variable ``env_name`` (argparse parses a string default
    too, so a bad value is a usage error naming the option, not a crash)."""

    def parse(text: str) -> int:
        try:
            return int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(
                f"{text!r} is not an integer (without the option, the value "
                f"comes from ${env_name})"
            ) from None

    return parse


# One command-line flag as a table row: (flag, kind, default, help), where
# kind is a type (int, float, str), a tuple of choices, or bool (a switch).
Flag = tuple[str, Any, Any, str]


def add_flags(group: Any, table: tuple[Flag, ...]) -> None:
    """Add the flags of ``table`` (rows of :data:`Flag`) to ``group``, an
    ``argparse`` parser or argument group."""
    for flag, kind, default, text in table:
        if kind is bool:
            group.add_argument(flag, action="store_true", help=text)
        elif isinstance(kind, tuple):
            group.add_argument(flag, default=default, choices=kind, help=text)
        else:
            group.add_argument(flag, type=kind, default=default, help=text)


def add_cache_argument(parser: argparse.ArgumentParser) -> None:
    """Add ``--compile-cache DIR`` and ``--no-compile-cache``."""
    parser.add_argument(
        "--compile-cache",
        metavar="DIR",
        default=None,
        help="keep compiled programs in DIR so that the same command compiles "
        f"again in about a second (default: ${executables.CACHE_ENV}, else "
        f"{executables.DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--no-compile-cache",
        action="store_true",
        help="compile everything afresh, keep nothing on disk",
    )


def enable_compilation_cache(args: argparse.Namespace) -> str | None:
    """Keep compiled programs in the directory the options of
    :func:`add_cache_argument` name (:func:`jaxpg.drivers.executables.use_cache`;
    ``$JAXPG_CACHE_DIR`` set to the empty string also turns it off); returns
    the directory, or ``None``."""
    path = None
    if not getattr(args, "no_compile_cache", False):
        path = executables.cache_directory(getattr(args, "compile_cache", None))
    used = executables.use_cache(path)
    return None if used is None else str(used)


def first_free(base: Path) -> Path:
    """``base``, or the first of ``base-2``, ``base-3``, ... that does not
    exist or is an empty folder (jaxpg's own leftovers aside): the default
    output folder of a command, never one that holds an earlier result."""
    from jaxpg.experiment.rundir import is_empty

    out, n = base, 1
    while out.exists() and (not out.is_dir() or not is_empty(out)):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def check_output_dir(path: Path, option: str) -> None:
    """Fail now, before anything is computed, when ``path`` cannot become a
    writable folder (``jaxpg lm`` may call it too).

    Raises:
      ValueError: ``path`` (or a parent) is a file, or the nearest existing
        folder is not writable; the message names ``option`` and ``path``.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"{option} {path} is a file, not a folder")
    existing = path
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"{option} {path}: {existing} is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"{option} {path}: {existing} is not writable")
