"""Runs the ``jaxpg`` command (``main()`` as the console script calls it) with
a fault injected, for tests/cli/test_faults.py.

    python fault_worker.py save-enospc N -- jaxpg-arguments...
        the N-th checkpoint save fails as orbax reports a full disk (after
        orbax started writing), and a non-daemon thread is left blocked, as
        orbax's writer threads were seen to be: the command must still exit.
    python fault_worker.py hold-lock DIR
        take DIR's run lock, print "locked", and wait to be killed.
"""

from __future__ import annotations

import sys
import threading
import time


def _failing_saves(n: int) -> None:
    from jaxpg.experiment import checkpoint

    real = checkpoint._checkpointer
    saves = [0]

    class Failing:
        def __init__(self):
            self.inner = real()

        def save(self, path, tree):
            self.inner.save(path, tree)
            if path.name == "state":  # a checkpoint, not the final params
                saves[0] += 1
                if saves[0] == n:
                    threading.Thread(target=threading.Event().wait).start()
                    raise ValueError(
                        f'RESOURCE_EXHAUSTED: Error writing local file "{path}": '
                        "No space left on device [os_error_code='28']"
                    )

        def __getattr__(self, name):
            return getattr(self.inner, name)

    checkpoint._checkpointer = Failing


def main() -> None:
    fault, arg = sys.argv[1], sys.argv[2]
    if fault == "hold-lock":
        from jaxpg.experiment import lock

        with lock.hold(arg):
            print("locked", flush=True)
            time.sleep(600)
        return
    assert fault == "save-enospc" and sys.argv[3] == "--"
    _failing_saves(int(arg))
    import jaxpg.cli.main  # noqa: F401  (jaxpg.cli.main the function shadows it)

    cli = sys.modules["jaxpg.cli.main"]

    cli.EXIT_GRACE_S = 1.0  # the test need not wait the default grace
    sys.argv = ["jaxpg", *sys.argv[4:]]
    sys.exit(cli.main())


if __name__ == "__main__":
    main()
