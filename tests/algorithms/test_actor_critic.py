"""A2C and PPO: truncation done right, determinism, learning."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_envs import ConstantReward

import jaxpg
from jaxpg.envs import env_spec
from jaxpg.kernels.returns import generalized_advantage_estimation
from jaxpg.networks import make_critic
from jaxpg.rollout import RunningEpisodes, collect_window, make_stepper

GAMMA = 0.9
LIMIT = 20  # ConstantReward's time limit


def _constant_reward_cfg(**kw):
    base = dict(
        env="custom",
        algo="a2c",
        num_envs=8,
        rollout_steps=8,
        gamma=GAMMA,
        gae_lambda=0.9,
        lr=3e-3,
        hidden=(16,),
        total_steps=8 * 8 * 600,
    )
    return jaxpg.Config(**{**base, **kw})


@pytest.fixture(scope="module")
def truncation_run():
    env = ConstantReward()
    cfg = _constant_reward_cfg()
    out = jax.jit(jaxpg.make_train(cfg, env=env))(jax.random.key(0))
    critic = make_critic(env_spec(env, env.default_params), cfg.hidden)
    value = critic.apply(out.state.params["critic"], jnp.ones((2,)))
    return env, cfg, out, critic, float(value)


def test_critic_learns_infinite_horizon_value_under_truncation(truncation_run):
    """Reward 1 forever, cut by a time limit the observation does not show:
    the right value is 1/(1-γ) = 10. Treating the cut as termination would
    learn the average truncated return, about 6.1 (next test)."""
    *_, value = truncation_run
    assert abs(value - 1.0 / (1.0 - GAMMA)) < 0.5, value


def test_truncated_steps_bootstrap_with_final_observation(truncation_run):
    """Check the targets directly on a collected window: at a truncated step
    the one-step target is r + γ V(final_obs), not r; the wrong variant
    (truncation as termination) gives r and a clearly lower fitted value."""
    env, cfg, out, critic, value = truncation_run
    stepper = make_stepper(env, env.default_params, env_spec(env, None), 4)
    obs, state = stepper.reset(jax.random.key(0))
    policy = jaxpg.networks.make_policy(env_spec(env, None), cfg.hidden)
    collected, *_ = collect_window(
        jax.random.key(1),
        stepper,
        policy.apply,
        out.params,
        state,
        obs,
        RunningEpisodes.zeros(4),
        2 * LIMIT,
    )
    tr = collected.transitions
    f32 = lambda x: x.astype(jnp.float32)  # noqa: E731
    params = out.state.params["critic"]
    values = critic.apply(params, tr.obs)
    next_values = critic.apply(params, tr.final_obs)
    trunc = np.asarray(tr.truncated)
    assert trunc.sum() == 4 * 2  # every env is cut twice in 2*LIMIT steps
    _, right = generalized_advantage_estimation(
        tr.reward, GAMMA * (1 - f32(tr.terminated)), values, next_values, 0.0
    )
    _, wrong = generalized_advantage_estimation(
        tr.reward,
        GAMMA * (1 - f32(tr.done)),
        values,
        next_values,
        0.0,
    )
    np.testing.assert_allclose(
        np.asarray(right)[trunc], 1 + GAMMA * np.asarray(next_values)[trunc], rtol=1e-6
    )
    np.testing.assert_allclose(np.asarray(wrong)[trunc], 1.0)
    # The value a critic converges to under the wrong targets (λ = 1 Monte-Carlo
    # returns of a 20-step episode, averaged over its steps) is far below 10.
    mc = np.array([(1 - GAMMA ** (LIMIT - t)) / (1 - GAMMA) for t in range(LIMIT)])
    assert mc.mean() < 7.0 < value - 2.0


@pytest.fixture(scope="module")
def ppo_cfg():
    return jaxpg.Config(
        env="CartPole-v1",
        algo="ppo",
        num_envs=8,
        rollout_steps=32,
        num_epochs=2,
        num_minibatches=4,
        total_steps=8 * 32 * 3,
        max_grad_norm=0.5,
        clip_value=True,
    )


def test_ppo_same_key_same_result(ppo_cfg):
    train = jax.jit(jaxpg.make_train(ppo_cfg))
    a, b = train(jax.random.key(3)), train(jax.random.key(3))
    chex.assert_trees_all_equal(a.params, b.params)
    chex.assert_trees_all_equal(a.metrics, b.metrics)
    c = train(jax.random.key(4))
    assert not np.array_equal(a.metrics["loss"], c.metrics["loss"])
    for name in ("approx_kl", "clip_frac", "value_loss", "entropy", "grad_norm"):
        assert np.all(np.isfinite(a.metrics[name])), name
    assert np.all(np.asarray(a.metrics["approx_kl"]) >= 0)


def test_ppo_minibatch_size_must_divide():
    with pytest.raises(ValueError, match="num_minibatches"):
        jaxpg.Config(algo="ppo", num_envs=4, rollout_steps=5, num_minibatches=3)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("algo", "extra", "threshold"),
    [
        ("a2c", dict(rollout_steps=16, lr=3e-3, total_steps=100_000), 150.0),
        ("ppo", dict(rollout_steps=64, lr=2.5e-3, total_steps=80_000), 150.0),
    ],
)
def test_short_learning_on_cartpole(algo, extra, threshold):
    """A uniform policy scores ~22 on CartPole; a short run of each algorithm
    (two seeds) must reach a mean evaluated return above 150."""
    cfg = jaxpg.Config(
        env="CartPole-v1",
        algo=algo,
        num_envs=16,
        max_grad_norm=0.5,
        ent_coef=0.01,
        **extra,
    )
    outs = jaxpg.train_seeds(cfg, num_seeds=2)
    evals = jax.jit(jax.vmap(lambda p, k: jaxpg.evaluate(cfg, p, k, 32)))(
        outs.params, jax.random.split(jax.random.key(5), 2)
    )
    assert float(jnp.mean(evals)) > threshold, np.asarray(evals.mean(1))
