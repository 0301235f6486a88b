"""Helpers that keep vmapped training cheap: loop predicates and shuffles."""

from __future__ import annotations

import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.batching import SEED_AXIS, any_across, permutation


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


def test_any_across_reduces_over_the_named_seed_axis_only():
    preds = jnp.array([False, True, False])
    named = jax.vmap(any_across, axis_name=SEED_AXIS)(preds)
    np.testing.assert_array_equal(named, [True, True, True])
    unnamed = jax.vmap(any_across)(preds)
    np.testing.assert_array_equal(unnamed, preds)
