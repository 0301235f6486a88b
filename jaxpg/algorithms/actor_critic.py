r"""A2C and PPO-clip: one implementation, the differences where they must be.

Both collect a streaming window (:func:`jaxpg.rollout.collect_window`),
compute truncation-aware GAE(λ) (:func:`jaxpg.returns.
generalized_advantage_estimation`) with ``V`` of the *real* next state
(``final_observation``) so that a time limit or the window's end is
bootstrapped and a termination is not, then descend

.. math:: L = L_\pi + c_V \tfrac12 (V - y)^2 - c_H \mathcal H

with ``y`` the λ-returns. What differs:

* ``a2c``: one full-batch step; :math:`L_\pi` is the REINFORCE surrogate
  with advantage :math:`A` (:func:`jaxpg.losses.policy_gradient_loss`).
* ``ppo``: ``num_epochs × num_minibatches`` steps over shuffles drawn from the
  key; advantages normalised per minibatch; :math:`L_\pi` is the clipped
  surrogate (:func:`jaxpg.losses.ppo_clip_loss`); optional value clipping;
  approximate KL and clip fraction reported.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxpg.algorithms.base import (
    Algorithm,
    TrainState,
    apply_gradients,
    make_init,
    make_optimizer,
    nan_if_empty,
    policy_for,
)
from jaxpg.batching import permutation
from jaxpg.config import Config, Hyperparams
from jaxpg.envs import EnvSpec
from jaxpg.losses import policy_gradient_loss, ppo_clip_loss, value_loss
from jaxpg.networks import make_critic
from jaxpg.returns import generalized_advantage_estimation
from jaxpg.rollout import EnvStepper, collect_window

Array = jax.Array


class Samples(NamedTuple):
    """Flat ``[N]`` training samples (``N = T * B``)."""

    obs: Array
    actions: Array
    log_probs: Array
    values: Array
    advantages: Array
    targets: Array


def make_actor_critic(cfg: Config, spec: EnvSpec, stepper: EnvStepper) -> Algorithm:
    """A2C or PPO (``cfg.algo``) as an ``(init, update)`` pair for one seed."""
    policy = policy_for(cfg, spec)
    critic = make_critic(spec, cfg.hidden, cfg.activation)
    tx = make_optimizer(cfg)
    is_ppo = cfg.algo == "ppo"
    num_epochs = cfg.num_epochs if is_ppo else 1
    num_minibatches = cfg.num_minibatches if is_ppo else 1
    num_samples = cfg.num_envs * cfg.rollout_steps
    minibatch = num_samples // num_minibatches

    init = make_init(cfg, policy, critic, tx, stepper)

    def loss_fn(params: Any, mb: Samples, hp: Hyperparams):
        dist = policy.apply(params["policy"], mb.obs)
        log_probs = dist.log_prob(mb.actions)
        entropy = jnp.mean(dist.entropy())
        values = critic.apply(params["critic"], mb.obs)
        ones = jnp.ones_like(log_probs)
        if is_ppo:
            adv = (mb.advantages - mb.advantages.mean()) / (mb.advantages.std() + 1e-8)
            pg, diag = ppo_clip_loss(log_probs, mb.log_probs, adv, ones, hp.clip_eps)
            clip = hp.clip_eps if cfg.clip_value else None
            vl = value_loss(values, mb.targets, ones, mb.values, clip)
        else:
            pg, diag = policy_gradient_loss(log_probs, mb.advantages, ones), {}
            vl = value_loss(values, mb.targets, ones)
        loss = pg + hp.vf_coef * vl - hp.ent_coef * entropy
        aux = {"loss": loss, "pg_loss": pg, "value_loss": vl, "entropy": entropy}
        return loss, {**aux, **diag}

    grad_fn = jax.grad(loss_fn, has_aux=True)

    def collect(state: TrainState):
        hp = state.hparams
        key, key_rollout, key_shuffle = jax.random.split(state.key, 3)
        window, env_state, obs, episode = collect_window(
            key_rollout,
            stepper,
            policy.apply,
            state.params["policy"],
            state.env_state,
            state.obs,
            state.episode,
            cfg.rollout_steps,
        )
        values = critic.apply(state.params["critic"], window.obs)
        next_values = critic.apply(state.params["critic"], window.final_obs)
        advantages, targets = generalized_advantage_estimation(
            window.rewards,
            hp.gamma * (1.0 - window.terminated),
            values,
            next_values,
            hp.gae_lambda,
            window.truncated,
        )
        flat = lambda x: x.reshape((num_samples, *x.shape[2:]))  # noqa: E731
        samples = Samples(
            *map(
                flat,
                (
                    window.obs,
                    window.actions,
                    window.log_probs,
                    values,
                    advantages,
                    targets,
                ),
            )
        )
        env_steps = state.env_steps + num_samples
        metrics = {
            "episode_return": nan_if_empty(
                window.episode_return_sum, window.num_episodes
            ),
            "episode_length": nan_if_empty(
                window.episode_length_sum, window.num_episodes
            ),
            "num_episodes": window.num_episodes,
            "env_steps": env_steps,
        }
        state = state.replace(
            env_state=env_state, obs=obs, episode=episode, key=key, env_steps=env_steps
        )
        return samples, key_shuffle, metrics, state

    def estimate(state: TrainState) -> tuple[Any, dict[str, Array], TrainState]:
        samples, _, metrics, state = collect(state)
        grads, aux = grad_fn(state.params, samples, state.hparams)
        return grads, {**metrics, **aux}, state

    def update(state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        samples, key_shuffle, metrics, state = collect(state)
        hp = state.hparams

        def step(carry, mb):
            params, opt_state = carry
            grads, aux = grad_fn(params, mb, hp)
            params, opt_state, opt = apply_gradients(
                tx, params, opt_state, grads, hp.lr
            )
            return (params, opt_state), {**aux, **opt}

        def epoch(carry, key):
            perm = permutation(key, num_samples)
            batches = jax.tree.map(
                lambda x: x[perm].reshape((num_minibatches, minibatch, *x.shape[1:])),
                samples,
            )
            return jax.lax.scan(step, carry, batches)

        keys = jax.random.split(key_shuffle, num_epochs)
        (params, opt_state), aux = jax.lax.scan(
            epoch, (state.params, state.opt_state), keys
        )
        aux = jax.tree.map(jnp.mean, aux)
        aux["nonfinite"] = aux["nonfinite"] * num_epochs * num_minibatches
        state = state.replace(
            params=params, opt_state=opt_state, update_idx=state.update_idx + 1
        )
        return state, {**metrics, **aux}

    return Algorithm(init, update, estimate)
