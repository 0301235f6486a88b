r"""``RepeatFirst-jaxpg``: repeat the first observation, a memory task in
gymnax ≥ 1.0's API (registered by name in :mod:`jaxpg.envs.registry`).

Spec (``K = num_cues``, ``L = params.length``):

* reset draws a cue ``c ~ Uniform{0, ..., K-1}``;
* observation ``[K + 1]`` float32: at ``t = 0`` it is ``one_hot(c, K)``
  followed by 0; at ``0 < t < L-1`` all zeros (blank); at the last step
  ``t = L-1`` zeros followed by 1 (the query: "answer now");
* actions ``Discrete(K)``; the reward is 0 at every step but the last, where it
  is 1 if the action is ``c`` and 0 otherwise; the episode then terminates
  (``L`` steps, ``L >= 1``; ``L = 1`` shows cue and query at once).

A memoryless policy cannot tell the cue at the last step: its best return is
``1 / K`` on average (chance); a policy that remembers the first observation
gets 1. ``L`` is how long it must remember: ``EnvParams(length=L)`` (a traced
field, so it can differ across vmapped params); keep the time limit
``max_steps_in_episode`` (default 16) above it, so that episodes end by
termination (a longer episode needs a larger limit too).
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

__all__ = ["REPEAT_FIRST_ENVS", "RepeatFirst", "RepeatFirstParams", "make_repeat_first"]


@struct.dataclass
class RepeatFirstState(environment.EnvState):
    cue: jax.Array  # [] int32, this episode's cue
    time: int  # [] int32, steps taken in this episode


@struct.dataclass
class RepeatFirstParams(environment.EnvParams):
    length: int = 8  # L, steps per episode
    max_steps_in_episode: int = 16  # a time limit above `length`


class RepeatFirst(environment.Environment[RepeatFirstState, RepeatFirstParams]):
    """See the module docstring.

    Args:
      num_cues: ``K >= 2``, the number of cues and of actions.

    Raises:
      ValueError: ``num_cues`` is not an int ``>= 2``.
    """

    def __init__(self, num_cues: int = 4):
        super().__init__()
        if isinstance(num_cues, bool) or not isinstance(num_cues, int) or num_cues < 2:
            raise ValueError(f"num_cues={num_cues!r} is invalid: an int >= 2")
        self.num_cues = num_cues

    @property
    def name(self) -> str:
        return "RepeatFirst-jaxpg"

    @property
    def default_params(self) -> RepeatFirstParams:
        return RepeatFirstParams()

    @property
    def num_actions(self) -> int:
        return self.num_cues

    def reset_env(
        self, key: jax.Array, params: RepeatFirstParams
    ) -> tuple[jax.Array, RepeatFirstState]:
        state = RepeatFirstState(
            cue=jax.random.randint(key, (), 0, self.num_cues), time=jnp.int32(0)
        )
        return self.get_obs(state, params), state

    def step_env(
        self,
        key: jax.Array,
        state: RepeatFirstState,
        action: jax.Array,
        params: RepeatFirstParams,
    ) -> tuple[jax.Array, RepeatFirstState, jax.Array, jax.Array, dict[Any, Any]]:
        last = state.time >= params.length - 1
        reward = jnp.where(last & (action == state.cue), 1.0, 0.0)
        new = state.replace(time=state.time + 1)
        return self.get_obs(new, params), new, reward, last, {}

    def get_obs(
        self, state: RepeatFirstState, params: RepeatFirstParams, key=None
    ) -> jax.Array:
        cue = jax.nn.one_hot(state.cue, self.num_cues) * (state.time == 0)
        query = (state.time == params.length - 1).astype(jnp.float32)
        return jnp.concatenate([cue, query[None]]).astype(jnp.float32)

    def is_terminated(
        self, state: RepeatFirstState, params: RepeatFirstParams
    ) -> jax.Array:
        return state.time >= params.length

    def action_space(self, params: RepeatFirstParams | None = None) -> spaces.Discrete:
        return spaces.Discrete(self.num_cues)

    def observation_space(self, params: RepeatFirstParams) -> spaces.Box:
        return spaces.Box(0.0, 1.0, (self.num_cues + 1,), jnp.float32)


def make_repeat_first(name: str) -> tuple[RepeatFirst, RepeatFirstParams]:
    """``(env, env_params)`` for a name in :data:`REPEAT_FIRST_ENVS`.

    Raises:
      ValueError: ``name`` is not one of them; the message lists them.
    """
    if name not in REPEAT_FIRST_ENVS:
        raise ValueError(
            f"env={name!r} is not a RepeatFirst task; known: "
            f"{', '.join(REPEAT_FIRST_ENVS)}"
        )
    env = RepeatFirst()
    return env, env.default_params


REPEAT_FIRST_ENVS = ("RepeatFirst-jaxpg",)
