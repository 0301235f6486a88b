"""jaxpg.drivers.executables: a config-built run's compiled programs kept on
disk and loaded without tracing, bit-identical to compiling them, keyed so
that a different program never loads another's file."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg.drivers import executables, programs

CFG = jaxpg.Config(num_envs=4, rollout_steps=8, total_steps=4 * 8 * 4, lr=1e-2)
SEEDS = 2


@pytest.fixture
def kept(tmp_path):
    """Programs kept in ``tmp_path``, with JAX's own persistent cache off:
    programs it serves are not kept (see the last test), so with it on a
    program compiled twice would be kept only once."""
    from jax._src import compilation_cache

    before = jax.config.values["jax_compilation_cache_dir"]
    jax.config.update("jax_compilation_cache_dir", None)
    compilation_cache.reset_cache()
    executables.enable(tmp_path)
    try:
        yield tmp_path
    finally:
        executables.enable(None)
        jax.config.update("jax_compilation_cache_dir", before)
        compilation_cache.reset_cache()


def _build(cfg, calls):
    def algo():
        calls.append(cfg)
        return jaxpg.make_algorithm(cfg)

    return programs.compile_run(algo, SEEDS, repr(cfg))


def _two_chunks(progs):
    seeds = jnp.arange(progs.layout.padded, dtype=jnp.int32)
    state = progs.init(seeds)
    state, metrics = programs.chunk(progs, 2)(state)
    leaves = jax.tree.leaves(
        jax.tree.map(
            lambda x: (
                jax.random.key_data(x)
                if jnp.issubdtype(x.dtype, jax.dtypes.prng_key)
                else x
            ),
            (state, metrics),
        )
    )
    return [np.asarray(x) for x in leaves]


def test_second_build_loads_without_tracing_and_computes_the_same(kept):
    calls = []
    first = _two_chunks(_build(CFG, calls))
    assert len(calls) >= 1  # traced: the algorithm was built
    assert len(list(kept.glob("*.jaxpg-exe"))) == 2  # init and the 2-update chunk
    calls.clear()
    progs = _build(CFG, calls)
    second = _two_chunks(progs)
    assert calls == []  # loaded: nothing traced, the algorithm never built
    assert len(first) == len(second)
    for a, b in zip(first, second, strict=True):
        np.testing.assert_array_equal(a, b)
    # The abstract state of one seed comes from the loaded init program.
    assert jax.tree.structure(progs.member) == jax.tree.structure(
        jax.eval_shape(jaxpg.make_algorithm(CFG).init, jax.random.key(0))
    )


def test_another_config_or_fingerprint_is_another_file(kept, monkeypatch):
    calls = []
    _build(CFG, calls)
    other = CFG.replace(lr=2e-2)
    _build(other, calls)
    assert calls[-1] == other  # traced anew, not loaded from CFG's file
    assert len(list(kept.glob("*.jaxpg-exe"))) == 2
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
def test_a_damaged_file_is_compiled_again_and_replaced(kept, damage, warned):
    calls = []
    expected = _two_chunks(_build(CFG, calls))
    for path in kept.glob("*.jaxpg-exe"):
        path.write_bytes(damage(path.read_bytes()))
    calls.clear()
    with pytest.warns(UserWarning, match=warned):
        got = _two_chunks(_build(CFG, calls))
    assert calls
    for a, b in zip(expected, got, strict=True):
        np.testing.assert_array_equal(a, b)
    calls.clear()
    _build(CFG, calls)
    assert calls == []  # replaced by a good file


def test_the_jax_options_in_force_are_in_the_key(kept):
    """jax_random_seed_offset changes the keys a program draws; the options
    are read from jax.config.values (most are no attributes of jax.config)."""
    options = executables.fingerprint()["jax_options"]
    assert options["jax_disable_most_optimizations"] in ("True", "False")
    assert options["jax_random_seed_offset"] == "0"
    calls = []
    _build(CFG, calls)
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


def test_evaluation_program_is_kept_and_loaded_the_same(kept):
    from jaxpg.drivers import evaluation

    out = jaxpg.train_seeds(CFG, num_seeds=SEEDS)
    args = (CFG, out.params, SEEDS, 0, 3, False, 0)
    first = evaluation.evaluate_seeds(*args)
    (path,) = kept.glob("*.jaxpg-exe")
    evaluation._eval_fn.cache_clear()
    stamp = path.stat().st_mtime_ns
    np.testing.assert_array_equal(evaluation.evaluate_seeds(*args), first)
    assert path.stat().st_mtime_ns == stamp  # loaded, not written again
    assert first.shape == (SEEDS, 3)


def test_a_program_jax_loaded_from_its_own_cache_is_not_kept(tmp_path):
    """JAX's persistent cache (on in this suite) serves the second compile of
    a program; such an executable loses its code when serialised, so it is
    not kept: the next load compiles afresh instead of failing to run."""
    if not jax.config.values["jax_compilation_cache_dir"]:
        pytest.skip("JAX's persistent compilation cache is off (JAXPG_TEST_CACHE=0)")
    cfg = CFG.replace(lr=3e-2)  # a program no other test compiles
    first, second = tmp_path / "first", tmp_path / "second"
    # Every program written to JAX's cache, as ``jaxpg`` sets it (the suite
    # skips quick ones; conftest.py restores its threshold after the test).
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    try:
        executables.enable(first)
        want = _two_chunks(_build(cfg, []))
        jax.clear_caches()
        executables.enable(second)  # empty: XLA's compile is JAX's cache hit
        _two_chunks(_build(cfg, []))
        assert list(second.glob("*.jaxpg-exe")) == []
        jax.clear_caches()
        got = _two_chunks(_build(cfg, []))  # from ``second``, were it kept
        for a, b in zip(want, got, strict=True):
            np.testing.assert_array_equal(a, b)
    finally:
        executables.enable(None)
