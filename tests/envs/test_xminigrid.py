"""from_xminigrid: LAST with discount 0 terminates (the goal), LAST with
discount 1 truncates (the step limit)."""

from __future__ import annotations

import jax
import pytest
from suite_checks import (
    GOAL,
    LIMIT,
    check_cut_toy,
    check_goal_toy,
    check_lockstep,
    importer,
    needs,
    train_a_few_ppo_updates,
)

import jaxpg

pytestmark = needs("xminigrid")
toys = importer("toys_xminigrid")


def test_step_limit_is_a_truncation_bootstrapped_to_the_infinite_value():
    raw = toys().Toy()
    env, params = jaxpg.envs.from_xminigrid(raw, raw.default_params())
    assert params.max_steps_in_episode == LIMIT
    check_cut_toy(env, params)


def test_goal_is_a_termination_with_the_real_final_observation():
    raw = toys().Toy(goal=GOAL)
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
    raw = toys().Toy()
    with pytest.raises(ValueError, match="max_steps=None"):
        jaxpg.envs.from_xminigrid(raw, toys().EnvParams())
