"""Memory benchmark: recurrent against feed-forward policies on
``MemoryChain-bsuite`` (gymnax; the cue is shown at the first step only, the
reward of +1 / -1 comes at the last, so a memoryless policy scores 0 on
average and the optimum is 1).

For each algorithm (``reinforce``: the ``MemoryChain-bsuite`` preset;
``ppo``) it trains ``--seeds`` seeds with a GRU policy (and GRU critic,
``Config.torso="gru"``, ``--hidden`` units after a ``--hidden``-wide encoder)
and with jaxpg's MLP (``torso="mlp"``, two layers of ``--hidden``), at the
same budget, and records per seed the mean training ``episode_return`` over
the last 10% of the updates and whether it is solved (>= ``--threshold``),
plus compile and run time of both (one process: read the ratio, not the
absolute numbers, and not at all on a shared CPU). Seeds start at
``--first-seed`` (use seeds you did not tune on: the settings were set in
development, with a run on seeds 100-115; the seeds of earlier trials are not
recorded).

Output: ``benchmarks/results/memory_<platform>.json`` and ``.md`` (or
``--out FILE.json`` and ``FILE.md``).

    python benchmarks/memory.py                        # 16 held-out seeds, 200-215
    python benchmarks/memory.py --seeds 2 --total-steps 20000   # a smoke run
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg.experiment import rundir

RESULTS = Path(__file__).resolve().parent / "results"


def configs(total_steps: int, hidden: int) -> dict[str, jaxpg.Config]:
    """The GRU configs of both algorithms (the MLP arm replaces the torso):
    REINFORCE is the preset."""
    gru = dict(torso="gru", hidden=(hidden,), recurrent_size=hidden)
    return {
        "reinforce": jaxpg.presets.get("MemoryChain-bsuite", "reinforce").replace(
            total_steps=total_steps, **gru
        ),
        "ppo": jaxpg.Config(
            env="MemoryChain-bsuite",
            algo="ppo",
            max_episode_steps=8,
            gamma=0.99,
            num_envs=32,
            rollout_steps=16,
            num_minibatches=4,
            num_epochs=4,
            lr=1e-3,
            ent_coef=0.01,
            total_steps=total_steps,
            **gru,
        ),
    }


def run(cfg: jaxpg.Config, seeds: np.ndarray) -> dict:
    train = jax.jit(jax.vmap(jaxpg.make_train(cfg)))
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
        "mean": round(float(final.mean()), 4),
        "sem": round(float(final.std(ddof=1) / np.sqrt(len(final))), 4)
        if len(final) > 1
        else None,
        "env_steps_per_seed": steps / len(final),
        "compile_s": round(compile_s, 2),
        "run_s": round(run_s, 2),
        "env_steps_per_s": round(steps / run_s, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=200)
    parser.add_argument("--total-steps", type=int, default=150_000)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--algos", default="reinforce,ppo")
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--machine",
        default=f"{platform.machine()}, {jax.default_backend()}",
        help="what the record says it ran on",
    )
    args = parser.parse_args()
    seeds = np.arange(args.first_seed, args.first_seed + args.seeds)
    rows, settings = {}, {}
    for algo, cfg in configs(args.total_steps, args.hidden).items():
        if algo not in args.algos.split(","):
            continue
        mlp = cfg.replace(torso="mlp", hidden=(args.hidden, args.hidden))
        for name, arm in [("gru", cfg), ("mlp", mlp)]:
            row = run(arm, seeds)
            row["solved"] = int(np.sum(np.array(row["final_return"]) >= args.threshold))
            rows[f"{algo}/{name}"] = row
            settings[f"{algo}/{name}"] = rundir.config_to_dict(arm)
            print(algo, name, row, flush=True)
            write(args, seeds, rows, settings)  # each arm as it finishes


def write(args: argparse.Namespace, seeds: np.ndarray, rows: dict, settings: dict):
    """Write the record of the arms done so far (JSON and Markdown)."""
    record = {
        "env": "MemoryChain-bsuite",
        "seeds": seeds.tolist(),
        "total_steps": args.total_steps,
        "hidden": args.hidden,
        "threshold": args.threshold,
        "score": "mean training episode_return over the last 10% of updates "
        "(sampled actions)",
        "platform": jax.default_backend(),
        "machine": args.machine,
        "jax": jax.__version__,
        "rows": rows,
        "configs": settings,
    }
    out = args.out or RESULTS / f"memory_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    out.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def markdown(record: dict) -> str:
    """The record as a table: solved count, mean ± s.e. and worst seed per
    arm."""
    seeds = record["seeds"]
    lines = [
        "# Memory: GRU against MLP on MemoryChain-bsuite",
        "",
        f"Machine: {record['machine']}; jax {record['jax']}. Seeds "
        f"{seeds[0]}-{seeds[-1]} ({len(seeds)}), {record['total_steps']:,} env "
        f"steps per seed. Score per seed: {record['score']}; solved: score >= "
        f"{record['threshold']} (optimum 1, a memoryless policy 0 on average). "
        "Mean ± standard error over seeds. Configs in the JSON record.",
        "",
        "| algo | torso | solved | mean ± s.e. | worst seed |",
        "|---|---|---|---|---|",
    ]
    for name, row in record["rows"].items():
        algo, torso = name.split("/")
        sem = "" if row["sem"] is None else f" ± {row['sem']:.3f}"
        lines.append(
            f"| {algo} | {torso} | {row['solved']}/{len(seeds)} | "
            f"{row['mean']:.3f}{sem} | {min(row['final_return']):.3f} |"
        )
    lines += [
        "",
        "The JSON's compile_s, run_s and env_steps_per_s are wall times on "
        "that machine as it was: on a shared one they are not measurements.",
    ]
    if record.get("note"):
        lines += ["", record["note"]]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
