r"""Rollouts: vmapped environments stepped inside ``lax`` loops.

Two schemes, both on-policy and both with gradients stopped (the loss recomputes
log-probabilities from stored observations and actions):

* :func:`collect_episodes` (REINFORCE). An update starts every env at an episode
  boundary. An episode is *included* iff it starts before step
  ``start_budget``; included episodes run to their end, other envs freeze. The
  loop stops as soon as every included episode is done (``lax.while_loop``),
  so no compute is spent on a fixed 500-step horizon when episodes last 20
  steps, and every return is an exact Monte-Carlo return of a complete episode.
  The inclusion rule looks only at the past, so included episodes are ordinary
  samples of the current policy: with ``K`` included episodes per env,
  ``E[Σ_k g(τ_k)] = E[K] ∇J`` (Wald's identity). Envs end each update at an
  episode boundary, so the next update starts cleanly.
* :func:`collect_window` (A2C, PPO). Fixed windows of ``T`` steps that stream
  across updates (envs are not reset between updates); the window's end is a
  cut, bootstrapped by the critic.

Step ``t`` stores ``(s_t, a_t, r_t)`` and the flags of ``s_{t+1}``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxpg.batching import while_loop
from jaxpg.envs import EnvSpec, EnvStepper, select_envs
from jaxpg.envs import make_stepper as make_stepper  # re-exported

Array = jax.Array


class EpisodeBatch(NamedTuple):
    """Complete episodes in a ``[L, B]`` buffer (``L`` = buffer length).

    Attributes:
      obs: ``[L, B, *O]`` observations ``s_t``.
      actions: ``[L, B]`` int or ``[L, B, D]`` float (unclipped samples).
      rewards: ``[L, B]`` float, 0 on padding.
      dones: ``[L, B]`` float, 1 where ``s_{t+1}`` ends the episode (or padding).
      mask: ``[L, B]`` float, 1 for steps of included episodes.
      episode_start: ``[L, B]`` float, 1 at the first step of an included episode.
      num_steps: ``[]`` int32, loop iterations run (a bound on valid ``t``).
      episode_return_sum: ``[]`` float, undiscounted returns of included episodes.
      episode_length_sum: ``[]`` float, their lengths.
      num_episodes: ``[]`` float, how many.
    """

    obs: Array
    actions: Array
    rewards: Array
    dones: Array
    mask: Array
    episode_start: Array
    num_steps: Array
    episode_return_sum: Array
    episode_length_sum: Array
    num_episodes: Array


def action_template(spec: EnvSpec) -> tuple[tuple[int, ...], Any]:
    """Per-env action shape and dtype."""
    if spec.discrete:
        return (), jnp.int32
    return (spec.num_actions,), jnp.float32


def collect_episodes(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    spec: EnvSpec,
    env_state: Any,
    obs: Array,
    start_budget: int | Array,
    buffer_len: int,
) -> tuple[EpisodeBatch, Any, Array, Array]:
    """Run included episodes to completion (see the module docstring).

    Args:
      key: PRNG key.
      stepper: batched env of ``B`` copies, each at an episode boundary.
      policy_apply: ``(params, obs [B, *O]) -> Distribution``.
      params: policy parameters (not differentiated here).
      spec: the env's :class:`EnvSpec`.
      env_state, obs: ``[B]`` env states and ``[B, *O]`` observations.
      start_budget: episodes starting at ``t < start_budget`` are included
        (may be traced; 0 collects nothing).
      buffer_len: ``L >= start_budget - 1 + longest episode``.

    Returns:
      ``(batch, env_state, obs, key)`` with envs again at episode boundaries.
    """
    num_envs = stepper.num_envs
    act_shape, act_dtype = action_template(spec)
    zeros = lambda shape, dtype=jnp.float32: jnp.zeros(  # noqa: E731
        (buffer_len, num_envs, *shape), dtype
    )
    buffers = {
        "obs": zeros(obs.shape[1:], obs.dtype),
        "actions": zeros(act_shape, act_dtype),
        "rewards": zeros(()),
        "dones": jnp.ones((buffer_len, num_envs), jnp.float32),
        "mask": zeros(()),
        "episode_start": zeros(()),
    }
    f32 = jnp.float32
    init = (
        jnp.int32(0),
        key,
        env_state,
        obs,
        jnp.zeros((num_envs,), jnp.bool_),  # active: inside an included episode
        jnp.zeros((num_envs,), f32),  # running undiscounted return
        jnp.zeros((num_envs,), f32),  # running length
        buffers,
        jnp.zeros((3,), f32),  # return sum, length sum, episodes
    )

    def cond(carry):
        t, active = carry[0], carry[4]
        return (t < buffer_len) & ((t < start_budget) | jnp.any(active))

    def body(carry):
        t, key, state, obs, active, ep_ret, ep_len, buf, stats = carry
        key, key_act, key_env = jax.random.split(key, 3)
        starting = (~active) & (t < start_budget)
        active = active | starting
        action = policy_apply(params, obs).sample(key_act)
        next_obs, next_state, reward, term, trunc, _ = stepper.step(
            key_env, state, action
        )
        done = term | trunc
        m = active.astype(f32)
        buf = {
            "obs": buf["obs"].at[t].set(obs),
            "actions": buf["actions"].at[t].set(action),
            "rewards": buf["rewards"].at[t].set(reward * m),
            "dones": buf["dones"].at[t].set(jnp.where(active, done, True).astype(f32)),
            "mask": buf["mask"].at[t].set(m),
            "episode_start": buf["episode_start"].at[t].set(starting.astype(f32)),
        }
        ep_ret = ep_ret + reward * m
        ep_len = ep_len + m
        finished = (active & done).astype(f32)
        stats = stats + jnp.stack(
            [
                jnp.sum(ep_ret * finished),
                jnp.sum(ep_len * finished),
                jnp.sum(finished),
            ]
        )
        ep_ret = ep_ret * (1.0 - finished)
        ep_len = ep_len * (1.0 - finished)
        # Frozen envs keep their state: they stay at an episode boundary.
        state = select_envs(active, next_state, state)
        obs = jnp.where(_expand(active, next_obs), next_obs, obs)
        active = active & ~done
        return t + 1, key, state, obs, active, ep_ret, ep_len, buf, stats

    t, key, state, obs, _, _, _, buf, stats = while_loop(cond, body, init)
    batch = EpisodeBatch(
        num_steps=t,
        episode_return_sum=stats[0],
        episode_length_sum=stats[1],
        num_episodes=stats[2],
        **buf,
    )
    return batch, state, obs, key


def _expand(pred: Array, like: Array) -> Array:
    return pred.reshape(pred.shape + (1,) * (like.ndim - pred.ndim))


def evaluate_episodes(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    horizon: int,
    deterministic: bool = False,
) -> Array:
    """Undiscounted return of the first episode of each of ``B`` envs.

    Runs ``horizon`` steps (the time limit); steps after an env's first episode
    ends are ignored. Returns ``[B]`` float32.
    """
    key_reset, key = jax.random.split(key)
    obs, state = stepper.reset(key_reset)
    num_envs = stepper.num_envs

    def body(carry, key_t):
        obs, state, alive, total = carry
        key_act, key_env = jax.random.split(key_t)
        dist = policy_apply(params, obs)
        action = dist.mode() if deterministic else dist.sample(key_act)
        obs, state, reward, term, trunc, _ = stepper.step(key_env, state, action)
        total = total + reward * alive
        alive = alive * (1.0 - (term | trunc).astype(jnp.float32))
        return (obs, state, alive, total), None

    init = (obs, state, jnp.ones((num_envs,)), jnp.zeros((num_envs,)))
    (_, _, _, total), _ = jax.lax.scan(body, init, jax.random.split(key, horizon))
    return total


class Window(NamedTuple):
    r"""A fixed window of ``T`` steps from ``B`` streaming envs.

    Attributes:
      obs: ``[T, B, *O]`` observations ``s_t``.
      actions: ``[T, B]`` int or ``[T, B, D]`` float (unclipped samples).
      log_probs: ``[T, B]`` :math:`\log\pi_{old}(a_t|s_t)` at collection.
      rewards: ``[T, B]`` float.
      terminated: ``[T, B]`` float, ``s_{t+1}`` is terminal.
      truncated: ``[T, B]`` float, the episode was cut after step ``t``.
      final_obs: ``[T, B, *O]`` the real ``s_{t+1}`` (before any reset).
      episode_return_sum, num_episodes, episode_length_sum: ``[]`` float, over
        the episodes that ended inside the window.
    """

    obs: Array
    actions: Array
    log_probs: Array
    rewards: Array
    terminated: Array
    truncated: Array
    final_obs: Array
    episode_return_sum: Array
    num_episodes: Array
    episode_length_sum: Array


def collect_window(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    env_state: Any,
    obs: Array,
    episode: Array,
    length: int,
) -> tuple[Window, Any, Array, Array]:
    """Step ``B`` envs for ``length`` steps (a ``lax.scan``), streaming.

    Args:
      episode: ``[2, B]`` running return and length of the current episodes.

    Returns:
      ``(window, env_state, obs, episode)`` to carry into the next update.
    """

    def body(carry, key_t):
        state, obs, episode = carry
        key_act, key_env = jax.random.split(key_t)
        dist = policy_apply(params, obs)
        action = dist.sample(key_act)
        log_prob = dist.log_prob(action)
        next_obs, state, reward, term, trunc, final_obs = stepper.step(
            key_env, state, action
        )
        done = (term | trunc).astype(jnp.float32)
        ret, lng = episode[0] + reward, episode[1] + 1.0
        ended = jnp.stack([jnp.sum(ret * done), jnp.sum(done), jnp.sum(lng * done)])
        episode = jnp.stack([ret * (1.0 - done), lng * (1.0 - done)])
        out = (
            obs,
            action,
            log_prob,
            reward,
            term.astype(jnp.float32),
            trunc.astype(jnp.float32),
            final_obs,
            ended,
        )
        return (state, next_obs, episode), out

    keys = jax.random.split(key, length)
    (env_state, obs, episode), out = jax.lax.scan(body, (env_state, obs, episode), keys)
    *arrays, ended = out
    totals = ended.sum(0)
    window = Window(*arrays, totals[0], totals[1], totals[2])
    return window, env_state, obs, episode
