"""Subprocess worker for tests/sequence/test_sequence_devices.py: 2 CPU devices.

    python tests/helpers/sequence_devices_worker.py OUT_DIR

Token-policy RL with each update's prompts laid over the 2 devices
(``batch_sharding=data_parallel()``) against the same program on one device;
``jaxpg lm``'s seed runner with 3 seeds over the 2 devices against one device,
a NaN reward in one seed; writes OUT_DIR/report.json.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_num_cpu_devices", 2)

import nan_rewards  # noqa: E402  (beside this file)
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jaxpg.sequence import model, rl, seeds, tasks  # noqa: E402


def main(out: Path) -> None:
    task = tasks.sort_task(3)
    cfg = model.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=16, num_layers=1, num_heads=2,
        max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip
    params = model.init(jax.random.key(0), cfg)
    ref = model.init(jax.random.key(1), cfg)
    rl_cfg = rl.RLConfig(
        num_prompts=4, group_size=3, num_updates=3, advantage="grpo",
        aggregation="token_mean", kl_placement="loss", kl_estimator="k3",
        beta=0.1, lr=1e-2,
    )  # fmt: skip
    dp = rl.data_parallel()
    key = jax.random.key(3)
    report: dict = {"devices": len(jax.devices())}

    # The same draws, laid over both devices.
    one = jax.jit(lambda k: rl.make_batch(k, params, ref, task, cfg, rl_cfg))(key)
    two = jax.jit(
        lambda k: rl.make_batch(k, params, ref, task, cfg, rl_cfg, batch_sharding=dp)
    )(key)
    report["responses_equal"] = bool(
        np.array_equal(np.asarray(one.responses), np.asarray(two.responses))
    )
    report["responses_devices"] = len(two.responses.sharding.device_set)
    report["advantages_max_diff"] = float(
        np.max(np.abs(np.asarray(one.advantages) - np.asarray(two.advantages)))
    )

    # Gradients of the loss on that batch, and 3 SGD updates end to end (SGD:
    # Adam's first steps are sign-like and would magnify float rounding).
    def grad(batch):
        return jax.grad(lambda p: rl.loss_fn(p, batch, cfg, rl_cfg)[0])(params)

    g1, g2 = jax.jit(grad)(one), jax.jit(grad)(two)
    scale = max(float(np.max(np.abs(np.asarray(x)))) for x in jax.tree.leaves(g1))
    report["grad_max_diff_rel"] = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b)))) / scale
        for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g2), strict=True)
    )
    sgd = optax.sgd(rl_cfg.lr)
    train1 = jax.jit(rl.make_rl_train(task, cfg, rl_cfg, optimizer=sgd))
    train2 = jax.jit(
        rl.make_rl_train(task, cfg, rl_cfg, optimizer=sgd, batch_sharding=dp)
    )
    compiled2 = train2.lower(key, params, ref).compile()  # run and inspected
    o1, o2 = train1(key, params, ref), compiled2(key, params, ref)
    report["params_max_diff"] = max(
        float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
        for a, b in zip(
            jax.tree.leaves(o1.params), jax.tree.leaves(o2.params), strict=True
        )
    )
    report["metrics_max_diff"] = {
        name: float(np.max(np.abs(np.asarray(v) - np.asarray(o2.metrics[name]))))
        for name, v in o1.metrics.items()
    }
    report["all_reduce_in_program"] = "all-reduce" in compiled2.as_text()

    # jaxpg lm: 3 seeds over the 2 devices (padded to 4, the padding dropped),
    # against the first device; seed 1's first update gets a NaN reward.
    chunk_cfg = dataclasses.replace(rl_cfg, num_updates=2)
    poisoned = nan_rewards.poisoned(
        task, chunk_cfg.num_prompts, chunk_cfg.group_size, seed=1
    )
    runs = [
        seeds.train_seeds(poisoned, cfg, chunk_cfg, params, 3, 1, None, devices=d)
        for d in (jax.devices()[:1], None)
    ]
    report["cli_seed_devices"] = [r.devices for r in runs]
    report["cli_shapes"] = [list(r.metrics["reward"].shape) for r in runs]
    report["cli_nonfinite"] = [r.metrics["nonfinite"].tolist() for r in runs]
    report["cli_metrics_max_diff"] = {
        name: float(np.nanmax(np.abs(v - runs[1].metrics[name])))
        for name, v in runs[0].metrics.items()
    }
    report["cli_params_max_diff"] = _max_diff(runs[0].params, runs[1].params)
    # Without the guard, the NaN seed's parameters would all be NaN.
    report["cli_params_finite"] = [
        all(bool(np.isfinite(x).all()) for x in jax.tree.leaves(r.params)) for r in runs
    ]
    # The other seeds, bit for bit, against the same program without the NaN.
    clean = seeds.train_seeds(
        task, cfg, chunk_cfg, params, 3, 1, None, devices=jax.devices()[:1]
    )
    report["cli_clean_nonfinite"] = clean.metrics["nonfinite"].tolist()
    # jaxpg.sequence.train_seeds (one program, no chunks) lays the same 3
    # seeds over both devices: against the chunked run on one device.
    whole = rl.train_seeds(task, cfg, chunk_cfg, params, params, 3)
    report["py_devices"] = len(jax.tree.leaves(whole.params)[0].sharding.device_set)
    report["py_shapes"] = list(whole.metrics["reward"].shape)
    report["py_metrics_max_diff"] = {
        name: float(np.nanmax(np.abs(np.asarray(whole.metrics[name]) - v)))
        for name, v in clean.metrics.items()
    }
    report["py_params_max_diff"] = _max_diff(whole.params, clean.params)
    report["cli_others_identical"] = all(
        np.array_equal(clean.metrics[k][i], runs[0].metrics[k][i])
        for k in clean.metrics
        for i in (0, 2)
    ) and all(
        np.array_equal(a[i], b[i])
        for a, b in zip(
            jax.tree.leaves(clean.params), jax.tree.leaves(runs[0].params), strict=True
        )
        for i in (0, 2)
    )

    # ... and against each seed's run alone (one seed, one device).
    alone_identical = []
    for s in (0, 2):
        alone = seeds.train_seeds(
            task, cfg, chunk_cfg, params, 1, 1, None, devices=jax.devices()[:1],
            first_seed=s,
        )  # fmt: skip
        alone_identical.append(
            all(
                np.array_equal(alone.metrics[k][0], runs[0].metrics[k][s])
                for k in alone.metrics
            )
            and all(
                np.array_equal(a[0], b[s])
                for a, b in zip(
                    jax.tree.leaves(alone.params),
                    jax.tree.leaves(runs[0].params),
                    strict=True,
                )
            )
        )
    report["cli_others_identical_alone"] = alone_identical

    try:
        uneven = dataclasses.replace(rl_cfg, num_prompts=3)
        rl.make_rl(task, cfg, uneven, batch_sharding=dp)
        report["uneven_error"] = None
    except ValueError as e:
        report["uneven_error"] = str(e)
    (out / "report.json").write_text(json.dumps(report, indent=1))


def _max_diff(a, b) -> float:
    return max(
        float(np.max(np.abs(np.asarray(x) - np.asarray(y))))
        for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True)
    )


if __name__ == "__main__":
    import gc_tuning  # beside this file

    gc_tuning.tune()
    main(Path(sys.argv[1]))
