"""A toy brax environment for tests/envs/test_brax.py (imported lazily there:
importing brax takes seconds)."""

from __future__ import annotations

import brax.envs.base as brax_base
import jax
import jax.numpy as jnp


class Toy(brax_base.Env):
    """Pays 1 per step. ``goal=None``: the observation is constant and nothing
    ends (only the adapter's episode limit cuts); else it is the step count
    and ``done`` fires when it reaches ``goal``."""

    def __init__(self, goal: int | None = None, resets: list | None = None):
        self.goal = goal
        self.resets = resets  # one entry per env reset actually computed

    def _obs(self, count):
        if self.goal is None:
            return jnp.ones((2,), jnp.float32)
        return jnp.stack([count, 0.5]).astype(jnp.float32)

    def reset(self, rng):
        if self.resets is not None:
            jax.debug.callback(self.resets.append, jax.random.key_data(rng))
        count = jnp.int32(0)
        return brax_base.State(
            pipeline_state=None,
            obs=self._obs(count),
            reward=jnp.float32(0.0),
            done=jnp.float32(0.0),
            info={"count": count},
        )

    def step(self, state, action):
        count = state.info["count"] + 1
        done = jnp.float32(0.0) if self.goal is None else (count >= self.goal)
        return state.replace(
            obs=self._obs(count),
            reward=jnp.float32(1.0),
            done=jnp.asarray(done, jnp.float32),
            info={"count": count},
        )

    @property
    def observation_size(self):
        return 2

    @property
    def action_size(self):
        return 1

    @property
    def backend(self):
        return "toy"
