"""jaxpg.drivers.updates: one compiled program runs any chunk length up to its
cap, with the updates and metrics of a scan of that length."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.drivers import parallel, updates

CAP = 5


def update(state):
    """A toy update: a counter and a value that depends on every update
    before it (so a skipped or repeated update shows)."""
    count, x = state
    x = jnp.sin(x) * 1.5 + count
    return (count + 1, x), {"x": x, "count": count}


def fresh_state(lay):
    """Placed ``[3]`` states (the program donates its argument: one per call)."""
    return parallel.place((np.zeros(3, np.int32), np.arange(3, dtype=np.float32)), lay)


@pytest.fixture(scope="module")
def program():
    lay = parallel.layout(3)
    count = parallel.replicate(np.int32(0), lay)
    program = updates.updates_program(update, lay, CAP)
    return lay, program.lower(fresh_state(lay), count).compile()


def scan(state, n):
    return jax.vmap(lambda s: jax.lax.scan(lambda c, _: update(c), s, None, length=n))(
        state
    )


@pytest.mark.parametrize("n", [1, 3, CAP])
def test_n_updates_equal_a_scan_of_n(program, n):
    lay, compiled = program
    want_state, want = scan(fresh_state(lay), n)
    got_state, got = updates.Chunk(compiled, n, CAP, lay)(fresh_state(lay))
    assert got["x"].shape == (3, n)
    for a, b in zip(
        jax.tree.leaves((got_state, got)),
        jax.tree.leaves((want_state, want)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_chunks_in_a_row_equal_one_long_scan(program):
    # 3 then 2 then 5 updates through the one program: the scan of 10.
    lay, compiled = program
    want_state, want = scan(fresh_state(lay), 10)
    state = fresh_state(lay)
    parts = []
    for n in (3, 2, 5):
        state, metrics = updates.Chunk(compiled, n, CAP, lay)(state)
        parts.append(metrics["x"])
    np.testing.assert_array_equal(np.concatenate(parts, axis=1), want["x"])
    np.testing.assert_array_equal(state[1], want_state[1])


def test_chunk_forwards_the_programs_attributes(program):
    lay, compiled = program
    chunk = updates.Chunk(compiled, 2, CAP, lay)
    assert chunk.memory_analysis == compiled.memory_analysis
    assert chunk.input_shardings == compiled.input_shardings


@pytest.mark.parametrize("n", [0, CAP + 1])
def test_a_length_outside_one_to_cap_is_refused(program, n):
    lay, compiled = program
    with pytest.raises(ValueError, match=rf"n={n} is invalid: must be in \[1, cap=5\]"):
        updates.Chunk(compiled, n, CAP, lay)


@pytest.mark.parametrize("cap", [0, 2.0, True])
def test_a_bad_cap_is_refused(cap):
    with pytest.raises(ValueError, match=r"cap=.* is invalid: must be an int >= 1"):
        updates.updates_program(update, parallel.layout(1), cap)
