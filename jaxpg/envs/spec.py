"""What jaxpg reads of an environment: the API check, the spaces, the time limit.

:func:`check_env` traces one reset and one step with ``jax.eval_shape`` (no
FLOPs); :func:`env_spec` turns the spaces into an :class:`EnvSpec`, the static
facts that shape the networks and buffers.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

Array = jax.Array

_ENV_METHODS = ("reset", "step", "observation_space", "action_space")


class EnvSpec(NamedTuple):
    """Static facts about an environment that shape the networks and buffers.

    Attributes:
      obs_shape: observation shape ``O`` as the policy sees it (``(n,)`` for a
        one-hot ``Discrete(n)`` observation space).
      discrete: True for a ``Discrete`` action space.
      num_actions: ``A`` for discrete spaces; the action dimension ``D`` otherwise.
      action_low: ``[D]`` lower bounds (continuous only, else ``None``).
      action_high: ``[D]`` upper bounds (continuous only, else ``None``).
      max_episode_steps: the time limit, or ``None`` when the env has none.
      obs_categories: ``n`` when the observation space is ``Discrete(n)`` (the
        stepper one-hot encodes it), else ``None``.
      obs_dtype: the dtype of the observations the stepper returns: the env's
        own (float32 when one-hot encoded).
    """

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    max_episode_steps: int | None
    obs_categories: int | None = None
    obs_dtype: Any = None


def _is_discrete(space: Any) -> bool:
    return isinstance(space, spaces.Discrete) or (
        hasattr(space, "n") and tuple(getattr(space, "shape", ())) == ()
    )


def _time_limit(env_params: Any) -> int | None:
    for field in ("max_steps_in_episode", "max_timesteps"):
        value = getattr(env_params, field, None)
        if value is not None:
            return int(value)
    return None


def check_env(env: Any, env_params: Any) -> jax.ShapeDtypeStruct:
    """Check that ``env`` speaks jaxpg's (gymnax ≥ 1.0) API; trace-only, no FLOPs.

    Traces ``reset`` and one ``step`` with ``jax.eval_shape``.

    Returns:
      The shape and dtype of one observation, as ``env.reset`` returns it.

    Raises:
      TypeError: ``env`` lacks a method of the API, has a Dict/Tuple observation
        space, returns the old five-value step (use :class:`LegacyStepAdapter`,
        or :func:`make_craftax` for Craftax), or returns no
        ``info["final_observation"]`` of the observation's shape.
    """
    name = type(env).__name__
    missing = [m for m in _ENV_METHODS if not callable(getattr(env, m, None))]
    if missing:
        raise TypeError(
            f"env={name} is not a gymnax-API environment: it has no "
            f"{', '.join(missing)}; jaxpg needs reset(key, params), "
            "step(key, state, action, params), observation_space(params) and "
            "action_space(params) (gymnax.environments.environment.Environment)"
        )
    obs_space = env.observation_space(env_params)
    if isinstance(obs_space, spaces.Dict | spaces.Tuple) or hasattr(
        obs_space, "spaces"
    ):
        raise TypeError(
            f"env={name} has a {type(obs_space).__name__} observation space; "
            "jaxpg needs a Box or Discrete observation: wrap the env so that it "
            "returns one array (e.g. gymnax.wrappers.FlattenObservationWrapper)"
        )
    act_space = env.action_space(env_params)
    key = jax.random.key(0)
    obs, state = jax.eval_shape(env.reset, key, env_params)
    action = jax.eval_shape(act_space.sample, key)
    out = jax.eval_shape(env.step, key, state, action, env_params)
    hint = "wrap it: jaxpg.envs.LegacyStepAdapter(env)" + (
        " (Craftax: jaxpg.envs.make_craftax(name))" if "Craftax" in name else ""
    )
    if not isinstance(out, tuple) or len(out) != 6:
        size = len(out) if isinstance(out, tuple) else type(out).__name__
        raise TypeError(
            f"env={name}: step returns {size} values; jaxpg needs gymnax ≥ 1.0's "
            "(obs, state, reward, terminated, truncated, info) with "
            f"info['final_observation']; for the old (obs, state, reward, done, "
            f"info) API {hint}"
        )
    info = out[5]
    final = info.get("final_observation") if isinstance(info, dict) else None
    if final is None:
        raise TypeError(
            f"env={name}: step's info has no 'final_observation' (the real "
            "s_{t+1} before the auto-reset), which truncation needs to bootstrap "
            f"from; return it in info or {hint}"
        )
    if (final.shape, final.dtype) != (out[0].shape, out[0].dtype):
        raise TypeError(
            f"env={name}: info['final_observation'] is {final.dtype}{final.shape} "
            f"but the observation is {out[0].dtype}{out[0].shape}; they must match"
        )
    return obs


def env_spec(env: Any, env_params: Any) -> EnvSpec:
    """Check ``env`` (:func:`check_env`) and read its spaces and time limit.

    Raises:
      TypeError: from :func:`check_env`, or an action space that is neither
        ``Discrete`` nor ``Box``.
    """
    obs = check_env(env, env_params)
    obs_space = env.observation_space(env_params)
    categories = None
    obs_dtype = np.dtype(obs.dtype)
    if _is_discrete(obs_space):
        categories = int(obs_space.n)
        obs_shape = (categories,)
        obs_dtype = np.dtype(np.float32)
    else:
        obs_shape = tuple(int(d) for d in obs_space.shape)
    act_space = env.action_space(env_params)
    max_steps = _time_limit(env_params)
    if isinstance(act_space, spaces.Discrete) or hasattr(act_space, "n"):
        return EnvSpec(
            obs_shape,
            True,
            int(act_space.n),
            None,
            None,
            max_steps,
            categories,
            obs_dtype,
        )
    if isinstance(act_space, spaces.Box) or hasattr(act_space, "low"):
        shape = tuple(act_space.shape) or (1,)
        dim = int(math.prod(shape))
        low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape).ravel()
        high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape).ravel()
        return EnvSpec(
            obs_shape, False, dim, low, high, max_steps, categories, obs_dtype
        )
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


def observation_fn(spec: EnvSpec) -> Callable[[Any], Array]:
    """What the policy sees of one env's observation: a JAX array; one-hot
    ``[n]`` float32 for a ``Discrete(n)`` observation space."""
    if spec.obs_categories is None:
        return jnp.asarray
    return lambda obs: jax.nn.one_hot(
        jnp.asarray(obs), spec.obs_categories, dtype=jnp.float32
    )
