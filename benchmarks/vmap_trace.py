"""Trace time of vmapped training programs: the train state batched like the
key from the start (as jaxpg builds it) against the state as ``init`` returns
it, whose key-independent values (zero biases, Adam moments, counters) start
unbatched.

JAX batches a ``lax.scan``'s body again when a carry that went in unbatched
comes out batched, and every scan nested in that body with it; the first arm
is what ``jaxpg.make_train`` and ``jaxpg.sequence.rl.make_rl_train`` do
(``jaxpg.kernels.batching.batched_like``), the second puts the state as
``init`` returns it back (the functions that batch it made the identity).
Both arms trace and lower the same programs in one process, in turns; the
lowered programs are compared as text (they must be equal: only the tracing
differs, though the gymnax programs place the broadcasts elsewhere), and
the two compiled programs of the last round run once: their outputs must be
equal bit for bit. Compile and run are not timed.

    .venv/bin/python benchmarks/vmap_trace.py            # writes results
    .venv/bin/python benchmarks/vmap_trace.py --tiny     # REINFORCE, one round

Output: ``benchmarks/results/vmap_trace_<platform>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import statistics
import sys
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg.drivers import train as train_module
from jaxpg.sequence import model, rl, tasks

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
import throughput  # noqa: E402  (beside this file: environment())

RESULTS = HERE / "results"
ARMS = ("batched start", "unbatched start")
PROGRAMS = ("reinforce", "a2c", "ppo", "token RL")


@contextlib.contextmanager
def arm(name: str):
    """The library as shipped, or with the state left as ``init`` returns it."""
    if name == ARMS[0]:
        yield
        return
    saved = train_module._batched_from_start, rl.batched_like
    train_module._batched_from_start = lambda state, like: state
    rl.batched_like = lambda tree, like: tree
    try:
        yield
    finally:
        train_module._batched_from_start, rl.batched_like = saved


def program(name: str, seeds: int):
    """``(jitted vmapped function, its arguments)``, built afresh (no cache)."""
    keys = jax.vmap(jax.random.key)(jnp.arange(seeds))
    if name != "token RL":
        cfg = jaxpg.presets.get("CartPole-v1", name)
        # Four updates (the trace does not depend on the budget; the check runs it).
        cfg = cfg.replace(total_steps=4 * cfg.num_envs * cfg.rollout_steps)
        return jax.jit(jax.vmap(jaxpg.make_train(cfg))), (keys,)
    task = tasks.sort_task(3)
    cfg = model.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=32, num_layers=2, num_heads=2,
        max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip
    rl_cfg = rl.RLConfig(num_prompts=16, group_size=4, num_updates=4, advantage="grpo")
    ref = jax.jit(lambda k: model.init(k, cfg))(jax.random.key(0))
    train = rl.make_rl_train(task, cfg, rl_cfg)
    return jax.jit(jax.vmap(train, in_axes=(0, None, None))), (keys, ref, ref)


def _raw(x):
    """An output leaf as NumPy (PRNG keys as their data)."""
    if jax.dtypes.issubdtype(x.dtype, jax.dtypes.prng_key):
        x = jax.random.key_data(x)
    return np.asarray(x)


def measure(names: list[str], seeds: int, rounds: int) -> dict:
    rows = {}
    for name in names:
        times = {a: {"trace_s": [], "lower_s": []} for a in ARMS}
        texts, last = {}, {}
        for _ in range(rounds):
            for a in ARMS:
                with arm(a):
                    fn, args = program(name, seeds)
                    t0 = time.perf_counter()
                    traced = fn.trace(*args)
                    t1 = time.perf_counter()
                    lowered = traced.lower()
                    t2 = time.perf_counter()
                times[a]["trace_s"].append(t1 - t0)
                times[a]["lower_s"].append(t2 - t1)
                texts[a] = lowered.as_text(debug_info=False)
                last[a] = (lowered, args)
        outs = {
            a: jax.tree.leaves(lowered.compile()(*args))
            for a, (lowered, args) in last.items()
        }
        med = {
            a: {k: round(statistics.median(v), 3) for k, v in t.items()}
            for a, t in times.items()
        }
        paired = [
            b / u
            for b, u in zip(
                times[ARMS[0]]["trace_s"], times[ARMS[1]]["trace_s"], strict=True
            )
        ]
        rows[name] = {
            "arms": med,
            "trace_ratio": round(med[ARMS[0]]["trace_s"] / med[ARMS[1]]["trace_s"], 3),
            "trace_ratio_paired_min_max": [
                round(min(paired), 3),
                round(max(paired), 3),
            ],
            "same_program": texts[ARMS[0]] == texts[ARMS[1]],
            "same_results": all(
                np.array_equal(_raw(x), _raw(y))
                for x, y in zip(outs[ARMS[0]], outs[ARMS[1]], strict=True)
            ),
        }
        print(name, rows[name])
    return rows


def markdown(record: dict) -> str:
    env = record["environment"]
    lines = [
        "# Trace time of vmapped training programs",
        "",
        f"{record['seeds']} seeds under `jax.vmap`; CartPole-v1 presets and a "
        "token-policy GRPO program (sort, 2-layer width-32 transformer); median of "
        f"{record['rounds']} rounds, the arms in turns in one process; "
        f"{env['platform']} ({env['cpu_model']}, {env['cpu_count']} CPUs), jax "
        f"{env['jax_version']}; load average at the start {env['load_average']}.",
        "",
        "| program | trace s, batched start | trace s, unbatched start | ratio "
        "(per-round range) | lower s (both) | same lowered program | same "
        "results |",
        "|---|---|---|---|---|---|---|",
    ]
    for name, row in record["result"].items():
        b, u = (row["arms"][a] for a in ARMS)
        low, high = row["trace_ratio_paired_min_max"]
        lines.append(
            f"| {name} | {b['trace_s']:.3f} | {u['trace_s']:.3f} | "
            f"{row['trace_ratio']:.2f} ({low:.2f}-{high:.2f}) | "
            f"{b['lower_s']:.3f} / {u['lower_s']:.3f} | {row['same_program']} | "
            f"{row['same_results']} |"
        )
    lines += ["", f"Command: `{record['command']}`"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--programs", default=",".join(PROGRAMS))
    parser.add_argument("--tiny", action="store_true", help="a smoke run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args(argv)
    names = args.programs.split(",")
    unknown = sorted(set(names) - set(PROGRAMS))
    if unknown:
        parser.error(f"--programs: unknown {unknown}; choose from {list(PROGRAMS)}")
    if args.tiny:
        names, args.seeds, args.rounds = ["reinforce"], 2, 1
    record = {
        "seeds": args.seeds,
        "rounds": args.rounds,
        "environment": throughput.environment(),
        "command": " ".join(
            ["python benchmarks/vmap_trace.py", *(argv or sys.argv[1:])]
        ),
    }
    record["result"] = measure(names, args.seeds, args.rounds)
    if args.tiny and args.out is None:
        return record
    out = args.out or RESULTS / f"vmap_trace_{jax.default_backend()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(record, indent=1))
    out.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {out} and {out.with_suffix('.md')}")
    return record


if __name__ == "__main__":
    main()
