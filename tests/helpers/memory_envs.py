"""Two-step memory tasks with the gymnax >= 1.0 API, for recurrent policies.

An episode has two steps. Step 0 shows a cue ``c`` (observation
``one_hot(c, 3)``) and pays ``R0[c, a]`` (small, random); step 1 shows a
blank (``one_hot(2, 3)``) and pays 1 if the action names the *target* cue,
then terminates.

* :class:`CueRecall`: the target is this episode's cue. A memoryless policy
  gets 0.5 on step 1; a policy that remembers the cue gets 1.
* ``CueRecall(previous=True)``: the target is the *previous* episode's cue
  (the first episode's is drawn at reset). Only a carry that leaks across
  episodes could beat 0.5 on step 1: a correct recurrent policy must not.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class CueState(environment.EnvState):
    cue: jax.Array  # [] int32, this episode's cue
    previous: jax.Array  # [] int32, the previous episode's cue
    time: int


@struct.dataclass
class CueParams(environment.EnvParams):
    max_steps_in_episode: int = 2


class CueRecall(environment.Environment):
    """See the module docstring."""

    def __init__(self, previous: bool = False, seed: int = 0):
        super().__init__()
        self.previous = previous
        rng = np.random.default_rng(seed)
        self.R0 = jnp.asarray(0.3 * rng.normal(size=(2, 2)), jnp.float32)

    @property
    def name(self) -> str:
        return "CueRecall-previous" if self.previous else "CueRecall"

    @property
    def default_params(self) -> CueParams:
        return CueParams()

    def target(self, state: CueState) -> jax.Array:
        return state.previous if self.previous else state.cue

    def step_env(self, key, state, action, params):
        first = state.time == 0
        reward = jnp.where(
            first, self.R0[state.cue, action], (action == self.target(state)) * 1.0
        )
        new = state.replace(time=state.time + 1)
        return self.get_obs(new), new, reward, new.time >= 2, {}

    def step(self, key, state, action, params=None):
        # gymnax's auto-reset draws a fresh state; keep the cue of the episode
        # that ended as the next episode's ``previous``.
        out = super().step(key, state, action, params)
        obs, new, reward, term, trunc, info = out
        done = term | trunc
        kept = jnp.where(done, state.cue, new.previous)
        return obs, new.replace(previous=kept), reward, term, trunc, info

    def reset_env(self, key, params):
        key_cue, key_prev = jax.random.split(key)
        state = CueState(
            cue=jax.random.randint(key_cue, (), 0, 2),
            previous=jax.random.randint(key_prev, (), 0, 2),
            time=0,
        )
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jax.nn.one_hot(jnp.where(state.time == 0, state.cue, 2), 3)

    def is_terminated(self, state, params):
        return state.time >= 2

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (3,), jnp.float32)

    def exact_return(self, policy, params) -> jax.Array:
        """``J`` of a recurrent jaxpg ``policy`` (whose carry depends on the
        observations only), by enumerating the histories: cue ``c`` (prob.
        1/2), step 0 from the initial carry, step 1 from the carry after the
        cue (for ``CueRecall``, ``previous=False``)."""
        eye = jnp.eye(3)
        carry = policy.initial_carry(2)
        carry, d0 = policy.step(params, carry, eye[:2], jnp.ones((2,), bool))
        _, d1 = policy.step(
            params, carry, eye[jnp.array([2, 2])], jnp.zeros((2,), bool)
        )
        p0 = jax.nn.softmax(d0.logits)
        p1 = jax.nn.softmax(d1.logits)
        step0 = jnp.sum(p0 * self.R0, axis=1)
        step1 = jnp.diagonal(p1)  # P(a = c | c)
        return jnp.mean(step0 + step1)
