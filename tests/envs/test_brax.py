"""from_brax: brax (and MuJoCo Playground) envs with the episode limit and the
auto-reset done by the adapter, the real final observation kept."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from suite_checks import (
    GAMMA,
    GOAL,
    LIMIT,
    NUM_ENVS,
    STEPS,
    check_cut_toy,
    check_goal_toy,
    collect,
    importer,
    needs,
    train_a_few_ppo_updates,
)

import jaxpg

pytestmark = needs("brax")
toys = importer("toys_brax")


def test_episode_limit_is_a_truncation_bootstrapped_to_the_infinite_value():
    env, params = jaxpg.envs.from_brax(toys().Toy(), episode_length=LIMIT)
    assert params.max_steps_in_episode == LIMIT
    check_cut_toy(env, params)


def test_done_is_a_termination_with_the_real_final_observation():
    """... and the adapter computes a reset only for an env that ended (the
    NUM_ENVS first resets, then one per termination), not for every env on
    every step (NUM_ENVS · (STEPS + 1))."""
    resets = []
    env, params = jaxpg.envs.from_brax(toys().Toy(goal=GOAL, resets=resets), 1000)
    batch = check_goal_toy(env, params)
    jax.effects_barrier()
    assert len(resets) == NUM_ENVS + batch["terminated"].sum() < NUM_ENVS * STEPS


def test_action_repeat_sums_rewards_and_stops_at_done():
    """episode_length counts env steps (brax's meaning): 20 with repeat 3 is
    ⌈20/3⌉ = 7 agent steps; a done inside the repeats stops them."""
    env, params = jaxpg.envs.from_brax(
        toys().Toy(), episode_length=LIMIT, action_repeat=3
    )
    assert params.max_steps_in_episode == 7
    batch = collect(env, params, jax.random.key(0), steps=14)
    np.testing.assert_array_equal(batch["reward"], 3.0)
    assert batch["truncated"][[6, 13]].all() and batch["truncated"].sum() == 2 * 3
    env, params = jaxpg.envs.from_brax(toys().Toy(goal=GOAL), action_repeat=2)
    batch = collect(env, params, jax.random.key(0), steps=4)
    # count 2 after step 0; step 1 reaches 3 after one env step: reward 1, done
    np.testing.assert_array_equal(batch["reward"][:2], [[2.0] * 3, [1.0] * 3])
    np.testing.assert_array_equal(batch["terminated"][:2], [[False] * 3, [True] * 3])


def test_jaxpg_critic_learns_the_infinite_horizon_value_through_make_train():
    """A2C through make_train on the cut toy: V = 1/(1-γ) = 10, where a cut
    taken for a termination would fit ≈ 6."""
    env, params = jaxpg.envs.from_brax(toys().Toy(), episode_length=LIMIT)
    cfg = jaxpg.Config(
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
    out = jax.jit(jaxpg.make_train(cfg, env=env, env_params=params))(jax.random.key(0))
    spec = jaxpg.envs.env_spec(env, params)
    critic = jaxpg.networks.make_critic(spec, cfg.hidden)
    value = float(critic.apply(out.state.params["critic"], jnp.ones((2,))))
    assert abs(value - 1.0 / (1.0 - GAMMA)) < 0.5, value


def test_bad_arguments_are_named():
    with pytest.raises(ValueError, match="episode_length=0"):
        jaxpg.envs.from_brax(toys().Toy(), episode_length=0)
    with pytest.raises(ValueError, match="action_repeat=True"):
        jaxpg.envs.from_brax(toys().Toy(), action_repeat=True)
    with pytest.raises(TypeError, match="from_brax takes"):
        jaxpg.envs.from_brax(object())
    wrapped = pytest.importorskip("brax.envs.wrappers.training").AutoResetWrapper
    with pytest.raises(ValueError, match="unwrapped"):
        jaxpg.envs.from_brax(wrapped(toys().Toy()))


@pytest.fixture(scope="module")
def pendulum():
    return jaxpg.envs.make_env("brax/inverted_pendulum")


def test_real_env_steps_as_brax_does_until_an_episode_ends(pendulum):
    env, params = pendulum
    assert env.action_space(params).shape == (1,)
    assert params.max_steps_in_episode == 1000
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    action = jnp.array([0.3])

    def both(s):
        return env.step(jax.random.key(1), s, action, params), env.unwrapped.step(
            s.inner, action
        )

    out, own = jax.jit(both)(state)
    np.testing.assert_array_equal(out[0], own.obs)
    np.testing.assert_array_equal(out[5]["final_observation"], own.obs)
    assert float(out[2]) == float(own.reward) and not out[3] and not out[4]


@pytest.mark.slow
def test_real_env_trains_a_few_ppo_updates(pendulum):
    out = train_a_few_ppo_updates("brax/inverted_pendulum")
    assert np.isfinite(np.asarray(out.metrics["episode_return"])[-1])
