r"""A2C and PPO-clip: one actor-critic learner, two compositions of it.

:func:`make_actor_critic` collects a streaming window
(:func:`jaxpg.rollout.collect_window`), computes truncation-aware GAE(λ)
(:func:`jaxpg.kernels.returns.generalized_advantage_estimation`) with ``V`` of the
*real* next state (``final_observation``) so that a time limit or the window's
end is bootstrapped and a termination is not, then takes
``num_epochs × num_minibatches`` optimizer steps on

.. math:: L = L_\pi + c_V L_V - c_H \mathcal H

with ``y`` the λ-returns as value targets. The policy loss :math:`L_\pi` and
the value loss :math:`L_V` are parameters (:data:`PolicyLoss`,
:data:`ValueLoss`), so a variant is a composition, not a flag:

* :func:`a2c`: one full-batch step; :math:`L_\pi` the REINFORCE surrogate with
  advantage :math:`A` (:func:`a2c_policy_loss`), plain squared value error.
* :func:`ppo`: ``cfg.num_epochs × cfg.num_minibatches`` steps over shuffles
  drawn from the key; :math:`L_\pi` the clipped surrogate on per-minibatch
  normalised advantages (:func:`ppo_policy_loss`, reports approximate KL and
  clip fraction); value clipping with ``cfg.clip_value``.

Recurrent networks (:mod:`jaxpg.recurrent`): the window keeps every env's
initial carries (the policy's and the critic's), and a minibatch is a set of
envs, each a whole ``T``-step sequence replayed from its initial carry with
the window's resets, so the first epoch's log-probabilities are those of the
rollout (ratio exactly 1). Gradients flow back through the window and stop at
its first step: truncated backpropagation through time at window boundaries
(the carry entering a window is a constant of its loss). ``num_minibatches``
must then divide ``num_envs``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxpg.algorithms.base import (
    Algorithm,
    Parts,
    TrainState,
    acting,
    apply_gradients,
    make_init,
    nan_if_empty,
    observe,
    schedule_learning_rate,
    update_statistics,
)
from jaxpg.config import Config, Hyperparams
from jaxpg.kernels.batching import permutation
from jaxpg.kernels.losses import policy_gradient_loss, ppo_clip_loss, value_loss
from jaxpg.kernels.returns import generalized_advantage_estimation
from jaxpg.recurrent import replay, reset_carry
from jaxpg.rollout import collect_window

Array = jax.Array


class Samples(NamedTuple):
    """Flat ``[N]`` training samples (``N = T * B``); ``obs`` is ``[N, *O]``
    (a pytree of such leaves for a pytree observation).

    With recurrent networks the learner holds them as ``[T, B]`` sequences
    plus ``resets`` (``[T, B]`` bool, :attr:`jaxpg.rollout.Window.resets`) and
    ``carry`` (the window's initial carries, ``{"policy": [B, ...],
    ["critic": [B, ...]]}``), and flattens them after the replay; a loss sees
    flat ``[N]`` samples either way.
    """

    obs: Any
    actions: Array
    log_probs: Array
    values: Array
    advantages: Array
    targets: Array
    resets: Array | None = None
    carry: Any = None


# ``policy_loss(log_probs [N], samples, hparams) -> (loss, diagnostics)``.
PolicyLoss = Callable[[Array, Samples, Hyperparams], tuple[Array, dict[str, Array]]]
# ``value_loss(values [N], samples, hparams) -> loss``.
ValueLoss = Callable[[Array, Samples, Hyperparams], Array]


def a2c_policy_loss(
    log_probs: Array, mb: Samples, hp: Hyperparams
) -> tuple[Array, dict[str, Array]]:
    r"""REINFORCE surrogate :math:`-\overline{\log\pi(a|s)\,A}` on raw GAE."""
    ones = jnp.ones_like(log_probs)
    return policy_gradient_loss(log_probs, mb.advantages, ones), {}


def ppo_policy_loss(
    log_probs: Array, mb: Samples, hp: Hyperparams
) -> tuple[Array, dict[str, Array]]:
    """PPO's clipped surrogate on advantages standardised over the minibatch."""
    adv = (mb.advantages - mb.advantages.mean()) / (mb.advantages.std() + 1e-8)
    ones = jnp.ones_like(log_probs)
    return ppo_clip_loss(log_probs, mb.log_probs, adv, ones, hp.clip_eps)


def squared_value_loss(values: Array, mb: Samples, hp: Hyperparams) -> Array:
    r""":math:`\tfrac12\overline{(V - y)^2}`."""
    return value_loss(values, mb.targets, jnp.ones_like(values))


def clipped_value_loss(values: Array, mb: Samples, hp: Hyperparams) -> Array:
    """PPO's value clipping around the values at collection, by ``clip_eps``."""
    ones = jnp.ones_like(values)
    return value_loss(values, mb.targets, ones, mb.values, hp.clip_eps)


def make_actor_critic(
    cfg: Config,
    parts: Parts,
    *,
    policy_loss: PolicyLoss,
    value_loss_fn: ValueLoss = squared_value_loss,
    num_epochs: int = 1,
    num_minibatches: int = 1,
) -> Algorithm:
    """An actor-critic learner as an ``(init, update, estimate)`` triple.

    Args:
      cfg: sizes (``num_envs``, ``rollout_steps``).
      parts: policy, critic (required), optimizer and envs.
      policy_loss: :data:`PolicyLoss`, e.g. :func:`a2c_policy_loss`.
      value_loss_fn: :data:`ValueLoss`.
      num_epochs, num_minibatches: optimizer steps per update are their
        product; ``num_minibatches`` must divide ``num_envs * rollout_steps``.

    Raises:
      ValueError: no critic in ``parts``, or minibatches that do not divide.
    """
    if parts.critic is None:
        raise ValueError("make_actor_critic needs parts.critic (a value network)")
    policy, critic, tx = parts.policy, parts.critic, parts.optimizer
    num_samples = cfg.num_envs * cfg.rollout_steps
    if num_samples % num_minibatches:
        raise ValueError(
            f"num_minibatches={num_minibatches} must divide num_envs * "
            f"rollout_steps = {num_samples}"
        )
    recurrent = policy.recurrent or critic.recurrent
    if recurrent and cfg.num_envs % num_minibatches:
        raise ValueError(
            f"num_minibatches={num_minibatches} must divide num_envs="
            f"{cfg.num_envs} with a recurrent network (minibatches are sets of "
            "envs, each a whole sequence)"
        )
    init = make_init(cfg, parts)

    def forward(params: Any, mb: Samples) -> tuple[Any, Array, Samples]:
        """``(distribution, values, flat samples)`` of a minibatch: flat
        samples as they are, or ``[T, b]`` sequences replayed from their
        initial carries and flattened."""
        if not recurrent:
            dist = policy.apply(params["policy"], mb.obs)
            return dist, critic.apply(params["critic"], mb.obs), mb
        carry = mb.carry
        _, dist = replay(
            policy, params["policy"], mb.obs, mb.resets, carry.get("policy")
        )
        _, values = replay(
            critic, params["critic"], mb.obs, mb.resets, carry.get("critic")
        )
        flat = lambda x: x.reshape((-1, *x.shape[2:]))  # noqa: E731
        dist, values = jax.tree.map(flat, dist), flat(values)
        fields = mb._replace(resets=None, carry=None)
        return dist, values, jax.tree.map(flat, fields)

    def loss_fn(params: Any, mb: Samples, hp: Hyperparams):
        dist, values, mb = forward(params, mb)
        log_probs = dist.log_prob(mb.actions)
        entropy = jnp.mean(dist.entropy())
        pg, diag = policy_loss(log_probs, mb, hp)
        vl = value_loss_fn(values, mb, hp)
        loss = pg + hp.vf_coef * vl - hp.ent_coef * entropy
        aux = {"loss": loss, "pg_loss": pg, "value_loss": vl, "entropy": entropy}
        return loss, {**aux, **diag}

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def collect(state: TrainState):
        hp = state.hparams
        key, key_rollout, key_shuffle = jax.random.split(state.key, 3)
        # The networks see observations through the statistics this update
        # started with (fixed until its end): the stored log-probabilities and
        # the loss's agree.
        see = observe(cfg, state)
        window, env_state, obs, episode = collect_window(
            key_rollout,
            parts.stepper,
            acting(policy, see),
            state.params["policy"],
            state.env_state,
            state.obs,
            state.episode,
            cfg.rollout_steps,
            carry=state.carry.get("policy"),
        )
        tr = window.transitions
        seen = see(tr.obs)
        values, next_values, critic_carry = critic_values(
            critic,
            state.params["critic"],
            seen,
            see(tr.final_obs),
            window.resets,
            state.carry.get("critic"),
        )
        rewards, reward_norm = tr.reward, state.reward_norm
        if cfg.scale_rewards:
            rewards, reward_norm = reward_norm.scale(
                rewards, tr.done.astype(jnp.float32), hp.gamma
            )
        advantages, targets = generalized_advantage_estimation(
            rewards,
            hp.gamma * (1.0 - tr.terminated.astype(jnp.float32)),
            values,
            next_values,
            hp.gae_lambda,
            tr.truncated.astype(jnp.float32),
        )
        flat = lambda x: x.reshape((num_samples, *x.shape[2:]))  # noqa: E731
        samples = Samples(
            obs=seen,
            actions=tr.action,
            log_probs=tr.log_prob,
            values=values,
            advantages=advantages,
            targets=targets,
        )
        if recurrent:
            samples = samples._replace(resets=window.resets, carry=state.carry)
        else:
            samples = jax.tree.map(flat, samples)
        # The carries for the next window: reset where the last step ended
        # an episode (``obs`` then starts a new one).
        last_done = tr.done[-1]
        carry = dict(state.carry)
        if policy.recurrent:
            carry["policy"] = reset_carry(
                last_done, window.final_carry, policy.initial_carry(cfg.num_envs)
            )
        if critic.recurrent:
            carry["critic"] = reset_carry(
                last_done, critic_carry, critic.initial_carry(cfg.num_envs)
            )
        env_steps = state.env_steps + num_samples
        stats = window.stats
        metrics = {
            "episode_return": nan_if_empty(stats.return_sum, stats.count),
            "episode_length": nan_if_empty(stats.length_sum, stats.count),
            "num_episodes": stats.count,
            "env_steps": env_steps,
        }
        state = state.replace(
            env_state=env_state,
            obs=obs,
            episode=episode,
            key=key,
            env_steps=env_steps,
            reward_norm=reward_norm,
            carry=carry,
        )
        state = update_statistics(cfg, state, jax.tree.map(flat, tr.obs))
        return samples, key_shuffle, metrics, state

    def estimate(state: TrainState) -> tuple[Any, dict[str, Array], TrainState]:
        samples, _, metrics, state = collect(state)
        grads, aux = grad_fn(state.params, samples, state.hparams)
        return grads, {**metrics, **aux}, state

    def update(state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        opt_state = schedule_learning_rate(cfg, parts, state)
        samples, key_shuffle, metrics, state = collect(state)
        hp = state.hparams

        def step(carry, mb):
            params, opt_state = carry
            grads, aux = grad_fn(params, mb, hp)
            params, opt_state, opt = apply_gradients(tx, params, opt_state, grads)
            return (params, opt_state), {**aux, **opt}

        def epoch(carry, key):
            batches = minibatches(key, samples, num_minibatches, recurrent)
            return jax.lax.scan(step, carry, batches)

        keys = jax.random.split(key_shuffle, num_epochs)
        (params, opt_state), aux = jax.lax.scan(epoch, (state.params, opt_state), keys)
        rejected = aux.pop("nonfinite")
        aux = jax.tree.map(jnp.mean, aux)
        # 1 if any optimizer step of this update was rejected as non-finite
        # (the same meaning as REINFORCE's), and how many were.
        aux["nonfinite"] = (jnp.sum(rejected) > 0).astype(jnp.float32)
        aux["nonfinite_steps"] = jnp.sum(rejected)
        state = state.replace(
            params=params, opt_state=opt_state, update_idx=state.update_idx + 1
        )
        # Every update holds data: its number is the update counter.
        return state, {**metrics, **aux, "update": state.update_idx}

    return Algorithm(init, update, estimate)


def critic_values(
    critic: Any, params: Any, obs: Any, final_obs: Any, resets: Array, carry: Any
) -> tuple[Array, Array, Any]:
    """``(V(s_t), V(s_{t+1}), carry)``, ``[T, B]`` each: a recurrent critic
    replayed over the window from ``carry``, ``V(s_{t+1})`` from the carry
    after step ``t`` (before any reset) on the real next observation."""
    if not critic.recurrent:
        values = critic.apply(params, obs)
        return values, critic.apply(params, final_obs), carry

    def step(c, x):
        o, final, reset = x
        c, value = critic.step(params, c, o, reset)
        no_reset = jnp.zeros_like(reset)
        _, next_value = critic.step(params, c, final, no_reset)
        return c, (value, next_value)

    carry, (values, next_values) = jax.lax.scan(step, carry, (obs, final_obs, resets))
    return values, next_values, carry


def minibatches(
    key: Array, samples: Samples, num_minibatches: int, recurrent: bool
) -> Samples:
    """One epoch's ``M = num_minibatches`` minibatches, leaves ``[M, ...]``:
    the whole batch when ``M == 1``; flat samples ``[N, ...]`` shuffled and
    split into ``[M, N / M, ...]``; with a recurrent network, ``[T, B]``
    sequences whose envs are shuffled and split into ``[M, T, B / M]`` (their
    carries ``[M, B / M, ...]``)."""
    if num_minibatches == 1:
        return jax.tree.map(lambda x: x[None], samples)
    if not recurrent:
        num_samples = jax.tree.leaves(samples)[0].shape[0]
        perm = permutation(key, num_samples)
        size = num_samples // num_minibatches
        return jax.tree.map(
            lambda x: x[perm].reshape((num_minibatches, size, *x.shape[1:])), samples
        )
    num_envs = samples.actions.shape[1]
    perm = permutation(key, num_envs)
    size = num_envs // num_minibatches

    def split(x: Array, axis: int) -> Array:
        x = jnp.take(x, perm, axis=axis)
        shape = (*x.shape[:axis], num_minibatches, size, *x.shape[axis + 1 :])
        return jnp.moveaxis(x.reshape(shape), axis, 0)

    carry = jax.tree.map(lambda x: split(x, 0), samples.carry)
    seqs = jax.tree.map(lambda x: split(x, 1), samples._replace(carry=None))
    return seqs._replace(carry=carry)


def a2c(cfg: Config, parts: Parts) -> Algorithm:
    """A2C: one full-batch step per window on the REINFORCE surrogate."""
    return make_actor_critic(cfg, parts, policy_loss=a2c_policy_loss)


def ppo(cfg: Config, parts: Parts) -> Algorithm:
    """PPO-clip with ``cfg``'s epochs, minibatches and value clipping."""
    return make_actor_critic(
        cfg,
        parts,
        policy_loss=ppo_policy_loss,
        value_loss_fn=clipped_value_loss if cfg.clip_value else squared_value_loss,
        num_epochs=cfg.num_epochs,
        num_minibatches=cfg.num_minibatches,
    )
