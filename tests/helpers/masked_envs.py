"""Toy environments with dict observations and action masks (gymnax ≥ 1.0 API).

:class:`MaskedTargets`: every step a random subset of the actions is legal (at
least one) and one legal action is the *target*; the observation is a dict

* ``"target"``: ``[sum(nvec)]`` float32, the one-hot target of each factor;
* ``"action_mask"``: ``[sum(nvec)]`` bool, the legal actions (per factor);
* ``"secret"``: ``[1]`` float32, drawn once per episode, unused by the
  dynamics: a privileged leaf.

Hitting a factor's target pays 1, a legal miss 0, an *illegal* action
:data:`ILLEGAL_REWARD` (so one illegal action shows in any return). Never
terminates; cut by the time limit (``max_steps_in_episode``). Per factor a
uniform random legal policy earns ``E[1/#legal]`` per step; the optimum 1.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import struct
from gymnax.environments import environment, spaces

from jaxpg.envs import MultiDiscrete

ILLEGAL_REWARD = -100.0


@struct.dataclass
class MaskedState(environment.EnvState):
    target: jax.Array  # [K] int32
    mask: jax.Array  # [sum(nvec)] bool
    secret: jax.Array  # [1] float32
    time: int


@struct.dataclass
class MaskedParams(environment.EnvParams):
    max_steps_in_episode: int = 8


class MaskedTargets(environment.Environment):
    """See the module docstring.

    Args:
      nvec: actions per factor; one factor is a ``Discrete`` action space.
      actions: ``"discrete"`` (one factor), ``"multi"`` (a
        :class:`jaxpg.envs.MultiDiscrete`) or ``"tuple"`` (a gymnax ``Tuple``
        of ``Discrete``).
      p_legal: the chance that each action is legal (one is always made so).
    """

    def __init__(
        self,
        nvec: tuple[int, ...] = (4,),
        actions: str = "discrete",
        p_legal: float = 0.5,
    ):
        super().__init__()
        if actions == "discrete" and len(nvec) != 1:
            raise ValueError("a discrete action space has one factor")
        self.nvec = tuple(nvec)
        self.actions = actions
        self.p_legal = p_legal

    @property
    def default_params(self) -> MaskedParams:
        return MaskedParams()

    def _draw(self, key, secret, time) -> MaskedState:
        masks, targets = [], []
        for n, k in zip(self.nvec, jax.random.split(key, len(self.nvec)), strict=True):
            k_mask, k_target = jax.random.split(k)
            m = jax.random.bernoulli(k_mask, self.p_legal, (n,))
            m = m.at[0].set(m[0] | ~jnp.any(m))
            p = m.astype(jnp.float32)
            targets.append(jax.random.choice(k_target, n, p=p / p.sum()))
            masks.append(m)
        return MaskedState(
            target=jnp.stack(targets).astype(jnp.int32),
            mask=jnp.concatenate(masks),
            secret=secret,
            time=time,
        )

    def _factor_actions(self, action) -> jax.Array:
        if self.actions == "tuple":
            return jnp.stack([jnp.asarray(a) for a in action]).astype(jnp.int32)
        return jnp.reshape(jnp.asarray(action, jnp.int32), (len(self.nvec),))

    def step_env(self, key, state, action, params):
        a = self._factor_actions(action)
        offsets = jnp.asarray([sum(self.nvec[:k]) for k in range(len(self.nvec))])
        legal = state.mask[offsets + a]
        hits = (a == state.target).astype(jnp.float32)
        reward = jnp.sum(jnp.where(legal, hits, ILLEGAL_REWARD))
        new = self._draw(key, state.secret, state.time + 1)
        return self.get_obs(new), new, reward, jnp.bool_(False), {}

    def reset_env(self, key, params):
        key_secret, key_draw = jax.random.split(key)
        secret = jax.random.uniform(key_secret, (1,))
        state = self._draw(key_draw, secret, 0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        target = jnp.concatenate(
            [jax.nn.one_hot(state.target[k], n) for k, n in enumerate(self.nvec)]
        )
        return {"target": target, "action_mask": state.mask, "secret": state.secret}

    def is_terminated(self, state, params):
        return jnp.bool_(False)

    def action_space(self, params=None):
        if self.actions == "discrete":
            return spaces.Discrete(self.nvec[0])
        if self.actions == "multi":
            return MultiDiscrete(self.nvec)
        return spaces.Tuple([spaces.Discrete(n) for n in self.nvec])

    def observation_space(self, params):
        size = sum(self.nvec)
        return spaces.Dict(
            {
                "target": spaces.Box(0.0, 1.0, (size,), jnp.float32),
                "action_mask": spaces.Box(0, 1, (size,), jnp.bool_),
                "secret": spaces.Box(0.0, 1.0, (1,), jnp.float32),
            }
        )
