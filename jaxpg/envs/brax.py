r"""brax and MuJoCo Playground envs with the episode limit and auto-reset done here.

An unwrapped brax ``Env`` (or a Playground ``MjxEnv``, which has the same
``reset(rng) -> State`` / ``step(state, action) -> State``) has no time limit
and no auto-reset. brax's own ``AutoResetWrapper`` replaces the observation
of a finished episode with a cached first one, so ``s_{t+1}`` is lost; this
adapter keeps it:

* ``terminated``: the env's ``done`` (a fall, a goal);
* ``truncated``: ``episode_length`` env steps reached without ``done``
  (``⌈episode_length / action_repeat⌉`` agent steps, brax's own count);
* ``info["final_observation"]``: the state's ``obs`` after the step, before
  the adapter's reset (a fresh ``env.reset`` with its own key).

A brax / MJX reset runs the physics' forward pass, as costly as a step, so
the adapter resets only the envs whose episode ended, also under ``vmap``
(``costly_reset``, :func:`jaxpg.envs.lanes.reset_where`): a step where ``n``
of ``B`` envs end computes a few more than ``n`` resets, not ``B``.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import spaces

from jaxpg.envs.lanes import select_envs
from jaxpg.envs.suite_base import Suite, SuiteEnv, make_named

Array = jax.Array


class BraxParams(struct.PyTreeNode):
    """Episode limit and action repeat (static)."""

    episode_length: int = struct.field(pytree_node=False, default=1000)
    action_repeat: int = struct.field(pytree_node=False, default=1)

    @property
    def max_steps_in_episode(self) -> int:
        """Agent steps per episode: ``⌈episode_length / action_repeat⌉``."""
        return -(-self.episode_length // self.action_repeat)


@struct.dataclass
class BraxEnvState:
    inner: Any  # the suite's State (obs, reward, done, ...)
    elapsed: Array  # int32, agent steps in this episode


class BraxAdapter(SuiteEnv):
    r"""A brax / Playground env in gymnax ≥ 1.0's API (see the module docs).

    Actions are a ``Box(low, high, [action_size])``; the default ``[-1, 1]`` is
    brax's and Playground's convention (their trainers squash with ``tanh``).
    """

    costly_reset = True

    def __init__(self, env, name, params, low, high):
        super().__init__(env, name, params)
        self._low, self._high = low, high

    def _reset(self, key, params):
        inner = self._env.reset(key)
        return inner.obs, BraxEnvState(inner, jnp.int32(0))

    def _step(self, key, state, action, params):
        def once(carry, _):
            inner, total, done = carry
            nxt = select_envs(done, inner, self._env.step(inner, action))
            total = total + jnp.where(done, 0.0, jnp.asarray(nxt.reward, jnp.float32))
            return (nxt, total, done | (nxt.done > 0.5)), None

        carry = (state.inner, jnp.float32(0.0), jnp.bool_(False))
        if params.action_repeat == 1:
            (inner, reward, term), _ = once(carry, None)
        else:
            (inner, reward, term), _ = jax.lax.scan(
                once, carry, None, length=params.action_repeat
            )
        elapsed = state.elapsed + 1
        trunc = elapsed >= params.max_steps_in_episode
        return inner.obs, BraxEnvState(inner, elapsed), reward, term, trunc

    def action_space(self, params: Any = None) -> spaces.Box:
        """``Box(low, high, [action_size])``."""
        return spaces.Box(self._low, self._high, self._low.shape, jnp.float32)


def from_brax(
    env: Any,
    episode_length: int = 1000,
    action_repeat: int = 1,
    *,
    action_bounds: tuple[Any, Any] = (-1.0, 1.0),
    name: str | None = None,
) -> tuple[BraxAdapter, BraxParams]:
    r"""``(env, env_params)`` for an unwrapped brax ``Env`` or Playground env.

    Args:
      env: has ``reset(rng) -> State``, ``step(State, action [D]) -> State`` and
        ``action_size``; not wrapped in brax's training wrappers (the adapter
        does the episode limit and the auto-reset itself).
      episode_length: env steps per episode before truncation.
      action_repeat: env steps per agent step (rewards summed; a ``done`` stops
        the repeats).
      action_bounds: ``(low, high)``, scalars or ``[D]``.
      name: the env's name, e.g. ``"brax/ant"`` (``Config.env`` when built by name).

    Raises:
      ValueError: ``episode_length`` or ``action_repeat`` not a positive int,
        or ``env`` already wrapped for training.
      TypeError: ``env`` lacks ``reset``/``step``/``action_size``.
    """
    for arg, value in (
        ("episode_length", episode_length),
        ("action_repeat", action_repeat),
    ):
        if (
            isinstance(value, bool)
            or not isinstance(value, int | np.integer)
            or value < 1
        ):
            raise ValueError(f"{arg}={value!r} is invalid: a positive int")
    missing = [m for m in ("reset", "step", "action_size") if not hasattr(env, m)]
    if missing:
        raise TypeError(
            f"env={type(env).__name__} has no {', '.join(missing)}: from_brax takes "
            "a brax.envs.Env or a MuJoCo Playground env"
        )
    inner = getattr(env, "env", None)
    if inner is not None and type(env).__name__ in (
        "AutoResetWrapper",
        "EpisodeWrapper",
        "VmapWrapper",
        "BraxAutoResetWrapper",
    ):
        raise ValueError(
            f"env={type(env).__name__} is wrapped for training; pass the unwrapped "
            "env (env.unwrapped): the adapter does the episode limit and auto-reset"
        )
    dim = int(env.action_size)
    low = np.broadcast_to(np.asarray(action_bounds[0], np.float32), (dim,)).copy()
    high = np.broadcast_to(np.asarray(action_bounds[1], np.float32), (dim,)).copy()
    if not np.all(low < high):
        raise ValueError(f"action_bounds={action_bounds!r} is invalid: low < high")
    params = BraxParams(int(episode_length), int(action_repeat))
    return BraxAdapter(env, name, params, low, high), params


def _playground(
    playground: Any, env_id: str, name: str
) -> tuple[BraxAdapter, BraxParams]:
    registry = playground.registry
    config = registry.get_default_config(env_id)
    # MJX's JAX implementation: Playground's default "warp" one leaks a tracer
    # under jaxpg's rollout (scan over a vmapped step with its auto-reset).
    env = registry.load(env_id, config_overrides={"impl": "jax"})
    return from_brax(
        env,
        episode_length=int(config.episode_length),
        action_repeat=int(config.get("action_repeat", 1)),
        name=name,
    )


SUITES = {
    "brax": Suite(
        "brax.envs",
        "brax",
        "brax",
        lambda envs: envs._envs,
        lambda envs, env_id, name: from_brax(envs.get_environment(env_id), name=name),
    ),
    "playground": Suite(
        "mujoco_playground",  # its registry is an attribute, not a module
        "playground",
        "MuJoCo Playground",
        lambda playground: playground.registry.ALL_ENVS,
        _playground,
    ),
}


def make(name: str) -> tuple[BraxAdapter, BraxParams]:
    """``"brax/<env>"`` (``brax.envs.get_environment``) or
    ``"playground/<Env>"`` (``mujoco_playground.registry.load``, with the env
    config's ``episode_length`` and ``action_repeat``, and ``impl="jax"``);
    see :func:`make_named`."""
    return make_named(name, SUITES[name.partition("/")[0]])
