r"""Environments: build gymnax environments by name and read their spaces.

Any object with the gymnax ≥ 1.0 ``Environment`` API works: ``reset(key,
params) -> (obs, state)`` and ``step(key, state, action, params) -> (obs, state,
reward, terminated, truncated, info)`` with automatic reset and
``info["final_observation"]`` holding the observation before the reset.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

Array = jax.Array


class EnvSpec(NamedTuple):
    """Static facts about an environment that shape the networks and buffers.

    Attributes:
      obs_shape: observation shape ``O`` (flattened by the policy).
      discrete: True for a ``Discrete`` action space.
      num_actions: ``A`` for discrete spaces; the action dimension ``D`` otherwise.
      action_low: ``[D]`` lower bounds (continuous only, else ``None``).
      action_high: ``[D]`` upper bounds (continuous only, else ``None``).
      max_episode_steps: the time limit, or ``None`` when the env has none.
    """

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    max_episode_steps: int | None


def known_envs() -> tuple[str, ...]:
    """Names accepted by ``Config(env=...)``: gymnax's registry."""
    return tuple(gymnax.registered_envs)


def make_env(name: str) -> tuple[Any, Any]:
    """``(env, env_params)`` for a gymnax environment name.

    Raises:
      ValueError: ``name`` is not registered; the message lists the known names.
    """
    if name not in gymnax.registered_envs:
        raise ValueError(
            f"env={name!r} is not a known gymnax environment; known: "
            f"{', '.join(known_envs())} (or pass env=<gymnax Environment>)"
        )
    return gymnax.make(name)


def env_spec(env: Any, env_params: Any) -> EnvSpec:
    """Read the observation/action spaces and the time limit of ``env``.

    Raises:
      TypeError: the action space is neither ``Discrete`` nor ``Box``.
    """
    obs_space = env.observation_space(env_params)
    obs_shape = tuple(int(d) for d in obs_space.shape)
    act_space = env.action_space(env_params)
    max_steps = getattr(env_params, "max_steps_in_episode", None)
    max_steps = None if max_steps is None else int(max_steps)
    if isinstance(act_space, spaces.Discrete) or hasattr(act_space, "n"):
        return EnvSpec(obs_shape, True, int(act_space.n), None, None, max_steps)
    if isinstance(act_space, spaces.Box) or hasattr(act_space, "low"):
        shape = tuple(act_space.shape) or (1,)
        dim = int(math.prod(shape))
        low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape).ravel()
        high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape).ravel()
        return EnvSpec(obs_shape, False, dim, low, high, max_steps)
    raise TypeError(
        f"action space {act_space!r} is not supported: jaxpg handles Discrete "
        "and Box spaces"
    )


def to_env_action(spec: EnvSpec, action: jnp.ndarray, env: Any, params: Any):
    """Map a policy sample to what ``env.step`` takes: clip to the bounds and
    restore the Box's shape (a scalar Box gets a scalar). Discrete passes."""
    if spec.discrete:
        return action
    low = jnp.broadcast_to(jnp.asarray(spec.action_low), action.shape)
    high = jnp.broadcast_to(jnp.asarray(spec.action_high), action.shape)
    clipped = jnp.clip(action, low, high)
    shape = tuple(env.action_space(params).shape)
    return clipped.reshape(clipped.shape[:-1] + shape)


class EnvStepper(NamedTuple):
    """Batched env functions closed over ``env``/``env_params``/time limit.

    ``reset(key) -> (obs [B, *O], state)``;
    ``step(key, state, action [B, ...]) -> (obs, state, reward [B], terminated [B],
    truncated [B], final_obs [B, *O])``.
    """

    num_envs: int
    reset: Callable[[Array], tuple[Array, Any]]
    step: Callable[[Array, Any, Array], tuple[Array, Any, Array, Array, Array, Array]]


class _LimitState(NamedTuple):
    env_state: Any
    elapsed: Array  # [B] int32, steps in the current episode


def make_stepper(
    env: Any,
    env_params: Any,
    spec: EnvSpec,
    num_envs: int,
    time_limit: int | None = None,
) -> EnvStepper:
    """Vectorise ``env`` over ``num_envs`` copies.

    With ``time_limit`` jaxpg enforces its own truncation (and reset) after that
    many steps; otherwise the env's own limit applies.
    """

    def reset_one(key):
        return env.reset(key, env_params)

    def step_one(key, state, action):
        obs, state, reward, term, trunc, info = env.step(
            key, state, to_env_action(spec, action, env, env_params), env_params
        )
        final_obs = (
            info.get("final_observation", obs) if isinstance(info, dict) else obs
        )
        return (
            obs,
            state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(term, jnp.bool_),
            jnp.asarray(trunc, jnp.bool_),
            final_obs,
        )

    v_reset = jax.vmap(reset_one)
    v_step = jax.vmap(step_one)

    def reset(key):
        return v_reset(jax.random.split(key, num_envs))

    def step(key, state, action):
        return v_step(jax.random.split(key, num_envs), state, action)

    if time_limit is None:
        return EnvStepper(num_envs, reset, step)

    def reset_limited(key):
        obs, state = reset(key)
        return obs, _LimitState(state, jnp.zeros((num_envs,), jnp.int32))

    def step_limited(key, state, action):
        key_step, key_reset = jax.random.split(key)
        obs, env_state, reward, term, trunc, final_obs = step(
            key_step, state.env_state, action
        )
        elapsed = jnp.where(term | trunc, 0, state.elapsed + 1)
        cut = elapsed >= time_limit
        trunc = trunc | cut
        reset_obs, reset_state = v_reset(jax.random.split(key_reset, num_envs))
        obs = select_envs(cut, reset_obs, obs)
        env_state = select_envs(cut, reset_state, env_state)
        elapsed = jnp.where(cut, 0, elapsed)
        return obs, _LimitState(env_state, elapsed), reward, term, trunc, final_obs

    return EnvStepper(num_envs, reset_limited, step_limited)


def select_envs(pred: Array, on_true: Any, on_false: Any) -> Any:
    """Per-env ``where`` over pytrees; ``pred`` is ``[B]``."""

    def sel(a, b):
        p = pred.reshape(pred.shape + (1,) * (a.ndim - 1))
        return jnp.where(p, a, b)

    return jax.tree.map(sel, on_true, on_false)
