"""CNN torso training speed: flax's ``nn.Conv`` against ``jaxpg.networks.Conv``.

The README's Breakout-MinAtar example (a 16-channel 3x3 convolution, then a
64-unit dense layer, for the policy and the critic; PPO, ``--envs`` envs,
rollouts of 64 steps), trained with ``jax.jit(jax.vmap(make_train(cfg)))``
over ``--seeds`` keys, in two arms that differ only in the convolution layer:

* **flax**: ``flax.linen.Conv`` (``jax.lax.conv_general_dilated``);
* **jaxpg**: ``jaxpg.networks.Conv`` (:mod:`jaxpg.kernels.convolution`: the
  same values, laid out so that XLA's CPU backend runs the kernel gradient
  inside the update loops with its fast kernels).

Each arm is lowered and compiled explicitly (compile time reported apart),
called once untimed, then the compiled programs are called in turns
(``--repeats`` rounds, :func:`throughput.time_interleaved`). Steps/s counts
env steps over the median call; **speedup** = jaxpg steps/s / flax steps/s,
with the range of the per-round ratios. Both arms' evaluation returns (64
episodes per seed) are recorded: the same learning, not only the same speed.

Output: ``benchmarks/results/conv_speed_<platform>.json`` and ``.md``
(or ``--out FILE.json`` and ``FILE.md``).

    python benchmarks/conv_speed.py            # the recorded run
    python benchmarks/conv_speed.py --tiny --out cs.json  # a smoke run
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import throughput  # noqa: E402

import jaxpg  # noqa: E402

RESULTS = HERE / "results"
ENV = "Breakout-MinAtar"
LAYERS = {"flax": nn.Conv, "jaxpg": jaxpg.networks.Conv}


class SmallCNN(nn.Module):
    """The README's torso, ``conv`` its convolution layer class."""

    conv: type = nn.Conv

    @nn.compact
    def __call__(self, obs):
        x = nn.relu(self.conv(16, (3, 3), padding="VALID")(obs.astype(jnp.float32)))
        return nn.relu(nn.Dense(64)(x.reshape((x.shape[0], -1))))


def config(steps: int, num_envs: int) -> jaxpg.Config:
    return jaxpg.Config(
        env=ENV, algo="ppo", num_envs=num_envs, rollout_steps=64,
        total_steps=steps, lr=2e-3, ent_coef=0.01, max_grad_norm=0.5,
    )  # fmt: skip


def measure(cfg: jaxpg.Config, num_seeds: int, repeats: int) -> dict:
    keys = jax.vmap(jax.random.key)(jnp.arange(num_seeds))
    eval_keys = jax.vmap(jax.random.key)(jnp.arange(num_seeds) + 100)
    calls, rows = [], {}
    for name, layer in LAYERS.items():
        net = SmallCNN(layer)
        train = jaxpg.make_train(cfg, policy_network=net, critic_network=net)
        compiled, lower_s, compile_s = throughput.compile_timed(
            jax.jit(jax.vmap(train)), keys
        )
        out = jax.block_until_ready(compiled(keys))  # also the untimed round

        def evaluate(p, k, net=net):
            return jaxpg.evaluate(cfg, p, k, 64, policy_network=net)

        rets = jax.jit(jax.vmap(evaluate))(out.params, eval_keys)
        rows[name] = {
            "lower_s": round(lower_s, 3),
            "compile_s": round(compile_s, 3),
            "env_steps": float(np.asarray(out.metrics["env_steps"])[:, -1].sum()),
            "eval_return_per_seed": [round(float(r), 3) for r in rets.mean(axis=1)],
        }
        calls.append(lambda compiled=compiled: compiled(keys))
    times = throughput.time_interleaved(calls, repeats)
    throughput.add_step_rates(list(rows.values()), times)
    paired = [f / j for f, j in zip(times[0], times[1], strict=True)]
    return {
        "arms": rows,
        "speedup": round(rows["jaxpg"]["steps_per_s"] / rows["flax"]["steps_per_s"], 3),
        "speedup_paired_min_max": [round(min(paired), 3), round(max(paired), 3)],
    }


def markdown(record: dict) -> str:
    env, row = record["environment"], record["result"]
    lines = [
        "# CNN torso training speed: flax nn.Conv against jaxpg.networks.Conv",
        "",
        f"{ENV}, PPO, the README's CNN torso, {record['seeds']} seeds x "
        f"{record['num_envs']} envs, {record['steps']:,} env steps per seed; "
        f"{env['platform']} ({env['cpu_model']}, {env['cpu_count']} CPUs), jax "
        f"{env['jax_version']}; median of {record['repeats']} rounds timed in "
        f"turns; load average at the start {env['load_average']}.",
        "",
        "| conv layer | steps/s | compile s | evaluation return per seed "
        "(64 episodes) |",
        "|---|---|---|---|",
    ]
    for name, arm in row["arms"].items():
        rets = ", ".join(f"{r:.2f}" for r in arm["eval_return_per_seed"])
        lines.append(
            f"| {name} | {arm['steps_per_s']:,.0f} | {arm['compile_s']:.1f} | {rets} |"
        )
    low, high = row["speedup_paired_min_max"]
    lines += [
        "",
        f"Speedup (jaxpg / flax steps/s): **{row['speedup']:.2f}x** "
        f"(per-round range {low:.2f}-{high:.2f}).",
        "",
        f"Command: `{record['command']}`",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=2)
    parser.add_argument("--num-envs", type=int, default=32)
    parser.add_argument("--steps", type=int, default=60_000, help="per seed")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--tiny", action="store_true", help="a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.seeds, args.num_envs, args.steps, args.repeats = 1, 4, 4 * 64 * 2, 1
    record = {
        "env": ENV,
        "seeds": args.seeds,
        "num_envs": args.num_envs,
        "steps": args.steps,
        "repeats": args.repeats,
        "environment": throughput.environment(),
        "command": " ".join(
            ["python benchmarks/conv_speed.py", *(argv or sys.argv[1:])]
        ),
    }
    start = time.perf_counter()
    cfg = config(args.steps, args.num_envs)
    record["result"] = measure(cfg, args.seeds, args.repeats)
    record["total_s"] = round(time.perf_counter() - start, 1)
    out = args.out or RESULTS / f"conv_speed_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    out.with_suffix(".md").write_text(markdown(record))
    print({k: record["result"][k] for k in ("speedup", "speedup_paired_min_max")})
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return record


if __name__ == "__main__":
    main()
