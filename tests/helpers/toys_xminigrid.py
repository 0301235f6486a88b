"""A toy xland-minigrid environment for tests/envs/test_xminigrid.py (imported
lazily there, with xminigrid)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from suite_checks import LIMIT
from xminigrid.environment import Environment, EnvParams
from xminigrid.types import StepType, TimeStep


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
