r"""Jumanji envs: LAST with discount 0 is a termination, with discount > 0 a
truncation; the observation keeps its structure, with its action mask.

Jumanji's ``step(state, action) -> (state, TimeStep)`` does not reset; a
finished episode is ``timestep.last()``, and its ``discount`` tells why
(``termination``: 0, ``truncation``: 1, Jumanji's time limits). The adapter
reads:

* ``terminated``: ``last() and discount == 0``;
* ``truncated``: ``last() and discount > 0``;
* ``info["final_observation"]``: that ``TimeStep``'s observation, before the
  adapter's reset (``env.reset`` with a fresh key; Jumanji's own
  ``AutoResetWrapper`` keeps it only with ``next_obs_in_extras``).

An observation with an ``action_mask`` field (Jumanji's ``NamedTuple``\ s)
becomes a dict of its fields, the mask boolean; others are kept as they are.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from jaxpg.envs.suite_base import MASK_KEY, SuiteEnv, SuiteParams, import_suite

Array = jax.Array


def _observation(obs: Any) -> Any:
    if hasattr(obs, "_asdict") and MASK_KEY in obs._fields:
        obs = obs._asdict()
    if isinstance(obs, dict) and MASK_KEY in obs:
        obs = {**obs, MASK_KEY: jnp.asarray(obs[MASK_KEY], jnp.bool_)}
    return obs


class JumanjiAdapter(SuiteEnv):
    """A Jumanji env in gymnax ≥ 1.0's API (see the module docs)."""

    def __init__(self, env, name, params, action_space):
        super().__init__(env, name, params)
        self._action_space = action_space

    def _reset(self, key, params):
        state, timestep = self._env.reset(key)
        return _observation(timestep.observation), state

    def _step(self, key, state, action, params):
        state, ts = self._env.step(state, action)
        last = ts.last()
        discount = jnp.asarray(ts.discount)
        return (
            _observation(ts.observation),
            state,
            ts.reward,
            last & (discount == 0),
            last & (discount > 0),
        )

    def action_space(self, params: Any = None) -> spaces.Space:
        """``Discrete(n)`` or a ``Box`` (Jumanji's ``DiscreteArray`` /
        ``BoundedArray``)."""
        return self._action_space


def _action_space(env: Any, name: str) -> spaces.Space:
    spec = env.action_spec
    kind = type(spec).__name__
    if kind == "DiscreteArray":
        return spaces.Discrete(int(spec.num_values))
    if kind == "BoundedArray" and np.issubdtype(np.dtype(spec.dtype), np.floating):
        shape = tuple(spec.shape)
        low = np.broadcast_to(np.asarray(spec.minimum, np.float32), shape)
        high = np.broadcast_to(np.asarray(spec.maximum, np.float32), shape)
        return spaces.Box(low, high, shape, jnp.float32)
    raise TypeError(
        f"env={name}: its action spec is a {kind}; jaxpg's policies take "
        "DiscreteArray (Discrete) and float BoundedArray (Box) actions"
    )


def from_jumanji(env: Any, *, name: str | None = None) -> tuple[JumanjiAdapter, Any]:
    r"""``(env, env_params)`` for a Jumanji ``Environment``.

    Args:
      env: a ``jumanji.Environment`` (unwrapped: no ``AutoResetWrapper``).
      name: its name, e.g. ``"jumanji/Snake-v1"``.

    ``env_params.max_steps_in_episode`` is the env's ``time_limit`` when it has
    one (Jumanji truncates there), else ``None`` (set
    ``Config.max_episode_steps``).

    Raises:
      TypeError: ``env`` is not a Jumanji env, or its action spec is neither
        ``DiscreteArray`` nor a float ``BoundedArray``.
    """
    label = name or type(env).__name__
    if not (callable(getattr(env, "reset", None)) and hasattr(env, "action_spec")):
        raise TypeError(
            f"env={type(env).__name__} is not a Jumanji Environment (no reset / "
            "action_spec)"
        )
    if "AutoReset" in type(env).__name__:
        raise TypeError(
            f"env={type(env).__name__}: pass the env without its auto-reset "
            "wrapper; the adapter resets and keeps the final observation"
        )
    limit = getattr(env, "time_limit", None)
    params = SuiteParams(None if limit is None else int(limit))
    return JumanjiAdapter(env, name, params, _action_space(env, label)), params


def make(name: str) -> tuple[JumanjiAdapter, Any]:
    """``"jumanji/<id>"``: ``jumanji.make(id)`` adapted.

    Raises:
      ValueError: an unknown id (the message lists Jumanji's).
      ImportError: ``jumanji`` is missing (names the extra).
    """
    jumanji = import_suite("jumanji", "jumanji", f"env={name!r}")
    env_id = name.partition("/")[2]
    known = sorted(jumanji.registered_environments())
    if env_id not in known:
        raise ValueError(
            f"env={name!r} is not a Jumanji env; known: "
            + ", ".join(f"jumanji/{k}" for k in known)
        )
    return from_jumanji(jumanji.make(env_id), name=name)
