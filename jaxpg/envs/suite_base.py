r"""What the suite adapters share: the lazy import, spaces read off shapes, the
auto-reset that keeps ``s_{t+1}``, and the base class of an adapted env.

Every adapter owns its auto-reset: the suite's own step gives ``s_{t+1}`` with
its flags, the adapter resets every env whose episode ended (a fresh reset key
per step, as gymnax does) and returns the real ``s_{t+1}`` as
``info["final_observation"]``. Observations keep the suite's structure; where
the suite has an action mask, the observation is a dict with a boolean
``[A]`` leaf named ``"action_mask"`` beside the rest.

The suites' own code runs with ``jax_numpy_rank_promotion="allow"`` whatever
the caller's setting: several (navix, MJX) broadcast arrays of different
ranks, which a strict caller (``"raise"``) would otherwise turn into errors.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable, Iterable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from jaxpg.envs.lanes import reset_where, select_envs

Array = jax.Array

MASK_KEY = "action_mask"


def import_suite(module: str, extra: str, what: str) -> Any:
    """Import ``module``; an ``ImportError`` naming the extra to install if missing.

    Args:
      module: the module to import (``"brax.envs"``).
      extra: jaxpg's extra that installs it (``"brax"``).
      what: what needs it, for the message (``"env='brax/ant'"``).
    """
    try:
        return importlib.import_module(module)
    except ImportError as err:
        raise ImportError(
            f"{what} needs the {module.split('.')[0]} package: "
            f"pip install 'jaxpg[{extra}]'"
        ) from err


class Suite(NamedTuple):
    """How ``"SUITE/<id>"`` names are built (see :func:`make_named`)."""

    module: str  # imported to build an env ("brax.envs")
    extra: str  # jaxpg's extra that installs it ("brax")
    title: str  # the suite's name in messages ("brax")
    known: Callable[[Any], Iterable[str]]  # module -> the suite's ids
    build: Callable[[Any, str, str], tuple[Any, Any]]  # (module, id, name) -> env


def make_named(name: str, suite: Suite) -> tuple[Any, Any]:
    """``(env, env_params)`` for ``name = "SUITE/<id>"``: import the suite, check
    the id against its registry, build.

    Raises:
      ValueError: an unknown id (the message lists the suite's names).
      ImportError: the suite's package is missing (names the extra).
    """
    module = import_suite(suite.module, suite.extra, f"env={name!r}")
    prefix, _, env_id = name.partition("/")
    known = sorted(suite.known(module))
    if env_id not in known:
        raise ValueError(
            f"env={name!r} is not a {suite.title} env; known: "
            + ", ".join(f"{prefix}/{k}" for k in known)
        )
    return suite.build(module, env_id, name)


def space_of(tree: Any) -> spaces.Space:
    """A gymnax space for a pytree of arrays (or shape-dtype structs): a
    ``Box`` per leaf (``[0, 1]`` for booleans, the dtype's range for integers,
    unbounded for floats), a ``Dict`` for a dict."""
    if isinstance(tree, dict):
        return spaces.Dict({k: space_of(v) for k, v in tree.items()})
    dtype = np.dtype(tree.dtype)
    shape = tuple(tree.shape)
    if dtype == np.bool_:
        return spaces.Box(0, 1, shape, jnp.bool_)
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return spaces.Box(int(info.min), int(info.max), shape, dtype)
    return spaces.Box(-jnp.inf, jnp.inf, shape, dtype)


def with_mask(obs: Any, mask: Array) -> dict[str, Any]:
    """The observation as a dict with the boolean ``[A]`` mask as
    ``"action_mask"`` (a dict or NamedTuple keeps its fields as keys; anything
    else becomes ``"observation"``)."""
    if hasattr(obs, "_asdict"):
        obs = obs._asdict()
    if not isinstance(obs, dict):
        obs = {"observation": obs}
    return {**obs, MASK_KEY: jnp.asarray(mask, jnp.bool_)}


def last_flags(timestep: Any) -> tuple[Array, Array]:
    """``(terminated, truncated)`` of a dm_env-style ``TimeStep`` (Jumanji,
    xland-minigrid): an episode's last step (``last()``) with discount 0 is a
    termination, with discount > 0 a truncation (the suite's time limit)."""
    last = timestep.last()
    discount = jnp.asarray(timestep.discount)
    return last & (discount == 0), last & (discount > 0)


class SuiteParams(struct.PyTreeNode):
    """Env params of an adapted suite env: the time limit the suite applies
    (``None``: none; then set ``Config.max_episode_steps``)."""

    max_steps_in_episode: int | None = struct.field(pytree_node=False, default=None)


class SuiteEnv:
    """Base of the suite adapters: gymnax ≥ 1.0's API over a suite's env.

    Subclasses implement ``_reset(key, params) -> (obs, state)``,
    ``_step(key, state, action, params) -> (obs, state, reward, terminated,
    truncated)`` (``s_{t+1}`` before any reset) and ``action_space(params)``;
    :meth:`step` does the auto-reset. A subclass whose reset is costly (a
    physics forward pass) sets ``costly_reset``: the reset then runs only for
    the envs that ended, under any ``vmap`` (:func:`jaxpg.envs.lanes.reset_where`),
    instead of for every env on every step.
    """

    costly_reset: bool = False

    def __init__(self, env: Any, name: str | None, params: Any):
        self._env = env
        self.name = name
        self._params = params

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.name or type(self._env).__name__})"

    @property
    def unwrapped(self) -> Any:
        """The suite's env."""
        return self._env

    @property
    def default_params(self) -> Any:
        """The params the adapter was built with."""
        return self._params

    def reset(self, key: Array, params: Any = None) -> tuple[Any, Any]:
        """``(obs, state)`` of a fresh episode."""
        params = self._params if params is None else params
        with jax.numpy_rank_promotion("allow"):
            return self._reset(key, params)

    def _reset(self, key, params):
        raise NotImplementedError

    def _step(self, key, state, action, params):
        raise NotImplementedError

    def step(self, key: Array, state: Any, action: Any, params: Any = None):
        r"""One step: ``(obs, state, reward, terminated, truncated, info)``,
        reset where the episode ended, ``info["final_observation"]`` the real
        ``s_{t+1}``."""
        params = self._params if params is None else params
        key_step, key_reset = jax.random.split(key)
        with jax.numpy_rank_promotion("allow"):
            obs, nxt, reward, term, trunc = self._step(key_step, state, action, params)
        term = jnp.asarray(term, jnp.bool_)
        trunc = jnp.asarray(trunc, jnp.bool_) & ~term
        over = term | trunc
        info = {"final_observation": obs}
        obs, nxt = self._auto_reset(over, key_reset, (obs, nxt), params)
        return obs, nxt, jnp.asarray(reward, jnp.float32), term, trunc, info

    def _auto_reset(
        self, over: Array, key: Array, carry: tuple[Any, Any], params: Any
    ) -> tuple[Any, Any]:
        """``(obs, state)``: ``self.reset(key)`` where ``over``, else ``carry``
        (only the ended envs' resets computed when ``costly_reset``)."""
        if self.costly_reset:
            limit = getattr(params, "max_steps_in_episode", None) or 64
            return reset_where(
                over,
                key,
                carry,
                lambda k: self.reset(k, params),
                rate=min(1.0, 2.0 / limit),
            )
        return select_envs(over, self.reset(key, params), carry)

    def observation_space(self, params: Any = None) -> spaces.Space:
        """A ``Box`` per observation leaf (a ``Dict`` for a dict observation)."""
        params = self._params if params is None else params
        obs, _ = jax.eval_shape(self.reset, jax.random.key(0), params)
        return space_of(obs)
