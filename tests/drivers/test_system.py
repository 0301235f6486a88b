"""System properties of training: determinism, seeds, tracing, custom envs,
bad input, divergence isolation, and learning on CartPole."""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from toy_envs import TabularMDP
from vmap_probe import VmapProbe

import jaxpg
from jaxpg.kernels.batching import SEED_AXIS

TINY = jaxpg.Config(
    env="CartPole-v1", num_envs=4, rollout_steps=8, total_steps=4 * 8 * 6, lr=1e-2
)


@pytest.fixture(scope="module")
def tiny_train():
    return jax.jit(jaxpg.make_train(TINY))


@pytest.fixture(scope="module")
def tiny_out(tiny_train):
    return tiny_train(jax.random.key(0))


def test_same_key_gives_bit_identical_runs(tiny_train, tiny_out):
    again = tiny_train(jax.random.key(0))
    chex.assert_trees_all_equal(tiny_out.params, again.params)
    chex.assert_trees_all_equal(tiny_out.metrics, again.metrics)


def test_different_keys_give_different_runs(tiny_train, tiny_out):
    other = tiny_train(jax.random.key(1))
    assert not np.array_equal(
        np.asarray(tiny_out.metrics["episode_return"]),
        np.asarray(other.metrics["episode_return"]),
    )


def test_output_shapes_and_step_counts(tiny_out):
    m = tiny_out.metrics
    assert m["episode_return"].shape == (TINY.num_updates,)
    steps = np.asarray(m["env_steps"])
    assert steps.shape == (TINY.num_updates,)
    # REINFORCE counts only real transitions: at least the start budget of every
    # env (all are active for rollout_steps steps), strictly increasing while
    # in budget, and equal to the episode lengths collected.
    per_update = np.diff(np.concatenate([[0], steps]))
    ran = np.diff(np.asarray(m["update"]), prepend=0) > 0
    np.testing.assert_array_equal(ran, per_update > 0)
    assert np.all(per_update[ran] >= TINY.num_envs * TINY.rollout_steps)
    lengths = np.asarray(m["episode_length"]) * np.asarray(m["num_episodes"])
    np.testing.assert_allclose(per_update[ran], lengths[ran], rtol=1e-6)
    # Utilisation: the collected steps over the env slots this seed stepped.
    util = np.asarray(m["utilisation"])[ran]
    assert np.all((util > 0) & (util <= 1))


@pytest.fixture(scope="module")
def tiny_seeds():
    return jaxpg.train_seeds(TINY, num_seeds=3)


def test_train_seeds_matches_individual_runs(tiny_train, tiny_seeds):
    outs = tiny_seeds
    assert outs.metrics["episode_return"].shape == (3, TINY.num_updates)
    for i in range(3):
        single = tiny_train(jax.random.key(i))
        np.testing.assert_allclose(
            outs.metrics["episode_return"][i],
            single.metrics["episode_return"],
            rtol=1e-5,
        )
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], outs.params),
            single.params,
            rtol=1e-4,
            atol=1e-5,
        )


def test_update_traces_once():
    algo = jaxpg.make_algorithm(TINY)
    traced = chex.assert_max_traces(algo.update, n=1)
    update = jax.jit(traced)
    state = jax.jit(algo.init)(jax.random.key(0))
    state, _ = update(state)
    state, _ = update(state)
    jax.block_until_ready(state)


def test_custom_environment_via_env_argument():
    mdp = TabularMDP(seed=1)
    cfg = jaxpg.Config(env="custom", num_envs=4, rollout_steps=4, total_steps=160)
    out = jax.jit(jaxpg.make_train(cfg, env=mdp, env_params=mdp.default_params))(
        jax.random.key(0)
    )
    assert np.all(np.isfinite(np.asarray(out.metrics["loss"])))
    rets = jaxpg.evaluate(cfg, out.params, jax.random.key(1), 8, env=mdp)
    assert rets.shape == (8,)


def test_custom_env_name_without_env_is_an_error():
    cfg = jaxpg.Config(env="custom")
    with pytest.raises(ValueError, match="custom"):
        jaxpg.make_train(cfg)


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("env", "CartPole-v9", "CartPole-v1"),
        ("algo", "dqn", "reinforce"),
        ("baseline", "median", "standardise"),
        ("gamma", 1.5, "[0.0, 1.0]"),
        ("gamma", float("nan"), "gamma"),
        ("lr", 0.0, "> 0"),
        ("lr", -1e-3, "lr"),
        ("num_envs", 0, "positive integer"),
        ("num_envs", 2.5, "num_envs"),
        ("total_steps", -5, "total_steps"),
        ("rollout_steps", 0, "rollout_steps"),
        ("hidden", (64, -1), "hidden"),
        ("activation", "sigmoidal", "tanh"),
        ("ent_coef", -0.1, "ent_coef"),
        ("max_grad_norm", 0.0, "max_grad_norm"),
        ("policy_head_scale", 0.0, "> 0"),
    ],
)
def test_bad_config_raises_naming_field_value_and_allowed(field, value, fragment):
    with pytest.raises(ValueError) as err:
        jaxpg.Config(**{field: value})
    message = str(err.value)
    assert f"Config.{field}=" in message
    assert repr(value) in message
    assert fragment in message


def test_total_steps_below_one_update_raises():
    with pytest.raises(ValueError, match="one update"):
        jaxpg.Config(num_envs=16, rollout_steps=32, total_steps=100)


def test_bad_driver_arguments_raise():
    with pytest.raises(ValueError, match="num_seeds=0"):
        jaxpg.train_seeds(TINY, num_seeds=0)
    with pytest.raises(ValueError, match="num_episodes=0"):
        jaxpg.evaluate(TINY, None, jax.random.key(0), num_episodes=0)


def test_presets_exist_and_unknown_preset_lists_known():
    cfg = jaxpg.presets.get("CartPole-v1", "reinforce")
    assert cfg.env == "CartPole-v1" and cfg.algo == "reinforce"
    jaxpg.presets.get("Acrobot-v1", "reinforce")
    with pytest.raises(ValueError, match="CartPole-v1"):
        jaxpg.presets.get("Pong-misc", "reinforce")


def test_policy_head_scale_sets_the_spread_of_the_initial_policy():
    """The output layer's init gain scales the initial logits linearly: the
    default starts near uniform, a gain of 1 from a far-from-uniform policy."""
    from jaxpg.algorithms.base import policy_for
    from jaxpg.drivers.train import resolve_env

    obs = jax.random.normal(jax.random.key(1), (256, 4))
    spreads = {}
    for scale in (0.01, 1.0):
        cfg = jaxpg.Config(policy_head_scale=scale)
        policy = policy_for(cfg, resolve_env(cfg)[2])
        params = policy.init(jax.random.key(0))
        spreads[scale] = float(jnp.std(policy.apply(params, obs).logits))
    # Same key, so the head weights differ exactly by the factor 100.
    np.testing.assert_allclose(spreads[1.0] / spreads[0.01], 100.0, rtol=1e-4)
    assert spreads[0.01] < 0.05


def test_diverging_run_does_not_take_the_others_down():
    """A NaN learning rate in one member of a vmapped sweep: that member keeps
    its (finite) parameters and reports ``nonfinite``; the others are exactly
    the runs they would be alone."""
    cfg = TINY
    train = jaxpg.make_train(cfg)
    base = cfg.hyperparams()
    lrs = jnp.array([1e-2, jnp.nan, 3e-3])
    hps = base._replace(
        lr=lrs,
        **{k: jnp.stack([v] * 3) for k, v in base._asdict().items() if k != "lr"},
    )
    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    outs = jax.jit(jax.vmap(train, axis_name=SEED_AXIS))(keys, hps)
    for i in (0, 2):
        alone = jax.jit(train)(keys[i], jax.tree.map(lambda x, i=i: x[i], hps))
        chex.assert_trees_all_close(
            jax.tree.map(lambda x, i=i: x[i], outs.params), alone.params, atol=1e-5
        )
    bad = jax.tree.map(lambda x: x[1], outs.params)
    assert all(np.all(np.isfinite(x)) for x in jax.tree.leaves(bad))


def test_nonfinite_gradient_is_skipped():
    algo = jaxpg.make_algorithm(TINY)
    state = jax.jit(algo.init)(jax.random.key(0))
    poisoned = jax.tree.map(lambda x: x * jnp.nan, state.params)
    new, metrics = jax.jit(algo.update)(state.replace(params=poisoned))
    assert metrics["nonfinite"] == 1.0
    chex.assert_trees_all_equal(new.opt_state, state.opt_state)


def test_budget_is_exact_and_later_updates_do_nothing():
    """An update that starts with the budget spent collects nothing, leaves the
    parameters and optimizer alone, and reports the last update's metrics."""
    algo = jaxpg.make_algorithm(TINY)
    update = jax.jit(algo.update)
    state, first = update(jax.jit(algo.init)(jax.random.key(0)))
    assert 0 < first["env_steps"] < TINY.total_steps
    spent = state.replace(env_steps=jnp.int32(TINY.total_steps))
    new, metrics = update(spent)
    assert metrics["env_steps"] == TINY.total_steps
    assert set(metrics) == set(first)
    for name in set(first) - {"env_steps"}:
        np.testing.assert_array_equal(metrics[name], first[name], err_msg=name)
    assert metrics["update"] == 1 and np.isfinite(metrics["episode_return"])
    chex.assert_trees_all_equal(new.params, state.params)
    chex.assert_trees_all_equal(new.opt_state, state.opt_state)
    chex.assert_trees_all_equal(new.last_metrics, state.last_metrics)


def test_short_reinforce_budget_ends_on_an_update_with_data(tiny_seeds):
    """TINY's 6 update slots hold more than its budget: each seed spends it
    after K < 6 updates. Per seed, the last reported metrics are those of
    update K (finite return), ``update`` counts the K updates, and the budget
    is exact: update K starts below it and ends at or above it, and no step
    is collected after it."""
    m = jax.tree.map(np.asarray, tiny_seeds.metrics)
    assert m["update"].shape == (3, TINY.num_updates)
    for seed in range(3):
        ran = np.diff(m["update"][seed], prepend=0) > 0
        k = int(np.sum(ran))
        assert 0 < k < TINY.num_updates, "the budget must end the run early here"
        np.testing.assert_array_equal(ran, np.arange(TINY.num_updates) < k)
        last = k - 1
        assert np.isfinite(m["episode_return"][seed, -1])
        for name, values in m.items():
            np.testing.assert_array_equal(
                values[seed, last:], values[seed, last], err_msg=name
            )
        steps = m["env_steps"][seed]
        before = steps[last - 1] if last else 0
        assert before < TINY.total_steps <= steps[last]
        assert m["update"][seed, -1] == k


@pytest.mark.slow
def test_cartpole_learns_on_a_short_budget():
    """Two seeds of the CartPole preset for 120k steps each (58 updates of
    64 envs x 32 steps): a uniform policy scores ~22; learning must reach a
    mean evaluated return above 150 (150 leaves room for seed variance). The
    preset normalises observations: evaluation acts through each seed's
    statistics, which the returned parameters carry."""
    cfg = jaxpg.presets.get("CartPole-v1", "reinforce").replace(total_steps=120_000)
    outs = jaxpg.train_seeds(cfg, num_seeds=2)
    evals = jax.jit(jax.vmap(lambda p, k: jaxpg.evaluate(cfg, p, k, 32)))(
        outs.params, jax.random.split(jax.random.key(9), 2)
    )
    assert float(jnp.mean(evals)) > 150, np.asarray(evals.mean(1))


class _ProbedCartPole:
    """CartPole whose step passes its observation through a probe counting how
    many times ``vmap`` batches the code around it."""

    def __init__(self):
        self.env, self.params = jaxpg.envs.make_env("CartPole-v1")
        self.probe = VmapProbe()

    def __getattr__(self, name):
        return getattr(self.env, name)

    def step(self, key, state, action, params):
        obs, state, *rest = self.env.step(key, state, action, params)
        return self.probe(obs), state, *rest


@pytest.mark.parametrize("algo", ["reinforce", "ppo"])
def test_vmapped_training_batches_the_update_as_a_batched_state_does(algo):
    """``vmap(make_train(cfg))`` starts its train state batched like the key,
    so JAX batches the update body as often as for a state that is batched
    already (a state starting with unbatched zeros, biases and Adam moments,
    costs a second pass of every nested scan: a quarter to a third of the
    vmapped trace)."""
    env = _ProbedCartPole()
    cfg = TINY.replace(algo=algo, total_steps=4 * 8 * 2)
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    algorithm = jaxpg.make_algorithm(cfg, env, env.params)
    states = jax.vmap(algorithm.init)(keys)  # every leaf batched

    def updates(state):
        return jax.lax.scan(
            lambda s, _: algorithm.update(s), state, None, length=cfg.num_updates
        )

    env.probe.calls = 0
    jax.make_jaxpr(jax.vmap(updates))(states)
    batched_state = env.probe.calls
    env.probe.calls = 0
    jax.make_jaxpr(jax.vmap(jaxpg.make_train(cfg, env, env.params)))(keys)
    assert batched_state >= 1
    assert env.probe.calls == batched_state
