"""Suite-wide configuration: loaded by pytest before any test module.

The whole suite runs with ``jax_numpy_rank_promotion="raise"``: an implicit
broadcast between arrays of different ranks (``[T] + [T, B]``) is an error, not
a silent bug (the practice of equinox's test suite).
"""

import os
import sys
from pathlib import Path

import jax

import jaxpg  # noqa: F401  (sets XLA_FLAGS before the backend starts)

jax.config.update("jax_numpy_rank_promotion", "raise")
# Shared test helpers (toy environments, subprocess workers) live apart.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
# The CLI's on-disk compilation cache stays off in tests (no state between runs).
os.environ["JAXPG_CACHE_DIR"] = ""
