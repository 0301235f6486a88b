r"""navix envs, stepped without navix's reset-on-the-next-call.

navix's ``step(timestep, action)`` first checks whether the *given* timestep
ended an episode and, if so, resets instead of stepping: the call after an
episode's end is spent on a reset, and the agent's action is thrown away. The
adapter calls navix's transition (``Environment._step``) directly and resets
in the same call:

* ``terminated``: ``step_type == TERMINATION`` (2);
* ``truncated``: ``step_type == TRUNCATION`` (1, ``t >= max_steps``);
* ``info["final_observation"]``: that timestep's observation, before the
  adapter's ``env.reset`` with a fresh key.
"""

from __future__ import annotations

from typing import Any

import jax
from gymnax.environments import spaces

from jaxpg.envs.suite_base import Suite, SuiteEnv, SuiteParams, make_named

Array = jax.Array


class NavixAdapter(SuiteEnv):
    """A navix env in gymnax ≥ 1.0's API (see the module docs)."""

    def _reset(self, key, params):
        timestep = self._env.reset(key)
        return timestep.observation, timestep

    def _step(self, key, state, action, params):
        nxt = self._env._step(state, action)
        return (
            nxt.observation,
            nxt,
            nxt.reward,
            nxt.is_termination(),
            nxt.is_truncation(),
        )

    def action_space(self, params: Any = None) -> spaces.Discrete:
        """``Discrete(len(action_set))``."""
        return spaces.Discrete(len(self._env.action_set))


def from_navix(
    env: Any, *, name: str | None = None
) -> tuple[NavixAdapter, SuiteParams]:
    """``(env, env_params)`` for a navix ``Environment``; ``env_params`` holds
    its ``max_steps``.

    Raises:
      TypeError: ``env`` is not a navix env (no ``_step``/``reset``/``max_steps``).
    """
    missing = [m for m in ("_step", "reset", "max_steps") if not hasattr(env, m)]
    if missing:
        raise TypeError(
            f"env={type(env).__name__} is not a navix Environment: it has no "
            f"{', '.join(missing)}"
        )
    params = SuiteParams(int(env.max_steps))
    return NavixAdapter(env, name, params), params


SUITE = Suite(
    "navix",
    "navix",
    "navix",
    lambda navix: navix.registry(),
    lambda navix, env_id, name: from_navix(navix.make(env_id), name=name),
)


def make(name: str) -> tuple[NavixAdapter, SuiteParams]:
    """``"navix/<id>"``: ``navix.make(id)`` (navix's defaults) adapted
    (:func:`make_named`)."""
    return make_named(name, SUITE)
