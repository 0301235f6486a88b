"""MuJoCo Playground through from_brax: built by name with its config's
episode length and action repeat; steps as Playground does; trains."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from suite_checks import importer, needs

import jaxpg

pytestmark = needs("mujoco_playground")
mujoco_playground = importer("mujoco_playground")


@pytest.fixture(scope="module")
def cartpole():
    return jaxpg.envs.make_env("playground/CartpoleBalance")


def test_built_by_name_with_its_config(cartpole):
    env, params = cartpole
    config = mujoco_playground().registry.get_default_config("CartpoleBalance")
    assert params.episode_length == config.episode_length
    assert params.action_repeat == config.action_repeat
    assert env.action_space(params).shape == (env.unwrapped.action_size,)
    with pytest.raises(ValueError, match="playground/CartpoleBalance"):
        jaxpg.envs.make_env("playground/Nope")


def test_steps_as_playground_does(cartpole):
    env, params = cartpole
    _, state = jax.jit(env.reset)(jax.random.key(0), params)
    action = jnp.array([0.4])

    def both(s):
        with jax.numpy_rank_promotion("allow"):  # as MJX's code needs
            own = env.unwrapped.step(s.inner, action)
        return env.step(jax.random.key(1), s, action, params), own

    out, own = jax.jit(both)(state)
    np.testing.assert_array_equal(out[0], own.obs)
    np.testing.assert_array_equal(out[5]["final_observation"], own.obs)
    assert float(out[2]) == float(own.reward) and not out[3] and not out[4]


@pytest.mark.slow
def test_trains_a_few_ppo_updates(cartpole):
    cfg = jaxpg.Config(
        env="playground/CartpoleBalance",
        algo="ppo",
        num_envs=4,
        rollout_steps=8,
        num_minibatches=2,
        num_epochs=1,
        hidden=(16,),
        total_steps=4 * 8 * 2,
    )
    out = jax.jit(jaxpg.make_train(cfg))(jax.random.key(0))
    np.testing.assert_array_equal(out.metrics["env_steps"], [32, 64])
    assert np.isfinite(np.asarray(out.metrics["loss"])).all()
