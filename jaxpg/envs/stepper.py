"""The batched stepper: ``B`` copies of an env stepped together, and jaxpg's
time limiter (truncation with the real final observation kept)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.envs.lanes import select_envs
from jaxpg.envs.spec import EnvSpec, observation_fn, to_env_action

Array = jax.Array

_INT32_MAX = int(np.iinfo(np.int32).max)


class EnvStepper(NamedTuple):
    """Batched env functions closed over ``env``/``env_params``/time limit.

    ``reset(key) -> (obs [B, *O], state)``;
    ``step(key, state, action [B, ...]) -> (obs, state, reward [B], terminated [B],
    truncated [B], final_obs [B, *O])``. Every leaf of ``state`` has the leading
    ``[B]`` axis, and so does every leaf of a pytree observation; select
    between states (or observations) with :func:`select_envs`.
    """

    num_envs: int
    reset: Callable[[Array], tuple[Array, Any]]
    step: Callable[[Array, Any, Array], tuple[Array, Any, Array, Array, Array, Array]]


class _LimitState(NamedTuple):
    """jaxpg's time limiter around the env's ``[B]`` states."""

    env_state: Any  # [B] env states
    elapsed: Array  # [B] int32, steps in the current episode
    spare_obs: Any  # [B, *O] an unused reset observation per env (a pytree)
    spare_state: Any  # [B] its env state
    clock: Array  # [B] int32, stepper calls; the max over envs is current


def make_stepper(
    env: Any,
    env_params: Any,
    spec: EnvSpec,
    num_envs: int,
    time_limit: int | None = None,
) -> EnvStepper:
    r"""Vectorise ``env`` over ``num_envs`` copies (``B``).

    With ``time_limit`` jaxpg truncates an episode after that many steps (unless
    the env's own limit, no longer, cuts first; then no limiter is built). An
    env that is cut restarts from a *spare* reset state kept for it; every step
    refreshes the spares of ``k = ⌈B / time_limit⌉`` envs in turn, so each
    spare is renewed within ``⌈B / k⌉ ≤ time_limit`` steps, before its env can
    be cut again. The cost per step is a reset of ``k`` envs (usually 1)
    instead of ``B``, the same under any ``vmap``.

    Raises:
      ValueError: ``time_limit`` is not a positive int (or ``None``).
    """
    if time_limit is not None and (
        isinstance(time_limit, bool) or not isinstance(time_limit, int | np.integer)
    ):
        raise ValueError(
            f"time_limit={time_limit!r} is invalid: a positive int or None"
        )
    if time_limit is not None and not 0 < time_limit <= _INT32_MAX:
        raise ValueError(f"time_limit={time_limit!r} is invalid: must be in [1, 2^31)")
    observe = observation_fn(spec)
    name = type(env).__name__

    def reset_one(key):
        obs, state = env.reset(key, env_params)
        return observe(obs), state

    def step_one(key, state, action):
        obs, state, reward, term, trunc, info = env.step(
            key, state, to_env_action(spec, action, env, env_params), env_params
        )
        if not isinstance(info, dict) or "final_observation" not in info:
            raise TypeError(
                f"env={name}: step's info has no 'final_observation'; wrap the env "
                "in jaxpg.envs.LegacyStepAdapter (see jaxpg.envs.check_env)"
            )
        return (
            observe(obs),
            state,
            jnp.asarray(reward, jnp.float32),
            jnp.asarray(term, jnp.bool_),
            jnp.asarray(trunc, jnp.bool_),
            observe(info["final_observation"]),
        )

    v_reset = jax.vmap(reset_one)
    v_step = jax.vmap(step_one)

    def reset(key):
        return v_reset(jax.random.split(key, num_envs))

    def step(key, state, action):
        return v_step(jax.random.split(key, num_envs), state, action)

    own_limit = spec.max_episode_steps
    if time_limit is None or (own_limit is not None and time_limit >= own_limit):
        return EnvStepper(num_envs, reset, step)
    time_limit = int(time_limit)
    k = -(-num_envs // time_limit)  # spares renewed per step

    def reset_limited(key):
        key_env, key_spare = jax.random.split(key)
        obs, state = reset(key_env)
        spare_obs, spare_state = reset(key_spare)
        zeros = jnp.zeros((num_envs,), jnp.int32)
        return obs, _LimitState(state, zeros, spare_obs, spare_state, zeros)

    def step_limited(key, state, action):
        key_step, key_spare = jax.random.split(key)
        obs, env_state, reward, term, trunc, final_obs = step(
            key_step, state.env_state, action
        )
        elapsed = jnp.where(term | trunc, 0, state.elapsed + 1)
        cut = elapsed >= time_limit
        obs = select_envs(cut, state.spare_obs, obs)
        env_state = select_envs(cut, state.spare_state, env_state)
        # Renew the spares of k envs in turn (a used spare is renewed before its
        # env can be cut again). The clock is the max over envs so that an env
        # frozen by select_envs cannot hold it back.
        clock = jnp.max(state.clock)
        idx = (clock % num_envs * k + jnp.arange(k, dtype=jnp.int32)) % num_envs
        new_obs, new_state = v_reset(jax.random.split(key_spare, k))
        put = lambda spare, new: spare.at[idx].set(new)  # noqa: E731
        spare_obs = jax.tree.map(put, state.spare_obs, new_obs)
        spare_state = jax.tree.map(put, state.spare_state, new_state)
        clock = jnp.full((num_envs,), clock + 1, jnp.int32)
        new = _LimitState(
            env_state, jnp.where(cut, 0, elapsed), spare_obs, spare_state, clock
        )
        return obs, new, reward, term, trunc | cut, final_obs

    return EnvStepper(num_envs, reset_limited, step_limited)
