"""Memory benchmark: recurrent against feed-forward policies on
``MemoryChain-bsuite`` (gymnax; the cue is shown at the first step only, the
reward of +1 / -1 comes at the last, so a memoryless policy scores 0 on
average and the optimum is 1).

For each algorithm (``reinforce``, ``ppo``) it trains ``--seeds`` seeds with a
GRU policy (and GRU critic) and with jaxpg's MLP, at the same budget, and
records per seed the mean training ``episode_return`` over the last 10% of the
updates and whether it is solved (>= ``--threshold``), plus compile and run
time of both (one process: read the ratio, not the absolute numbers, on a
shared CPU). Seeds start at ``--first-seed`` (use seeds you did not tune on).

Output: ``benchmarks/results/memory_<platform>.json``.

    python benchmarks/memory.py                       # 16 seeds, defaults
    python benchmarks/memory.py --seeds 2 --total-steps 20000   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg

RESULTS = Path(__file__).resolve().parent / "results"


def configs(total_steps: int) -> dict[str, jaxpg.Config]:
    """The budgets and hyperparameters of both algorithms (the same for the
    GRU and the MLP)."""
    common = dict(env="MemoryChain-bsuite", max_episode_steps=8, gamma=0.99)
    return {
        "reinforce": jaxpg.Config(
            algo="reinforce",
            num_envs=32,
            rollout_steps=8,
            lr=3e-3,
            baseline="loo",
            total_steps=total_steps,
            **common,
        ),
        "ppo": jaxpg.Config(
            algo="ppo",
            num_envs=32,
            rollout_steps=16,
            num_minibatches=4,
            num_epochs=4,
            lr=1e-3,
            ent_coef=0.01,
            total_steps=total_steps,
            **common,
        ),
    }


def run(cfg: jaxpg.Config, torso, seeds: np.ndarray) -> dict:
    kw = {}
    if torso is not None:
        kw = dict(policy_network=torso, critic_network=torso)
    train = jax.jit(jax.vmap(jaxpg.make_train(cfg, **kw)))
    keys = jax.vmap(jax.random.key)(jnp.asarray(seeds))
    start = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - start
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    rets = np.asarray(out.metrics["episode_return"])
    tail = max(1, rets.shape[1] // 10)
    final = np.nanmean(rets[:, -tail:], axis=1)
    steps = float(np.asarray(out.metrics["env_steps"])[:, -1].sum())
    return {
        "final_return": final.round(4).tolist(),
        "compile_s": round(compile_s, 2),
        "run_s": round(run_s, 2),
        "env_steps_per_s": round(steps / run_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--total-steps", type=int, default=150_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--algos", default="reinforce,ppo")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    seeds = np.arange(args.first_seed, args.first_seed + args.seeds)
    gru = jaxpg.networks.GRUTorso(hidden_size=args.hidden, encoder=(args.hidden,))
    rows = {}
    for algo, cfg in configs(args.total_steps).items():
        if algo not in args.algos.split(","):
            continue
        for name, torso in [("gru", gru), ("mlp", None)]:
            row = run(cfg, torso, seeds)
            row["solved"] = int(np.sum(np.array(row["final_return"]) >= args.threshold))
            rows[f"{algo}/{name}"] = row
            print(algo, name, row, flush=True)
    record = {
        "env": "MemoryChain-bsuite",
        "seeds": seeds.tolist(),
        "total_steps": args.total_steps,
        "hidden": args.hidden,
        "threshold": args.threshold,
        "platform": jax.default_backend(),
        "rows": rows,
    }
    out = args.out or RESULTS / f"memory_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
