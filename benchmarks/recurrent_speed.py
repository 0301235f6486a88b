"""Training speed of recurrent policies against feed-forward ones, in one process.

For each algorithm (``--algos``, default ``reinforce,ppo``: the
``MemoryChain-bsuite`` GRU presets of :mod:`jaxpg.presets`), two arms at the
same batch (``--seeds`` x the preset's ``num_envs``, the same rollout length
and step budget ``--steps`` per seed):

* **gru**: the preset with ``recurrent_size=--width`` (a ``--width`` encoder,
  then a GRU of ``--width`` units; the critic the same, for PPO);
* **mlp**: the same config with ``torso="mlp"``, ``hidden=(width, width)``;
* **mlp_same_macs**: an MLP of seven ``--width`` layers, which does the GRU
  arm's multiply-adds per step (the encoder's, then six ``width x width``
  products: a GRU cell's three input and three recurrent ones), so that the
  ratio against it shows what the recurrence costs beyond its arithmetic.

MemoryChain's episodes have a fixed length (6 steps), so both arms collect the
same steps whatever they learn; REINFORCE's episode loop and PPO's windows do
the same work in both. Each arm's program is ``jax.jit(jax.vmap(make_train(cfg)))``
over the seeds' keys, lowered and compiled explicitly (compile time reported
apart); the compiled programs are then called in turns (``--repeats`` timed
rounds after one untimed one, :func:`throughput.time_interleaved`), so that
both see the same background load. Steps/s counts the env steps that fed the
gradient (``metrics["env_steps"][:, -1]`` summed over seeds) over the median
call; **ratio** = gru steps/s / mlp steps/s, with the range of the per-round
ratios; **ratio_same_macs** = gru / mlp_same_macs. On a shared machine read
only the ratios, and only from a quiet run.

Output: ``benchmarks/results/recurrent_speed_<platform>.json`` and ``.md``
(or ``--out FILE.json`` and ``FILE.md``).

    python benchmarks/recurrent_speed.py            # the recorded run
    python benchmarks/recurrent_speed.py --tiny --out rs.json  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import throughput  # noqa: E402

import jaxpg  # noqa: E402
from jaxpg.experiment import rundir  # noqa: E402

RESULTS = HERE / "results"
ENV = "MemoryChain-bsuite"


def arms(algo: str, width: int, steps: int, num_envs: int | None) -> dict:
    """``{"gru": cfg, "mlp": cfg, "mlp_same_macs": cfg}`` for ``algo`` at the
    same batch and budget."""
    cfg = jaxpg.presets.get(ENV, algo)
    fields = dict(total_steps=steps, recurrent_size=width, hidden=(width,))
    if num_envs is not None:
        fields["num_envs"] = num_envs
        if algo == "ppo":
            fields["num_minibatches"] = min(cfg.num_minibatches, num_envs)
    gru = cfg.replace(**fields)
    return {
        "gru": gru,
        "mlp": gru.replace(torso="mlp", hidden=(width, width)),
        "mlp_same_macs": gru.replace(torso="mlp", hidden=(width,) * 7),
    }


def measure(configs: dict, num_seeds: int, repeats: int) -> dict:
    """Compile each arm's program, then time the arms in turns."""
    keys = jax.vmap(jax.random.key)(jnp.arange(num_seeds))
    calls, rows = [], {}
    for name, cfg in configs.items():
        jitted = jax.jit(jax.vmap(jaxpg.make_train(cfg)))
        compiled, lower_s, compile_s = throughput.compile_timed(jitted, keys)
        out = jax.block_until_ready(compiled(keys))  # also the untimed round
        steps = float(np.asarray(out.metrics["env_steps"])[:, -1].sum())
        rows[name] = {
            "lower_s": round(lower_s, 3),
            "compile_s": round(compile_s, 3),
            "env_steps": steps,
            "config": rundir.config_to_dict(cfg),
        }
        calls.append(lambda compiled=compiled: compiled(keys))
    times = throughput.time_interleaved(calls, repeats)
    throughput.add_step_rates(list(rows.values()), times)
    gru, mlp, same = rows["gru"], rows["mlp"], rows["mlp_same_macs"]
    paired = [
        (gru["env_steps"] / g) / (mlp["env_steps"] / m)
        for g, m in zip(times[0], times[1], strict=True)
    ]
    return {
        "arms": rows,
        "ratio": round(gru["steps_per_s"] / mlp["steps_per_s"], 3),
        "ratio_paired_min_max": [round(min(paired), 3), round(max(paired), 3)],
        "ratio_same_macs": round(gru["steps_per_s"] / same["steps_per_s"], 3),
        "compile_ratio": round(gru["compile_s"] / mlp["compile_s"], 3),
    }


def markdown(record: dict) -> str:
    """One row per algorithm: both arms' steps/s and compile time, the ratio."""
    env = record["environment"]
    lines = [
        "# Recurrent (GRU) against feed-forward (MLP) training speed",
        "",
        f"{ENV}, {record['seeds']} seeds x {record['num_envs']} envs per arm, "
        f"{record['steps']:,} env steps per seed, GRU {record['width']} "
        f"(after a {record['width']}-wide encoder) against an MLP "
        f"({record['width']}, {record['width']}); {env['platform']} "
        f"({env['cpu_model']}, {env['cpu_count']} CPUs), jax "
        f"{env['jax_version']}; median of {record['repeats']} rounds timed in "
        f"turns; load average at the start {env['load_average']}.",
        "",
        "| algo | gru steps/s | mlp steps/s | ratio (range) | mlp_same_macs "
        "steps/s | gru / mlp_same_macs | gru compile s | mlp compile s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for algo, row in record["rows"].items():
        arms = row["arms"]
        gru, mlp, same = arms["gru"], arms["mlp"], arms["mlp_same_macs"]
        low, high = row["ratio_paired_min_max"]
        lines.append(
            f"| {algo} | {gru['steps_per_s']:,.0f} | {mlp['steps_per_s']:,.0f} | "
            f"{row['ratio']:.2f} ({low:.2f}-{high:.2f}) | "
            f"{same['steps_per_s']:,.0f} | {row['ratio_same_macs']:.2f} | "
            f"{gru['compile_s']:.1f} | {mlp['compile_s']:.1f} |"
        )
    lines += ["", f"Command: `{record['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--algos", default="reinforce,ppo")
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--num-envs", type=int, default=None, help="default: preset")
    parser.add_argument("--steps", type=int, default=50_000, help="per seed")
    parser.add_argument("--width", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument(
        "--tiny", action="store_true", help="a smoke run: 1 seed, 2 envs, width 8"
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.seeds, args.num_envs, args.width, args.repeats = 1, 2, 8, 1
        args.steps = 2 * 16 * 2  # two PPO windows
    algos = args.algos.split(",")
    bad = [a for a in algos if a not in ("reinforce", "ppo")]
    if bad:
        parser.error(f"--algos {args.algos!r}: each must be reinforce or ppo")
    start = time.perf_counter()
    record = {
        "env": ENV,
        "seeds": args.seeds,
        "num_envs": args.num_envs or jaxpg.presets.get(ENV, algos[0]).num_envs,
        "steps": args.steps,
        "width": args.width,
        "repeats": args.repeats,
        "environment": throughput.environment(),
        "command": "python benchmarks/recurrent_speed.py "
        + " ".join(argv or sys.argv[1:]),
        "rows": {},
    }
    out = args.out or RESULTS / f"recurrent_speed_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    for algo in algos:
        configs = arms(algo, args.width, args.steps, args.num_envs)
        record["rows"][algo] = measure(configs, args.seeds, args.repeats)
        record["total_s"] = round(time.perf_counter() - start, 1)
        out.write_text(json.dumps(record, indent=1))  # each algo as it finishes
        out.with_suffix(".md").write_text(markdown(record))
        keys = ("ratio", "ratio_same_macs", "compile_ratio")
        print(algo, {k: record["rows"][algo][k] for k in keys})
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return record


if __name__ == "__main__":
    main()
