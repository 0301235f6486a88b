"""Suite-wide configuration: loaded by pytest before any test module.

The whole suite runs with ``jax_numpy_rank_promotion="raise"``: an implicit
broadcast between arrays of different ranks (``[T] + [T, B]``) is an error, not
a silent bug (the practice of equinox's test suite).
"""

import atexit
import hashlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# The suite checks what programs compute, not how fast: XLA compiles them
# without LLVM's optimisation passes (JAX's ``jax_disable_most_optimizations``),
# which halves the suite's CPU time, as most of it is compiling. Every process
# the suite starts inherits it; ``JAXPG_TEST_OPTIMIZE=1`` compiles as users do.
# XLA's CPU fusion emitters (its default code generator for fused loops) take
# more than half of what is left of a compile: off, a PPO program compiles in
# 2.6 s instead of 5.7 s of CPU. Tests marked ``optimized`` or ``bitwise``
# compile as users do (see ``_default_codegen``). XLA also splits a program's
# LLVM module into 32 parts to compile them on parallel threads; with 2 cores
# already busy with 2 workers that only adds work: one part took 3-17% less CPU
# in four paired runs of a 197-test subset (every XLA kernel is a function of
# its own either way, so the code is the same). XLA's fast-compile preset for
# CPU skips passes that trade compile time for run time: 7-18% less CPU on a
# 52-test subset in three paired runs.
if os.environ.get("JAXPG_TEST_OPTIMIZE", "0") != "1":
    os.environ["JAX_DISABLE_MOST_OPTIMIZATIONS"] = "1"
    for flag in (
        "--xla_cpu_use_fusion_emitters=false",
        "--xla_cpu_parallel_codegen_split_count=1",
        "--xla_cpu_opt_preset=CPU_OPT_PRESET_FAST_COMPILE",
    ):
        if flag.split("=")[0] not in os.environ.get("XLA_FLAGS", ""):
            os.environ["XLA_FLAGS"] = (
                f"{os.environ.get('XLA_FLAGS', '')} {flag}".strip()
            )

import jax
import pytest
from jax._src import compiler  # the optimized tests' compile options
from jax._src import util as jax_util  # JAX's registry of in-memory caches

import jaxpg  # noqa: F401  (sets XLA_FLAGS before the backend starts)
from jaxpg.drivers import executables

jax.config.update("jax_numpy_rank_promotion", "raise")
if os.environ.get("JAX_DISABLE_MOST_OPTIMIZATIONS") == "1":  # jax read it already
    jax.config.update("jax_disable_most_optimizations", True)
# Shared test helpers (toy environments, subprocess workers) live apart.
sys.path.insert(0, str(Path(__file__).parent / "helpers"))
# One persistent compilation cache per test run, shared by the xdist workers,
# the in-process tests and every CLI subprocess (which inherit
# ``JAXPG_CACHE_DIR``): the default user path (``jaxpg`` caches by default), and
# a program that several tests build compiles once. The run's first process
# (pytest, or xdist's controller, which starts the workers after importing
# this file) makes a fresh folder and deletes it at exit, so nothing carries
# over between runs and nothing is left in the temporary folder; a folder
# given in ``JAXPG_TEST_CACHE_DIR`` is used and kept instead, and
# ``JAXPG_TEST_CACHE=0`` turns the cache off. Programs that compile in less
# than ``CACHE_MIN_COMPILE_S`` are not written to it: writing each of the
# thousands of small programs a worker compiles (eager operations) cost more
# than compiling them again (1-6% less CPU on a 200-test subset, every one of
# four paired runs).
CACHE_MIN_COMPILE_S = 0.3
if os.environ.get("JAXPG_TEST_CACHE", "1") == "0":
    os.environ["JAXPG_CACHE_DIR"] = ""
else:
    if not os.environ.get("JAXPG_TEST_CACHE_DIR"):
        made = tempfile.mkdtemp(prefix="jaxpg-test-xla-")
        atexit.register(shutil.rmtree, made, True)
        os.environ["JAXPG_TEST_CACHE_DIR"] = made
    cache = Path(os.environ["JAXPG_TEST_CACHE_DIR"])
    cache.mkdir(parents=True, exist_ok=True)
    os.environ["JAXPG_CACHE_DIR"] = str(cache)
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)


# The order in which ``make test`` hands test files to the 2 xdist workers
# (``--dist loadfile --no-loadscope-reorder``): the costliest first (worker
# seconds of one profiled run, about 40% of the suite), the rest in collection
# order after them, so that both workers end on short files at about the same
# time. xdist's own reordering sorts by the number of tests in a file, which
# left files of a few long tests (Playground, the token-policy learning
# checks) for last, with one worker idle.
COSTLIEST_FIRST = [
    "tests/test_docs_examples.py",
    "tests/drivers/test_parallel.py",
    "tests/envs/test_envs.py",
    "tests/drivers/test_runner.py",
    "tests/cli/test_lm_cli.py",
    "tests/algorithms/test_extensions.py",
    "tests/drivers/test_system.py",
    "tests/drivers/test_sweep.py",
    "tests/sequence/test_sequence_learning.py",
    "tests/envs/test_playground.py",
    "tests/drivers/test_examples.py",
    "tests/cli/test_faults.py",
    "tests/drivers/test_executables.py",
    "tests/drivers/test_policy_object.py",
    "tests/algorithms/test_structured_obs.py",
    "tests/sequence/test_sequence_exact.py",
    "tests/sequence/test_sequence_devices.py",
    "tests/algorithms/test_recurrent.py",
]


def pytest_collection_modifyitems(config, items):
    rank = {name: i for i, name in enumerate(COSTLIEST_FIRST)}
    # A node id starts with its file's path from the root: ``tests/x.py::...``
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


@pytest.fixture(autouse=True)
def _no_kept_programs_across_tests():
    """A ``jaxpg`` command run in-process turns on the on-disk programs of
    :mod:`jaxpg.drivers.executables` for the process; the next test starts
    with them off, as a fresh process would. It also writes every program to
    the compilation cache, as ``jaxpg`` does for users; the next test goes
    back to the suite's threshold."""
    yield
    executables.enable(None)
    if jax.config.values["jax_compilation_cache_dir"]:
        jax.config.update(
            "jax_persistent_cache_min_compile_time_secs", CACHE_MIN_COMPILE_S
        )


def _default_codegen(request):
    """Marked tests (a test, or a module's ``pytestmark``) compile as users do:

    * ``@pytest.mark.optimized``: XLA's default optimisation and code
      generators: tests whose property is the bits of that code or a learning
      trajectory checked at it;
    * ``@pytest.mark.bitwise``: XLA's default code generators (its CPU fusion
      emitters) and preset, still without LLVM's passes: tests that require a
      vmapped or chunked run to equal another layout of it to the last bits.
      The legacy emitters round the lanes of a batch differently from a batch
      of another size (a few ulps, which training then grows), the fusion
      emitters do not.

    In-memory caches are cleared on both sides, so no program compiled the
    other way is reused."""
    optimized = request.node.get_closest_marker("optimized") is not None
    bitwise = request.node.get_closest_marker("bitwise") is not None
    disabled = jax.config.values["jax_disable_most_optimizations"]
    previous = compiler.get_compile_options
    if not ((optimized and disabled) or (bitwise and previous is _get_compile_options)):
        yield
        return
    jax.clear_caches()
    if optimized:
        jax.config.update("jax_disable_most_optimizations", False)
    compiler.get_compile_options = _default_codegen_options
    try:
        yield
    finally:
        compiler.get_compile_options = previous
        jax.config.update("jax_disable_most_optimizations", disabled)
        jax.clear_caches()


_get_compile_options = compiler.get_compile_options


def _default_codegen_options(*args, **kwargs):
    """JAX's compile options with XLA's default CPU code generators and preset
    (the suite's ``XLA_FLAGS`` change them; an option given per compile wins)."""
    options = _get_compile_options(*args, **kwargs)
    options.env_option_overrides = [
        *options.env_option_overrides,
        ("xla_cpu_use_fusion_emitters", True),
        ("xla_cpu_opt_preset", "CPU_OPT_PRESET_DEFAULT"),
    ]
    return options


# A marked module turns it on before its module-scoped fixtures compile.
_default_codegen_module = pytest.fixture(scope="module", autouse=True)(_default_codegen)
_default_codegen_test = pytest.fixture(autouse=True)(_default_codegen)


KEEP_MIN_COMPILE_S = 0.05


class _CompiledHere:
    """XLA's executables of this process, by program and compile options.

    Tests build the same program again with new Python functions (a fixture's
    trainer per test, a ``jaxpg`` command run in-process twice): JAX's
    in-memory caches, keyed by function, miss, and the persistent cache skips
    programs under ``CACHE_MIN_COMPILE_S``, so XLA compiled a program it had
    compiled minutes before (34 s of the workers' compile time in one
    profiled run). Here a program is compiled once per process: the key is
    what JAX's persistent cache hashes (the module without its source
    locations, the compile options, which carry the marked tests' code
    generators and optimisation level, and the devices); programs with host
    callbacks are not kept (their callbacks are part of the executable), nor
    programs that compiled in under ``KEEP_MIN_COMPILE_S`` (the thousands of
    eager operations, which JAX caches by operation), nor executables JAX
    loaded from its persistent cache (counted by the listener of
    :mod:`jaxpg.drivers.executables`, which tells them apart the same way).
    Registered with JAX's caches, so ``jax.clear_caches()`` empties it too."""

    def __init__(self):
        self.executables = {}
        executables._listen()
        jax_util._caches[self] = "conftest compiled programs"

    def cache_clear(self):
        self.executables.clear()

    def __call__(self, backend, computation, devices, compile_options, host_callbacks,
                 *args, **kwargs):  # fmt: skip
        key = None
        if not host_callbacks:
            module = computation.operation.get_asm(binary=True, enable_debug_info=False)
            key = (
                id(backend),
                hashlib.sha256(module).digest(),
                compile_options.SerializeAsString(),
                tuple(d.id for d in devices.flat),
            )
            if key in self.executables:
                return self.executables[key]
        hits, start = executables._cache_hits[0], time.perf_counter()
        executable = _compile_or_get_cached(
            backend, computation, devices, compile_options, host_callbacks,
            *args, **kwargs,
        )  # fmt: skip
        loaded = executables._cache_hits[0] != hits
        quick = time.perf_counter() - start < KEEP_MIN_COMPILE_S
        if key is not None and not (loaded or quick):
            self.executables[key] = executable
        return executable


_compile_or_get_cached = compiler.compile_or_get_cached
_compiled_here = _CompiledHere()
compiler.compile_or_get_cached = _compiled_here


def pytest_collection_finish(session):
    """Once every test module is imported, the garbage collector is tuned
    (``gc_tuning``: about 5% of a worker's time)."""
    import gc_tuning  # tests/helpers, on the path from above

    gc_tuning.tune()
