"""What training returns is enough to act and to evaluate: the documented
``jaxpg.evaluate(cfg, out.params, key, num_episodes=...)`` works on every
preset (normalising ones included, whose parameters carry their observation
statistics), on the ``TrainOutput`` itself, and on a saved run's policy."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest

import jaxpg
from jaxpg.drivers.train import policy_params


def _short(cfg: jaxpg.Config) -> jaxpg.Config:
    """The preset with a budget of two updates (everything else unchanged)."""
    per_update = cfg.total_steps // cfg.num_updates
    return cfg.replace(total_steps=2 * per_update)


@pytest.mark.parametrize("name", jaxpg.presets.names(), ids="/".join)
def test_documented_evaluate_works_on_every_preset(name):
    """Every preset's policy object, as ``make_train`` builds it
    (:func:`policy_params` of the train state), evaluates by the documented
    call; the whole training path is checked on one normalising preset below
    (compiling every preset's training would cost minutes). One program
    computes the policy object alone (XLA drops the rest of the state)."""
    cfg = jaxpg.presets.get(*name)
    init = jaxpg.make_algorithm(cfg).init

    @jax.jit
    def policy_object(key):
        state = init(key)
        obs = state.obs.reshape(-1, *state.obs.shape[1:])
        state = state.replace(obs_norm=state.obs_norm.update(2.0 * obs + 1.0))
        return policy_params(cfg, state)

    params = policy_object(jax.random.key(0))
    key = jax.random.key(1)
    rets = jaxpg.evaluate(cfg, params, key, num_episodes=3)
    assert rets.shape == (3,) and np.all(np.isfinite(rets))
    assert ("obs_norm" in params) == cfg.normalise_obs


def test_training_returns_a_policy_that_evaluates():
    cfg = _short(jaxpg.presets.get("CartPole-v1", "reinforce"))
    assert cfg.normalise_obs
    out = jax.jit(jaxpg.make_train(cfg))(jax.random.key(0))
    key = jax.random.key(1)
    rets = jaxpg.evaluate(cfg, out.params, key, num_episodes=3)
    assert rets.shape == (3,) and np.all(np.isfinite(rets))
    np.testing.assert_array_equal(jaxpg.evaluate(cfg, out, key, num_episodes=3), rets)
    assert "obs_norm" in out.params
    # The carried statistics are the train state's, and they are used:
    # the same parameters on raw observations act differently.
    np.testing.assert_array_equal(out.params["obs_norm"].mean, out.state.obs_norm.mean)
    spec = jaxpg.envs.env_spec(*jaxpg.envs.make_env(cfg.env))
    policy = jaxpg.algorithms.base.policy_for(cfg, spec)
    obs = 3.0 * jax.random.normal(jax.random.key(2), (8, *spec.obs_shape))
    bare = {k: v for k, v in out.params.items() if k != "obs_norm"}
    carried, raw = policy.apply(out.params, obs), policy.apply(bare, obs)
    normalised = policy.apply(bare, out.state.obs_norm.normalise(obs))
    np.testing.assert_array_equal(carried.mode(), normalised.mode())
    assert not np.allclose(np.asarray(carried.log_prob(carried.mode())),
                           np.asarray(raw.log_prob(carried.mode())))  # fmt: skip


def test_policy_objects_of_many_seeds_evaluate_under_vmap():
    cfg = jaxpg.presets.get("Pendulum-v1", "ppo")
    keys = jax.random.split(jax.random.key(3), 2)
    init = jax.vmap(jaxpg.make_algorithm(cfg).init)
    # The policy objects of the [2] states, alone out of the program.
    params = jax.jit(lambda k: policy_params(cfg, init(k)))(keys)
    rets = jax.vmap(lambda p, k: jaxpg.evaluate(cfg, p, k, num_episodes=2))(
        params, keys
    )
    assert rets.shape == (2, 2) and np.all(np.isfinite(rets))
    one = jaxpg.evaluate(
        cfg, jax.tree.map(lambda x: x[1], params), keys[1], num_episodes=2
    )
    np.testing.assert_allclose(rets[1], one, rtol=1e-5)


def test_a_saved_run_of_a_users_torso_loads_with_that_torso(tmp_path):
    """A run directory trained with ``policy_network=`` holds a policy that
    only that torso can act with: ``jaxpg.load_policy`` asks for it by name,
    refuses another torso, and with the same one returns parameters that
    evaluate exactly as the run's own result does."""
    pytest.importorskip("orbax.checkpoint")
    from jaxpg.drivers.runner import run

    cfg = _short(jaxpg.presets.get("CartPole-v1", "reinforce")).replace(num_envs=4)
    torso = jaxpg.networks.MLPTorso(hidden=(8,))
    out = tmp_path / "run"
    res = run(cfg, 2, checkpoint_dir=out, policy_network=torso, progress=False)
    with pytest.raises(ValueError, match=r"custom parts \(policy_network\)"):
        jaxpg.load_policy(out)
    with pytest.raises(ValueError, match=r"policy_network=.* is not the part"):
        jaxpg.load_policy(out, policy_network=jaxpg.networks.MLPTorso(hidden=(4,)))
    with pytest.raises(ValueError, match=r"optimizer=.* is not the part"):
        jaxpg.load_policy(out, policy_network=torso, optimizer=optax.sgd(0.1))
    loaded_cfg, _, params, what = jaxpg.load_policy(out, policy_network=torso)
    assert loaded_cfg == cfg and what == "final parameters"
    key = jax.random.key(1)
    seed1 = [jax.tree.map(lambda x: x[1], p) for p in (params, res.params)]
    rets = [jaxpg.evaluate(cfg, p, key, 3, policy_network=torso) for p in seed1]
    np.testing.assert_array_equal(rets[0], rets[1])
