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
