"""from_navix: navix's transition stepped directly (no call spent on a
reset), TERMINATION / TRUNCATION step types read as they are."""

from __future__ import annotations

import jax
import jax.numpy as jnp
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

pytestmark = needs("navix")
toys = importer("toys_navix")


def test_truncation_step_type_is_bootstrapped_to_the_infinite_value():
    env, params = jaxpg.envs.from_navix(toys().toy())
    assert params.max_steps_in_episode == LIMIT
    check_cut_toy(env, params)


def test_termination_step_type_ends_with_the_real_final_observation():
    env, params = jaxpg.envs.from_navix(toys().toy(goal=GOAL))
    check_goal_toy(env, params)


@pytest.fixture(scope="module")
def empty():
    return jaxpg.envs.make_env("navix/Navix-Empty-5x5-v0")


def test_real_env_steps_as_navix_transition_with_no_wasted_call(empty):
    """Against navix's transition on the same states: equal observation,
    reward and flags on every step; navix's own ``step`` would instead spend
    the call after an episode's end on a reset (reward 0, no transition)."""
    env, params = empty
    raw = env.unwrapped

    def own(state, action):
        with jax.numpy_rank_promotion("allow"):  # as navix's code needs
            nxt = raw._step(state, action)
        return nxt.observation, nxt.reward, nxt.is_termination(), nxt.is_truncation()

    batch = check_lockstep(env, params, own, jax.random.key(0), steps=110)
    no_goal = ~batch["terminated"][:99].any(0)  # navix's max_steps = 100 cuts
    ended = batch["truncated"][99] | batch["terminated"][99]  # the goal wins
    assert ended[no_goal].all() and batch["truncated"][99][no_goal].any()
    # navix's own step on the truncated timestep resets instead of moving
    _, state = env.reset(jax.random.key(0), params)
    with jax.numpy_rank_promotion("allow"):
        ended = raw._step(state.replace(t=jnp.asarray(99)), jnp.asarray(0))
        spent = raw.step(ended, jnp.asarray(2))
    assert ended.is_truncation()
    assert int(spent.t) == 0 and float(spent.reward) == 0.0


@pytest.mark.slow
def test_real_env_trains_a_few_ppo_updates(empty):
    train_a_few_ppo_updates("navix/Navix-Empty-5x5-v0")


def test_non_navix_env_is_named():
    with pytest.raises(TypeError, match="not a navix"):
        jaxpg.envs.from_navix(object())
