"""A user reward function that returns NaN in one seed's first update: what
tests of the token side's non-finite guard inject."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.sequence import tasks


def nan_reward(task: tasks.Task, num_prompts: int, group_size: int, seed: int):
    """``task.reward``, but NaN on the prompt batch of ``seed``'s first update
    (its key split as :func:`jaxpg.sequence.rl.make_rl`'s update splits it:
    ``key -> (key, batch key)``, ``batch key -> (prompt key, sample key)``).
    Other batches (other seeds, later updates, evaluation's prompts) get the
    task's reward."""
    _, batch_key = jax.random.split(jax.random.key(seed))
    prompt_key, _ = jax.random.split(batch_key)
    bad = np.repeat(
        np.asarray(task.sample_prompts(prompt_key, num_prompts)), group_size, axis=0
    )

    def reward(prompts, responses, mask):
        base = task.reward(prompts, responses, mask)
        if prompts.shape != bad.shape:  # static: another batch size
            return base
        return jnp.where(jnp.all(prompts == bad), jnp.nan, base)

    return reward


def poisoned(task: tasks.Task, num_prompts: int, group_size: int, seed: int):
    """``task`` optimised on :func:`nan_reward` (its true reward kept)."""
    return tasks.with_reward(
        task, nan_reward(task, num_prompts, group_size, seed), proxy=True
    )
