"""from_xminigrid: LAST with discount 0 terminates (the goal), LAST with
discount 1 truncates (the step limit)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pytest
from flax import struct
from suite_checks import (
    GOAL,
    LIMIT,
    check_cut_toy,
    check_goal_toy,
    check_lockstep,
    train_a_few_ppo_updates,
)

import jaxpg

xminigrid = pytest.importorskip("xminigrid")
from xminigrid.environment import Environment, EnvParams  # noqa: E402
from xminigrid.types import StepType, TimeStep  # noqa: E402


@struct.dataclass
class ToyState:
    count: jax.Array  # int32


class Toy(Environment):
    """Pays 1 per step, with xland-minigrid's step types and discounts: LAST
    with discount 1 at ``params.max_steps``; with a goal, LAST with discount 0
    there and the count in the observation (else a constant one)."""

    def __init__(self, goal=None):
        self.goal = goal

    def default_params(self, **kwargs):
        return EnvParams(max_steps=LIMIT if self.goal is None else 1000)

    def _generate_problem(self, params, key):
        return ToyState(jnp.int32(0))

    def _obs(self, count):
        if self.goal is None:
            return jnp.ones((2,), jnp.float32)
        return jnp.stack([count, 0.5]).astype(jnp.float32)

    def reset(self, params, key):
        state = self._generate_problem(params, key)
        return TimeStep(
            state=state,
            step_type=StepType.FIRST,
            reward=jnp.asarray(0.0),
            discount=jnp.asarray(1.0),
            observation=self._obs(state.count),
        )

    def step(self, params, timestep, action):
        count = timestep.state.count + 1
        goal = jnp.asarray(self.goal is not None) & (count >= (self.goal or 0))
        cut = count == params.max_steps
        return TimeStep(
            state=ToyState(count),
            step_type=jnp.where(goal | cut, StepType.LAST, StepType.MID),
            reward=jnp.asarray(1.0),
            discount=jnp.where(goal, 0.0, 1.0),
            observation=self._obs(count),
        )


def test_step_limit_is_a_truncation_bootstrapped_to_the_infinite_value():
    raw = Toy()
    env, params = jaxpg.envs.from_xminigrid(raw, raw.default_params())
    assert params.max_steps_in_episode == LIMIT
    check_cut_toy(env, params)


def test_goal_is_a_termination_with_the_real_final_observation():
    raw = Toy(goal=GOAL)
    env, params = jaxpg.envs.from_xminigrid(raw, raw.default_params())
    check_goal_toy(env, params)


@pytest.fixture(scope="module")
def empty():
    return jaxpg.envs.make_env("xminigrid/MiniGrid-Empty-5x5")


def test_real_env_steps_as_xminigrid_does(empty):
    env, params = empty
    raw = env.unwrapped

    def own(timestep, action):
        nxt = raw.step(params.inner, timestep, action)
        last, discount = nxt.last(), nxt.discount
        return (
            nxt.observation,
            nxt.reward,
            last & (discount == 0),
            last & (discount > 0),
        )

    batch = check_lockstep(env, params, own, jax.random.key(0), steps=110)
    assert params.max_steps_in_episode == 100
    no_goal = ~batch["terminated"][:99].any(0)
    ended = batch["truncated"][99] | batch["terminated"][99]  # the goal wins
    assert ended[no_goal].all() and batch["truncated"][99][no_goal].any()


@pytest.mark.slow
def test_real_env_trains_a_few_ppo_updates(empty):
    train_a_few_ppo_updates("xminigrid/MiniGrid-Empty-5x5")


def test_missing_step_limit_is_named():
    raw = Toy()
    with pytest.raises(ValueError, match="max_steps=None"):
        jaxpg.envs.from_xminigrid(raw, EnvParams())
