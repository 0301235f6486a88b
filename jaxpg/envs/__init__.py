r"""Environments: build them by name, check their API, read their spaces, batch them.

The API jaxpg steps is gymnax ≥ 1.0's: ``reset(key, params) -> (obs, state)`` and
``step(key, state, action, params) -> (obs, state, reward, terminated, truncated,
info)``, resetting automatically, with ``info["final_observation"]`` the real
``s_{t+1}`` before the reset. ``terminated`` ends the return (nothing to
bootstrap); ``truncated`` only cuts it (a critic bootstraps from
``final_observation``), so the two must never be confused and the final
observation must never silently become the reset one.

:func:`check_env` (called by :func:`env_spec`) traces one reset and one step
with ``jax.eval_shape`` and raises a ``TypeError`` naming the adapter to use for
anything else:

* :class:`LegacyStepAdapter`: gymnax's old five-value step ``(obs, state, reward,
  done, info)`` (e.g. ``gymnax.wrappers.LegacyStepAPIWrapper``), or a six-value
  env without ``final_observation``.
* :func:`make_craftax`: Craftax (``Craftax-Classic-Symbolic-v1``,
  ``Craftax-Symbolic-v1``; ``pip install 'jaxpg[craftax]'``), with death and the
  time limit told apart exactly.

Observations: a ``Discrete(n)`` observation space is one-hot encoded to
``[n]`` float32 by the stepper (the spec reports ``(n,)``); other observations
keep their shape and dtype. Dict/Tuple observation spaces are rejected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

from jaxpg.envs import lazy_imports

lazy_imports.defer()  # before gymnax: its render-only imports load on use

import gymnax  # noqa: E402
import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from gymnax.environments import spaces  # noqa: E402

Array = jax.Array

CRAFTAX_ENVS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
_ENV_METHODS = ("reset", "step", "observation_space", "action_space")
_INT32_MAX = int(np.iinfo(np.int32).max)


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


def known_envs() -> tuple[str, ...]:
    """Names accepted by ``Config(env=...)``: gymnax's registry and Craftax's."""
    return (*gymnax.registered_envs, *CRAFTAX_ENVS)


def make_env(name: str) -> tuple[Any, Any]:
    """``(env, env_params)`` for a gymnax or Craftax environment name.

    Raises:
      ValueError: ``name`` is not known; the message lists the known names.
      ImportError: a Craftax name without the ``craftax`` package.
    """
    if name in CRAFTAX_ENVS:
        return make_craftax(name)
    if name not in gymnax.registered_envs:
        raise ValueError(
            f"env={name!r} is not a known environment; known: "
            f"{', '.join(known_envs())} (or pass env=<gymnax Environment>)"
        )
    return gymnax.make(name)


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


# --------------------------------------------------------------------- batching


class EnvStepper(NamedTuple):
    """Batched env functions closed over ``env``/``env_params``/time limit.

    ``reset(key) -> (obs [B, *O], state)``;
    ``step(key, state, action [B, ...]) -> (obs, state, reward [B], terminated [B],
    truncated [B], final_obs [B, *O])``. Every leaf of ``state`` has the leading
    ``[B]`` axis; select between states with :func:`select_envs`.
    """

    num_envs: int
    reset: Callable[[Array], tuple[Array, Any]]
    step: Callable[[Array, Any, Array], tuple[Array, Any, Array, Array, Array, Array]]


class _LimitState(NamedTuple):
    """jaxpg's time limiter around the env's ``[B]`` states."""

    env_state: Any  # [B] env states
    elapsed: Array  # [B] int32, steps in the current episode
    spare_obs: Array  # [B, *O] an unused reset observation per env
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
        spare_obs = put(state.spare_obs, new_obs)
        spare_state = jax.tree.map(put, state.spare_state, new_state)
        clock = jnp.full((num_envs,), clock + 1, jnp.int32)
        new = _LimitState(
            env_state, jnp.where(cut, 0, elapsed), spare_obs, spare_state, clock
        )
        return obs, new, reward, term, trunc | cut, final_obs

    return EnvStepper(num_envs, reset_limited, step_limited)


def select_envs(pred: Array, on_true: Any, on_false: Any) -> Any:
    """Per-env ``where`` over pytrees; ``pred`` is ``[B]``."""

    def sel(a, b):
        p = pred.reshape(pred.shape + (1,) * (a.ndim - 1))
        return jnp.where(p, a, b)

    return jax.tree.map(sel, on_true, on_false)


# --------------------------------------------------------------------- adapters


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


class CraftaxAdapter(LegacyStepAdapter):
    r"""Craftax with the six-value step; death and the time limit told apart.

    Craftax's ``done`` is ``timestep >= max_timesteps`` or the game ending
    (death, lava in Classic, the final boss in Craftax). ``terminated`` is the
    env's own ``is_terminal`` with the time limit lifted, so a death on the last
    step is a termination; ``truncated = done and not terminated``.
    """

    def _split(self, done, state, params):
        no_limit = params.replace(max_timesteps=_INT32_MAX)
        term = jnp.asarray(self._env.is_terminal(state, no_limit), jnp.bool_)
        return term, done & ~term


def make_craftax(name: str, **kwargs: Any) -> tuple[CraftaxAdapter, Any]:
    """``(env, env_params)`` for a Craftax environment, ready for jaxpg.

    Args:
      name: one of ``CRAFTAX_ENVS`` (symbolic observations: flat float32).
      **kwargs: passed to ``craftax.craftax_env.make_craftax_env_from_name``.

    Raises:
      ValueError: ``name`` is not a Craftax symbolic env.
      ImportError: the ``craftax`` package is missing.
    """
    if name not in CRAFTAX_ENVS:
        raise ValueError(
            f"name={name!r} is not supported; Craftax envs: {', '.join(CRAFTAX_ENVS)}"
        )
    try:
        from craftax.craftax_env import make_craftax_env_from_name
    except ImportError as err:
        raise ImportError(
            f"env={name!r} needs the craftax package: pip install 'jaxpg[craftax]'"
        ) from err
    env = make_craftax_env_from_name(name, auto_reset=True, **kwargs)
    return CraftaxAdapter(env), env.default_params
