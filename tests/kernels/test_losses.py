r"""Tests for :mod:`jaxpg.kernels.losses`: REINFORCE surrogate, value, PPO-clip, KL.

Hand cases, NumPy references on random masked inputs, rlax's clipped surrogate
as an independent implementation, gradient identities (stop-gradient targets
carry no gradient), and Monte-Carlo checks of the KL estimators' bias.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import rlax

from jaxpg.kernels.losses import (
    entropy_loss,
    kl_estimate,
    masked_mean,
    policy_gradient_loss,
    ppo_clip_loss,
    value_loss,
)

TOL = {"rtol": 1e-5, "atol": 1e-6}
SHAPE = (6, 4)  # [T, B]

pg_loss_and_grads = jax.jit(jax.value_and_grad(policy_gradient_loss, argnums=(0, 1)))
value_loss_jit = jax.jit(value_loss)
value_loss_grads = jax.jit(jax.grad(value_loss, argnums=(0, 1)))
ppo_jit = jax.jit(ppo_clip_loss)
ppo_grads = jax.jit(jax.grad(ppo_clip_loss, argnums=(0, 1, 2), has_aux=True))
rlax_ppo = jax.jit(rlax.clipped_surrogate_pg_loss)


def random_inputs(seed, shape=SHAPE):
    """log π, log π_old (close to it), advantages and a random 0/1 mask."""
    rng = np.random.default_rng(seed)
    log_probs = -rng.exponential(size=shape).astype(np.float32)
    old_log_probs = (log_probs + 0.3 * rng.normal(size=shape)).astype(np.float32)
    advantages = rng.normal(size=shape).astype(np.float32)
    mask = (rng.uniform(size=shape) < 0.7).astype(np.float32)
    mask.flat[0] = 1.0  # at least one valid step
    return log_probs, old_log_probs, advantages, mask


def np_masked_mean(x, mask):
    return np.sum(x * mask) / max(np.sum(mask), 1.0)


# ---------------------------------------------------------------------------
# masked_mean, entropy_loss


def test_masked_mean_ignores_padding_and_guards_empty_mask():
    """Σ m x / max(Σ m, 1): padding never enters; an all-zero mask gives 0."""
    x = jnp.array([1.0, 2.0, 1e6])
    # (1 + 2) / 2 = 1.5
    np.testing.assert_allclose(masked_mean(x, jnp.array([1.0, 1.0, 0.0])), 1.5)
    assert masked_mean(x, jnp.zeros(3)) == 0.0


def test_entropy_loss_is_negative_masked_mean_entropy():
    """entropy_loss = -Σ m H / N (minimising it maximises entropy)."""
    entropy = jnp.array([0.5, 1.5, 9.0])
    mask = jnp.array([1.0, 1.0, 0.0])
    # -(0.5 + 1.5) / 2 = -1
    np.testing.assert_allclose(entropy_loss(entropy, mask), -1.0)


# ---------------------------------------------------------------------------
# policy_gradient_loss


def test_policy_gradient_loss_hand_case():
    """-Σ m log π A / N on a hand case with one masked step."""
    log_probs = jnp.array([-1.0, -2.0, -0.5])
    advantages = jnp.array([3.0, 1.0, 4.0])
    mask = jnp.array([1.0, 1.0, 0.0])
    # -((-1)(3) + (-2)(1)) / 2 = -(-5)/2 = 2.5   (step 2 masked out)
    loss, _ = pg_loss_and_grads(log_probs, advantages, mask)
    np.testing.assert_allclose(loss, 2.5, **TOL)


def test_policy_gradient_loss_gradients():
    """∂L/∂A = 0 (advantages are stop-gradient targets); ∂L/∂log π = -m A / N."""
    log_probs, _, advantages, mask = random_inputs(0)
    loss, (g_logp, g_adv) = pg_loss_and_grads(log_probs, advantages, mask)
    np.testing.assert_allclose(
        loss, -np_masked_mean(log_probs * advantages, mask), **TOL
    )
    np.testing.assert_array_equal(g_adv, np.zeros(SHAPE))
    np.testing.assert_allclose(g_logp, -mask * advantages / mask.sum(), **TOL)


def test_policy_gradient_loss_masked_steps_do_not_enter():
    """Changing log π and A on masked steps changes neither loss nor gradient."""
    log_probs, _, advantages, mask = random_inputs(1)
    pad = mask == 0
    assert pad.any()
    loss, grads = pg_loss_and_grads(log_probs, advantages, mask)
    loss2, grads2 = pg_loss_and_grads(
        np.where(pad, -1e4, log_probs), np.where(pad, 1e4, advantages), mask
    )
    assert loss2 == loss
    np.testing.assert_array_equal(grads2[0], grads[0])


# ---------------------------------------------------------------------------
# value_loss


def test_value_loss_hand_case_with_and_without_clipping():
    """½ (V - y)² and PPO's clipped max on a hand case."""
    values = jnp.array([1.0, 3.0, 0.0])
    targets = jnp.array([2.0, 0.0, 5.0])
    old_values = jnp.array([0.0, 2.5, 0.0])
    mask = jnp.array([1.0, 1.0, 0.0])
    # unclipped: ½ ((1-2)² + (3-0)²) / 2 = ½ (1 + 9) / 2 = 2.5
    np.testing.assert_allclose(value_loss_jit(values, targets, mask), 2.5, **TOL)
    # ε = 0.5: V_clip = [0 + clip(1, ±.5), 2.5 + clip(.5, ±.5)] = [0.5, 3.0]
    # max((1-2)², (0.5-2)²) = 2.25; max(9, 9) = 9; ½ (2.25 + 9) / 2 = 2.8125
    np.testing.assert_allclose(
        value_loss_jit(values, targets, mask, old_values, 0.5), 2.8125, **TOL
    )


def test_value_loss_matches_numpy_with_and_without_clipping():
    """Random masked inputs, unclipped and clipped, against NumPy."""
    rng = np.random.default_rng(2)
    values, targets, old_values = rng.normal(size=(3, *SHAPE)).astype(np.float32)
    _, _, _, mask = random_inputs(2)
    clip_eps = 0.2
    np.testing.assert_allclose(
        value_loss_jit(values, targets, mask),
        0.5 * np_masked_mean((values - targets) ** 2, mask),
        **TOL,
    )
    clipped = old_values + np.clip(values - old_values, -clip_eps, clip_eps)
    err = np.maximum((values - targets) ** 2, (clipped - targets) ** 2)
    np.testing.assert_allclose(
        value_loss_jit(values, targets, mask, old_values, clip_eps),
        0.5 * np_masked_mean(err, mask),
        **TOL,
    )


def test_value_loss_gradient_flows_to_values_only():
    """∂L/∂y = 0 (targets stopped); ∂L/∂V = m (V - y) / N."""
    rng = np.random.default_rng(3)
    values, targets = rng.normal(size=(2, *SHAPE)).astype(np.float32)
    _, _, _, mask = random_inputs(3)
    g_values, g_targets = value_loss_grads(values, targets, mask)
    np.testing.assert_array_equal(g_targets, np.zeros(SHAPE))
    np.testing.assert_allclose(g_values, mask * (values - targets) / mask.sum(), **TOL)


# ---------------------------------------------------------------------------
# ppo_clip_loss


def test_ppo_clip_loss_matches_rlax():
    """With mask = 1 the loss equals rlax.clipped_surrogate_pg_loss(ρ, A, ε)."""
    log_probs, old_log_probs, advantages, _ = random_inputs(4, shape=(64,))
    clip_eps = 0.2
    loss, _ = ppo_jit(
        log_probs, old_log_probs, advantages, np.ones(64, np.float32), clip_eps
    )
    ratios = jnp.exp(log_probs - old_log_probs)
    np.testing.assert_allclose(loss, rlax_ppo(ratios, advantages, clip_eps), **TOL)


def test_ppo_clip_loss_diagnostics_match_numpy():
    """Masked loss, approx_kl = mean((ρ-1) - log ρ) and clip_frac =
    mean(|ρ-1| > ε) over valid steps, against NumPy."""
    log_probs, old_log_probs, advantages, mask = random_inputs(5)
    clip_eps = 0.2
    loss, diag = ppo_jit(log_probs, old_log_probs, advantages, mask, clip_eps)
    log_ratio = log_probs.astype(np.float64) - old_log_probs
    ratio = np.exp(log_ratio)
    surrogate = np.minimum(
        ratio * advantages, np.clip(ratio, 1 - clip_eps, 1 + clip_eps) * advantages
    )
    np.testing.assert_allclose(loss, -np_masked_mean(surrogate, mask), **TOL)
    np.testing.assert_allclose(
        diag["approx_kl"], np_masked_mean(ratio - 1 - log_ratio, mask), **TOL
    )
    clip_frac = np_masked_mean(np.abs(ratio - 1) > clip_eps, mask)
    assert 0 < clip_frac < 1  # the input exercises both branches
    np.testing.assert_allclose(diag["clip_frac"], clip_frac, **TOL)
    assert diag["approx_kl"] >= 0


def test_ppo_clip_loss_gradient_only_through_new_log_probs():
    """∂L/∂A = ∂L/∂log π_old = 0; ∂L/∂log π = -m ρ A / N where the unclipped
    term is active, 0 where the clip binds."""
    log_probs, old_log_probs, advantages, mask = random_inputs(6)
    clip_eps = 0.2
    (g_logp, g_old, g_adv), _ = ppo_grads(
        log_probs, old_log_probs, advantages, mask, clip_eps
    )
    np.testing.assert_array_equal(g_old, np.zeros(SHAPE))
    np.testing.assert_array_equal(g_adv, np.zeros(SHAPE))
    ratio = np.exp(log_probs.astype(np.float64) - old_log_probs)
    clipped_binds = ((advantages > 0) & (ratio > 1 + clip_eps)) | (
        (advantages < 0) & (ratio < 1 - clip_eps)
    )
    assert clipped_binds[mask > 0].any() and (~clipped_binds[mask > 0]).any()
    expected = np.where(clipped_binds, 0.0, -mask * ratio * advantages / mask.sum())
    np.testing.assert_allclose(g_logp, expected, **TOL)


def test_ppo_clip_eps_can_be_vmapped():
    """clip ε is a traced hyperparameter: vmapping over it equals a loop."""
    log_probs, old_log_probs, advantages, mask = random_inputs(7)
    eps = jnp.array([0.1, 0.2, 0.3])
    vmapped, _ = jax.jit(
        jax.vmap(
            functools.partial(ppo_clip_loss, log_probs, old_log_probs, advantages, mask)
        )
    )(eps)
    looped = [ppo_jit(log_probs, old_log_probs, advantages, mask, e)[0] for e in eps]
    np.testing.assert_allclose(vmapped, looped, **TOL)


# ---------------------------------------------------------------------------
# kl_estimate


def test_kl_estimators_match_numpy_and_k3_is_non_negative():
    """k1 = -log r, k2 = ½ (log r)², k3 = (r - 1) - log r with
    r = π_ref(a)/π(a); k3 ≥ 0 even for large |log r|."""
    rng = np.random.default_rng(8)
    log_probs = -rng.exponential(size=SHAPE).astype(np.float32)
    ref_log_probs = (log_probs + 3.0 * rng.normal(size=SHAPE)).astype(np.float32)
    log_r = ref_log_probs.astype(np.float64) - log_probs
    expected = {
        "k1": -log_r,
        "k2": 0.5 * log_r**2,
        "k3": np.expm1(log_r) - log_r,
    }
    for kind, value in expected.items():
        np.testing.assert_allclose(
            kl_estimate(log_probs, ref_log_probs, kind), value, rtol=1e-5, atol=1e-5
        )
    tiny = jnp.array([1e-4, -1e-4, 0.0, 30.0, -30.0])
    assert np.all(np.asarray(kl_estimate(jnp.zeros(5), tiny, "k3")) >= 0)
    assert np.all(np.asarray(kl_estimate(log_probs, ref_log_probs, "k3")) >= 0)


def test_kl_estimate_default_is_k3():
    """kind defaults to the unbiased, non-negative k3."""
    log_probs, ref_log_probs, _, _ = random_inputs(9)
    np.testing.assert_array_equal(
        kl_estimate(log_probs, ref_log_probs),
        kl_estimate(log_probs, ref_log_probs, "k3"),
    )


KL_NUM_SAMPLES = 20_000


@functools.cache
def categorical_kl_draws():
    """log π(a), log π_ref(a) for N draws a ~ π, and the exact KL(π ‖ π_ref)."""
    p = np.array([0.5, 0.2, 0.15, 0.1, 0.05])
    q = np.array([0.1, 0.3, 0.2, 0.25, 0.15])
    exact = np.sum(p * np.log(p / q))
    log_p = jnp.log(jnp.asarray(p, jnp.float32))
    log_q = jnp.log(jnp.asarray(q, jnp.float32))
    actions = jax.random.categorical(jax.random.key(0), log_p, shape=(KL_NUM_SAMPLES,))
    return log_p[actions], log_q[actions], exact


def standard_errors_off(samples, exact):
    samples = np.asarray(samples, np.float64)
    return abs(samples.mean() - exact) / (samples.std() / np.sqrt(samples.size))


@pytest.mark.parametrize("kind", ["k1", "k3"])
def test_kl_estimators_k1_k3_are_unbiased_for_categoricals(kind):
    """For a ~ π (N = 20000), the sample mean of k1 and of k3 is within 4 standard
    errors (sample sd/√N) of the exact KL(π ‖ π_ref) = Σ π log(π/π_ref)."""
    log_p, log_q, exact = categorical_kl_draws()
    assert standard_errors_off(kl_estimate(log_p, log_q, kind), exact) < 4.0


def test_kl_monte_carlo_check_detects_the_bias_of_k2():
    """The unbiasedness check has power: on the same draws the biased k2, and k3
    with its arguments swapped (KL(π_ref ‖ π)), miss by more than 10 SE."""
    log_p, log_q, exact = categorical_kl_draws()
    assert standard_errors_off(kl_estimate(log_p, log_q, "k2"), exact) > 10.0
    assert standard_errors_off(kl_estimate(log_q, log_p, "k3"), exact) > 10.0


def test_kl_estimate_unknown_kind_raises():
    """An unknown estimator name is a ValueError that names it."""
    with pytest.raises(ValueError, match="k4"):
        kl_estimate(jnp.zeros(3), jnp.zeros(3), "k4")
