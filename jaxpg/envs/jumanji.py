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

A structured observation (Jumanji's ``NamedTuple``\ s and dataclasses, at
any depth) becomes a dict of its fields, its ``action_mask`` boolean; an
array observation is kept as it is. A multi-agent env's per-agent rewards are
summed and its per-agent discounts reduced by ``max`` (Jumanji's
``MultiToSingleWrapper``): one policy acts for all agents.
``MultiDiscreteArray`` actions (:func:`from_jumanji`'s ``joint_mask``): a mask
joint over the factors (Minesweeper's ``[rows, cols]``) makes the action one
``Discrete(prod(nvec))`` with the flattened mask, exact; a per-factor mask or
none, a ``MultiDiscrete``.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from gymnax.environments import spaces

from jaxpg.envs.spaces import MultiDiscrete
from jaxpg.envs.suite_base import (
    MASK_KEY,
    Suite,
    SuiteEnv,
    SuiteParams,
    last_flags,
    make_named,
)

Array = jax.Array


def _as_dicts(x: Any) -> Any:
    r"""``NamedTuple``\ s and dataclasses, at any depth, as dicts of their
    fields (what jaxpg's spaces and structured-observation torsos read)."""
    if isinstance(x, dict):
        return {k: _as_dicts(v) for k, v in x.items()}
    if hasattr(x, "_asdict"):
        return {k: _as_dicts(v) for k, v in x._asdict().items()}
    if dataclasses.is_dataclass(x) and not isinstance(x, type):
        return {f.name: _as_dicts(getattr(x, f.name)) for f in dataclasses.fields(x)}
    return x


def _observation(obs: Any, layout: _Layout | None = None) -> Any:
    obs = _as_dicts(obs)
    if isinstance(obs, dict) and MASK_KEY in obs:
        mask = jnp.asarray(obs[MASK_KEY], jnp.bool_)
        if layout is not None:
            mask = layout.mask(mask)
        obs = {**obs, MASK_KEY: mask}
    return obs


class _Layout(NamedTuple):
    """How a ``MultiDiscreteArray`` action reaches jaxpg's policy: ``joint``
    (the mask covers every combination: one ``Discrete(prod(nvec))`` action,
    unravelled in C order) or per factor (``MultiDiscrete(nvec)``, a ``[K, n]``
    mask kept, or cut to ``[sum(nvec)]`` when the factors differ)."""

    nvec: tuple[int, ...]
    joint: bool
    cut: bool  # per factor, unequal factors: the [K, max n] mask concatenated

    def mask(self, mask: Array) -> Array:
        if self.joint:
            return mask.reshape(-1)
        if self.cut:
            return jnp.concatenate([mask[k, :n] for k, n in enumerate(self.nvec)])
        return mask

    def action(self, action: Array, dtype: Any) -> Array:
        if self.joint:
            return jnp.stack(jnp.unravel_index(action, self.nvec)).astype(dtype)
        return jnp.asarray(action, dtype)


class JumanjiAdapter(SuiteEnv):
    """A Jumanji env in gymnax ≥ 1.0's API (see the module docs)."""

    def __init__(self, env, name, params, action_space, layout=None):
        super().__init__(env, name, params)
        self._action_space = action_space
        self._layout = layout

    def _reset(self, key, params):
        state, timestep = self._env.reset(key)
        return _observation(timestep.observation, self._layout), state

    def _step(self, key, state, action, params):
        if self._layout is not None:
            action = self._layout.action(action, self._env.action_spec.dtype)
        state, ts = self._env.step(state, action)
        obs = _observation(ts.observation, self._layout)
        reward, discount = ts.reward, ts.discount
        if jnp.ndim(reward) or jnp.ndim(discount):
            # Per-agent values (Connector, LevelBasedForaging, SearchAndRescue):
            # one team reward, the sum, and the episode goes on while any
            # agent's does, as Jumanji's own MultiToSingleWrapper does.
            reward, discount = jnp.sum(reward), jnp.max(discount)
            last = ts.last()
            return obs, state, reward, last & (discount == 0), last & (discount > 0)
        return (obs, state, reward, *last_flags(ts))

    def action_space(self, params: Any = None) -> Any:
        """``Discrete(n)``, a ``Box``, ``MultiDiscrete(nvec)`` or, for a
        ``MultiDiscreteArray`` with a joint mask, ``Discrete(prod(nvec))``."""
        return self._action_space


def _mask_shape(env: Any) -> tuple[int, ...] | None:
    obs = jax.eval_shape(lambda k: env.reset(k)[1].observation, jax.random.key(0))
    if hasattr(obs, "_asdict"):
        obs = obs._asdict()
    leaf = obs.get(MASK_KEY) if isinstance(obs, dict) else None
    return None if leaf is None else tuple(leaf.shape)


def _multi_discrete(
    env: Any, name: str, joint_mask: bool | None
) -> tuple[Any, _Layout | None]:
    nvec = tuple(int(n) for n in np.asarray(env.action_spec.num_values).reshape(-1))
    shape = _mask_shape(env)
    factor_shape = (len(nvec), max(nvec))
    if joint_mask is None:
        joint_mask = shape == nvec  # (an [n, n] mask of 2 factors of n: joint)
    if shape is None:
        return MultiDiscrete(nvec), None
    if joint_mask and shape == nvec:
        return spaces.Discrete(math.prod(nvec)), _Layout(nvec, True, False)
    if not joint_mask and shape == factor_shape:
        cut = len(set(nvec)) > 1
        return MultiDiscrete(nvec), _Layout(nvec, False, cut)
    raise TypeError(
        f"env={name}: its action mask has shape {shape}, with "
        f"MultiDiscreteArray actions of num_values {list(nvec)} (joint_mask="
        f"{joint_mask}); jaxpg reads a joint mask {nvec} or a per-factor mask "
        f"{factor_shape}"
    )


def _action_space(
    env: Any, name: str, joint_mask: bool | None = None
) -> tuple[Any, _Layout | None]:
    spec = env.action_spec
    kind = type(spec).__name__
    if kind == "DiscreteArray":
        return spaces.Discrete(int(spec.num_values)), None
    if kind == "MultiDiscreteArray":
        return _multi_discrete(env, name, joint_mask)
    if kind == "BoundedArray" and np.issubdtype(np.dtype(spec.dtype), np.floating):
        shape = tuple(spec.shape)
        low = np.broadcast_to(np.asarray(spec.minimum, np.float32), shape)
        high = np.broadcast_to(np.asarray(spec.maximum, np.float32), shape)
        return spaces.Box(low, high, shape, jnp.float32), None
    raise TypeError(
        f"env={name}: its action spec is a {kind}; jaxpg's policies take "
        "DiscreteArray (Discrete), MultiDiscreteArray and float BoundedArray "
        "(Box) actions"
    )


def from_jumanji(
    env: Any, *, joint_mask: bool | None = None, name: str | None = None
) -> tuple[JumanjiAdapter, Any]:
    r"""``(env, env_params)`` for a Jumanji ``Environment``.

    Args:
      env: a ``jumanji.Environment`` (unwrapped: no ``AutoResetWrapper``).
      joint_mask: for ``MultiDiscreteArray`` actions with an action mask, whether
        the mask is joint over the factors (shape ``nvec``: Minesweeper,
        Sudoku, BinPack, Tetris, FlatPack) or per factor (``[K, max(nvec)]``:
        JobShop, Connector, RobotWarehouse, ...); ``None`` reads it off the
        mask's shape (``nvec``: joint). A joint mask cannot be honoured by a
        factorised policy, so the adapter acts in ``Discrete(prod(nvec))`` with
        the flattened mask and unravels the action (C order) for the env;
        otherwise it acts in ``MultiDiscrete(nvec)``.
      name: its name, e.g. ``"jumanji/Snake-v1"``.

    ``env_params.max_steps_in_episode`` is the env's ``time_limit`` when it has
    one (Jumanji truncates there), else ``None`` (set
    ``Config.max_episode_steps``).

    Raises:
      TypeError: ``env`` is not a Jumanji env, its action spec is none of
        ``DiscreteArray``, ``MultiDiscreteArray`` and a float ``BoundedArray``,
        or a ``MultiDiscreteArray``'s mask has neither shape.
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
    space, layout = _action_space(env, label, joint_mask)
    return JumanjiAdapter(env, name, params, space, layout), params


SUITE = Suite(
    "jumanji",
    "jumanji",
    "Jumanji",
    lambda jumanji: jumanji.registered_environments(),
    lambda jumanji, env_id, name: from_jumanji(jumanji.make(env_id), name=name),
)


def make(name: str) -> tuple[JumanjiAdapter, Any]:
    """``"jumanji/<id>"``: ``jumanji.make(id)`` adapted (:func:`make_named`)."""
    return make_named(name, SUITE)
