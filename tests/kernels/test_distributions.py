r"""Tests for :mod:`jaxpg.kernels.distributions`: Categorical and DiagGaussian.

log-probabilities and entropies against closed forms in NumPy, sampling against
the probabilities within stated standard errors (fixed keys, so deterministic),
modes, and the score-function identities that REINFORCE relies on.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.kernels.distributions import Categorical, DiagGaussian

TOL = {"rtol": 1e-5, "atol": 1e-5}
NUM_SAMPLES = 20_000
NUM_SE = 4.0  # a correct sampler fails a 4-SE check with probability ~6e-5


def np_log_softmax(logits):
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def np_normal_log_density(x, mean, std):
    """Sum over the last axis of log N(x; mean, std²) = -(x-μ)²/(2σ²) - log(σ√(2π))."""
    return np.sum(
        -((x - mean) ** 2) / (2 * std**2) - np.log(std * np.sqrt(2 * np.pi)),
        axis=-1,
    )


@jax.jit
def categorical_stats(logits, actions):
    dist = Categorical(logits)
    return dist.log_prob(actions), dist.entropy(), dist.mode()


@jax.jit
def gaussian_stats(mean, log_std, actions):
    dist = DiagGaussian(mean, log_std)
    return dist.log_prob(actions), dist.entropy(), dist.mode()


@jax.jit
def categorical_samples(key, logits):
    return Categorical(jnp.broadcast_to(logits, (NUM_SAMPLES, *logits.shape))).sample(
        key
    )


@jax.jit
def gaussian_samples(key, mean, log_std):
    shape = (NUM_SAMPLES, *mean.shape)
    return DiagGaussian(
        jnp.broadcast_to(mean, shape), jnp.broadcast_to(log_std, shape)
    ).sample(key)


# ---------------------------------------------------------------------------
# Categorical


def test_categorical_hand_case():
    """log π, entropy and mode on probabilities [1/4, 1/2, 1/4]."""
    logits = jnp.log(jnp.array([1.0, 2.0, 1.0]))  # softmax -> [0.25, 0.5, 0.25]
    log_prob, entropy, mode = categorical_stats(logits, jnp.array(1))
    # log π(1) = log 0.5
    np.testing.assert_allclose(log_prob, math.log(0.5), **TOL)
    # H = -(2 * 0.25 log 0.25 + 0.5 log 0.5) = 0.5 log 4 + 0.5 log 2 = 1.5 log 2
    np.testing.assert_allclose(entropy, 1.5 * math.log(2.0), **TOL)
    assert mode == 1


def test_categorical_log_prob_entropy_mode_match_numpy():
    """Random [T, B, A] logits: log π(a) = logits[a] - logsumexp(logits),
    H = -Σ π log π, mode = argmax, computed in float64 NumPy."""
    rng = np.random.default_rng(0)
    logits = (3.0 * rng.normal(size=(4, 3, 5))).astype(np.float32)
    actions = rng.integers(0, 5, size=(4, 3))
    log_prob, entropy, mode = categorical_stats(logits, actions)
    logp = np_log_softmax(logits.astype(np.float64))
    np.testing.assert_allclose(
        log_prob, np.take_along_axis(logp, actions[..., None], -1)[..., 0], **TOL
    )
    np.testing.assert_allclose(entropy, -np.sum(np.exp(logp) * logp, -1), **TOL)
    np.testing.assert_array_equal(mode, logits.argmax(-1))
    assert mode.dtype == jnp.int32 and mode.shape == (4, 3)


def test_categorical_is_stable_for_large_logits():
    """Logits of ±1000 give finite log-probs and entropy (log-softmax, no exp
    overflow)."""
    logits = jnp.array([[1000.0, 0.0, -1000.0]])
    log_prob, entropy, _ = categorical_stats(logits, jnp.array([1]))
    np.testing.assert_allclose(log_prob, [-1000.0], **TOL)
    np.testing.assert_allclose(entropy, [0.0], **TOL)


def test_categorical_sample_frequencies_match_probabilities():
    """Frequencies of N = 20000 samples are within 4 binomial standard errors
    sqrt(p(1-p)/N) of the probabilities; samples are int32 in range."""
    probs = np.array([0.1, 0.2, 0.3, 0.4])
    samples = categorical_samples(
        jax.random.key(0), jnp.log(jnp.asarray(probs, jnp.float32))
    )
    assert samples.shape == (NUM_SAMPLES,) and samples.dtype == jnp.int32
    counts = np.bincount(np.asarray(samples), minlength=len(probs))
    assert counts.sum() == NUM_SAMPLES and len(counts) == len(probs)
    se = np.sqrt(probs * (1 - probs) / NUM_SAMPLES)
    np.testing.assert_array_less(np.abs(counts / NUM_SAMPLES - probs), NUM_SE * se)


def test_categorical_score_function_is_onehot_minus_softmax():
    """∇_logits log π(a) = onehot(a) - softmax(logits) (the REINFORCE score)."""
    rng = np.random.default_rng(1)
    logits = rng.normal(size=(6, 4)).astype(np.float32)
    actions = rng.integers(0, 4, size=6)
    score = jax.jit(jax.vmap(jax.grad(lambda lg, a: Categorical(lg).log_prob(a))))(
        logits, actions
    )
    expected = np.eye(4)[actions] - np.exp(np_log_softmax(logits.astype(np.float64)))
    np.testing.assert_allclose(score, expected, **TOL)


# ---------------------------------------------------------------------------
# DiagGaussian


def test_gaussian_hand_case():
    """log N on a 2-d hand case; entropy and mode."""
    mean = jnp.array([1.0, -1.0])
    log_std = jnp.log(jnp.array([2.0, 1.0]))
    action = jnp.array([3.0, -1.0])
    log_prob, entropy, mode = gaussian_stats(mean, log_std, action)
    # z = [(3-1)/2, 0] = [1, 0]
    # log p = (-0.5*1 - log 2 - 0.5 log 2π) + (-0 - 0 - 0.5 log 2π)
    #       = -0.5 - log 2 - log 2π
    expected = -0.5 - math.log(2.0) - math.log(2 * math.pi)
    np.testing.assert_allclose(log_prob, expected, **TOL)
    # H = Σ_d (log σ_d + 0.5 log 2πe) = log 2 + log 2πe
    np.testing.assert_allclose(
        entropy, math.log(2.0) + math.log(2 * math.pi * math.e), **TOL
    )
    np.testing.assert_array_equal(mode, mean)


def test_gaussian_log_prob_and_entropy_match_closed_form():
    """Random [B, D]: log_prob equals the NumPy normal log-density summed over D;
    entropy equals Σ_d ½ log(2πe σ_d²); mode is the mean."""
    rng = np.random.default_rng(2)
    mean = rng.normal(size=(5, 3)).astype(np.float32)
    log_std = rng.uniform(-1.0, 1.0, size=(5, 3)).astype(np.float32)
    actions = rng.normal(size=(5, 3)).astype(np.float32) * 2
    log_prob, entropy, mode = gaussian_stats(mean, log_std, actions)
    std = np.exp(log_std.astype(np.float64))
    np.testing.assert_allclose(
        log_prob, np_normal_log_density(actions, mean, std), **TOL
    )
    np.testing.assert_allclose(
        entropy, np.sum(0.5 * np.log(2 * np.pi * np.e * std**2), -1), **TOL
    )
    np.testing.assert_array_equal(mode, mean)
    assert log_prob.shape == entropy.shape == (5,)


def test_gaussian_sample_mean_and_std_within_standard_errors():
    """N = 20000 samples: per-dimension mean within 4 SE (σ/√N) of μ and standard
    deviation within 4 SE (≈ σ/√(2N)) of σ; -mean log p within 4 SE of H."""
    mean = jnp.array([0.5, -2.0, 3.0])
    log_std = jnp.log(jnp.array([0.1, 1.0, 3.0]))
    samples = np.asarray(gaussian_samples(jax.random.key(1), mean, log_std))
    assert samples.shape == (NUM_SAMPLES, 3)
    std = np.exp(np.asarray(log_std, np.float64))
    np.testing.assert_array_less(
        np.abs(samples.mean(0) - mean), NUM_SE * std / np.sqrt(NUM_SAMPLES)
    )
    np.testing.assert_array_less(
        np.abs(samples.std(0) - std), NUM_SE * std / np.sqrt(2 * NUM_SAMPLES)
    )
    shape = samples.shape
    neg_log_p, entropy, _ = gaussian_stats(
        jnp.broadcast_to(mean, shape), jnp.broadcast_to(log_std, shape), samples
    )
    neg_log_p, entropy = -np.asarray(neg_log_p), entropy[0]
    assert abs(neg_log_p.mean() - entropy) < NUM_SE * neg_log_p.std() / np.sqrt(
        NUM_SAMPLES
    )


def test_gaussian_score_function_matches_analytic():
    """∇_μ log p = (a-μ)/σ² and ∇_{log σ} log p = z² - 1 with z = (a-μ)/σ."""
    rng = np.random.default_rng(3)
    mean = rng.normal(size=4).astype(np.float32)
    log_std = rng.uniform(-0.5, 0.5, size=4).astype(np.float32)
    action = rng.normal(size=4).astype(np.float32)
    g_mean, g_log_std = jax.jit(
        jax.grad(lambda m, s: DiagGaussian(m, s).log_prob(action), argnums=(0, 1))
    )(mean, log_std)
    std = np.exp(log_std.astype(np.float64))
    z = (action - mean) / std
    np.testing.assert_allclose(g_mean, z / std, **TOL)
    np.testing.assert_allclose(g_log_std, z**2 - 1, **TOL)


@pytest.mark.parametrize("dist_name", ["categorical", "gaussian"])
def test_distributions_are_pytrees_that_vmap(dist_name):
    """A distribution passes through vmap: vmapped log_prob equals a loop."""
    rng = np.random.default_rng(4)
    if dist_name == "categorical":
        dist = Categorical(jnp.asarray(rng.normal(size=(3, 4)), jnp.float32))
        actions = jnp.array([0, 3, 1])
    else:
        dist = DiagGaussian(
            jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
            jnp.asarray(rng.normal(size=(3, 2)), jnp.float32),
        )
        actions = jnp.asarray(rng.normal(size=(3, 2)), jnp.float32)
    vmapped = jax.jit(jax.vmap(lambda d, a: d.log_prob(a)))(dist, actions)
    looped = [
        jax.tree.map(lambda x, i=i: x[i], dist).log_prob(actions[i]) for i in range(3)
    ]
    np.testing.assert_allclose(vmapped, looped, **TOL)
    np.testing.assert_allclose(vmapped, dist.log_prob(actions), **TOL)
