"""Suite-wide configuration: loaded by pytest before any test module.

The whole suite runs with ``jax_numpy_rank_promotion="raise"``: an implicit
broadcast between arrays of different ranks (``[T] + [T, B]``) is an error, not
a silent bug (the practice of equinox's test suite).
"""

import os
import sys
import tempfile
from pathlib import Path

import jax

import jaxpg  # noqa: F401  (sets XLA_FLAGS before the backend starts)

jax.config.update("jax_numpy_rank_promotion", "raise")
# Shared test helpers (toy environments, subprocess workers) live apart.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
# One persistent compilation cache per test run, shared by the xdist workers,
# the in-process tests and every CLI subprocess (which inherit
# ``JAXPG_CACHE_DIR``): the default user path (``jaxpg`` caches by default), and
# a program that several tests build compiles once. It starts empty, so nothing
# carries over between runs; ``JAXPG_TEST_CACHE=0`` turns it off.
if os.environ.get("JAXPG_TEST_CACHE", "1") == "0":
    os.environ["JAXPG_CACHE_DIR"] = ""
else:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or f"pid{os.getpid()}"
    cache = Path(tempfile.gettempdir()) / f"jaxpg-test-xla-{run_id}"
    cache.mkdir(exist_ok=True)
    os.environ["JAXPG_CACHE_DIR"] = str(cache)
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
