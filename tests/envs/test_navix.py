"""from_navix: navix's transition stepped directly (no call spent on a
reset), TERMINATION / TRUNCATION step types read as they are."""

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

navix = pytest.importorskip("navix")
from navix.environments.environment import Environment, StepType, Timestep  # noqa: E402


@struct.dataclass
class ToyState:
    count: jax.Array  # int32
    key: jax.Array


class Toy(Environment):
    """navix's own ``_step`` over a counter: pays 1 per step, truncated by
    navix at ``max_steps``; with a goal, the observation is the count and
    the episode terminates there (else the observation is constant)."""

    def _reset(self, key, cache=None):
        state = ToyState(jnp.int32(0), key)
        return Timestep(
            t=jnp.asarray(0),
            observation=self.observation_fn(state),
            action=jnp.asarray(-1),
            reward=jnp.asarray(0.0),
            step_type=StepType.TRANSITION,
            state=state,
        )


def toy(goal=None):
    def observe(state):
        if goal is None:
            return jnp.ones((2,), jnp.float32)
        return jnp.stack([state.count, 0.5]).astype(jnp.float32)

    return Toy.create(
        height=3,
        width=3,
        max_steps=LIMIT if goal is None else 1000,
        observation_fn=observe,
        reward_fn=lambda s, a, n: jnp.asarray(1.0),
        termination_fn=lambda s, a, n: (
            jnp.asarray(goal is not None) & (n.count >= (goal or 0))
        ),
        transitions_fn=lambda s, a, actions: s.replace(count=s.count + 1),
        observation_space=navix.spaces.Continuous.create(
            (2,), jnp.asarray(0.0), jnp.asarray(1e3)
        ),
    )


def test_truncation_step_type_is_bootstrapped_to_the_infinite_value():
    env, params = jaxpg.envs.from_navix(toy())
    assert params.max_steps_in_episode == LIMIT
    check_cut_toy(env, params)


def test_termination_step_type_ends_with_the_real_final_observation():
    env, params = jaxpg.envs.from_navix(toy(goal=GOAL))
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
