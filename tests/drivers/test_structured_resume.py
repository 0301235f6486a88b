"""A run on dict observations (with an action mask and observation
normalisation per float leaf) checkpoints its whole state, observations and
statistics included, and an interrupted run resumes bit-identically."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from masked_envs import MaskedTargets
from trees import raw_leaves

import jaxpg
from jaxpg.drivers.runner import run

pytest.importorskip("orbax.checkpoint")

ENV = MaskedTargets((4,))
CFG = jaxpg.Config(
    env="custom",
    algo="ppo",
    num_envs=4,
    rollout_steps=8,
    total_steps=4 * 8 * 4,
    num_minibatches=2,
    num_epochs=1,
    hidden=(8,),
    normalise_obs=True,
    critic_obs=("secret", "target"),
)


def _stop(info):
    return True


def test_dict_observation_run_resumes_bit_identically(tmp_path):
    full = run(
        CFG, 2, env=ENV, chunk_updates=2, progress=False,
        checkpoint_dir=tmp_path / "full", checkpoint_every=2,
    )  # fmt: skip
    cut = run(
        CFG, 2, env=ENV, chunk_updates=2, progress=False,
        checkpoint_dir=tmp_path / "cut", checkpoint_every=2, callback=_stop,
    )  # fmt: skip
    assert cut.interrupted and cut.updates_done == 2
    resumed = run(
        CFG, 2, env=ENV, progress=False, checkpoint_dir=tmp_path / "cut", resume=True
    )
    assert resumed.updates_done == 4
    # The state holds dict observations and per-leaf statistics.
    assert set(full.state.obs) == {"action_mask", "secret", "target"}
    assert sorted(full.state.obs_norm.mean) == ["secret", "target"]
    a, b = raw_leaves(full.state), raw_leaves(resumed.state)
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        assert x.dtype == y.dtype and x.shape == y.shape
        np.testing.assert_array_equal(x, y)
    for name in full.metrics:
        np.testing.assert_array_equal(full.metrics[name], resumed.metrics[name])
    assert jax.tree.structure(full.state) == jax.tree.structure(resumed.state)


def mask_of(obs):
    """The environment's own mask, given as a part (recorded by import path)."""
    return obs["action_mask"]


def test_views_and_mask_given_as_parts_are_recorded_and_needed_again(
    tmp_path, monkeypatch
):
    """``critic_obs`` and ``action_mask_fn`` given to the runner as keywords
    (not in the config) reach the algorithm it trains and the evaluation it
    reports, are recorded in its directory, and a resume or a load needs the
    same ones: with them it goes on, without them or with others it is
    refused by name."""
    import jaxpg.drivers.report as report
    import jaxpg.drivers.runoptions as runoptions

    built, evaluated = [], []
    make_algorithm, evaluate_seeds = runoptions.make_algorithm, report.evaluate_seeds

    def spy_make_algorithm(*args, **kwargs):
        built.append(kwargs)
        return make_algorithm(*args, **kwargs)

    def spy_evaluate_seeds(*args, parts=None, **kwargs):
        evaluated.append(parts)
        return evaluate_seeds(*args, parts=parts, **kwargs)

    monkeypatch.setattr(runoptions, "make_algorithm", spy_make_algorithm)
    monkeypatch.setattr(report, "evaluate_seeds", spy_evaluate_seeds)
    cfg = CFG.replace(critic_obs=None, total_steps=4 * 8 * 2)
    parts = dict(env=ENV, critic_obs=("secret", "target"), action_mask_fn=mask_of)
    out = tmp_path / "run"
    done = run(cfg, 2, progress=False, checkpoint_dir=out, eval_episodes=3, **parts)
    assert done.summary is not None and len(done.summary["eval"]["mean_per_seed"]) == 2
    assert built and all(
        k["critic_obs"] == ("secret", "target") and k["action_mask_fn"] is mask_of
        for k in built
    )
    assert evaluated == [{"env": ENV, "env_params": None, "policy_network": None,
                          "policy_obs": None, "action_mask_fn": mask_of}]  # fmt: skip
    custom = jaxpg.experiment.rundir.load_run(out)[1]["custom"]
    assert custom["critic_obs"] == "('secret', 'target')"
    assert custom["action_mask_fn"].endswith(":mask_of")
    with pytest.raises(jaxpg.experiment.rundir.RunDirError, match="critic_obs"):
        run(cfg, 2, progress=False, checkpoint_dir=out, resume=True,
            **{**parts, "critic_obs": ("target",)})  # fmt: skip
    again = run(cfg, 2, progress=False, checkpoint_dir=out, resume=True, **parts)
    assert again.updates_done == cfg.num_updates and not again.interrupted
    with pytest.raises(ValueError, match="action_mask_fn"):
        jaxpg.load_policy(out, env=ENV, critic_obs=("secret", "target"))
    loaded_cfg, _, params, what = jaxpg.load_policy(out, **parts)
    assert loaded_cfg == cfg and what == "final parameters"
    np.testing.assert_array_equal(
        jax.tree.leaves(params)[0], jax.tree.leaves(done.params)[0]
    )
