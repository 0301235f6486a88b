"""A user's own environment, named by import path in the custom-env tests
(``jaxpg train --env my_envs:make_env``): a two-armed bandit in episodes of
ten steps, arm 1 pays 1 and arm 0 pays 0 (random policy: 5, best: 10)."""

from __future__ import annotations

import jax.numpy as jnp
from toy_envs import ConstantReward, TabularParams, TabularState

EPISODE = 10


class TwoArms(ConstantReward):
    """:class:`toy_envs.ConstantReward` that pays the arm pulled."""

    @property
    def name(self) -> str:
        return "TwoArms"

    @property
    def default_params(self) -> TabularParams:
        return TabularParams(max_steps_in_episode=EPISODE)

    def step_env(self, key, state, action, params):
        new = TabularState(s=state.s, time=state.time + 1)
        reward = jnp.asarray(action, jnp.float32)
        return self.get_obs(new), new, reward, jnp.bool_(False), {}


def make_env():
    """``(env, env_params)``: what ``--env my_envs:make_env`` builds."""
    env = TwoArms()
    return env, env.default_params


def not_a_pair():
    """A mistake a user can make: returns the env alone."""
    return TwoArms()
