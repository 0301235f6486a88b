"""Subprocess worker for tests/sequence/test_sequence_devices.py: 2 CPU devices.

    python tests/helpers/sequence_devices_worker.py OUT_DIR

Token-policy RL with each update's prompts laid over the 2 devices
(``batch_sharding=data_parallel()``) against the same program on one device;
writes OUT_DIR/report.json.
"""

from __future__ import annotations

import dataclasses
import json
import sys
from pathlib import Path

import jax

jax.config.update("jax_num_cpu_devices", 2)

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
    o1, o2 = train1(key, params, ref), train2(key, params, ref)
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
    hlo = train2.lower(key, params, ref).compile().as_text()
    report["all_reduce_in_program"] = "all-reduce" in hlo

    # jaxpg lm: 2 seeds laid over the 2 devices, against the first device.
    chunk_cfg = dataclasses.replace(rl_cfg, num_updates=2)
    runs = [
        seeds.train_seeds(task, cfg, chunk_cfg, params, 2, 2, None, devices=d)
        for d in (jax.devices()[:1], None)
    ]
    report["cli_seed_devices"] = [
        len(jax.tree.leaves(r[1])[0].sharding.device_set) for r in runs
    ]
    report["cli_metrics_max_diff"] = {
        name: float(np.max(np.abs(v - runs[1][0][name])))
        for name, v in runs[0][0].items()
    }

    try:
        uneven = dataclasses.replace(rl_cfg, num_prompts=3)
        rl.make_rl(task, cfg, uneven, batch_sharding=dp)
        report["uneven_error"] = None
    except ValueError as e:
        report["uneven_error"] = str(e)
    (out / "report.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main(Path(sys.argv[1]))
