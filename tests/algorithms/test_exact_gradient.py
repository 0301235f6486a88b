r"""The library's proof of correctness: its REINFORCE gradient estimate, run
through its own rollout and loss, averages to the exact policy gradient.

On a random tabular MDP with a time limit, ``J(θ)`` is computed exactly by
dynamic programming over the remaining time and ``∇J`` by ``jax.grad``. The
policy is jaxpg's own network with no hidden layer (a linear-softmax policy of
one-hot observations, i.e. tabular). ``γ = 1`` because the usual estimator
``Σ_t ∇log π(a_t|s_t) G_t`` is the gradient of the undiscounted return (with
``γ < 1`` it omits the ``γ^t`` factor and is not the gradient of anything).

With ``rollout_steps = 1`` each of the ``B`` envs runs exactly one episode, the
loss is normalised by ``B``, so the estimate ``ĝ = -grad(loss)`` satisfies
``E[ĝ] = ∇J`` for an unbiased baseline. We draw ``K`` independent estimates,
each averaging ``B`` episodes; the per-coordinate standard error of their mean
is ``sd/√K``. The tolerance is 4 standard errors per coordinate: with 8
coordinates the chance that a correct estimator fails is about 8 × 6e-5 (and
the keys are fixed, so the test is deterministic). A biased estimator — a
baseline that peeks at its own episode, or a loss that lets gradient through
the advantage — misses by tens of standard errors at this sample size (see
``test_self_including_baseline_is_detectably_biased``).
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_envs import TabularMDP

import jaxpg

HORIZON = 5
NUM_ENVS = 32
NUM_ESTIMATES = 600
Z_TOL = 4.0


@pytest.fixture(scope="module")
def mdp():
    return TabularMDP(num_states=3, num_actions=2, seed=3)


def _config(baseline: str, num_envs: int) -> jaxpg.Config:
    return jaxpg.Config(
        env="custom",
        baseline=baseline,
        num_envs=num_envs,
        rollout_steps=1,
        total_steps=10**6,
        gamma=1.0,
        hidden=(),
        lr=1e-3,
    )


def _params(algo, key):
    """Non-trivial policy parameters: the init, plus a random perturbation."""
    state = algo.init(key)
    leaves, tree = jax.tree.flatten(state.params)
    keys = jax.random.split(jax.random.key(7), len(leaves))
    pairs = zip(leaves, keys, strict=True)
    leaves = [x + jax.random.normal(k, x.shape) for x, k in pairs]
    return state.replace(params=jax.tree.unflatten(tree, leaves))


@functools.cache
def _estimates(mdp, baseline, num_envs=NUM_ENVS):
    """``(samples [K, P], exact [P])``: K gradient estimates and ∇J, flattened."""
    cfg = _config(baseline, num_envs)
    algo = jaxpg.make_algorithm(cfg, env=mdp, env_params=mdp.default_params)
    state = _params(algo, jax.random.key(0))
    policy_params = state.params["policy"]
    eye = jnp.eye(mdp.n)

    def objective(p):
        probs = jax.nn.softmax(
            jaxpg.networks.make_policy(jaxpg.envs.env_spec(mdp, mdp.default_params), ())
            .apply(p, eye)
            .logits
        )
        return mdp.exact_return(probs, HORIZON)

    exact = jax.grad(objective)(policy_params)

    def one(key):
        # A fresh init resets the envs: every estimate starts from p0.
        fresh = algo.init(key).replace(params=state.params)
        grads, _, _ = algo.estimate(fresh)
        # The loss is minimised: the ascent direction is -grad.
        return jax.tree.map(lambda g: -g, grads["policy"])

    keys = jax.random.split(jax.random.key(1), NUM_ESTIMATES)
    samples = jax.jit(jax.vmap(one))(keys)
    flat = lambda t: jnp.concatenate(  # noqa: E731
        [x.reshape(x.shape[0], -1) for x in jax.tree.leaves(t)], axis=1
    )
    exact_flat = jnp.concatenate([x.ravel() for x in jax.tree.leaves(exact)])
    return np.asarray(flat(samples)), np.asarray(exact_flat)


def _z_scores(samples, exact):
    mean = samples.mean(0)
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    return (mean - exact) / se


@pytest.mark.parametrize("baseline", ["none", "loo", "value"])
def test_unbiased_baselines_match_exact_gradient(mdp, baseline):
    """E[ĝ] = ∇J within 4 standard errors on every coordinate."""
    samples, exact = _estimates(mdp, baseline)
    z = _z_scores(samples, exact)
    assert np.all(np.abs(z) < Z_TOL), f"z-scores {np.round(z, 2)}"
    # The check has power: the exact gradient is many SEs away from zero.
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    assert np.max(np.abs(exact) / se) > 10


def test_baselines_reduce_variance(mdp):
    """The leave-one-out baseline lowers the estimator's total variance."""
    none, _ = _estimates(mdp, "none")
    loo, _ = _estimates(mdp, "loo")
    assert loo.var(0).sum() < 0.9 * none.var(0).sum()


@pytest.mark.parametrize("baseline", ["mean", "standardise", "group"])
def test_biased_baselines_point_the_right_way(mdp, baseline):
    """Self-including baselines are documented as biased; their mean still
    ascends ``J``: it has a positive inner product with ``∇J`` and lies within
    45 degrees of it (cosine > 0.7)."""
    samples, exact = _estimates(mdp, baseline)
    mean = samples.mean(0)
    cos = mean @ exact / (np.linalg.norm(mean) * np.linalg.norm(exact))
    assert cos > 0.7, cos


def test_self_including_baseline_is_detectably_biased(mdp):
    """The test above is not vacuous: the self-including mean baseline (whose
    bias the docs state) is rejected by the unbiasedness check at this sample
    size with few envs per update, where its ``1/M`` bias is largest."""
    samples, exact = _estimates(mdp, "mean", num_envs=2)
    z = _z_scores(samples, exact)
    assert np.max(np.abs(z)) > Z_TOL, f"z-scores {np.round(z, 2)}"
