"""What training returns is enough to act and to evaluate: the documented
``jaxpg.evaluate(cfg, out.params, key, num_episodes=...)`` works on every
preset (normalising ones included, whose parameters carry their observation
statistics), and on the ``TrainOutput`` itself."""

from __future__ import annotations

import jax
import numpy as np
import pytest

import jaxpg


def _short(cfg: jaxpg.Config) -> jaxpg.Config:
    """The preset with a budget of two updates (everything else unchanged)."""
    per_update = cfg.total_steps // cfg.num_updates
    return cfg.replace(total_steps=2 * per_update)


@pytest.mark.parametrize("name", jaxpg.presets.names(), ids="/".join)
def test_documented_evaluate_works_on_every_preset(name):
    cfg = _short(jaxpg.presets.get(*name))
    out = jax.jit(jaxpg.make_train(cfg))(jax.random.key(0))
    key = jax.random.key(1)
    rets = jaxpg.evaluate(cfg, out.params, key, num_episodes=3)
    assert rets.shape == (3,) and np.all(np.isfinite(rets))
    np.testing.assert_array_equal(jaxpg.evaluate(cfg, out, key, num_episodes=3), rets)
    assert ("obs_norm" in out.params) == cfg.normalise_obs
    if cfg.normalise_obs:
        # The carried statistics are the train state's, and they are used:
        # the same parameters on raw observations act differently.
        np.testing.assert_array_equal(
            out.params["obs_norm"].mean, out.state.obs_norm.mean
        )
        spec = jaxpg.envs.env_spec(*jaxpg.envs.make_env(cfg.env))
        policy = jaxpg.algorithms.base.policy_for(cfg, spec)
        obs = 3.0 * jax.random.normal(jax.random.key(2), (8, *spec.obs_shape))
        bare = {k: v for k, v in out.params.items() if k != "obs_norm"}
        carried, raw = policy.apply(out.params, obs), policy.apply(bare, obs)
        normalised = policy.apply(bare, out.state.obs_norm.normalise(obs))
        np.testing.assert_array_equal(carried.mode(), normalised.mode())
        assert not np.allclose(np.asarray(carried.log_prob(carried.mode())),
                               np.asarray(raw.log_prob(carried.mode())))  # fmt: skip


def test_train_seeds_params_evaluate_under_vmap():
    cfg = _short(jaxpg.presets.get("Pendulum-v1", "ppo"))
    outs = jaxpg.train_seeds(cfg, num_seeds=2)
    keys = jax.random.split(jax.random.key(3), 2)
    rets = jax.vmap(lambda p, k: jaxpg.evaluate(cfg, p, k, num_episodes=2))(
        outs.params, keys
    )
    assert rets.shape == (2, 2) and np.all(np.isfinite(rets))
    one = jaxpg.evaluate(
        cfg, jax.tree.map(lambda x: x[1], outs.params), keys[1], num_episodes=2
    )
    np.testing.assert_allclose(rets[1], one, rtol=1e-5)
