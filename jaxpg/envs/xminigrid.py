r"""xland-minigrid envs: LAST with discount 0 is a termination, with discount 1
a truncation (``step_num == max_steps``).

xland-minigrid's ``step(params, timestep, action)`` does not reset (its gym-
and envpool-style wrappers do). The adapter reads:

* ``terminated``: ``last() and discount == 0`` (the goal reached);
* ``truncated``: ``last() and discount > 0`` (the step limit);
* ``info["final_observation"]``: that timestep's observation, before the
  adapter's ``env.reset`` with a fresh key.
"""

from __future__ import annotations

from typing import Any

import jax
from flax import struct
from gymnax.environments import spaces

from jaxpg.envs.suite_base import Suite, SuiteEnv, last_flags, make_named

Array = jax.Array


class XMiniGridParams(struct.PyTreeNode):
    """xland-minigrid's own ``EnvParams`` (static), its ``max_steps`` the limit."""

    inner: Any = struct.field(pytree_node=False)

    @property
    def max_steps_in_episode(self) -> int | None:
        """xland-minigrid's ``max_steps``."""
        return None if self.inner.max_steps is None else int(self.inner.max_steps)


class XMiniGridAdapter(SuiteEnv):
    """An xland-minigrid env in gymnax ≥ 1.0's API (see the module docs)."""

    def _reset(self, key, params):
        timestep = self._env.reset(params.inner, key)
        return timestep.observation, timestep

    def _step(self, key, state, action, params):
        nxt = self._env.step(params.inner, state, action)
        return (nxt.observation, nxt, nxt.reward, *last_flags(nxt))

    def action_space(self, params: Any = None) -> spaces.Discrete:
        """``Discrete(num_actions)``."""
        params = self._params if params is None else params
        return spaces.Discrete(int(self._env.num_actions(params.inner)))


def from_xminigrid(
    env: Any, env_params: Any, *, name: str | None = None
) -> tuple[XMiniGridAdapter, XMiniGridParams]:
    """``(env, env_params)`` for an xland-minigrid env and its ``EnvParams``.

    Raises:
      ValueError: ``env_params.max_steps`` is unset (xland-minigrid's step needs it).
      TypeError: ``env`` is not an xland-minigrid env.
    """
    if not (callable(getattr(env, "reset", None)) and hasattr(env, "num_actions")):
        raise TypeError(
            f"env={type(env).__name__} is not an xland-minigrid Environment "
            "(no reset / num_actions)"
        )
    if getattr(env_params, "max_steps", None) is None:
        raise ValueError(
            f"env_params.max_steps={getattr(env_params, 'max_steps', None)!r}: "
            "xland-minigrid needs a step limit (xminigrid.make sets one)"
        )
    params = XMiniGridParams(env_params)
    return XMiniGridAdapter(env, name, params), params


SUITE = Suite(
    "xminigrid",
    "xminigrid",
    "xland-minigrid",
    lambda xminigrid: xminigrid.registered_environments(),
    lambda xminigrid, env_id, name: from_xminigrid(*xminigrid.make(env_id), name=name),
)


def make(name: str) -> tuple[XMiniGridAdapter, XMiniGridParams]:
    """``"xminigrid/<id>"``: ``xminigrid.make(id)`` adapted (:func:`make_named`)."""
    return make_named(name, SUITE)
