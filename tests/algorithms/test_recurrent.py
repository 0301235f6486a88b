r"""Recurrent policies: the carry protocol, exact replay, and an unbiased
recurrent REINFORCE gradient (:mod:`jaxpg.recurrent`).

The exact-gradient check follows ``test_exact_gradient.py``: on
:class:`~memory_envs.CueRecall` (a two-step POMDP whose optimal policy must
remember the cue) ``J(θ)`` of a GRU policy is computed exactly by enumerating
the histories and ``∇J`` by ``jax.grad``. With ``rollout_steps = 3`` every
env runs exactly two episodes per update (episodes last 2 steps), so the
second episode needs the carry reset at its start; the estimate
``ĝ = -grad(loss)`` has ``E[ĝ] = (2 / 3) ∇J`` (normaliser ``B · 3``). We draw
``K`` estimates; the tolerance is 4.5 standard errors per coordinate (about
110 coordinates: a correct estimator fails with probability below 1e-3, and
the keys are fixed). A policy whose carry is not reset at episode starts
(acting and replay alike) is rejected by the same check.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from memory_envs import CueRecall

import jaxpg
from jaxpg.algorithms import BASELINE_FNS, make_reinforce
from jaxpg.algorithms.base import acting, observe
from jaxpg.algorithms.reinforce import rollout
from jaxpg.networks import GRUTorso, LSTMTorso, Policy
from jaxpg.recurrent import replay
from jaxpg.rollout import collect_window

NUM_ENVS = 16
NUM_ESTIMATES = 400
Z_TOL = 4.5


@pytest.fixture(scope="module")
def env():
    return CueRecall()


def _config(algo="reinforce", **kw) -> jaxpg.Config:
    base = dict(
        env="custom",
        algo=algo,
        num_envs=NUM_ENVS,
        rollout_steps=3,
        total_steps=10**6,
        gamma=1.0,
        lr=1e-3,
        baseline="none",
    )
    return jaxpg.Config(**{**base, **kw})


@pytest.mark.parametrize("torso", [GRUTorso(hidden_size=4), LSTMTorso(4, (8,))])
def test_reset_starts_from_the_initial_carry(env, torso):
    """A step with ``reset`` equals the step from ``initial_carry``, whatever
    the carry it is given; without it the carry matters."""
    spec = jaxpg.envs.env_spec(env, env.default_params)
    policy = jaxpg.networks.make_policy(spec, torso=torso)
    params = policy.init(jax.random.key(0))
    obs = jnp.eye(3)[:2]
    junk = jax.tree.map(lambda c: c + 3.0, policy.initial_carry(2))
    fresh = policy.step(params, policy.initial_carry(2), obs, jnp.ones(2, bool))
    reset = policy.step(params, junk, obs, jnp.array([True, False]))
    for a, b in zip(jax.tree.leaves(fresh), jax.tree.leaves(reset), strict=True):
        np.testing.assert_array_equal(a[0], b[0])
        assert not np.allclose(a[1], b[1])


def test_reinforce_replay_equals_the_rollout(env):
    """The learner's replay (each env's buffer from the initial carry, reset
    at every episode start) gives exactly the log-probabilities the policy
    acted with, on every collected step."""
    cfg = _config()
    algo = jaxpg.make_algorithm(cfg, env=env, policy_network=GRUTorso(hidden_size=8))
    parts = jaxpg.make_parts(cfg, env=env, policy_network=GRUTorso(hidden_size=8))
    state = jax.jit(algo.init)(jax.random.key(0))
    batch, _, _ = jax.jit(lambda s: rollout(cfg, parts, s))(state)
    reset = batch.episode_start > 0
    _, dist = replay(parts.policy, state.params["policy"], batch.obs, reset)
    mask = np.asarray(batch.mask) > 0
    assert mask.sum() == 2 * 2 * NUM_ENVS  # two 2-step episodes per env
    np.testing.assert_array_equal(
        np.asarray(dist.log_prob(batch.actions))[mask],
        np.asarray(batch.log_probs)[mask],
    )


def _as_restored(state):
    """``state`` as a restored checkpoint holds it: every array strongly typed
    and committed to the device. The updates of an initial state, of its
    successors and of a restored one are then one compiled program."""
    strong = jax.tree.map(
        lambda x: (
            x
            if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key)
            else jnp.asarray(x, x.dtype)
        ),
        state,
    )
    return jax.device_put(strong, jax.devices()[0])


@functools.cache
def _recurrent_ppo(critic: str):
    """``(cfg, algo, parts, update, state)``: PPO on CueRecall with a GRU
    policy and an MLP (``critic="mlp"``) or GRU (``"gru"``) critic, its
    update compiled, and its initial state (key 1). The replay and the
    checkpoint tests share the GRU-critic one."""
    cfg = _config("ppo", rollout_steps=5, num_minibatches=4, num_epochs=2)
    kw = dict(
        env=CueRecall(),
        policy_network=GRUTorso(hidden_size=8),
        critic_network=GRUTorso(hidden_size=4) if critic == "gru" else None,
    )
    algo = jaxpg.make_algorithm(cfg, **kw)
    parts = jaxpg.make_parts(cfg, **kw)
    state = _as_restored(algo.init(jax.random.key(1)))
    return cfg, algo, parts, jax.jit(algo.update), state


@pytest.mark.parametrize("critic", ["mlp", "gru"])
def test_ppo_windows_replay_exactly_across_updates(critic):
    """PPO: each window replayed from its stored initial carries reproduces
    the rollout's log-probabilities bit for bit (first-epoch ratio exactly 1),
    also for the window after an update, whose initial carries are the
    previous window's final ones, reset where an episode ended."""
    cfg, _, parts, update, state = _recurrent_ppo(critic)

    @jax.jit
    def window_of(state):
        see = observe(cfg, state)
        window, *_ = collect_window(
            jax.random.split(state.key, 3)[1],
            parts.stepper,
            acting(parts.policy, see),
            state.params["policy"],
            state.env_state,
            state.obs,
            state.episode,
            cfg.rollout_steps,
            carry=state.carry["policy"],
        )
        _, dist = replay(
            parts.policy,
            state.params["policy"],
            see(window.transitions.obs),
            window.resets,
            window.initial_carry,
        )
        return window, dist.log_prob(window.transitions.action)

    seen = []
    for _ in range(2):
        window, log_probs = window_of(state)
        np.testing.assert_array_equal(log_probs, window.transitions.log_prob)
        state, metrics = update(state)
        # 5-step windows over 2-step episodes: the first window's last step
        # ends no episode (the carry crosses the boundary), the second's ends
        # every env's (the carry is reset).
        ended = np.asarray(window.transitions.done[-1])
        seen.append(ended.mean())
        carry = np.asarray(state.carry["policy"])
        np.testing.assert_array_equal(carry[ended], 0.0)
        assert np.all(np.abs(carry[~ended]).sum(-1) > 0)
        if critic == "gru":
            np.testing.assert_array_equal(np.asarray(state.carry["critic"])[ended], 0)
    assert seen == [0.0, 1.0]
    assert metrics["approx_kl"] >= 0


def test_recurrent_ppo_needs_minibatches_of_envs(env):
    cfg = _config("ppo", rollout_steps=4, num_minibatches=32)
    with pytest.raises(ValueError, match="num_minibatches=32 must divide num_envs"):
        jaxpg.make_algorithm(cfg, env=env, policy_network=GRUTorso(hidden_size=4))


@pytest.mark.parametrize("kind, carry", [("gru", [(2, 5)]), ("lstm", [(2, 5)] * 2)])
def test_config_torso_builds_recurrent_policy_and_critic(env, kind, carry):
    """``Config.torso`` names the torso of both networks when none is passed
    (``hidden``: the encoder before a cell of ``recurrent_size`` units); a
    passed module still wins."""
    from jaxpg.algorithms.base import critic_for, policy_for

    cfg = _config("ppo", torso=kind, recurrent_size=5, hidden=(7,))
    spec = jaxpg.envs.env_spec(env, env.default_params)
    for net in (policy_for(cfg, spec), critic_for(cfg, spec)):
        assert net.recurrent
        assert [c.shape for c in jax.tree.leaves(net.initial_carry(2))] == carry
        params = jax.eval_shape(net.init, jax.random.key(0))["torso"]["params"]
        assert params["_Encoder_0"]["Dense_0"]["kernel"].shape == (3, 7)
    assert not policy_for(cfg, spec, jaxpg.networks.MLPTorso((4,))).recurrent
    assert not policy_for(cfg.replace(torso="mlp"), spec).recurrent


def _leaky(policy: Policy) -> Policy:
    """The wrong estimator: a carry never reset at episode starts."""

    def step(params, carry, obs, reset):
        return policy.step(params, carry, obs, jnp.zeros_like(reset))

    return policy._replace(step=step)


@functools.cache
def _point():
    """``(params, exact)``: the parameters of the GRU REINFORCE learner at a
    random point (its initial ones plus unit Gaussian noise), and ∇J of its
    policy there."""
    env, cfg, torso = CueRecall(), _config(), GRUTorso(hidden_size=4)
    algo = jaxpg.make_algorithm(cfg, env=env, policy_network=torso)
    policy = jaxpg.make_parts(cfg, env=env, policy_network=torso).policy

    @jax.jit
    def point(key):
        leaves, tree = jax.tree.flatten(algo.init(key).params)
        keys = jax.random.split(jax.random.key(7), len(leaves))
        leaves = [
            x + jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)
        ]
        params = jax.tree.unflatten(tree, leaves)
        exact = jax.grad(lambda p: env.exact_return(policy, p))(params["policy"])
        return params, exact

    return point(jax.random.key(0))


@functools.cache
def _estimates(leak: bool):
    """``(samples [K, P], exact [P])``: K estimates scaled by 3/2 at
    :func:`_point`, and ∇J there."""
    env = CueRecall()
    cfg = _config()

    def algorithm(cfg, parts):
        if leak:
            parts = parts._replace(policy=_leaky(parts.policy))
        return make_reinforce(cfg, parts, BASELINE_FNS["none"])

    torso = GRUTorso(hidden_size=4)
    algo = jaxpg.make_algorithm(cfg, env=env, policy_network=torso, algorithm=algorithm)
    params, exact = _point()

    def one(key):
        fresh = algo.init(key).replace(params=params)
        grads, _, _ = algo.estimate(fresh)
        return jax.tree.map(lambda g: -1.5 * g, grads["policy"])

    samples = jax.jit(jax.vmap(one))(jax.random.split(jax.random.key(1), NUM_ESTIMATES))
    flat = lambda t: np.concatenate(  # noqa: E731
        [np.asarray(x).reshape(x.shape[0], -1) for x in jax.tree.leaves(t)], axis=1
    )
    exact_flat = np.concatenate([np.ravel(x) for x in jax.tree.leaves(exact)])
    return flat(samples), exact_flat


def _z_scores(samples, exact):
    se = samples.std(0, ddof=1) / np.sqrt(samples.shape[0])
    return (samples.mean(0) - exact) / np.maximum(se, 1e-12), se


def test_recurrent_reinforce_matches_the_exact_gradient():
    """E[ĝ] = ∇J within 4.5 standard errors on every coordinate, and the
    exact gradient is far from zero in those units (the check has power)."""
    samples, exact = _estimates(leak=False)
    z, se = _z_scores(samples, exact)
    assert np.all(np.abs(z) < Z_TOL), f"z-scores {np.round(z, 2)}"
    assert np.max(np.abs(exact) / np.maximum(se, 1e-12)) > 10


def test_a_carry_leaking_across_episodes_is_rejected():
    """The same check rejects the estimator of a policy whose carry is not
    reset at the second episode's start."""
    samples, exact = _estimates(leak=True)
    z, _ = _z_scores(samples, exact)
    assert np.max(np.abs(z)) > Z_TOL, f"z-scores {np.round(z, 2)}"


def test_carry_is_checkpointed_and_resume_is_bit_exact(tmp_path):
    """A PPO train state with GRU carries (policy and critic) mid-episode
    round-trips a checkpoint, and the update after the restore equals the
    update without it, bit for bit."""
    from jaxpg.experiment import checkpoint

    _, algo, _, update, state = _recurrent_ppo("gru")
    state, _ = update(state)
    for name in ("policy", "critic"):  # mid-episode: the carries are not reset
        assert np.abs(np.asarray(state.carry[name])).sum() > 0
    checkpoint.save(tmp_path, 1, state)
    back = checkpoint.restore(tmp_path, 1, jax.eval_shape(algo.init, jax.random.key(0)))
    want, _ = update(state)
    got, _ = update(back)
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got), strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)
