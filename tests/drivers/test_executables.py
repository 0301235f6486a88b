"""jaxpg.drivers.executables: a config-built run's compiled programs kept on
disk and loaded without tracing, bit-identical to compiling them, keyed so
that a different program never loads another's file."""

from __future__ import annotations

import contextlib
import shutil
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg.drivers import executables, programs
from jaxpg.drivers.train import policy_params

CFG = jaxpg.Config(num_envs=4, rollout_steps=8, total_steps=4 * 8 * 4, lr=1e-2)
SEEDS = 2


@contextlib.contextmanager
def _keeping(folder, jax_cache=None):
    """Programs kept in ``folder``, with JAX's own persistent cache off:
    programs it serves are not kept (see the last test), so with it on a
    program compiled twice would be kept only once. ``jax_cache``: a folder
    of JAX's cache of this module's own instead (no other test writes to it),
    every program written to it, as ``jaxpg`` sets it."""
    from jax._src import compilation_cache

    before = jax.config.values["jax_compilation_cache_dir"]
    threshold = jax.config.values["jax_persistent_cache_min_compile_time_secs"]
    jax.config.update(
        "jax_compilation_cache_dir", None if jax_cache is None else str(jax_cache)
    )
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    compilation_cache.reset_cache()
    executables.enable(folder)
    try:
        yield folder
    finally:
        executables.enable(None)
        jax.config.update("jax_compilation_cache_dir", before)
        jax.config.update("jax_persistent_cache_min_compile_time_secs", threshold)
        compilation_cache.reset_cache()


@pytest.fixture
def kept(tmp_path):
    """Programs kept in ``tmp_path``, JAX's cache off."""
    with _keeping(tmp_path):
        yield tmp_path


def _build(cfg, calls):
    def algo():
        calls.append(cfg)
        return jaxpg.make_algorithm(cfg)

    return programs.compile_run(algo, SEEDS, repr(cfg))


def _run_two_chunks(progs):
    seeds = jnp.arange(progs.layout.padded, dtype=jnp.int32)
    state = progs.init(seeds)
    return programs.chunk(progs, 2)(state)


def _two_chunks(progs):
    return _leaves(_run_two_chunks(progs))


def _leaves(tree):
    leaves = jax.tree.leaves(
        jax.tree.map(
            lambda x: (
                jax.random.key_data(x)
                if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
                else x
            ),
            tree,
        )
    )
    return [np.asarray(x) for x in leaves]


class FirstBuild(NamedTuple):
    """CFG's first build: compiled into an empty folder, and into an empty
    JAX cache of its own (``None`` when the suite runs with JAX's cache off)."""

    folder: Path
    jax_cache: Path | None
    calls: list  # the configs its algorithm was built (traced) for
    files: list[str]  # the programs it kept
    results: list[np.ndarray]  # what they computed (:func:`_two_chunks`)
    params: Any  # the ``[SEEDS]`` policy objects after those two updates


@pytest.fixture(scope="module")
def first_build(tmp_path_factory) -> FirstBuild:
    """CFG compiled once for the module: the first test checks this build;
    tests that only need CFG's programs kept to start from copy its files
    (:func:`_copy_first_build`) instead of compiling CFG again."""
    calls = []
    jax_cache = None
    if jax.config.values["jax_compilation_cache_dir"]:  # the suite's is on
        jax_cache = tmp_path_factory.mktemp("first_build_jax_cache")
    with _keeping(tmp_path_factory.mktemp("first_build"), jax_cache) as folder:
        state, metrics = _run_two_chunks(_build(CFG, calls))
        results = _leaves((state, metrics))
    params = jax.tree.map(lambda x: np.asarray(x)[:SEEDS], policy_params(CFG, state))
    files = sorted(p.name for p in folder.glob("*.jaxpg-exe"))
    return FirstBuild(folder, jax_cache, calls, files, results, params)


def _copy_first_build(first_build: FirstBuild, folder: Path) -> None:
    for name in first_build.files:
        shutil.copyfile(first_build.folder / name, folder / name)


def test_second_build_loads_without_tracing_and_computes_the_same(first_build, kept):
    assert len(first_build.calls) >= 1  # traced: the algorithm was built
    assert len(first_build.files) == 2  # init and the 2-update chunk
    _copy_first_build(first_build, kept)
    calls = []
    progs = _build(CFG, calls)
    second = _two_chunks(progs)
    assert calls == []  # loaded: nothing traced, the algorithm never built
    assert len(first_build.results) == len(second)
    for a, b in zip(first_build.results, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # The abstract state of one seed comes from the loaded init program.
    assert jax.tree.structure(progs.member) == jax.tree.structure(
        jax.eval_shape(jaxpg.make_algorithm(CFG).init, jax.random.key(0))
    )


def test_another_config_or_fingerprint_is_another_file(first_build, kept, monkeypatch):
    _copy_first_build(first_build, kept)
    calls = []
    _build(CFG, calls)
    assert calls == []  # CFG's own file loads
    other = CFG.replace(lr=2e-2)
    _build(other, calls)
    assert calls == [other]  # traced anew, not loaded from CFG's file
    assert len(list(kept.glob("*.jaxpg-exe"))) == len(first_build.files) + 1
    before = set(kept.glob("*.jaxpg-exe"))
    monkeypatch.setitem(
        executables._state,
        "fingerprint",
        {**executables.fingerprint(), "xla_flags": "--something-else"},
    )
    calls.clear()
    _build(CFG, calls)
    assert calls  # a different XLA_FLAGS: compiled again, into a new file
    assert set(kept.glob("*.jaxpg-exe")) > before


def _replaced(data: bytes) -> bytes:
    return b"not a program"


def _one_byte_flipped(data: bytes) -> bytes:
    """A byte flipped inside the program (which could load and crash, or
    compute wrongly): its sha256 fails."""
    flipped = bytearray(data)
    flipped[len(flipped) // 2] ^= 0xFF
    return bytes(flipped)


@pytest.mark.parametrize(
    ("damage", "warned"),
    [(_replaced, "unreadable"), (_one_byte_flipped, "checksum does not match")],
)
def test_a_damaged_file_is_compiled_again_and_replaced(
    first_build, kept, damage, warned
):
    _copy_first_build(first_build, kept)
    for path in kept.glob("*.jaxpg-exe"):
        path.write_bytes(damage(path.read_bytes()))
    calls = []
    with pytest.warns(UserWarning, match=warned):
        got = _two_chunks(_build(CFG, calls))
    assert calls
    for a, b in zip(first_build.results, got, strict=True):
        np.testing.assert_array_equal(a, b)
    calls.clear()
    _build(CFG, calls)
    assert calls == []  # replaced by a good file


def test_the_jax_options_in_force_are_in_the_key(first_build, kept):
    """jax_random_seed_offset changes the keys a program draws; the options
    are read from jax.config.values (most are no attributes of jax.config)."""
    options = executables.fingerprint()["jax_options"]
    assert options["jax_disable_most_optimizations"] in ("True", "False")
    assert options["jax_random_seed_offset"] == "0"
    _copy_first_build(first_build, kept)
    calls = []
    _build(CFG, calls)
    assert calls == []  # CFG's file of offset 0 loads
    before = set(kept.glob("*.jaxpg-exe"))
    jax.config.update("jax_random_seed_offset", 7)
    try:
        calls.clear()
        _build(CFG, calls)
        assert calls  # not loaded from the files of offset 0
        assert set(kept.glob("*.jaxpg-exe")) > before
    finally:
        jax.config.update("jax_random_seed_offset", 0)


def test_off_keeps_nothing_and_user_parts_are_never_kept(tmp_path):
    executables.enable(None)
    calls = []
    _build(CFG, calls)
    executables.enable(tmp_path)
    try:
        programs.compile_run(jaxpg.make_algorithm(CFG), SEEDS)  # no description
        assert list(tmp_path.iterdir()) == []
    finally:
        executables.enable(None)


def test_token_side_programs_are_kept_and_loaded_the_same(kept):
    from tiny_sequence import task_and_model

    from jaxpg.sequence import model, rl, seeds

    task, model_cfg = task_and_model()
    rl_cfg = rl.RLConfig(num_prompts=2, group_size=2, num_updates=2)
    ref = model.init(jax.random.key(0), model_cfg)
    description = {"task": "tiny sort", "model": repr(model_cfg), "rl": repr(rl_cfg)}
    runs = [
        seeds.train_seeds(task, model_cfg, rl_cfg, ref, 2, 2, description=description)
        for _ in range(2)
    ]
    assert len(list(kept.glob("*.jaxpg-exe"))) == 2  # init and chunk, once
    for a, b in zip(
        jax.tree.leaves(runs[0].params), jax.tree.leaves(runs[1].params), strict=True
    ):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


def test_evaluation_program_is_kept_and_loaded_the_same(first_build, kept):
    from jaxpg.drivers import evaluation

    # Trained policies of CFG (two updates of the module's first build).
    args = (CFG, first_build.params, SEEDS, 0, 3, False, 0)
    first = evaluation.evaluate_seeds(*args)
    (path,) = kept.glob("*.jaxpg-exe")
    evaluation._eval_fn.cache_clear()
    stamp = path.stat().st_mtime_ns
    np.testing.assert_array_equal(evaluation.evaluate_seeds(*args), first)
    assert path.stat().st_mtime_ns == stamp  # loaded, not written again
    assert first.shape == (SEEDS, 3)


def test_a_program_jax_loaded_from_its_own_cache_is_not_kept(first_build, tmp_path):
    """JAX's persistent cache (on in this suite) serves the second compile of
    a program; such an executable loses its code when serialised, so it is
    not kept: the next load compiles afresh instead of failing to run."""
    if first_build.jax_cache is None:
        pytest.skip("JAX's persistent compilation cache is off (JAXPG_TEST_CACHE=0)")
    # The first build compiled CFG (XLA, kept in its folder) and wrote it to
    # a JAX cache of its own, which only it wrote to.
    assert len(first_build.calls) >= 1 and len(first_build.files) == 2
    jax.clear_caches()
    # ``second`` is empty: XLA's compile is JAX's cache hit.
    with _keeping(tmp_path, jax_cache=first_build.jax_cache) as second:
        _two_chunks(_build(CFG, []))
        assert list(second.glob("*.jaxpg-exe")) == []
        jax.clear_caches()
        got = _two_chunks(_build(CFG, []))  # from ``second``, were it kept
    for a, b in zip(first_build.results, got, strict=True):
        np.testing.assert_array_equal(a, b)


def test_cache_directory_resolves_option_then_environment_then_default(monkeypatch):
    monkeypatch.delenv(executables.CACHE_ENV, raising=False)
    assert executables.cache_directory() == executables.DEFAULT_CACHE_DIR
    assert executables.cache_directory("x/y") == Path("x/y")
    monkeypatch.setenv(executables.CACHE_ENV, "/elsewhere")
    assert executables.cache_directory() == Path("/elsewhere")
    assert executables.cache_directory("given") == Path("given")
    monkeypatch.setenv(executables.CACHE_ENV, "")  # the variable turns it off
    assert executables.cache_directory() is None
    assert executables.cache_directory("") is None


def test_use_cache_turns_on_both_caches_and_off_again(tmp_path):
    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    before = {n: jax.config.values[n] for n in names}
    kept = executables.directory()
    try:
        assert executables.use_cache(tmp_path) == tmp_path
        assert jax.config.values["jax_compilation_cache_dir"] == str(tmp_path)
        assert jax.config.values["jax_persistent_cache_min_compile_time_secs"] == 0
        assert executables.directory() == tmp_path / "programs"
        assert executables.use_cache(None) is None
        assert executables.directory() is None
    finally:
        for n, v in before.items():
            jax.config.update(n, v)
        executables.enable(kept)
