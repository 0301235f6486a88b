r"""Tests for :mod:`jaxpg.kernels.advantages`: the baselines that turn returns into
advantages, each against a NumPy reference on random ``[T, B]`` returns with a
random mask (masked entries exactly 0), plus the properties each one promises:
leave-one-out's baseline ignores the env's own returns, group-normalised
advantages are constant within an episode and guarded against a zero std.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.kernels.advantages import (
    BASELINE_FNS,
    BASELINES,
    group_normalised,
    leave_one_out,
    mean_baseline,
    no_baseline,
    standardise,
)

TOL = {"rtol": 1e-5, "atol": 1e-5}
T, B = 7, 4

# One compile per (baseline, shape).
advantages_jit = jax.jit(
    lambda name, *arrays: BASELINE_FNS[name](*arrays), static_argnums=0
)
loo_jit = jax.jit(leave_one_out)
group_jit = jax.jit(group_normalised)


def random_batch(seed, num_steps=T, num_envs=B):
    """Returns with garbage (1e6) on masked steps, a random mask, episode starts
    (every column starts an episode at t = 0)."""
    rng = np.random.default_rng(seed)
    shape = (num_steps, num_envs)
    mask = (rng.uniform(size=shape) < 0.7).astype(np.float32)
    mask[0, 0] = 1.0
    returns = rng.normal(2.0, 3.0, size=shape).astype(np.float32)
    returns = np.where(mask > 0, returns, np.float32(1e6))
    episode_start = (rng.uniform(size=shape) < 0.3).astype(np.float32)
    episode_start[0] = 1.0
    return returns, mask, episode_start


def np_mean_std(x, mask):
    n = max(mask.sum(), 1.0)
    x = np.where(mask > 0, x.astype(np.float64), 0.0)
    mean = x.sum() / n
    return mean, np.sqrt((((x - mean) ** 2) * mask).sum() / n)


def np_no_baseline(returns, mask, episode_start):
    return np.where(mask > 0, returns, 0.0)


def np_mean_baseline(returns, mask, episode_start):
    mean, _ = np_mean_std(returns, mask)
    return np.where(mask > 0, returns - mean, 0.0)


def np_standardise(returns, mask, episode_start):
    mean, std = np_mean_std(returns, mask)
    return np.where(mask > 0, (returns - mean) / (std + 1e-8), 0.0)


def np_leave_one_out(returns, mask, episode_start):
    out = np.zeros(returns.shape)
    for b in range(returns.shape[1]):
        others = [c for c in range(returns.shape[1]) if c != b]
        valid = mask[:, others] > 0
        baseline = returns[:, others][valid].mean() if valid.any() else 0.0
        out[:, b] = np.where(mask[:, b] > 0, returns[:, b] - baseline, 0.0)
    return out


def np_group_normalised(returns, mask, episode_start, eps=1e-6):
    """Each valid step gets (R - μ)/max(σ, ε) of the last valid episode start in
    its column (0 if there is none); R are the returns at valid starts."""
    starts = (episode_start > 0) & (mask > 0)
    episode_returns = returns[starts].astype(np.float64)
    mean, std = episode_returns.mean(), episode_returns.std()
    out = np.zeros(returns.shape)
    for b in range(returns.shape[1]):
        current = 0.0
        for t in range(returns.shape[0]):
            if starts[t, b]:
                current = (returns[t, b] - mean) / max(std, eps)
            out[t, b] = current if mask[t, b] > 0 else 0.0
    return out


NP_REFERENCES = {
    "none": np_no_baseline,
    "mean": np_mean_baseline,
    "standardise": np_standardise,
    "loo": np_leave_one_out,
    "group": np_group_normalised,
}
DIRECT = {
    "none": lambda g, m, s: no_baseline(g, m),
    "mean": lambda g, m, s: mean_baseline(g, m),
    "standardise": lambda g, m, s: standardise(g, m),
    "loo": lambda g, m, s: leave_one_out(g, m),
    "group": group_normalised,
}


def test_every_baseline_has_a_reference():
    """The parametrised tests below cover every name in BASELINES."""
    assert set(NP_REFERENCES) == set(BASELINES) == set(DIRECT)


@pytest.mark.parametrize("num_steps", [1, T])
@pytest.mark.parametrize("baseline", BASELINES)
def test_baseline_matches_numpy_and_zeroes_masked_steps(baseline, num_steps):
    """Random [T, B] (T = 1 included) with a random mask and garbage on masked
    returns: equals the NumPy reference, and masked entries are exactly 0."""
    returns, mask, episode_start = random_batch(num_steps, num_steps=num_steps)
    adv = np.asarray(advantages_jit(baseline, returns, mask, episode_start))
    expected = NP_REFERENCES[baseline](returns, mask, episode_start)
    np.testing.assert_allclose(adv, expected, **TOL)
    assert np.all(adv[mask == 0] == 0.0)
    assert np.all(np.isfinite(adv))


@pytest.mark.parametrize("baseline", BASELINES)
def test_each_name_stands_for_its_baseline(baseline):
    """BASELINE_FNS[name] is the function the name stands for, and its names
    are exactly the config's choices."""
    assert tuple(BASELINE_FNS) == BASELINES
    returns, mask, episode_start = random_batch(10)
    np.testing.assert_array_equal(
        BASELINE_FNS[baseline](returns, mask, episode_start),
        DIRECT[baseline](returns, mask, episode_start),
    )


@pytest.mark.parametrize("baseline", BASELINES)
def test_baseline_vmap_over_seeds_equals_python_loop(baseline):
    """vmap over a leading seed axis [S, T, B] equals a loop over seeds."""
    batches = [random_batch(20 + s) for s in range(3)]
    returns, mask, episode_start = (np.stack(x) for x in zip(*batches, strict=True))
    vmapped = jax.vmap(functools.partial(advantages_jit, baseline))(
        returns, mask, episode_start
    )
    looped = [advantages_jit(baseline, *batch) for batch in batches]
    np.testing.assert_allclose(vmapped, looped, **TOL)


def test_mean_and_standardise_hand_case():
    """Valid returns [1, 3] (a third step masked): mean 2, std 1."""
    returns = jnp.array([[1.0], [3.0], [100.0]])
    mask = jnp.array([[1.0], [1.0], [0.0]])
    # A = G - 2 = [-1, 1, 0]; standardised: [-1, 1, 0] / (1 + 1e-8)
    np.testing.assert_allclose(mean_baseline(returns, mask), [[-1.0], [1.0], [0.0]])
    np.testing.assert_allclose(standardise(returns, mask), [[-1.0], [1.0], [0.0]])


@pytest.mark.parametrize("baseline", ["mean", "standardise"])
def test_equal_returns_give_exactly_zero_advantage(baseline):
    """All valid returns equal: the mean is exact and σ = 0, so A = 0 exactly
    (no ulp of mean-rounding noise divided by σ + 1e-8 into ±1)."""
    returns = jnp.full((T, B), 200.1, jnp.float32)
    _, mask, episode_start = random_batch(12)
    adv = advantages_jit(baseline, returns, mask, episode_start)
    np.testing.assert_array_equal(adv, np.zeros((T, B)))


# ---------------------------------------------------------------------------
# leave_one_out


def test_leave_one_out_hand_case():
    """Env b's baseline is the mean of the other envs' valid returns."""
    returns = jnp.array([[1.0, 4.0, 10.0], [3.0, 6.0, 99.0]])
    mask = jnp.array([[1.0, 1.0, 1.0], [1.0, 1.0, 0.0]])
    # b=0: others {4, 6, 10} -> 20/3;  A = [1 - 20/3, 3 - 20/3]
    # b=1: others {1, 3, 10} -> 14/3;  A = [4 - 14/3, 6 - 14/3]
    # b=2: others {1, 3, 4, 6} -> 14/4; A = [10 - 3.5, masked 0]
    expected = [[1 - 20 / 3, 4 - 14 / 3, 6.5], [3 - 20 / 3, 6 - 14 / 3, 0.0]]
    np.testing.assert_allclose(loo_jit(returns, mask), expected, **TOL)


def test_leave_one_out_baseline_ignores_the_envs_own_returns():
    """Perturbing env b's returns changes env b's advantages by exactly the
    perturbation (its baseline does not see them) and moves the other envs'
    baselines by -Σ m_b δ / (valid steps of the other envs)."""
    returns, mask, _ = random_batch(30)
    b = 2
    rng = np.random.default_rng(31)
    delta = np.zeros_like(returns)
    delta[:, b] = rng.normal(size=T).astype(np.float32)
    before = np.asarray(loo_jit(returns, mask), np.float64)
    after = np.asarray(loo_jit(returns + delta, mask), np.float64)
    change = after - before
    np.testing.assert_allclose(change[:, b], delta[:, b] * mask[:, b], **TOL)
    for c in range(B):
        if c == b:
            continue
        other_count = mask.sum() - mask[:, c].sum()
        shift = -(delta[:, b] * mask[:, b]).sum() / other_count
        np.testing.assert_allclose(change[:, c], shift * mask[:, c], **TOL)
        assert np.any(change[:, c] != 0)


def test_leave_one_out_single_env_has_zero_baseline():
    """B = 1: there is no other env, the baseline is 0 and A = G on valid steps."""
    returns, mask, _ = random_batch(32, num_envs=1)
    np.testing.assert_array_equal(
        loo_jit(returns, mask), np.where(mask > 0, returns, 0.0)
    )


# ---------------------------------------------------------------------------
# group_normalised


def episode_batch():
    """Two envs, full mask: env 0 has episodes at t ∈ [0,3), [3,5), [5,8); env 1
    at [0,4), [4,8). Returns-to-go decrease inside each episode."""
    rng = np.random.default_rng(40)
    episode_start = np.zeros((8, 2), np.float32)
    episode_start[[0, 3, 5], 0] = 1.0
    episode_start[[0, 4], 1] = 1.0
    returns = rng.normal(size=(8, 2)).astype(np.float32)
    mask = np.ones((8, 2), np.float32)
    episodes = [(0, 0, 3), (0, 3, 5), (0, 5, 8), (1, 0, 4), (1, 4, 8)]
    return returns, mask, episode_start, episodes


def test_group_normalised_is_constant_within_episode_and_normalised():
    """Every step of an episode gets (R - mean R)/std R, with R the return at the
    episode's first step and mean/std (ddof 0) over the episodes."""
    returns, mask, episode_start, episodes = episode_batch()
    adv = np.asarray(group_jit(returns, mask, episode_start))
    episode_returns = np.array([returns[t0, b] for b, t0, _ in episodes], np.float64)
    normalised = (episode_returns - episode_returns.mean()) / episode_returns.std()
    for (b, t0, t1), value in zip(episodes, normalised, strict=True):
        np.testing.assert_allclose(adv[t0:t1, b], np.full(t1 - t0, value), **TOL)
        assert np.all(adv[t0:t1, b] == adv[t0, b])  # exactly constant
    # Normalised over episodes: mean 0 and std 1 across the group.
    episode_adv = np.array([adv[t0, b] for b, t0, _ in episodes], np.float64)
    np.testing.assert_allclose(episode_adv.mean(), 0.0, atol=1e-5)
    np.testing.assert_allclose(episode_adv.std(), 1.0, rtol=1e-5)


def test_group_normalised_masked_trailing_episode_is_left_out():
    """An episode whose start is masked (unfinished) neither gets an advantage
    nor enters the group statistics."""
    returns, mask, episode_start, _ = episode_batch()
    mask[5:, 0] = 0.0  # env 0's third episode is unfinished
    adv = np.asarray(group_jit(returns, mask, episode_start))
    assert np.all(adv[5:, 0] == 0.0)
    kept = np.array([returns[0, 0], returns[3, 0], returns[0, 1], returns[4, 1]])
    kept = kept.astype(np.float64)
    np.testing.assert_allclose(adv[0, 0], (kept[0] - kept.mean()) / kept.std(), **TOL)


@pytest.mark.parametrize("value", [0.0, 0.1, 1.7, 200.1, -37.3])
@pytest.mark.parametrize("num_episodes", [1, 3, 7])
def test_group_normalised_zero_std_guard_gives_zeros(value, num_episodes):
    """All episode returns equal (σ = 0): every advantage is exactly 0, not NaN
    and not float32 rounding noise of the mean divided by the ε floor."""
    returns = jnp.full((2, num_episodes), value, jnp.float32)
    mask = jnp.ones((2, num_episodes))
    episode_start = jnp.array([[1.0] * num_episodes, [0.0] * num_episodes])
    adv = np.asarray(group_jit(returns, mask, episode_start))
    np.testing.assert_array_equal(adv, np.zeros((2, num_episodes)))
