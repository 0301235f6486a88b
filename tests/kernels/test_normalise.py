"""Observation normalisation, reward scaling, learning-rate annealing and
per-network gradient clipping (jaxpg.kernels.normalise, the default optimizer)."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
import tiny

import jaxpg
from jaxpg.algorithms.base import (
    clip_by_global_norm_per_network,
    make_optimizer,
    observing,
)
from jaxpg.drivers.train import make_parts
from jaxpg.kernels.normalise import RewardScaler, RunningMeanStd
from jaxpg.rollout import collect_episodes, collect_window

PPO = jaxpg.Config(
    algo="ppo",
    num_envs=4,
    rollout_steps=8,
    total_steps=4 * 8 * 3,
    num_minibatches=2,
    num_epochs=2,
    hidden=(16,),
    normalise_obs=True,
    scale_rewards=True,
)
REINFORCE = jaxpg.Config(
    num_envs=4, rollout_steps=4, total_steps=4 * 4 * 3, hidden=(16,), normalise_obs=True
)


def test_running_mean_std_matches_numpy_over_batches():
    rng = np.random.default_rng(0)
    batches = [rng.normal(3.0, 2.0, (n, 3)).astype(np.float32) for n in (5, 17, 1, 40)]
    weights = [rng.integers(0, 2, len(b)).astype(np.float32) for b in batches]
    weights[2][:] = 0.0  # a batch where nothing counts changes nothing
    stats = RunningMeanStd.zeros((3,))
    np.testing.assert_array_equal(stats.normalise(batches[0]), batches[0])
    for b, w in zip(batches, weights, strict=True):
        stats = stats.update(jnp.asarray(b), jnp.asarray(w))
    seen = np.concatenate([b[w > 0] for b, w in zip(batches, weights, strict=True)])
    assert float(stats.count) == len(seen)
    # float32 accumulation of ~60 values of size ~3: 1e-5 relative is ample.
    np.testing.assert_allclose(stats.mean, seen.mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats.var, seen.var(0), rtol=1e-5)
    z = stats.normalise(seen)
    np.testing.assert_allclose(
        z, (seen - seen.mean(0)) / np.sqrt(seen.var(0) + 1e-8), rtol=1e-4, atol=1e-5
    )
    assert float(jnp.max(stats.normalise(jnp.full((3,), 1e6)))) == 10.0  # clipped


def _discounted_returns_numpy(rewards, dones, mask, gamma, ret0):
    ret, seen = ret0.copy(), []
    for r, d, m in zip(rewards, dones, mask, strict=True):
        ret = np.where(m > 0, ret * gamma + r, ret)
        seen.append(ret[m > 0])
        ret = ret * (1 - d * m)
    return ret, np.concatenate(seen)


def test_reward_scaler_matches_numpy():
    rng = np.random.default_rng(1)
    t, b, gamma = 12, 3, 0.9
    scaler = RewardScaler.zeros(b)
    ret, all_seen = np.zeros(b, np.float32), []
    for _ in range(2):
        r = rng.normal(size=(t, b)).astype(np.float32)
        d = (rng.random((t, b)) < 0.2).astype(np.float32)
        m = (rng.random((t, b)) < 0.8).astype(np.float32)
        scaled, scaler = scaler.scale(jnp.asarray(r), jnp.asarray(d), gamma, m)
        ret, seen = _discounted_returns_numpy(r, d, m, gamma, ret)
        all_seen.append(seen)
        var = np.concatenate(all_seen).var()
        np.testing.assert_allclose(scaler.ret, ret, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(scaler.stats.var, var, rtol=1e-5)
        np.testing.assert_allclose(scaled, r / np.sqrt(var + 1e-8), rtol=1e-5)


@pytest.fixture(scope="module")
def ppo_run():
    """Two PPO updates one by one, with the state before each."""
    algo = jaxpg.make_algorithm(PPO)
    update = jax.jit(algo.update)
    states = [algo.init(jax.random.key(0))]
    for _ in range(2):
        states.append(update(states[-1])[0])
    return algo, states


@functools.partial(jax.jit, static_argnums=0)
def _window(cfg, state):
    """The window the update from ``state`` collects (its key, its statistics);
    one program for every state of ``cfg``."""
    parts = make_parts(cfg)
    _, key_rollout, _ = jax.random.split(state.key, 3)
    apply = observing(parts.policy.apply, state.obs_norm.normalise)
    window, *_ = collect_window(
        key_rollout,
        parts.stepper,
        apply,
        state.params["policy"],
        state.env_state,
        state.obs,
        state.episode,
        cfg.rollout_steps,
    )
    return window.transitions


def test_ppo_statistics_are_numpys_of_the_observations_and_returns_seen(ppo_run):
    _, states = ppo_run
    windows = [_window(PPO, s) for s in states[:-1]]
    obs = np.concatenate([np.asarray(w.obs).reshape(-1, 4) for w in windows])
    stats = states[-1].obs_norm
    assert float(stats.count) == len(obs) == 2 * PPO.num_envs * PPO.rollout_steps
    np.testing.assert_allclose(stats.mean, obs.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(stats.var, obs.var(0), rtol=1e-4, atol=1e-7)
    # The statistics were not identity after the first update: the second
    # update acted through non-trivial ones.
    assert float(states[1].obs_norm.count) == PPO.num_envs * PPO.rollout_steps

    ret, seen = np.zeros(PPO.num_envs, np.float32), []
    for w in windows:
        r, d = np.asarray(w.reward), np.asarray(w.terminated | w.truncated)
        ret, s = _discounted_returns_numpy(r, d, np.ones_like(r), PPO.gamma, ret)
        seen.append(s)
    np.testing.assert_allclose(states[-1].reward_norm.ret, ret, rtol=1e-5)
    np.testing.assert_allclose(
        states[-1].reward_norm.stats.var, np.concatenate(seen).var(), rtol=1e-4
    )


def test_ppo_acts_and_learns_through_the_same_statistics(ppo_run):
    # At the parameters that collected the data, the loss's log-probabilities
    # equal the stored ones only if both saw the same normalised observations:
    # the ratio is exactly 1 (no clipping, zero approximate KL).
    algo, states = ppo_run
    _, metrics, _ = jax.jit(algo.estimate)(states[-1])
    assert float(states[-1].obs_norm.count) > 0
    assert float(metrics["clip_frac"]) == 0.0
    assert abs(float(metrics["approx_kl"])) < 1e-6


def test_reinforce_counts_only_the_steps_of_included_episodes():
    algo = jaxpg.make_algorithm(REINFORCE)
    state = algo.init(jax.random.key(3))
    parts = make_parts(REINFORCE)
    _, key_rollout = jax.random.split(state.key)
    batch, *_ = collect_episodes(
        key_rollout,
        parts.stepper,
        parts.policy.apply,  # count 0: the identity transform
        state.params["policy"],
        parts.spec,
        state.env_state,
        state.obs,
        REINFORCE.rollout_steps,
        200,
    )
    mask = np.asarray(batch.mask).reshape(-1) > 0
    obs = np.asarray(batch.obs).reshape(-1, 4)[mask]
    new = jax.jit(algo.update)(state)[0].obs_norm
    assert float(new.count) == len(obs) < batch.mask.size
    np.testing.assert_allclose(new.mean, obs.mean(0), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(new.var, obs.var(0), rtol=1e-4, atol=1e-7)


def test_evaluate_acts_through_the_saved_statistics(ppo_run):
    _, states = ppo_run
    state = states[-1]
    params, stats, key = state.params["policy"], state.obs_norm, jax.random.key(5)
    got = jaxpg.evaluate(PPO, params, key, 6, deterministic=True, obs_norm=stats)
    parts = make_parts(PPO.replace(num_envs=6))
    from jaxpg.rollout import evaluate_episodes

    want = evaluate_episodes(
        key, parts.stepper, observing(parts.policy.apply, stats.normalise), params,
        500, deterministic=True,
    )  # fmt: skip
    np.testing.assert_array_equal(got, want)
    raw = evaluate_episodes(
        key, parts.stepper, parts.policy.apply, params, 500, deterministic=True
    )
    assert not np.array_equal(got, raw)  # the statistics matter here
    # The parameters training returns carry the statistics: the same episodes.
    carried = jaxpg.networks.with_obs_norm(params, stats)
    np.testing.assert_array_equal(
        jaxpg.evaluate(PPO, carried, key, 6, deterministic=True), want
    )
    with pytest.raises(ValueError, match=r"lack observation statistics.*normalise_obs"):
        jaxpg.evaluate(PPO, params, key, 6)
    with pytest.raises(ValueError, match="already carry"):
        jaxpg.evaluate(PPO, carried, key, 6, obs_norm=stats)
    with pytest.raises(ValueError, match="normalise_obs=False"):
        jaxpg.evaluate(PPO.replace(normalise_obs=False), carried, key, 6)


@pytest.mark.bitwise  # equal to the last bits across layouts
def test_anneal_lr_follows_the_step_budget():
    # A2C takes one optimizer step per update: the learning rate it stepped
    # with is the one left in its optimizer state.
    cfg = tiny.config("a2c", updates=4)
    algo = jaxpg.make_algorithm(cfg.replace(anneal_lr=True))
    update = jax.jit(algo.update)
    state = algo.init(jax.random.key(0))
    for k in range(cfg.num_updates):
        state = update(state)[0]
        lr = state.opt_state.hyperparams["learning_rate"]
        np.testing.assert_allclose(lr, cfg.lr * (1 - k / cfg.num_updates), rtol=1e-6)
    # The first update is the plain one (factor 1).
    plain = jaxpg.make_algorithm(cfg)
    first = jax.jit(plain.update)(plain.init(jax.random.key(0)))[0]
    annealed = update(algo.init(jax.random.key(0)))[0]
    leaves = zip(
        jax.tree.leaves(first.params), jax.tree.leaves(annealed.params), strict=True
    )
    for a, b in leaves:
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match=r"anneal_lr=True.*optimizer="):
        jaxpg.make_algorithm(cfg.replace(anneal_lr=True), optimizer=optax.sgd(0.1))


def test_per_network_clipping_clips_each_network_by_its_own_norm():
    grads = {"policy": {"w": jnp.full(4, 100.0)}, "critic": {"w": jnp.full(4, 1e-6)}}
    clipped, _ = clip_by_global_norm_per_network(0.5).update(grads, optax.EmptyState())
    np.testing.assert_allclose(optax.tree.norm(clipped["policy"]), 0.5, rtol=1e-6)
    np.testing.assert_array_equal(clipped["critic"]["w"], grads["critic"]["w"])
    # Through the config: with a joint norm the tiny critic gradient is scaled
    # by 0.5/200 too, which Adam (eps 1e-5) does not undo at this size.
    cfg = jaxpg.Config(algo="ppo", max_grad_norm=0.5)
    params = jax.tree.map(jnp.zeros_like, grads)
    per, joint = make_optimizer(cfg.replace(clip_per_network=True)), make_optimizer(cfg)
    up, _ = per.update(grads, per.init(params), params)
    uj, _ = joint.update(grads, joint.init(params), params)
    want = -cfg.lr * 1e-6 / (1e-6 + 1e-5)  # Adam's first step, unclipped
    np.testing.assert_allclose(up["critic"]["w"], want, rtol=1e-4)
    assert float(jnp.abs(uj["critic"]["w"][0])) < abs(want) / 50
    with pytest.raises(ValueError, match=r"clip_per_network.*max_grad_norm"):
        jaxpg.Config(clip_per_network=True)


def test_pytree_statistics_per_float_leaf_match_numpy():
    # A dict observation: two float leaves of different shapes (statistics of
    # each equal NumPy's over the counted samples), an int leaf and a mask
    # (no statistics, passed through unchanged by normalise).
    rng = np.random.default_rng(1)
    template = {
        "pos": jax.ShapeDtypeStruct((3,), jnp.float32),
        "grid": jax.ShapeDtypeStruct((2, 2), jnp.float32),
        "count": jax.ShapeDtypeStruct((), jnp.int32),
        "action_mask": jax.ShapeDtypeStruct((4,), jnp.bool_),
    }
    stats = RunningMeanStd.for_observation(template)
    assert sorted(stats.mean) == ["grid", "pos"]

    def batch(n):
        return {
            "pos": rng.normal(2.0, 3.0, (n, 3)).astype(np.float32),
            "grid": rng.normal(-1.0, 0.5, (n, 2, 2)).astype(np.float32),
            "count": rng.integers(0, 9, n).astype(np.int32),
            "action_mask": rng.random((n, 4)) < 0.5,
        }

    batches = [batch(n) for n in (7, 30, 2)]
    weights = [rng.integers(0, 2, len(b["pos"])).astype(np.float32) for b in batches]
    for b, w in zip(batches, weights, strict=True):
        stats = stats.update(jax.tree.map(jnp.asarray, b), jnp.asarray(w))
    for name in ("pos", "grid"):
        seen = np.concatenate(
            [b[name][w > 0] for b, w in zip(batches, weights, strict=True)]
        )
        key = name
        np.testing.assert_allclose(stats.mean[key], seen.mean(0), rtol=1e-5)
        np.testing.assert_allclose(stats.var[key], seen.var(0), rtol=1e-5)
    assert float(stats.count) == sum(w.sum() for w in weights)
    obs = batches[0]
    z = stats.normalise(jax.tree.map(jnp.asarray, obs))
    mean, var = np.asarray(stats.mean["pos"]), np.asarray(stats.var["pos"])
    want = (obs["pos"] - mean) / np.sqrt(var + 1e-8)
    np.testing.assert_allclose(z["pos"], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(z["count"], obs["count"])
    np.testing.assert_array_equal(z["action_mask"], obs["action_mask"])
    assert z["count"].dtype == jnp.int32 and z["action_mask"].dtype == jnp.bool_
