"""End to end, compile included: ``jaxpg.train_seeds`` against the plain
``jax.jit(jax.vmap(jaxpg.make_train(cfg)))``, each order in a fresh process.

Within one process the path called first pays one-time costs (the backend's
first programs; on a GPU also XLA's autotuning at each new batch shape), so
each process times both paths, and the two processes call them in opposite
orders. Compare a path against the other at the same position.

    python benchmarks/end_to_end.py --seeds 256 --steps 5000

Writes ``benchmarks/results/end_to_end_<platform>.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

RESULTS = Path(__file__).resolve().parent / "results"
PATHS = ("train_seeds", "plain_vmap")


def child(seeds: int, steps: int, order: list[str]) -> dict:
    import jax

    import jaxpg

    cfg = jaxpg.presets.get("CartPole-v1", "reinforce").replace(total_steps=steps)
    jax.block_until_ready(jax.jit(lambda x: x + 1)(1.0))  # backend started
    times = {}
    for path in order:
        start = time.perf_counter()
        if path == "train_seeds":
            jax.block_until_ready(jaxpg.train_seeds(cfg, seeds))
        else:
            keys = jaxpg.drivers.train.seed_keys(seeds)
            jax.block_until_ready(jax.jit(jax.vmap(jaxpg.make_train(cfg)))(keys))
        times[path] = time.perf_counter() - start
    return {
        "order": order,
        "seconds": times,
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "jax": jax.__version__,
    }


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seeds", type=int, default=256)
    p.add_argument("--steps", type=int, default=5000, help="total_steps per seed")
    p.add_argument("--out-dir", type=Path, default=RESULTS)
    p.add_argument("--child", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.seeds, a.steps, a.child.split(","))))
        return {}
    runs = []
    for order in (PATHS, PATHS[::-1]):
        cmd = [sys.executable, __file__, "--seeds", str(a.seeds)]
        cmd += ["--steps", str(a.steps), "--child", ",".join(order)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
        first, second = order
        t = runs[-1]["seconds"]
        print(f"{first} first {t[first]:.2f} s, then {second} {t[second]:.2f} s")
    record = {"seeds": a.seeds, "steps_per_seed": a.steps, "runs": runs}
    a.out_dir.mkdir(parents=True, exist_ok=True)
    path = a.out_dir / f"end_to_end_{runs[0]['platform']}.json"
    path.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {path.name}")
    return record


if __name__ == "__main__":
    main()
