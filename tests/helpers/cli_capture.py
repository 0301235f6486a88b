"""``jaxpg`` commands run in-process with their output captured."""

from __future__ import annotations

import contextlib
import io

from jaxpg.cli.main import main


def run_main(*argv) -> tuple[int, str, str]:
    """``(exit code, stdout, stderr)`` of ``jaxpg ARGV...`` (arguments turned
    into strings, so paths may be passed as they are)."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main([str(a) for a in argv])
    return code, stdout.getvalue(), stderr.getvalue()
