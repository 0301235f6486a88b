"""The README's extension-point examples train: a CNN torso on Breakout-MinAtar
and AdamW with a cosine schedule on CartPole."""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jaxpg


class SmallCNN(nn.Module):
    """``[N, 10, 10, 4]`` MinAtar frames -> ``[N, 64]`` features."""

    @nn.compact
    def __call__(self, obs):
        conv = jaxpg.networks.Conv(16, (3, 3), padding="VALID")
        x = nn.relu(conv(obs.astype(jnp.float32)))
        return nn.relu(nn.Dense(64)(x.reshape((x.shape[0], -1))))


@pytest.mark.slow
def test_cnn_policy_learns_breakout_minatar():
    """A uniformly random policy scores 0.40 per episode on Breakout-MinAtar
    (measured: 256 episodes, std 0.66, so its SE is 0.04). After 19 PPO updates
    (40k steps) the CNN policy's mean over 64 evaluation episodes must be at
    least 2.0, five times the random score. Seeds 0-3 evaluated at 3.55, 4.47,
    3.22 and 3.72 (one vmapped program of the four, compiled as in the suite;
    seed 0 in a program of its own: 4.12); an evaluation mean over 64
    episodes has an SE of about 0.2 (episode std about 1.5), so the lowest seed
    is 6 SE above the bound. Compiled as the rest of the suite: XLA's
    optimisations would run the convolutions 1.7x faster, but they compile
    8 s longer, more than the 5 s of running they would save here."""
    cfg = jaxpg.Config(
        env="Breakout-MinAtar",
        algo="ppo",
        num_envs=32,
        rollout_steps=64,
        total_steps=40_000,
        lr=2e-3,
        ent_coef=0.01,
        max_grad_norm=0.5,
    )
    net = dict(policy_network=SmallCNN(), critic_network=SmallCNN())
    out = jax.jit(jaxpg.make_train(cfg, **net))(jax.random.key(0))
    assert out.params["torso"]["params"]["Conv_0"]["kernel"].shape == (3, 3, 4, 16)
    rets = jax.jit(
        lambda p, k: jaxpg.evaluate(cfg, p, k, 64, policy_network=SmallCNN())
    )(out.params, jax.random.key(100))
    assert float(jnp.mean(rets)) >= 2.0, np.asarray(rets)


@pytest.mark.slow
def test_adamw_cosine_schedule_solves_cartpole_quickly():
    """The CartPole PPO preset with AdamW and a cosine-decayed learning rate in
    place of the default Adam, after 60k steps, evaluated on 32 episodes per
    seed (random: about 22). Over 16 seeds the evaluation means were 412 on
    average with a standard deviation of 79 (lowest 248; three below 310), so
    a single seed's score is not a check: the mean of the two seeds (standard
    deviation about 56) must be above 200, 3.8 of those below the average,
    and each seed above 100 (4 standard deviations of one seed below)."""
    cfg = jaxpg.presets.get("CartPole-v1", "ppo").replace(total_steps=60_000)
    num_steps = cfg.num_updates * cfg.num_epochs * cfg.num_minibatches
    tx = optax.chain(
        optax.clip_by_global_norm(0.5),
        optax.adamw(optax.cosine_decay_schedule(2.5e-3, num_steps), weight_decay=1e-4),
    )
    outs = jax.jit(jax.vmap(jaxpg.make_train(cfg, optimizer=tx)))(
        jaxpg.drivers.train.seed_keys(2)
    )
    rets = jax.jit(jax.vmap(lambda p, k: jaxpg.evaluate(cfg, p, k, 32)))(
        outs.params, jaxpg.drivers.train.seed_keys(2, 100)
    )
    means = np.asarray(rets).mean(axis=1)
    assert means.mean() > 200 and np.all(means > 100), means
