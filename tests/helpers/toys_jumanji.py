"""Toy jumanji environments for tests/envs/test_jumanji.py (imported lazily
there, with jumanji)."""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
import jumanji
from jumanji import specs
from jumanji.types import restart, termination, transition, truncation
from suite_checks import LIMIT

MASK = jnp.array([True, False, True, True])


class Observation(NamedTuple):
    observation: jax.Array  # [2] float32: (step count, 0.5)
    action_mask: jax.Array  # [4] bool


class Toy(jumanji.Environment):
    """Pays 1 per step. ``goal=None``: a constant array observation, a
    truncation (discount 1) after ``LIMIT`` steps that it does not show. Else
    an ``Observation`` with the step count and an action mask, terminating
    (discount 0) at ``goal`` steps."""

    def __init__(self, goal: int | None = None):
        self.goal = goal
        super().__init__()

    def _obs(self, count):
        if self.goal is None:
            return jnp.ones((2,), jnp.float32)
        return Observation(jnp.stack([count, 0.5]).astype(jnp.float32), MASK)

    def reset(self, key):
        count = jnp.int32(0)
        return {"count": count, "key": key}, restart(self._obs(count))

    def step(self, state, action):
        count = state["count"] + 1
        obs, reward = self._obs(count), jnp.float32(1.0)
        if self.goal is None:
            ends, last = count >= LIMIT, truncation
        else:
            ends, last = count >= self.goal, termination
        timestep = jax.lax.cond(
            ends, lambda: last(reward, obs), lambda: transition(reward, obs)
        )
        return {"count": count, "key": state["key"]}, timestep

    @property
    def observation_spec(self):
        if self.goal is None:
            return specs.Array((2,), jnp.float32, "observation")
        return specs.Spec(
            Observation,
            "Observation",
            observation=specs.Array((2,), jnp.float32, "observation"),
            action_mask=specs.BoundedArray((4,), bool, False, True, "action_mask"),
        )

    @property
    def action_spec(self):
        return specs.DiscreteArray(4, name="action")
