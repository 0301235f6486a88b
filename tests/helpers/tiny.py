"""The suite's smallest training runs, shared by the tests of every layer:
CartPole-v1 with 4 envs × 8 steps per update and an 8-wide torso, in Python
(:func:`config`) and on the command line (:func:`train_args`). Tests that
share a setting also share its compiled programs through the suite's
compilation cache."""

from __future__ import annotations

import jaxpg

NUM_ENVS, ROLLOUT_STEPS, HIDDEN = 4, 8, 8


def config(algo: str = "reinforce", updates: int = 3, **changes) -> jaxpg.Config:
    """``updates`` updates of ``algo`` on CartPole-v1 (``changes``: other
    fields)."""
    return jaxpg.Config(
        env="CartPole-v1",
        algo=algo,
        num_envs=NUM_ENVS,
        rollout_steps=ROLLOUT_STEPS,
        total_steps=NUM_ENVS * ROLLOUT_STEPS * updates,
        hidden=(HIDDEN,),
        **changes,
    )


def train_args(seeds: int = 2, updates: int = 6, *extra: str) -> list[str]:
    """``jaxpg train`` options of :func:`config`'s run: ``seeds`` seeds,
    ``updates`` updates, then ``extra``."""
    steps = NUM_ENVS * ROLLOUT_STEPS * updates
    return [
        "--seeds", str(seeds), "--num-envs", str(NUM_ENVS),
        "--rollout-steps", str(ROLLOUT_STEPS), "--steps", str(steps),
        "--hidden", str(HIDDEN), *extra,
    ]  # fmt: skip
