r"""REINFORCE with a choice of baseline, on complete episodes.

Per update: collect complete episodes (:func:`jaxpg.rollout.collect_episodes`),
compute Monte-Carlo returns :math:`G_t = r_t + γ (1 - \text{done}_t) G_{t+1}`,
turn them into advantages with the configured baseline, and take one Adam step
on

.. math:: L(\theta) = -\frac{1}{B\,T_s} \sum_{t,b} m_{t,b}
   \log\pi_\theta(a_{t,b}|s_{t,b})\,A_{t,b}
   \; - \; c_H \bar{\mathcal H} \; + \; c_V \tfrac12 \overline{(V - G)^2}

where ``T_s = rollout_steps`` (a constant normaliser, so with an unbiased
baseline the gradient estimate is exactly proportional to ``∇J``; with one
episode per env it *is* ``∇J``), :math:`\bar{\mathcal H}` is the mean entropy
per valid step and the value term appears with ``baseline="value"`` (a critic
fitted to the returns; :math:`A = G - \mathrm{sg}(V(s))`, unbiased since
:math:`V` does not depend on the action).

An episode ended by the environment's time limit is a complete episode of the
time-limited task: its return is the sum of its rewards up to the limit.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp

from jaxpg.advantages import compute_advantages
from jaxpg.algorithms.base import (
    Algorithm,
    TrainState,
    apply_gradients,
    chunked_grad,
    make_init,
    make_optimizer,
    nan_if_empty,
    pack_rows,
    policy_for,
)
from jaxpg.config import Config
from jaxpg.envs import EnvSpec
from jaxpg.losses import masked_mean
from jaxpg.networks import make_critic
from jaxpg.returns import discounted_returns_prefix
from jaxpg.rollout import EnvStepper, collect_episodes

Array = jax.Array


def buffer_length(cfg: Config, spec: EnvSpec) -> int:
    """Steps an update may run: ``rollout_steps - 1`` + the longest episode."""
    limit = cfg.max_episode_steps or spec.max_episode_steps
    return cfg.rollout_steps - 1 + int(limit)


def make_reinforce(cfg: Config, spec: EnvSpec, stepper: EnvStepper) -> Algorithm:
    """REINFORCE as an ``(init, update)`` pair for one seed."""
    policy = policy_for(cfg, spec)
    use_critic = cfg.baseline == "value"
    critic = make_critic(spec, cfg.hidden, cfg.activation) if use_critic else None
    tx = make_optimizer(cfg)
    buffer_len = buffer_length(cfg, spec)
    chunk = cfg.num_envs * cfg.rollout_steps
    pg_norm = float(cfg.num_envs * cfg.rollout_steps)

    init = make_init(cfg, policy, critic, tx, stepper)

    def chunk_loss(params: Any, rows: dict, row_mask: Array, num_valid: Array):
        dist = policy.apply(params["policy"], rows["obs"])
        log_prob = dist.log_prob(rows["actions"])
        entropy = jnp.sum(dist.entropy() * row_mask)
        weights = rows["weights"]
        value_loss = jnp.float32(0.0)
        if use_critic:
            values = critic.apply(params["critic"], rows["obs"])
            value_loss = 0.5 * jnp.sum(jnp.square(values - weights) * row_mask)
            weights = weights - jax.lax.stop_gradient(values)
        pg = -jnp.sum(log_prob * jax.lax.stop_gradient(weights) * row_mask) / pg_norm
        hp = rows["hparams"]
        loss = (
            pg - hp.ent_coef * entropy / num_valid + hp.vf_coef * value_loss / num_valid
        )
        aux = {"loss": loss, "pg_loss": pg, "entropy": entropy}
        return loss, {**aux, "value_loss": value_loss}

    def estimate(state: TrainState) -> tuple[Any, dict[str, Array], TrainState]:
        hp = state.hparams
        key, key_rollout = jax.random.split(state.key)
        # Once the step budget is spent, updates collect nothing and change
        # nothing: the number of updates is static, the budget a minimum (the
        # last update finishes the episodes it started).
        in_budget = state.env_steps < cfg.total_steps
        batch, env_state, obs, _ = collect_episodes(
            key_rollout,
            stepper,
            policy.apply,
            state.params["policy"],
            spec,
            state.env_state,
            state.obs,
            jnp.where(in_budget, cfg.rollout_steps, 0),
            buffer_len,
        )
        mask = batch.mask
        returns = discounted_returns_prefix(
            batch.rewards, hp.gamma * (1.0 - batch.dones), batch.num_steps
        )
        if use_critic:
            weights = returns * mask
        else:
            weights = compute_advantages(
                cfg.baseline, returns, mask, batch.episode_start
            )
        packed, count = pack_rows(
            mask, chunk, obs=batch.obs, actions=batch.actions, weights=weights
        )
        num_valid = jnp.maximum(count, 1).astype(jnp.float32)

        def loss_fn(params, rows, row_mask):
            return chunk_loss(params, {**rows, "hparams": hp}, row_mask, num_valid)

        grads, aux = chunked_grad(loss_fn, state.params, packed, count, chunk)
        env_steps = state.env_steps + count
        steps_with_data = jnp.any(mask > 0, axis=1)
        own_steps = jnp.max(
            jnp.where(steps_with_data, jnp.arange(1, mask.shape[0] + 1), 0)
        ).astype(jnp.float32)
        metrics = {
            "episode_return": nan_if_empty(
                batch.episode_return_sum, batch.num_episodes
            ),
            "episode_length": nan_if_empty(
                batch.episode_length_sum, batch.num_episodes
            ),
            "num_episodes": batch.num_episodes,
            "env_steps": env_steps,
            "loss": aux["loss"],  # chunk losses are sums: they add up
            "pg_loss": aux["pg_loss"],
            "entropy": aux["entropy"] / num_valid,
            "mean_return": masked_mean(returns, mask),
            "collected": count.astype(jnp.float32),
            # Fraction of the env slots stepped in this update that fed the
            # gradient (the rest idled while the longest episode finished).
            # (This seed's own loop length: under a named vmap the loop runs
            # until every seed is done, which must not change the metric.)
            "utilisation": count / jnp.maximum(own_steps * cfg.num_envs, 1),
        }
        if use_critic:
            metrics["value_loss"] = aux["value_loss"] / num_valid
        new_state = state.replace(
            env_state=env_state, obs=obs, key=key, env_steps=env_steps
        )
        return grads, metrics, new_state

    def update(state: TrainState) -> tuple[TrainState, dict[str, Array]]:
        grads, metrics, state = estimate(state)
        params, opt_state, opt_metrics = apply_gradients(
            tx,
            state.params,
            state.opt_state,
            grads,
            state.hparams.lr,
            skip=metrics.pop("collected") == 0,
        )
        state = state.replace(
            params=params, opt_state=opt_state, update_idx=state.update_idx + 1
        )
        return state, {**metrics, **opt_metrics}

    return Algorithm(init, update, estimate)
