"""Memory benchmark: recurrent against feed-forward policies on a memory task.

Tasks (``--task``): ``MemoryChain-bsuite`` (gymnax; the cue is shown at the
first step only, the reward of +1 / -1 comes at the last, so a memoryless
policy scores 0 on average and the optimum is 1) and ``RepeatFirst-jaxpg``
(:mod:`jaxpg.envs.repeat_first`: 4 cues, 8 steps, reward 1 at the last step for
naming the first step's cue; chance 0.25, optimum 1).

For each algorithm (``--algos``: ``reinforce``, ``ppo``) it trains ``--seeds``
seeds with the task's GRU preset (:mod:`jaxpg.presets`; GRU policy and, for
PPO, GRU critic) and with jaxpg's MLP in its place (``torso="mlp"``, two
layers as wide as the GRU), at the same budget, as one vmapped program per arm
(``--arms``), and records per seed the mean training ``episode_return`` over
the last 10% of the updates and whether it is solved (>= ``--threshold``),
plus compile and run time (one process: read the ratio, not the absolute
numbers, and not at all on a shared CPU). ``--set FIELD=VALUE`` changes a
Config field of every arm (a search), recorded with the result; ``--role``
records whether the seeds were a search set (settings chosen on them) or
held out (never used to choose anything).

Seed sets used so far: 100-115 (development of the MemoryChain REINFORCE
preset), 200-215 (its first held-out check, which then served to diagnose
PPO's collapse), 300-315 (search: the PPO presets and the RepeatFirst
presets), 1000-1015 (held out: the recorded results).

Output: ``benchmarks/results/memory_<platform>.json`` and ``.md`` (or
``--out FILE.json`` and ``FILE.md``), one entry per task, merged into what the
file holds.

    python benchmarks/memory.py --task MemoryChain-bsuite   # held out, 1000-1015
    python benchmarks/memory.py --task RepeatFirst-jaxpg
    python benchmarks/memory.py --seeds 2 --total-steps 20000 --out m.json
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


TASKS = ("MemoryChain-bsuite", "RepeatFirst-jaxpg")


def configs(task: str, total_steps: int | None) -> dict[str, jaxpg.Config]:
    """The GRU presets of both algorithms on ``task`` (the MLP arm replaces
    the torso), at ``total_steps`` (``None``: the presets' budget)."""
    out = {}
    for algo in ("reinforce", "ppo"):
        cfg = jaxpg.presets.get(task, algo)
        out[algo] = cfg if total_steps is None else cfg.replace(total_steps=total_steps)
    return out


def overrides(items: list[str]) -> dict:
    """``["max_grad_norm=0.5", "anneal_lr=true"]`` -> Config fields (values
    read as JSON where they parse, else as strings)."""
    fields = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep:
            raise SystemExit(f"--set {item!r}: expected FIELD=VALUE")
        try:
            fields[name] = json.loads(value)
        except json.JSONDecodeError:
            fields[name] = value
    return fields


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


CHANCE = {"MemoryChain-bsuite": 0.0, "RepeatFirst-jaxpg": 0.25}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--task", default="MemoryChain-bsuite", choices=TASKS)
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--first-seed", type=int, default=1000)
    parser.add_argument(
        "--total-steps", type=int, default=None, help="default: the presets'"
    )
    parser.add_argument("--threshold", type=float, default=0.9)
    parser.add_argument("--algos", default="reinforce,ppo")
    parser.add_argument(
        "--arms", default="gru,mlp", help="torsos to train: gru, mlp or both"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="override a Config field of every arm (a search), e.g. "
        "max_grad_norm=0.5; repeatable",
    )
    parser.add_argument(
        "--role",
        default="held-out",
        help="what these seeds are, recorded: held-out (never used to choose "
        "settings) or search",
    )
    parser.add_argument("--out", type=Path, default=None)
    parser.add_argument(
        "--machine",
        default=f"{platform.machine()}, {jax.default_backend()}",
        help="what the record says it ran on",
    )
    args = parser.parse_args()
    seeds = np.arange(args.first_seed, args.first_seed + args.seeds)
    fields = overrides(args.set)
    rows, settings = {}, {}
    for algo, cfg in configs(args.task, args.total_steps).items():
        if algo not in args.algos.split(","):
            continue
        cfg = cfg.replace(**fields)
        width = cfg.recurrent_size
        mlp = cfg.replace(torso="mlp", hidden=(width, width))
        for name, arm in [("gru", cfg), ("mlp", mlp)]:
            if name not in args.arms.split(","):
                continue
            row = run(arm, seeds)
            row["solved"] = int(np.sum(np.array(row["final_return"]) >= args.threshold))
            rows[f"{algo}/{name}"] = row
            settings[f"{algo}/{name}"] = rundir.config_to_dict(arm)
            print(args.task, algo, name, row, flush=True)
            write(args, seeds, fields, rows, settings)  # each arm as it finishes


def write(
    args: argparse.Namespace,
    seeds: np.ndarray,
    fields: dict,
    rows: dict,
    settings: dict,
) -> None:
    """Merge this task's record of the arms done so far into the JSON file
    (one entry per task) and rewrite its Markdown."""
    out = args.out or RESULTS / f"memory_{jax.default_backend()}.json"
    previous = json.loads(out.read_text()) if out.exists() else {}
    tasks = previous.get("tasks", {})
    old = tasks.get(args.task, {})
    if old.get("seeds") == seeds.tolist() and old.get("overrides") == fields:
        rows = {**old.get("rows", {}), **rows}  # another process's arms
        settings = {**old.get("configs", {}), **settings}
    tasks[args.task] = {
        "seeds": seeds.tolist(),
        "seed_role": args.role,
        "overrides": fields,
        "threshold": args.threshold,
        "chance": CHANCE[args.task],
        "score": "mean training episode_return over the last 10% of updates "
        "(sampled actions)",
        "platform": jax.default_backend(),
        "machine": args.machine,
        "jax": jax.__version__,
        "rows": rows,
        "configs": settings,
    }
    record = {"tasks": tasks, "notes": previous.get("notes", [])}
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    out.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {out} and {out.with_suffix('.md')}")


def markdown(record: dict) -> str:
    """The record as one table per task: solved count, mean ± s.e. and worst
    seed per arm."""
    lines = ["# Memory: GRU against MLP", ""]
    for task, rec in record["tasks"].items():
        seeds = rec["seeds"]
        changed = "".join(f", {k}={v}" for k, v in rec["overrides"].items())
        lines += [
            f"## {task}",
            "",
            f"Machine: {rec['machine']}; jax {rec['jax']}. Seeds "
            f"{seeds[0]}-{seeds[-1]} ({len(seeds)}, {rec['seed_role']}); the "
            f"presets{changed}. Score per seed: {rec['score']}; solved: score >= "
            f"{rec['threshold']} (optimum 1, a memoryless policy "
            f"{rec['chance']} on average). Mean ± standard error over seeds. "
            "Configs in the JSON record.",
            "",
            "| algo | torso | env steps per seed | solved | mean ± s.e. | worst seed |",
            "|---|---|---|---|---|---|",
        ]
        for name, row in rec["rows"].items():
            algo, torso = name.split("/")
            sem = "" if row["sem"] is None else f" ± {row['sem']:.3f}"
            lines.append(
                f"| {algo} | {torso} | {row['env_steps_per_seed']:,.0f} | "
                f"{row['solved']}/{len(seeds)} | "
                f"{row['mean']:.3f}{sem} | {min(row['final_return']):.3f} |"
            )
        lines.append("")
    lines += [
        "The JSON's compile_s, run_s and env_steps_per_s are wall times on "
        "that machine as it was: on a shared one they are not measurements.",
    ]
    for note in record.get("notes", []):
        lines += ["", note]
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
