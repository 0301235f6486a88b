"""gymnax ≥ 1.0's six-value step for envs that speak the old five-value one."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

Array = jax.Array


def _default_time_up(state: Any, params: Any) -> Array | None:
    """``state.time >= params.max_steps_in_episode`` (gymnax) or
    ``state.timestep >= params.max_timesteps`` (Craftax); ``None`` if neither."""
    for clock, limit in (
        ("time", "max_steps_in_episode"),
        ("timestep", "max_timesteps"),
    ):
        if hasattr(state, clock) and hasattr(params, limit):
            return jnp.asarray(getattr(state, clock) >= getattr(params, limit))
    return None


class LegacyStepAdapter:
    r"""gymnax ≥ 1.0's six-value step for an env with the old five-value one.

    ``step`` returns ``(obs, state, reward, terminated, truncated, info)`` with
    ``info["final_observation"]`` the real ``s_{t+1}``. How, by what the env
    offers (checked on every trace, in this order):

    1. its step's ``info`` already holds ``final_observation`` (and
       ``terminated``/``truncated``, as ``gymnax.wrappers.LegacyStepAPIWrapper``
       keeps them): these are used, and the transitions equal the unwrapped env's.
    2. it has gymnax's ``step_env``/``reset_env`` (old gymnax envs, Craftax): the
       adapter does the auto-reset itself, as gymnax's own ``step`` does (same
       key split, so the same transitions), keeping ``s_{t+1}``. ``done`` is
       split by ``time_limit_reached(state, params)`` (default: ``state.time >=
       params.max_steps_in_episode``, or Craftax's ``state.timestep >=
       params.max_timesteps``): ``truncated = time up``, ``terminated = done and
       not time up``. A step that ends the game exactly at the limit counts as
       truncated (the five-value API cannot tell); with no known clock every
       ``done`` counts as termination, which is the old API's own meaning.
       Wrappers that override ``step`` but not ``step_env`` are bypassed here.
    3. neither: the step raises ``TypeError`` (``s_{t+1}`` is lost for good).

    Other attributes (spaces, ``default_params``) are the env's.
    """

    def __init__(
        self,
        env: Any,
        time_limit_reached: Callable[[Any, Any], Array] | None = None,
    ):
        missing = [m for m in ("reset", "step") if not callable(getattr(env, m, None))]
        if missing:
            raise TypeError(
                f"env={type(env).__name__} has no {', '.join(missing)}: "
                "LegacyStepAdapter wraps an env with reset(key, params) and "
                "step(key, state, action, params)"
            )
        self._env = env
        self._time_limit_reached = time_limit_reached

    def __getattr__(self, name: str) -> Any:
        if name == "_env":  # not set yet (e.g. while unpickling)
            raise AttributeError(name)
        return getattr(self._env, name)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._env!r})"

    @property
    def unwrapped(self) -> Any:
        """The wrapped env."""
        return self._env

    def reset(self, key: Array, params: Any = None) -> tuple[Array, Any]:
        """``(obs, state)`` of a fresh episode."""
        params = self._env.default_params if params is None else params
        return self._env.reset(key, params)

    def step(self, key: Array, state: Any, action: Any, params: Any = None):
        """One step: ``(obs, state, reward, terminated, truncated, info)``."""
        params = self._env.default_params if params is None else params
        out = self._env.step(key, state, action, params)
        info = out[-1]
        if isinstance(info, dict) and "final_observation" in info:
            if len(out) == 6:
                return out
            obs, next_state, reward, done, info = out
            done = jnp.asarray(done, jnp.bool_)
            term = jnp.asarray(info.get("terminated", done), jnp.bool_)
            trunc = jnp.asarray(info.get("truncated", jnp.zeros_like(done)), jnp.bool_)
            return obs, next_state, reward, term, trunc, info
        if not (
            callable(getattr(self._env, "step_env", None))
            and callable(getattr(self._env, "reset_env", None))
        ):
            raise TypeError(
                f"env={type(self._env).__name__}: its step returns no "
                "info['final_observation'] and it has no step_env/reset_env to "
                "rebuild one, so s_{t+1} of a finished episode is lost; return "
                "info['final_observation'] from step"
            )
        return self._step_via_step_env(key, state, action, params)

    def _split(self, done: Array, state: Any, params: Any) -> tuple[Array, Array]:
        """``(terminated, truncated)`` for the post-step ``state``."""
        if self._time_limit_reached is not None:
            time_up = jnp.asarray(self._time_limit_reached(state, params), jnp.bool_)
        else:
            time_up = _default_time_up(state, params)
        if time_up is None:
            return done, jnp.zeros_like(done)
        return done & ~time_up, time_up

    def _step_via_step_env(self, key, state, action, params):
        key_step, key_reset = jax.random.split(key)
        obs_st, state_st, reward, done, info = self._env.step_env(
            key_step, state, action, params
        )
        term, trunc = self._split(jnp.asarray(done, jnp.bool_), state_st, params)
        over = term | trunc
        obs_re, state_re = self._env.reset_env(key_reset, params)
        pick = lambda a, b: jax.lax.select(over, a, b)  # noqa: E731
        state_next = jax.tree.map(pick, state_re, state_st)
        obs = jax.tree.map(pick, obs_re, obs_st)
        info = {
            **info,
            "terminated": term,
            "truncated": trunc,
            "final_observation": obs_st,
        }
        return obs, state_next, reward, term, trunc, info
