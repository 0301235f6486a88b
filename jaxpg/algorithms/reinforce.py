r"""REINFORCE with a choice of baseline, on complete episodes.

Per update: collect complete episodes (:func:`jaxpg.rollout.collect_episodes`),
compute Monte-Carlo returns :math:`G_t = r_t + γ (1 - \text{done}_t) G_{t+1}`,
turn them into advantages with a baseline (an advantage kernel of
:mod:`jaxpg.kernels.advantages`, or a learned critic), and take one optimizer step on

.. math:: L(\theta) = -\frac{1}{B\,T_s} \sum_{t,b} m_{t,b}
   \log\pi_\theta(a_{t,b}|s_{t,b})\,A_{t,b}
   \; - \; c_H \bar{\mathcal H} \; + \; c_V \tfrac12 \overline{(V - G)^2}

where ``T_s = rollout_steps`` (a constant normaliser, so with an unbiased
baseline the gradient estimate is exactly proportional to ``∇J``; with one
episode per env it *is* ``∇J``), :math:`\bar{\mathcal H}` is the mean entropy
per valid step and the value term appears with ``baseline="value"`` (a critic
fitted to the returns; :math:`A = G - \mathrm{sg}(V(s))`, unbiased since
:math:`V` does not depend on the action).

Recurrent networks (:mod:`jaxpg.recurrent`): every update starts at an
episode boundary, so the learner replays each env's buffer from the initial
carry, reset at every episode start (``episode_start``): the log-probabilities
it differentiates are those the policy acted with, and whole episodes are
backpropagated through (nothing is truncated). It runs on the whole ``[L, B]``
buffer instead of packed rows, padding included.

An episode ended by the environment's time limit is a complete episode of the
time-limited task: its return is the sum of its rewards up to the limit.

The loss is assembled from the loss kernels of :mod:`jaxpg.kernels.losses`
(:func:`~jaxpg.kernels.losses.policy_gradient_loss`,
:func:`~jaxpg.kernels.losses.entropy_loss`,
:func:`~jaxpg.kernels.losses.value_loss`) with explicit normalisers, evaluated in
chunks of packed valid rows whose losses add up to the whole batch's.

The step budget ends the run. An update collects at least ``num_envs *
rollout_steps`` steps (more while episodes are long), so the run spends its
``total_steps`` after ``K <= cfg.num_updates`` updates, ``K`` random; a compiled
run has ``cfg.num_updates`` update slots (a static bound). An update that
starts with the budget spent collects nothing and changes no parameter; it
reports the metrics of the run's last update that held data, carried in
:attr:`ReinforceState.last_metrics`, so ``metrics[name][-1]`` is always the
final update's. ``update`` (its number, ``1..K``) and ``env_steps`` stop
rising there: the slots with ``np.diff(update, prepend=0) > 0`` are the ``K``
updates that ran.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.struct
import jax
import jax.numpy as jnp

from jaxpg.algorithms.base import (
    Algorithm,
    Parts,
    TrainState,
    acting,
    apply_gradients,
    chunked_grad,
    make_init,
    nan_if_empty,
    observe,
    pack_rows,
    schedule_learning_rate,
    update_statistics,
)
from jaxpg.config import Config
from jaxpg.envs import EnvSpec
from jaxpg.kernels.advantages import BASELINE_FNS, BaselineFn
from jaxpg.kernels.losses import (
    entropy_loss,
    masked_mean,
    policy_gradient_loss,
    value_loss,
)
from jaxpg.kernels.returns import discounted_returns_prefix
from jaxpg.recurrent import replay
from jaxpg.rollout import EpisodeBatch, collect_episodes, default_loop_chunk

Array = jax.Array


@flax.struct.dataclass
class ReinforceState(TrainState):
    """REINFORCE's train state: a :class:`~jaxpg.algorithms.base.TrainState`
    plus what it reports once its step budget is spent.

    Attributes:
      last_metrics: ``{name: []}`` the metrics of the most recent update that
        held data (every metric ``update`` returns but ``env_steps``; NaN, and
        0 for ``update``, before the first).
    """

    last_metrics: dict[str, Array]


def _no_metrics_yet(with_critic: bool) -> dict[str, Array]:
    """:attr:`ReinforceState.last_metrics` before any update."""
    names = [
        "episode_return",
        "episode_length",
        "num_episodes",
        "loss",
        "pg_loss",
        "entropy",
        "mean_return",
        "utilisation",
        *(["value_loss"] if with_critic else []),
        "grad_norm",
        "nonfinite",
    ]
    nothing = {name: jnp.full((), jnp.nan, jnp.float32) for name in names}
    return {**nothing, "update": jnp.int32(0)}


def buffer_length(cfg: Config, spec: EnvSpec) -> int:
    """Steps an update may run: ``rollout_steps - 1`` + the longest episode."""
    limit = cfg.max_episode_steps or spec.max_episode_steps
    return cfg.rollout_steps - 1 + int(limit)


def rollout(
    cfg: Config, parts: Parts, state: TrainState
) -> tuple[EpisodeBatch, Any, Array]:
    """An update's collection: the complete episodes that start in its first
    ``rollout_steps`` steps (none once the step budget is spent), acted on by
    the policy of ``state`` with the update's rollout key.

    What :func:`make_reinforce`'s update does before its learner (the second
    forward pass, the backward pass and the optimizer step); the throughput
    benchmark times it apart.

    Returns:
      ``(batch, env_state, obs)`` of :func:`jaxpg.rollout.collect_episodes`.
    """
    _, key_rollout = jax.random.split(state.key)
    # Once the step budget is spent, updates collect nothing and change
    # nothing: the number of updates is static, the budget a minimum (the
    # last update finishes the episodes it started).
    in_budget = state.env_steps < cfg.total_steps
    return collect_episodes(
        key_rollout,
        parts.stepper,
        acting(parts.policy, observe(cfg, state)),
        state.params["policy"],
        parts.spec,
        state.env_state,
        state.obs,
        jnp.where(in_budget, cfg.rollout_steps, 0),
        buffer_length(cfg, parts.spec),
        loop_chunk(cfg),
        carry=state.carry.get("policy"),
    )


def loop_chunk(cfg: Config) -> int:
    """The episode loops' chunk: ``cfg.loop_chunk``, else the platform's
    :data:`jaxpg.rollout.LOOP_CHUNK`."""
    return cfg.loop_chunk or default_loop_chunk()


def make_reinforce(
    cfg: Config, parts: Parts, baseline: BaselineFn | None = None
) -> Algorithm:
    r"""REINFORCE as an ``(init, update, estimate)`` triple for one seed.

    Args:
      cfg: sizes and the step budget (``num_envs``, ``rollout_steps``,
        ``total_steps``, the time limit).
      parts: the policy, optimizer and envs; with ``parts.critic`` the baseline
        is a learned value :math:`V(s)` fitted to the returns
        (:math:`A = G - \mathrm{sg}(V)`), otherwise ``baseline``.
      baseline: ``(returns, mask, episode_start) -> advantages`` (``[L, B]``),
        e.g. one of :data:`BASELINE_FNS`; default ``standardise``.

    Returns:
      An :class:`~jaxpg.algorithms.base.Algorithm` whose state is a
      :class:`ReinforceState`. Once ``total_steps`` are spent, ``update``
      changes no parameter and reports the metrics of the last update that
      held data (see the module docstring).
    """
    policy, critic, tx = parts.policy, parts.critic, parts.optimizer
    baseline = BASELINE_FNS["standardise"] if baseline is None else baseline
    chunk = cfg.num_envs * cfg.rollout_steps
    # A constant normaliser keeps the estimate exactly proportional to ∇J
    # (dividing by the random number of steps would bias it).
    pg_norm = float(cfg.num_envs * cfg.rollout_steps)

    base_init = make_init(cfg, parts)

    def init(key: Array, hparams: Any = None) -> ReinforceState:
        state = base_init(key, hparams)
        fields = {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}
        return ReinforceState(
            **fields, last_metrics=_no_metrics_yet(critic is not None)
        )

    def chunk_loss(params: Any, rows: dict, row_mask: Array, num_valid: Array, hp):
        dist = policy.apply(params["policy"], rows["obs"])
        log_prob = dist.log_prob(rows["actions"])
        weights = rows["weights"]
        vl = jnp.zeros((), jnp.float32)
        if critic is not None:
            values = critic.apply(params["critic"], rows["obs"])
            vl = value_loss(values, weights, row_mask, normaliser=num_valid)
            weights = weights - jax.lax.stop_gradient(values)
        pg = policy_gradient_loss(log_prob, weights, row_mask, normaliser=pg_norm)
        ent = entropy_loss(dist.entropy(), row_mask, normaliser=num_valid)
        loss = pg + hp.ent_coef * ent + hp.vf_coef * vl
        return loss, {"loss": loss, "pg_loss": pg, "entropy": -ent, "value_loss": vl}

    recurrent = policy.recurrent or (critic is not None and critic.recurrent)

    def sequence_loss(params: Any, batch: dict, num_valid: Array, hp):
        """The loss of ``chunk_loss`` on the whole ``[L, B]`` buffer, each
        env's episodes replayed in order (recurrent networks)."""
        mask, reset = batch["mask"], batch["episode_start"] > 0
        dist = replay(policy, params["policy"], batch["obs"], reset)[1]
        log_prob = dist.log_prob(batch["actions"])
        weights = batch["weights"]
        vl = jnp.zeros((), jnp.float32)
        if critic is not None:
            values = replay(critic, params["critic"], batch["obs"], reset)[1]
            vl = value_loss(values, weights, mask, normaliser=num_valid)
            weights = weights - jax.lax.stop_gradient(values)
        pg = policy_gradient_loss(log_prob, weights, mask, normaliser=pg_norm)
        ent = entropy_loss(dist.entropy(), mask, normaliser=num_valid)
        loss = pg + hp.ent_coef * ent + hp.vf_coef * vl
        return loss, {"loss": loss, "pg_loss": pg, "entropy": -ent, "value_loss": vl}

    def estimate(state: TrainState) -> tuple[Any, dict[str, Array], TrainState]:
        hp = state.hparams
        key, _ = jax.random.split(state.key)
        see = observe(cfg, state)  # fixed for the whole update
        batch, env_state, obs = rollout(cfg, parts, state)
        mask = batch.mask
        rewards, reward_norm = batch.rewards, state.reward_norm
        if cfg.scale_rewards:
            rewards, reward_norm = reward_norm.scale(
                rewards, batch.dones, hp.gamma, mask
            )
        returns = discounted_returns_prefix(
            rewards, hp.gamma * (1.0 - batch.dones), batch.num_steps, loop_chunk(cfg)
        )
        if critic is not None:
            weights = returns * mask
        else:
            weights = baseline(returns, mask, batch.episode_start)
        if recurrent:
            # A recurrent network needs every env's steps in order: the whole
            # buffer, not packed rows (its padding costs forward and backward
            # passes; see jaxpg.recurrent).
            count = jnp.sum(mask > 0).astype(jnp.int32)
            num_valid = jnp.maximum(count, 1).astype(jnp.float32)
            rows = {
                "obs": see(batch.obs),
                "actions": batch.actions,
                "weights": weights,
                "mask": mask,
                "episode_start": batch.episode_start,
            }
            grads, aux = jax.grad(sequence_loss, has_aux=True)(
                state.params, rows, num_valid, hp
            )
        else:
            packed, count = pack_rows(
                mask, chunk, obs=see(batch.obs), actions=batch.actions, weights=weights
            )
            num_valid = jnp.maximum(count, 1).astype(jnp.float32)
            loss_fn = functools.partial(chunk_loss, num_valid=num_valid, hp=hp)
            grads, aux = chunked_grad(loss_fn, state.params, packed, count, chunk)
        env_steps = state.env_steps + count
        steps_with_data = jnp.any(mask > 0, axis=1)
        own_steps = jnp.max(
            jnp.where(steps_with_data, jnp.arange(1, mask.shape[0] + 1), 0)
        ).astype(jnp.float32)
        stats = batch.stats
        metrics = {
            "episode_return": nan_if_empty(stats.return_sum, stats.count),
            "episode_length": nan_if_empty(stats.length_sum, stats.count),
            "num_episodes": stats.count,
            "env_steps": env_steps,
            # Chunk losses are sums over rows: they add up to the batch's.
            "loss": aux["loss"],
            "pg_loss": aux["pg_loss"],
            "entropy": aux["entropy"],
            "mean_return": masked_mean(returns, mask),
            "collected": count.astype(jnp.float32),
            # Fraction of the env slots this seed stepped in this update that
            # fed the gradient (the rest idled while its longest episode
            # finished); a batched loop running longer for other members does
            # not change it.
            "utilisation": count / jnp.maximum(own_steps * cfg.num_envs, 1),
        }
        if critic is not None:
            metrics["value_loss"] = aux["value_loss"]
        new_state = state.replace(
            env_state=env_state,
            obs=obs,
            key=key,
            env_steps=env_steps,
            reward_norm=reward_norm,
        )
        flat = lambda x: x.reshape((-1, *x.shape[2:]))  # noqa: E731
        new_state = update_statistics(
            cfg, new_state, jax.tree.map(flat, batch.obs), flat(batch.mask)
        )
        return grads, metrics, new_state

    def update(state: ReinforceState) -> tuple[ReinforceState, dict[str, Array]]:
        opt_state = schedule_learning_rate(cfg, parts, state)
        grads, metrics, state = estimate(state)
        # Nothing collected: the budget was spent before this update.
        ran = metrics.pop("collected") > 0
        params, opt_state, opt_metrics = apply_gradients(
            tx, state.params, opt_state, grads, skip=~ran
        )
        env_steps = metrics.pop("env_steps")
        held = state.last_metrics
        fresh = {**metrics, **opt_metrics, "update": held["update"] + 1}
        reported = jax.tree.map(lambda new, old: jnp.where(ran, new, old), fresh, held)
        state = state.replace(
            params=params,
            opt_state=opt_state,
            update_idx=state.update_idx + 1,
            last_metrics=reported,
        )
        return state, {**reported, "env_steps": env_steps}

    return Algorithm(init, update, estimate)
