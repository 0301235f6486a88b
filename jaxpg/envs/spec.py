"""What jaxpg reads of an environment: the API check, the spaces, the time limit.

:func:`check_env` traces one reset and one step with ``jax.eval_shape`` (no
FLOPs); :func:`env_spec` turns the spaces into an :class:`EnvSpec`, the static
facts that shape the networks and buffers.

Observations are an array or any pytree of arrays (dict, NamedTuple, flax
struct): the spec keeps the pytree's template (:attr:`EnvSpec.obs_template`),
and a boolean top-level leaf named ``action_mask`` or ``legal_action_mask``
(:data:`MASK_KEYS`) is the action mask of a discrete policy.
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

# Names of the boolean observation leaf that masks illegal actions (Jumanji,
# Stoix: "action_mask"; pgx: "legal_action_mask").
MASK_KEYS = ("action_mask", "legal_action_mask")


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
      obs_template: one observation as the stepper returns it, a pytree of
        ``jax.ShapeDtypeStruct``: for an array observation the struct of
        ``obs_shape``/``obs_dtype``; for a pytree observation (then
        ``obs_shape`` and ``obs_dtype`` are ``None``) the pytree.
      mask_key: the name of the observation's boolean action-mask leaf (one
        of :data:`MASK_KEYS`, a top-level dict key or field), else ``None``.
      nvec: the categories of each factor of a ``MultiDiscrete`` (or
        ``Tuple`` of ``Discrete``) action space, else ``None``; then
        ``discrete`` is True and ``num_actions`` is ``sum(nvec)``, the logits.
    """

    obs_shape: tuple[int, ...]
    discrete: bool
    num_actions: int
    action_low: np.ndarray | None
    action_high: np.ndarray | None
    max_episode_steps: int | None
    obs_categories: int | None = None
    obs_dtype: Any = None
    obs_template: Any = None
    mask_key: str | None = None
    nvec: tuple[int, ...] | None = None


def obs_template(spec: EnvSpec) -> Any:
    """One observation's pytree of ``jax.ShapeDtypeStruct`` (from
    ``obs_shape``/``obs_dtype`` for a spec built without a template)."""
    if spec.obs_template is not None:
        return spec.obs_template
    return jax.ShapeDtypeStruct(tuple(spec.obs_shape), spec.obs_dtype or jnp.float32)


def is_structured(spec: EnvSpec) -> bool:
    """Whether the observation is a pytree rather than one array."""
    return not isinstance(obs_template(spec), jax.ShapeDtypeStruct)


def _as_struct(tree: Any) -> Any:
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), tree)


def _top_level_names(tree: Any) -> dict[str, Any]:
    """The top-level entries of a dict, NamedTuple or dataclass observation."""
    if isinstance(tree, dict):
        return {str(k): v for k, v in tree.items()}
    if hasattr(tree, "_fields"):
        return {k: getattr(tree, k) for k in tree._fields}
    fields = getattr(tree, "__dataclass_fields__", None)
    if fields:
        return {k: getattr(tree, k) for k in fields}
    return {}


def _find_mask(name: str, template: Any) -> str | None:
    """The mask leaf's name in a pytree observation ``template`` (checked:
    a boolean array), or ``None``."""
    entries = _top_level_names(template)
    found = [k for k in MASK_KEYS if k in entries]
    if not found:
        return None
    if len(found) > 1:
        raise TypeError(
            f"env={name}: the observation has both {found[0]!r} and {found[1]!r}; "
            "jaxpg reads one action mask: drop one of them"
        )
    key = found[0]
    leaf = entries[key]
    if not isinstance(leaf, jax.ShapeDtypeStruct) or leaf.dtype != jnp.bool_:
        raise TypeError(
            f"env={name}: the observation's {key!r} is "
            f"{getattr(leaf, 'dtype', type(leaf).__name__)}"
            f"{getattr(leaf, 'shape', '')}; an action mask must be a bool array "
            "[A] (True: legal)"
        )
    return key


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

    Observations may be any pytree of arrays (a ``Dict``/``Tuple``
    observation space, a NamedTuple, a flax struct).

    Returns:
      The shape and dtype of one observation, as ``env.reset`` returns it: a
      ``jax.ShapeDtypeStruct``, or a pytree of them.

    Raises:
      TypeError: ``env`` lacks a method of the API, returns the old
        five-value step (use :class:`LegacyStepAdapter`, or
        :func:`make_craftax` for Craftax), or returns no
        ``info["final_observation"]`` of the observation's structure, shapes
        and dtypes.
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
    if _describe(final) != _describe(out[0]):
        raise TypeError(
            f"env={name}: info['final_observation'] is {_describe(final)} "
            f"but the observation is {_describe(out[0])}; they must match"
        )
    return obs


def _describe(tree: Any) -> str:
    """A pytree of arrays as its structure with each leaf's dtype and shape."""
    if isinstance(tree, jax.ShapeDtypeStruct | jax.Array | np.ndarray):
        return f"{np.dtype(tree.dtype)}{tuple(tree.shape)}"
    leaves, treedef = jax.tree.flatten(tree)
    described = [f"{np.dtype(x.dtype)}{tuple(x.shape)}" for x in leaves]
    return str(jax.tree.unflatten(treedef, described))


def env_spec(env: Any, env_params: Any) -> EnvSpec:
    """Check ``env`` (:func:`check_env`) and read its spaces and time limit.

    Action spaces: ``Discrete(A)``, ``Box``, ``MultiDiscrete`` (any space
    with ``nvec``) and ``Tuple`` of ``Discrete``.

    Raises:
      TypeError: from :func:`check_env`; an action space of another kind; an
        action-mask leaf (:data:`MASK_KEYS`) that is not a bool array of the
        action space's logits ``[A]`` (``[sum(nvec)]`` or ``[K, n]`` for a
        ``MultiDiscrete`` of ``K`` factors of ``n``), or beside a ``Box``.
    """
    obs = check_env(env, env_params)
    obs_space = env.observation_space(env_params)
    categories, template, mask_key = None, None, None
    if not isinstance(obs, jax.ShapeDtypeStruct):  # a pytree observation
        obs_shape, obs_dtype = None, None
        template = _as_struct(obs)
        mask_key = _find_mask(type(env).__name__, template)
    elif _is_discrete(obs_space):
        categories = int(obs_space.n)
        obs_shape = (categories,)
        obs_dtype = np.dtype(np.float32)
    else:
        # A space without a shape (a Dict declared around one array): the
        # array's own.
        shape = getattr(obs_space, "shape", None)
        obs_shape = tuple(int(d) for d in (obs.shape if shape is None else shape))
        obs_dtype = np.dtype(obs.dtype)
    if template is None:
        template = jax.ShapeDtypeStruct(obs_shape, obs_dtype)
    act_space = env.action_space(env_params)
    max_steps = _time_limit(env_params)
    common = dict(
        max_episode_steps=max_steps,
        obs_categories=categories,
        obs_dtype=obs_dtype,
        obs_template=template,
        mask_key=mask_key,
    )
    nvec = _factors(act_space)
    if nvec is not None:
        spec = EnvSpec(obs_shape, True, sum(nvec), None, None, nvec=nvec, **common)
    elif isinstance(act_space, spaces.Discrete) or hasattr(act_space, "n"):
        spec = EnvSpec(obs_shape, True, int(act_space.n), None, None, **common)
    elif isinstance(act_space, spaces.Box) or hasattr(act_space, "low"):
        shape = tuple(act_space.shape) or (1,)
        dim = int(math.prod(shape))
        low = np.broadcast_to(np.asarray(act_space.low, np.float32), shape).ravel()
        high = np.broadcast_to(np.asarray(act_space.high, np.float32), shape).ravel()
        spec = EnvSpec(obs_shape, False, dim, low, high, **common)
    else:
        raise TypeError(
            f"action space {act_space!r} is not supported: jaxpg handles "
            "Discrete, Box, MultiDiscrete and Tuple of Discrete spaces"
        )
    if mask_key is not None:
        _check_mask_shape(
            type(env).__name__, spec, _top_level_names(template)[mask_key]
        )
    return spec


def _factors(space: Any) -> tuple[int, ...] | None:
    """``nvec`` of a MultiDiscrete or Tuple-of-Discrete space, else ``None``."""
    if hasattr(space, "nvec"):
        return tuple(int(n) for n in np.asarray(space.nvec).reshape(-1))
    if isinstance(space, spaces.Tuple):
        subs = list(space.spaces)
        if subs and all(_is_discrete(s) for s in subs):
            return tuple(int(s.n) for s in subs)
        raise TypeError(
            f"action space {space!r} is not supported: a Tuple action space must "
            "hold Discrete spaces only"
        )
    return None


def mask_shapes(spec: EnvSpec) -> tuple[tuple[int, ...], ...]:
    """The action-mask shapes one observation may carry for ``spec``'s actions:
    ``(A,)``; for ``K`` factors also ``(K, n)`` when every factor has ``n``."""
    shapes = [(spec.num_actions,)]
    if spec.nvec is not None and len(set(spec.nvec)) == 1:
        shapes.append((len(spec.nvec), spec.nvec[0]))
    return tuple(shapes)


def _check_mask_shape(name: str, spec: EnvSpec, leaf: Any) -> None:
    if not spec.discrete:
        raise TypeError(
            f"env={name}: the observation has an action mask {spec.mask_key!r} "
            "but the action space is a Box; masks apply to discrete actions"
        )
    allowed = mask_shapes(spec)
    if tuple(leaf.shape) not in allowed:
        raise TypeError(
            f"env={name}: the action mask {spec.mask_key!r} has shape "
            f"{tuple(leaf.shape)}; the action space needs "
            f"{' or '.join(map(str, allowed))}"
        )


def to_env_action(spec: EnvSpec, action: jnp.ndarray, env: Any, params: Any):
    """Map a policy sample to what ``env.step`` takes: clip to the bounds and
    restore the Box's shape (a scalar Box gets a scalar). Discrete and
    MultiDiscrete pass (reshaped to an ``nvec`` of rank > 1); a ``Tuple`` of
    ``Discrete`` gets a tuple of its ``K`` factors' actions."""
    if spec.nvec is not None:
        space = env.action_space(params)
        if isinstance(space, spaces.Tuple):
            return tuple(action[..., k] for k in range(len(spec.nvec)))
        shape = np.shape(space.nvec)  # an nvec of rank > 1 gets its shape back
        return action if len(shape) == 1 else action.reshape(action.shape[:-1] + shape)
    if spec.discrete:
        return action
    low = jnp.broadcast_to(jnp.asarray(spec.action_low), action.shape)
    high = jnp.broadcast_to(jnp.asarray(spec.action_high), action.shape)
    clipped = jnp.clip(action, low, high)
    shape = tuple(env.action_space(params).shape)
    return clipped.reshape(clipped.shape[:-1] + shape)


def observation_fn(spec: EnvSpec) -> Callable[[Any], Array]:
    """What the policy sees of one env's observation: a JAX array (a pytree of
    them for a pytree observation); one-hot ``[n]`` float32 for a
    ``Discrete(n)`` observation space."""
    if is_structured(spec):
        return lambda obs: jax.tree.map(jnp.asarray, obs)
    if spec.obs_categories is None:
        return jnp.asarray
    return lambda obs: jax.nn.one_hot(
        jnp.asarray(obs), spec.obs_categories, dtype=jnp.float32
    )
