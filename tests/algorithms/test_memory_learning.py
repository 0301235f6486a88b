"""Learning with memory (:mod:`jaxpg.recurrent`), on the two-step tasks of
``memory_envs`` (step 1 pays 1 for naming the target cue; step 0 pays
``R0``, worth at most 0.115 on average):

* ``CueRecall``: a GRU policy trained with REINFORCE reaches the optimum
  1.115 (a memoryless policy's best is 0.615);
* ``CueRecall(previous=True)``, whose target is the previous episode's cue:
  a correct recurrent policy, whose carry is reset at every episode start,
  cannot beat the memoryless 0.615; a carry leaking across episodes could
  reach 1.115.

Budgets: 2 seeds, 16 envs, about 2 episodes per env per update.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from memory_envs import CueRecall

import jaxpg

MEMORYLESS_BEST = 0.5 + 0.1149  # 0.5 on step 1, mean_c max_a R0[c, a]
OPTIMUM = 1.0 + 0.1149


def _train(previous: bool, num_updates: int):
    cfg = jaxpg.Config(
        env="custom",
        algo="reinforce",
        num_envs=16,
        rollout_steps=4,
        total_steps=16 * 4 * num_updates,
        gamma=1.0,
        lr=3e-2,
        baseline="loo",
    )
    train = jaxpg.make_train(
        cfg,
        env=CueRecall(previous=previous),
        policy_network=jaxpg.networks.GRUTorso(hidden_size=8),
    )
    keys = jax.vmap(jax.random.key)(jnp.arange(2))
    out = jax.jit(jax.vmap(train))(keys)
    return cfg, out


@pytest.fixture(scope="module")
def recall():
    return _train(previous=False, num_updates=150)


def test_gru_reinforce_solves_cue_recall(recall):
    """Both seeds within 0.1 of the optimum over their last 10 updates (each
    about 320 episodes: the standard error of that mean is below 0.03)."""
    _, out = recall
    last = np.asarray(out.metrics["episode_return"])[:, -10:].mean(1)
    assert np.all(last > OPTIMUM - 0.1), last


def test_evaluate_runs_the_carry(recall):
    """``jaxpg.evaluate`` of the trained GRU (the carry run from each episode's
    start) scores near the optimum; 256 greedy episodes per seed."""
    cfg, out = recall
    params = jax.tree.map(lambda x: x[0], out.params)
    rets = jaxpg.evaluate(
        cfg,
        params,
        jax.random.key(5),
        256,
        deterministic=True,
        env=CueRecall(),
        policy_network=jaxpg.networks.GRUTorso(hidden_size=8),
    )
    assert float(jnp.mean(rets)) > OPTIMUM - 0.1


def test_carry_does_not_leak_across_episodes():
    """On the previous-cue task the mean return of the last 100 of 250
    updates (about 6400 episodes per seed) stays below the memoryless best
    plus 4 standard errors (per-episode sd <= 0.6)."""
    _, out = _train(previous=True, num_updates=250)
    rets = np.asarray(out.metrics["episode_return"])[:, -100:]
    counts = np.asarray(out.metrics["num_episodes"])[:, -100:]
    mean = (rets * counts).sum(1) / counts.sum(1)
    se = 0.6 / np.sqrt(counts.sum(1))
    assert np.all(mean < MEMORYLESS_BEST + 4 * se), (mean, se)
