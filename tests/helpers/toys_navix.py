"""Toy navix environments for tests/envs/test_navix.py (imported lazily there:
importing navix takes seconds)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import navix
from flax import struct
from navix.environments.environment import Environment, StepType, Timestep
from suite_checks import LIMIT


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
