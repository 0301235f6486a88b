r"""Tests for :mod:`jaxpg.kernels.returns`: discounted returns, their prefix form, GAE.

References: a NumPy loop for every kernel (random ``[T, B]`` inputs, ``T = 1``
included), rlax as an independent library (time-major ``[T]`` streams, vmapped
over envs), and hand-worked cases with the arithmetic in a comment.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax
from jax.test_util import check_grads

from jaxpg.kernels.batching import SEED_AXIS
from jaxpg.kernels.returns import (
    discounted_returns,
    discounted_returns_prefix,
    generalized_advantage_estimation,
)

TOL = {"rtol": 1e-5, "atol": 1e-5}
GAMMA = 0.9
B = 3

# Jitted once per module; each distinct shape compiles once.
returns_jit = jax.jit(discounted_returns)
prefix_jit = jax.jit(discounted_returns_prefix)  # ``length`` is traced
gae_jit = jax.jit(generalized_advantage_estimation)
rlax_returns = jax.jit(jax.vmap(rlax.discounted_returns, in_axes=(1, 1, 0), out_axes=1))
rlax_gae = jax.jit(
    jax.vmap(
        rlax.truncated_generalized_advantage_estimation,
        in_axes=(1, 1, None, 1),
        out_axes=1,
    )
)


def np_returns(rewards, discounts, bootstrap):
    """G_t = r_t + d_t G_{t+1}, G_T = bootstrap, by a Python loop in float64."""
    g = np.asarray(bootstrap, np.float64)
    out = np.zeros(rewards.shape)
    for t in reversed(range(rewards.shape[0])):
        g = rewards[t] + discounts[t] * g
        out[t] = g
    return out


def np_returns_prefix(rewards, discounts, length):
    """np_returns on the first ``length`` steps, bootstrap 0, zeros after."""
    out = np.zeros(rewards.shape)
    out[:length] = np_returns(rewards[:length], discounts[:length], 0.0)
    return out


def np_gae(rewards, discounts, values, next_values, lambda_, truncated):
    """A_t = δ_t + d_t λ (1 - c_t) A_{t+1}, A_T = 0, by a Python loop."""
    adv = np.zeros(rewards.shape)
    a = np.zeros(rewards.shape[1:])
    for t in reversed(range(rewards.shape[0])):
        delta = rewards[t] + discounts[t] * next_values[t] - values[t]
        a = delta + discounts[t] * lambda_ * (1.0 - truncated[t]) * a
        adv[t] = a
    return adv


def random_stream(seed, num_steps, num_envs=B):
    """Rewards, discounts (γ, or 0 at ~20% terminal steps), values, cut flags."""
    rng = np.random.default_rng(seed)
    shape = (num_steps, num_envs)
    rewards = rng.normal(size=shape).astype(np.float32)
    terminated = rng.uniform(size=shape) < 0.2
    discounts = (GAMMA * ~terminated).astype(np.float32)
    values = rng.normal(size=(num_steps + 1, num_envs)).astype(np.float32)
    truncated = ((rng.uniform(size=shape) < 0.2) & ~terminated).astype(np.float32)
    return rewards, discounts, values, truncated


# ---------------------------------------------------------------------------
# discounted_returns


def test_discounted_returns_hand_case_terminal_step_stops_the_return():
    """G_t = r_t + d_t G_{t+1} on a hand-worked case with a terminal step."""
    rewards = jnp.array([1.0, 2.0, 3.0])
    discounts = jnp.array([0.5, 0.0, 0.5])  # step 1 is terminal
    bootstrap = jnp.array(4.0)
    # G_2 = 3 + 0.5 * 4   = 5
    # G_1 = 2 + 0.0 * 5   = 2     (terminal: nothing after step 1 enters)
    # G_0 = 1 + 0.5 * 2   = 2
    g = returns_jit(rewards, discounts, bootstrap)
    np.testing.assert_array_equal(g, [2.0, 2.0, 5.0])


@pytest.mark.parametrize("num_steps", [1, 7])
def test_discounted_returns_matches_numpy_loop(num_steps):
    """Random [T, B] (T = 1 included) agrees with a float64 NumPy loop."""
    rewards, discounts, values, _ = random_stream(num_steps, num_steps)
    bootstrap = values[-1]
    g = returns_jit(rewards, discounts, bootstrap)
    assert g.shape == rewards.shape and g.dtype == jnp.float32
    np.testing.assert_allclose(g, np_returns(rewards, discounts, bootstrap), **TOL)


def test_discounted_returns_matches_rlax():
    """Agrees with rlax.discounted_returns (an independent implementation)."""
    rewards, discounts, values, _ = random_stream(10, 9)
    bootstrap = values[-1]
    np.testing.assert_allclose(
        returns_jit(rewards, discounts, bootstrap),
        rlax_returns(rewards, discounts, bootstrap),
        **TOL,
    )


def test_discounted_returns_vmap_equals_python_loop():
    """vmap over envs, the [T, B] call and a loop over [T] columns agree."""
    rewards, discounts, values, _ = random_stream(11, 6)
    bootstrap = values[-1]
    batched = returns_jit(rewards, discounts, bootstrap)
    vmapped = jax.vmap(discounted_returns, in_axes=(1, 1, 0), out_axes=1)(
        rewards, discounts, bootstrap
    )
    looped = np.stack(
        [
            discounted_returns(rewards[:, b], discounts[:, b], bootstrap[b])
            for b in range(B)
        ],
        axis=1,
    )
    np.testing.assert_allclose(vmapped, looped, **TOL)
    np.testing.assert_allclose(batched, looped, **TOL)


def test_discounted_returns_jacobian_is_cumulative_discount_matrix():
    """dG_t/dr_k = Π_{j=t}^{k-1} d_j for k ≥ t (0 below the diagonal); dG/dboot."""
    rng = np.random.default_rng(12)
    num_steps = 5
    rewards = jnp.asarray(rng.normal(size=num_steps), jnp.float32)
    discounts = jnp.asarray([0.9, 0.5, 0.0, 0.8, 0.7], jnp.float32)
    bootstrap = jnp.float32(1.5)
    d = np.asarray(discounts, np.float64)
    analytic = np.zeros((num_steps, num_steps))
    for t in range(num_steps):
        for k in range(t, num_steps):
            analytic[t, k] = np.prod(d[t:k])
    jac = jax.jit(jax.jacobian(discounted_returns))(rewards, discounts, bootstrap)
    np.testing.assert_allclose(jac, analytic, **TOL)
    # The gradient of sum(G) is the column sum of that matrix.
    grad_sum = jax.grad(lambda r: discounted_returns(r, discounts, bootstrap).sum())
    np.testing.assert_allclose(grad_sum(rewards), analytic.sum(axis=0), **TOL)
    grad_boot = jax.jacobian(discounted_returns, argnums=2)(
        rewards, discounts, bootstrap
    )
    np.testing.assert_allclose(
        grad_boot, [np.prod(d[t:]) for t in range(num_steps)], **TOL
    )


def test_discounted_returns_gradients_match_finite_differences():
    """Forward and reverse derivatives (to order 2) agree with finite differences."""
    rewards, discounts, values, _ = random_stream(13, 4, num_envs=2)
    discounts = np.full_like(discounts, GAMMA)  # smooth in every argument
    check_grads(
        returns_jit,
        (rewards, discounts, values[-1]),
        order=2,
        modes=("fwd", "rev"),
        eps=1e-2,
    )


# ---------------------------------------------------------------------------
# discounted_returns_prefix


@pytest.mark.parametrize("length", [0, 1, 4, 8])
def test_prefix_equals_returns_on_first_length_steps_and_zero_after(length):
    """Prefix = discounted_returns(bootstrap 0) on t < length, exactly 0 after."""
    rewards, discounts, _, _ = random_stream(20, 8)
    g = prefix_jit(rewards, discounts, length)
    expected = np.zeros(rewards.shape)
    expected[:length] = np_returns(rewards[:length], discounts[:length], np.zeros(B))
    np.testing.assert_allclose(g, expected, **TOL)
    assert np.all(np.asarray(g)[length:] == 0.0)


def test_prefix_ignores_garbage_past_length():
    """Entries at and past ``length`` (NaN, inf, huge) never reach the output."""
    rewards, discounts, _, _ = random_stream(21, 8)
    length = 5
    clean = prefix_jit(rewards, discounts, length)
    dirty_r, dirty_d = rewards.copy(), discounts.copy()
    dirty_r[length:] = np.array([np.nan, np.inf, 1e30], np.float32)
    dirty_d[length:] = np.nan
    dirty = prefix_jit(dirty_r, dirty_d, length)
    np.testing.assert_array_equal(dirty, clean)


def test_prefix_length_above_buffer_is_clamped():
    """length > L behaves as length = L (the whole buffer)."""
    rewards, discounts, _, _ = random_stream(22, 8)
    np.testing.assert_array_equal(
        prefix_jit(rewards, discounts, 100), prefix_jit(rewards, discounts, 8)
    )


@pytest.mark.parametrize("axis_name", [None, SEED_AXIS])
def test_prefix_vmap_over_lengths_equals_python_loop(axis_name):
    """vmap with per-member lengths (plain, and over jaxpg's named seed axis,
    where the loop runs masked iterations) equals a loop of single calls."""
    rewards, discounts, _, _ = random_stream(23, 6, num_envs=4)
    lengths = jnp.array([0, 2, 6, 3])
    # Batch over the env axis: each member is a [L] stream with its own length.
    vmapped = jax.jit(
        jax.vmap(
            discounted_returns_prefix,
            in_axes=(1, 1, 0),
            out_axes=1,
            axis_name=axis_name,
        )
    )(rewards, discounts, lengths)
    looped = np.stack(
        [
            np_returns_prefix(rewards[:, b], discounts[:, b], int(lengths[b]))
            for b in range(4)
        ],
        axis=1,
    )
    np.testing.assert_allclose(vmapped, looped, **TOL)


def test_prefix_is_the_same_for_every_chunk():
    """Testing the loop bound every ``chunk`` iterations (3: divides no length
    here; 50: more than the buffer) changes no bit, unbatched and under vmap
    over per-member lengths."""
    rewards, discounts, _, _ = random_stream(24, 7, num_envs=4)
    lengths = jnp.array([0, 2, 7, 5])

    def run(chunk):
        one = functools.partial(discounted_returns_prefix, chunk=chunk)
        fn = jax.vmap(one, in_axes=(1, 1, 0), out_axes=1)
        return jax.jit(fn)(rewards, discounts, lengths), jax.jit(one)(
            rewards, discounts, 5
        )

    want = run(1)
    for chunk in (3, 50):
        for got, ref in zip(run(chunk), want, strict=True):
            np.testing.assert_array_equal(got, ref)


# ---------------------------------------------------------------------------
# generalized_advantage_estimation


@pytest.mark.parametrize("num_steps", [1, 9])
def test_gae_without_cuts_matches_rlax(num_steps):
    """No truncation: agrees with rlax.truncated_generalized_advantage_estimation
    (rlax values [T+1] ↔ ours values = v[:-1], next_values = v[1:])."""
    rewards, discounts, v, _ = random_stream(30 + num_steps, num_steps)
    lambda_ = 0.8
    adv, targets = gae_jit(rewards, discounts, v[:-1], v[1:], lambda_)
    expected = rlax_gae(rewards, discounts, lambda_, v)
    np.testing.assert_allclose(adv, expected, **TOL)
    np.testing.assert_allclose(targets, np.asarray(expected) + v[:-1], **TOL)


@pytest.mark.parametrize("num_steps", [1, 9])
def test_gae_with_cuts_and_terminations_matches_numpy_loop(num_steps):
    """Random terminations, truncations and unrelated next_values (the final
    observation's value after a reset) agree with a NumPy loop."""
    rewards, discounts, v, truncated = random_stream(40 + num_steps, num_steps)
    rng = np.random.default_rng(41)
    next_values = rng.normal(size=rewards.shape).astype(np.float32)
    lambda_ = 0.7
    adv, targets = gae_jit(rewards, discounts, v[:-1], next_values, lambda_, truncated)
    expected = np_gae(rewards, discounts, v[:-1], next_values, lambda_, truncated)
    np.testing.assert_allclose(adv, expected, **TOL)
    np.testing.assert_allclose(targets, expected + v[:-1], **TOL)


def test_gae_truncation_stops_the_chain_and_bootstraps_next_value():
    """truncated[t] = 1: A_t = r_t + γ V(s'_{t+1}) - V(s_t) (bootstrapped with
    next_values[t]), and nothing after t leaks into steps ≤ t."""
    rewards = jnp.array([1.0, 2.0, 3.0, 4.0])
    discounts = jnp.full(4, 0.5)
    values = jnp.array([0.5, 1.0, 1.5, 2.0])
    next_values = jnp.array([1.0, 8.0, 2.0, 6.0])  # 8 = V(final obs), not V(reset)
    truncated = jnp.array([0.0, 1.0, 0.0, 0.0])
    lambda_ = 0.5
    # A_3 = 4 + 0.5*6 - 2                     = 5
    # A_2 = (3 + 0.5*2 - 1.5) + 0.25 * 5      = 2.5 + 1.25 = 3.75
    # A_1 = 2 + 0.5*8 - 1                     = 5   (cut: no 0.25 * A_2)
    # A_0 = (1 + 0.5*1 - 0.5) + 0.25 * 5      = 1 + 1.25 = 2.25
    adv, _ = gae_jit(rewards, discounts, values, next_values, lambda_, truncated)
    np.testing.assert_allclose(adv, [2.25, 5.0, 3.75, 5.0], **TOL)
    # Steps up to the cut do not see anything after it.
    adv_changed, _ = gae_jit(
        rewards.at[2:].add(100.0),
        discounts,
        values.at[2:].add(-50.0),
        next_values.at[2:].add(7.0),
        lambda_,
        truncated,
    )
    np.testing.assert_array_equal(adv_changed[:2], adv[:2])
    # Bool cut flags mean the same as float ones.
    adv_bool, _ = gae_jit(
        rewards, discounts, values, next_values, lambda_, truncated.astype(bool)
    )
    np.testing.assert_array_equal(adv_bool, adv)


def test_gae_termination_bootstraps_nothing():
    """discount 0 at t: A_t = r_t - V(s_t); next_values[t] has no influence."""
    rewards = jnp.array([1.0, 2.0, 3.0])
    discounts = jnp.array([0.5, 0.0, 0.5])  # step 1 terminal
    values = jnp.array([0.5, 1.0, 1.5])
    next_values = jnp.array([1.0, 99.0, 2.0])
    lambda_ = 0.5
    # A_2 = 3 + 0.5*2 - 1.5          = 2.5
    # A_1 = 2 + 0*99 - 1 + 0 * A_2   = 1
    # A_0 = (1 + 0.5*1 - 0.5) + 0.25 * 1 = 1.25
    adv, _ = gae_jit(rewards, discounts, values, next_values, lambda_)
    np.testing.assert_allclose(adv, [1.25, 1.0, 2.5], **TOL)
    grad = jax.jit(
        jax.grad(
            lambda nv: generalized_advantage_estimation(
                rewards, discounts, values, nv, lambda_
            )[0].sum()
        )
    )(next_values)
    assert grad[1] == 0.0
    assert grad[0] != 0.0 and grad[2] != 0.0


def test_gae_lambda_one_is_monte_carlo_return_minus_value():
    """λ = 1 (no cuts, consistent values): A = G - V, targets = G, with G the
    discounted return bootstrapped from V(s_T)."""
    rewards, discounts, v, _ = random_stream(50, 8)
    adv, targets = gae_jit(rewards, discounts, v[:-1], v[1:], 1.0)
    mc = np_returns(rewards, discounts, v[-1])
    np.testing.assert_allclose(adv, mc - v[:-1], **TOL)
    np.testing.assert_allclose(targets, mc, **TOL)


def test_gae_lambda_zero_is_td_error():
    """λ = 0: A_t = δ_t = r_t + d_t V(s'_{t+1}) - V(s_t), with or without cuts."""
    rewards, discounts, v, truncated = random_stream(51, 8)
    next_values = v[1:] + 3.0  # need not be consistent with values
    adv, _ = gae_jit(rewards, discounts, v[:-1], next_values, 0.0, truncated)
    np.testing.assert_allclose(adv, rewards + discounts * next_values - v[:-1], **TOL)


def test_gae_vmap_equals_python_loop():
    """vmap over envs of the [T] kernel equals a loop of single-stream calls."""
    rewards, discounts, v, truncated = random_stream(52, 5)
    args = (rewards, discounts, v[:-1], v[1:])
    vmapped, _ = jax.vmap(
        generalized_advantage_estimation,
        in_axes=(1, 1, 1, 1, None, 1),
        out_axes=1,
    )(*args, 0.9, truncated)
    looped = np.stack(
        [
            generalized_advantage_estimation(
                *(x[:, b] for x in args), 0.9, truncated[:, b]
            )[0]
            for b in range(B)
        ],
        axis=1,
    )
    np.testing.assert_allclose(vmapped, looped, **TOL)
