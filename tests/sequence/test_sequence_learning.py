"""Learning checks: RL raises exact-match accuracy above the SFT reference on
the sort task; the KL penalty keeps the policy near the reference; on the
proxy task the reward-hacking flag fires without a KL penalty and not with
one. (The add task's run, 3x the sort run's cost, is a benchmark now:
``jaxpg lm --task add`` and docs/llm.md.)

CPU budget: a 2-layer width-32 transformer, 2 seeds x 16 prompts x 4 samples
per update. Accuracies are means over 2 seeds x 512 fresh prompts (binomial
standard error <= 0.016 per mean), so the margins asserted below (>= 0.15) are
> 9 standard errors. Numbers seen are in docs/llm.md. Both checks compile as
the suite does (no LLVM passes): float rounding gives them trajectories other
than those of the settings' tuning, compiled as users compile (sort: 0.802
there, 0.778 here).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.sequence import model, rl, sft, tasks

pytestmark = pytest.mark.slow

SEEDS = 2


def _model_cfg(task):
    return model.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=32, num_layers=2, num_heads=2,
        max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip


def _run(task, sft_steps, rl_cfg, betas=None):
    """SFT reference, RL over seeds (and betas), fresh-prompt evaluations."""
    cfg = _model_cfg(task)
    ref = jax.jit(sft.make_sft(task, cfg, num_steps=sft_steps, lr=3e-3))(
        jax.random.key(100)
    ).params
    train = rl.make_rl_train(task, cfg, rl_cfg)
    keys = jax.vmap(jax.random.key)(jnp.arange(SEEDS))
    betas = [rl_cfg.beta] if betas is None else betas
    hyper = rl.Hyperparams(
        jnp.array(betas, jnp.float32), jnp.full((len(betas),), rl_cfg.lr, jnp.float32)
    )
    evaluate = jax.vmap(lambda p: rl.evaluate(jax.random.key(7), p, task, cfg))

    @jax.jit
    def run(keys, ref, hyper):
        over_seeds = jax.vmap(train, in_axes=(0, None, None, None))
        out = jax.vmap(over_seeds, in_axes=(None, None, None, 0))(keys, ref, ref, hyper)
        finals = jax.vmap(evaluate)(out.params)  # [betas, seeds]
        return out.metrics, finals, rl.evaluate(jax.random.key(7), ref, task, cfg)

    metrics, finals, ref_eval = jax.device_get(run(keys, ref, hyper))
    return metrics, finals, ref_eval


SORT = dict(
    advantage="grpo", kl_placement="loss", kl_estimator="k3", beta=0.04, lr=2e-3,
    num_updates=150, num_prompts=16,
)  # fmt: skip
# Rewards: exact match (the tasks' default).


def test_rl_raises_accuracy_above_the_sft_reference():
    task = tasks.sort_task(3)
    rl_cfg = rl.RLConfig(group_size=4, aggregation="token_mean", **SORT)
    metrics, finals, ref_eval = _run(task, 40, rl_cfg)
    ref_acc = float(ref_eval["accuracy"])
    final_acc = float(np.mean(finals["accuracy"]))
    print(f"{task.name}: reference {ref_acc:.3f} -> RL {final_acc:.3f}")
    assert final_acc > ref_acc + 0.15
    # beta > 0: the exact KL to the reference levels off instead of growing.
    kl = metrics["kl_exact"][0].mean(axis=0)  # [U], mean over seeds
    thirds = [float(x.mean()) for x in np.split(kl, 3)]
    print(f"{task.name}: KL by thirds {thirds}")
    assert thirds[2] < 2.0 * thirds[1] + 0.5


def test_reward_hacking_flag_fires_without_kl_and_not_with_it():
    """80 updates: without a penalty both seeds are flagged at update 19, the
    first update a 10-update window can flag; the penalised seeds go four
    times as long unflagged (over 150 updates they stayed unflagged too,
    docs/llm.md)."""
    task = tasks.sort_proxy_task(3)
    rl_cfg = rl.RLConfig(
        num_prompts=16, group_size=4, num_updates=80, lr=3e-3, advantage="grpo",
        aggregation="token_mean", kl_placement="reward", kl_estimator="k1",
    )  # fmt: skip
    metrics, finals, _ = _run(task, 40, rl_cfg, betas=[0.0, 0.5])
    flags = rl.reward_hacking_flag(metrics["true_reward"], metrics["reward"], 10)
    first = np.where(flags.any(-1), flags.argmax(-1), -1)
    print(f"first flagged update [beta, seed]: {first.tolist()}")
    print(f"final accuracy [beta, seed]: {finals['accuracy'].tolist()}")
    assert flags[0].any(axis=-1).all()  # beta = 0: every seed hacks
    assert not flags[1].any()  # beta = 0.5: none does
    assert float(np.mean(finals["accuracy"][1])) > float(np.mean(finals["accuracy"][0]))
