"""Helpers that keep vmapped training cheap: loop predicates and shuffles."""

from __future__ import annotations

import functools
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from vmap_probe import VmapProbe

from jaxpg.kernels.batching import (
    batched_like,
    chunked_while_loop,
    permutation,
    while_loop,
)


@pytest.mark.parametrize("n", [1, 2, 7, 64, 2048, 3000])
def test_permutation_is_a_permutation(n):
    perms = jax.jit(jax.vmap(lambda k: permutation(k, n)))(
        jax.random.split(jax.random.key(0), 8)
    )
    assert perms.dtype == jnp.int32 and perms.shape == (8, n)
    np.testing.assert_array_equal(
        np.sort(np.asarray(perms), axis=1), np.arange(n)[None].repeat(8, 0)
    )
    if n > 2:  # distinct keys give distinct shuffles
        assert len({tuple(p) for p in np.asarray(perms)}) == 8


def test_permutation_is_uniform_over_all_orders():
    """n = 4: each of the 24 orders has probability 1/24. Over 48,000 keys a
    count is Binomial(48000, 1/24): mean 2000, SE 44.7. Every count must be
    within 5 SE (a false alarm in any of the 24 cells has probability < 1e-5);
    a shuffle that kept even one order 10% too often would fail."""
    num = 48_000
    perms = jax.jit(jax.vmap(lambda k: permutation(k, 4)))(
        jax.random.split(jax.random.key(1), num)
    )
    codes = np.asarray(perms) @ np.array([64, 16, 4, 1])
    counts = {
        code: 0
        for code in (
            np.array(p) @ [64, 16, 4, 1] for p in itertools.permutations(range(4))
        )
    }
    for code, count in zip(*np.unique(codes, return_counts=True), strict=True):
        counts[int(code)] = int(count)
    assert len(counts) == math.factorial(4)
    p = 1 / 24
    se = math.sqrt(num * p * (1 - p))
    worst = max(abs(c - num * p) for c in counts.values()) / se
    assert worst < 5, f"largest deviation {worst:.1f} SE"


def test_permutation_positions_are_uniform_for_a_large_n():
    """n = 2048 (the packed words keep 21 random bits): the position of each
    of 4 tracked entries over 4,096 keys, binned into 8 equal bins, has
    count 512 per bin, SE 21.2; all 32 bins within 5 SE."""
    num, n = 4096, 2048
    perms = np.asarray(
        jax.jit(jax.vmap(lambda k: permutation(k, n)))(
            jax.random.split(jax.random.key(2), num)
        )
    )
    positions = np.argsort(perms, axis=1)  # where each entry went
    se = math.sqrt(num * (1 / 8) * (7 / 8))
    for entry in (0, 1, 1024, 2047):
        counts = np.bincount(positions[:, entry] * 8 // n, minlength=8)
        assert np.abs(counts - num / 8).max() < 5 * se, (entry, counts)


def test_permutation_rejects_empty():
    with pytest.raises(ValueError, match="n=0"):
        permutation(jax.random.key(0), 0)


def _count_loop(n, key, chunk=None):
    """Draw a normal into ``buf[i]`` for ``i < n``; later iterations are masked.
    ``chunk``: a :func:`chunked_while_loop` (iterations past 12 write nothing)."""

    def cond(carry):
        return carry[0] < n

    def body(carry):
        i, key, buf = carry
        key, key_draw = jax.random.split(key)
        draw = jax.random.normal(key_draw, (3,))
        return i + 1, key, buf.at[i].set(jnp.where(i < n, draw, buf[i]), mode="drop")

    init = (jnp.int32(0), key, jnp.zeros((12, 3)))
    if chunk is None:
        return while_loop(cond, body, init)[2]
    return chunked_while_loop(cond, body, init, chunk)[2]


def test_while_loop_unbatched_is_lax_while_loop():
    key = jax.random.key(3)
    ours = jax.jit(_count_loop)(5, key)

    def lax_version(n, key):
        def body(carry):
            i, key, buf = carry
            key, key_draw = jax.random.split(key)
            return i + 1, key, buf.at[i].set(jax.random.normal(key_draw, (3,)))

        init = (jnp.int32(0), key, jnp.zeros((12, 3)))
        return jax.lax.while_loop(lambda c: c[0] < n, body, init)[2]

    np.testing.assert_array_equal(ours, jax.jit(lax_version)(5, key))


@pytest.mark.optimized
def test_while_loop_vmap_equals_per_member_loops_nested_and_in_scan():
    """Plain vmap, nested vmap and vmap of a scan over the loop give each member
    exactly its own unbatched result (masked iterations change nothing)."""
    ns = jnp.array([0, 3, 7, 12])
    keys = jax.random.split(jax.random.key(4), 4)
    single = np.stack(
        [jax.jit(_count_loop)(n, k) for n, k in zip(ns, keys, strict=True)]
    )
    np.testing.assert_array_equal(jax.jit(jax.vmap(_count_loop))(ns, keys), single)
    nested = jax.jit(jax.vmap(jax.vmap(_count_loop)))(
        ns.reshape(2, 2), keys.reshape(2, 2)
    )
    np.testing.assert_array_equal(nested.reshape(single.shape), single)

    def scanned(n, key):
        return jax.lax.scan(lambda c, k: (c, _count_loop(n, k)), 0, key[None])[1][0]

    np.testing.assert_array_equal(jax.jit(jax.vmap(scanned))(ns, keys), single)


@pytest.mark.parametrize("chunk", [2, 5, 20])
def test_chunked_while_loop_equals_while_loop(chunk):
    """Testing the predicate every ``chunk`` iterations (a chunk may end up to
    ``chunk - 1`` masked iterations past it, and past the buffer) gives the
    per-iteration loop's result bit for bit, unbatched, under vmap and nested
    vmap."""
    ns = jnp.array([0, 3, 7, 12])
    keys = jax.random.split(jax.random.key(4), 4)
    want = jax.jit(jax.vmap(_count_loop))(ns, keys)
    loop = functools.partial(_count_loop, chunk=chunk)
    np.testing.assert_array_equal(jax.jit(loop)(ns[2], keys[2]), want[2])
    np.testing.assert_array_equal(jax.jit(jax.vmap(loop))(ns, keys), want)
    nested = jax.jit(jax.vmap(jax.vmap(loop)))(ns.reshape(2, 2), keys.reshape(2, 2))
    np.testing.assert_array_equal(nested.reshape(want.shape), want)


def test_chunked_while_loop_tests_its_predicate_once_per_chunk():
    """Iterations run: ``chunk`` times the number of predicate tests."""

    def run(n, chunk):
        def cond(c):
            return c[0] < n

        def body(c):
            return c[0] + 1, c[1]

        return chunked_while_loop(cond, body, (jnp.int32(0), jnp.int32(0)), chunk)

    assert int(jax.jit(run, static_argnums=1)(7, 1)[0]) == 7
    assert int(jax.jit(run, static_argnums=1)(7, 4)[0]) == 8
    assert int(jax.jit(run, static_argnums=1)(8, 4)[0]) == 8
    assert int(jax.jit(run, static_argnums=1)(0, 4)[0]) == 0


@pytest.mark.parametrize("chunk", [0, -1, True, 2.5, None])
def test_chunked_while_loop_rejects_a_bad_chunk(chunk):
    with pytest.raises(ValueError, match=f"chunk={chunk!r} is invalid"):
        chunked_while_loop(lambda c: c < 3, lambda c: c + 1, jnp.int32(0), chunk)


@pytest.mark.parametrize("chunk", [None, 4])
def test_while_loop_vmap_has_no_whole_carry_select(chunk):
    """JAX's own batching of a while loop with a per-member predicate selects
    the whole carry (here the [12, 3] buffer, batched: [4, 12, 3]) each
    iteration; jaxpg's loop must not, chunked or not."""
    ns = jnp.array([0, 3, 7, 12])
    keys = jax.random.split(jax.random.key(4), 4)
    ours = (
        jax.jit(jax.vmap(functools.partial(_count_loop, chunk=chunk)))
        .lower(ns, keys)
        .as_text()
    )

    def plain(n, key):
        def body(carry):
            i, key, buf = carry
            return i + 1, key, buf.at[i].set(1.0)

        init = (jnp.int32(0), key, jnp.zeros((12, 3)))
        return jax.lax.while_loop(lambda c: c[0] < n, body, init)[2]

    theirs = jax.jit(jax.vmap(plain)).lower(ns, keys).as_text()

    def selects(text):
        return sum(
            1
            for line in text.splitlines()
            if "select" in line and "tensor<4x12x3xf32>" in line.split("->")[-1]
        )

    assert selects(theirs) >= 1, "the reference must show the select it avoids"
    assert selects(ours) == 0, "a [4, 12, 3] select inside the batched loop"


# ------------------------------------------------------------- batched_like
KEYS4 = jax.vmap(jax.random.key)(jnp.arange(4))


def test_batched_like_is_the_identity_outside_vmap():
    tree = {"w": jnp.arange(3.0), "n": jnp.int32(2), "k": jax.random.key(1)}
    out = batched_like(tree, jax.random.key(0))
    np.testing.assert_array_equal(out["w"], tree["w"])
    assert out["n"] == 2 and out["n"].dtype == jnp.int32
    np.testing.assert_array_equal(
        jax.random.key_data(out["k"]), jax.random.key_data(tree["k"])
    )


def test_batched_like_batches_over_the_axes_of_like_only():
    zeros = lambda _: jnp.zeros(2)  # noqa: E731  (unbatched under vmap)
    # A leaf that does not depend on the mapped value can leave vmap unbatched
    # (out_axes=None); batched like a mapped key it cannot.
    jax.vmap(zeros, out_axes=None)(KEYS4)
    with pytest.raises(ValueError):
        jax.vmap(lambda k: batched_like(zeros(k), k), out_axes=None)(KEYS4)
    # Like an unmapped value: left as it is.
    jax.vmap(lambda k: batched_like(zeros(k), jnp.uint32(0)), out_axes=None)(KEYS4)
    got = jax.vmap(lambda k: batched_like(jnp.arange(2.0), k))(KEYS4)
    np.testing.assert_array_equal(got, np.tile(np.arange(2.0), (4, 1)))
    # Nested vmaps: batched over the outer axis where only it maps ``like``.
    outer = jax.vmap(
        jax.vmap(lambda x, h: batched_like(zeros(x), h), (0, None)), (None, 0)
    )(jnp.ones(3), jnp.ones(2))
    assert outer.shape == (2, 3, 2)


def test_batched_like_passes_tangents_through():
    def f(w, key):
        return jnp.sum(batched_like(w, key) ** 2)

    w = jnp.arange(3.0)
    np.testing.assert_array_equal(jax.grad(f)(w, jax.random.key(0)), 2 * w)
    grads = jax.vmap(jax.grad(f), (None, 0))(w, KEYS4)
    np.testing.assert_array_equal(grads, np.tile(2 * np.asarray(w), (4, 1)))


@pytest.mark.parametrize("start_batched", [False, True])
def test_a_carry_batched_from_the_start_batches_the_scan_body_once(start_batched):
    """JAX batches a scan's body again when a carry that went in unbatched
    comes out batched; batched_like avoids the second pass."""
    probe = VmapProbe()  # counts the batchings of the body

    def run(key):
        acc = jnp.zeros(3)  # does not depend on the key: unbatched
        if start_batched:
            acc = batched_like(acc, key)

        def body(acc, _):
            draw = probe(jax.random.normal(key, (3,)))
            return acc + draw, None

        return jax.lax.scan(body, acc, None, length=2)[0]

    jax.make_jaxpr(jax.vmap(run))(KEYS4)
    assert probe.calls == (1 if start_batched else 2)
