"""Your own environment in jaxpg's tooling: a function that returns
``(env, env_params)`` in gymnax's API, named by its import path.

    jaxpg train --env examples.my_env:make_env --algo ppo --seeds 4

(run from the repository root, or with this folder's parent on PYTHONPATH).
The run directory records the path, so ``jaxpg train --resume``, ``jaxpg
eval`` and ``jaxpg compare`` build the environment again.

The environment: a corridor of ``LENGTH`` cells; the agent starts at the left
end and steps left (action 0) or right (action 1); reaching the right end pays
1 and ends the episode (terminated); otherwise the time limit cuts it
(truncated) after ``max_steps_in_episode`` steps, paying nothing. The
observation is the agent's position scaled to [0, 1].
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

LENGTH = 5


@struct.dataclass
class CorridorState(environment.EnvState):
    position: jax.Array  # [] int32, 0 .. LENGTH - 1
    time: int


@struct.dataclass
class CorridorParams(environment.EnvParams):
    max_steps_in_episode: int = 20


class Corridor(environment.Environment):
    """Walk right to the end of the corridor (gymnax >= 1.0 API)."""

    @property
    def name(self) -> str:
        return "Corridor"

    @property
    def default_params(self) -> CorridorParams:
        return CorridorParams()

    def step_env(self, key, state, action, params):
        move = jnp.where(action == 1, 1, -1)
        position = jnp.clip(state.position + move, 0, LENGTH - 1)
        new = CorridorState(position=position, time=state.time + 1)
        at_end = position == LENGTH - 1
        reward = at_end.astype(jnp.float32)
        return self.get_obs(new), new, reward, self.is_terminal(new, params), {}

    def reset_env(self, key, params):
        state = CorridorState(position=jnp.int32(0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.array([state.position / (LENGTH - 1)], jnp.float32)

    def is_terminal(self, state, params):
        return state.position == LENGTH - 1

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (1,), jnp.float32)


def make_env():
    """``(env, env_params)``: what ``--env examples.my_env:make_env`` builds."""
    env = Corridor()
    return env, env.default_params
