"""Peak host memory of the chunked runner: metrics kept in memory vs streamed.

Runs ``jaxpg.drivers.runner.run`` on the CartPole-v1 REINFORCE preset (budget cut to
``--updates`` updates) once per mode, each in a fresh subprocess, and reports
the peak resident set size (``ru_maxrss``) and the size of the metrics the run
produced. "streamed" is what ``jaxpg train`` does (a run directory, metrics
written per chunk, none kept); "kept" holds every chunk's metrics in memory
until the end.

    .venv/bin/python benchmarks/runner_memory.py --seeds 1024 --updates 5000
    .venv/bin/python benchmarks/runner_memory.py --seeds 8 --updates 40   # smoke
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time


def child(mode: str, seeds: int, updates: int) -> None:
    import jaxpg
    from jaxpg.drivers.runner import run

    cfg = jaxpg.presets.get("CartPole-v1", "reinforce")
    cfg = cfg.replace(total_steps=updates * cfg.num_envs * cfg.rollout_steps)
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        if mode == "streamed":
            res = run(cfg, seeds, progress=False, checkpoint_dir=f"{tmp}/run",
                      keep_metrics=False)  # fmt: skip
            from jaxpg.experiment.rundir import read_metrics

            nbytes = sum(v.nbytes for v in read_metrics(f"{tmp}/run").values())
        else:
            res = run(cfg, seeds, progress=False, keep_metrics=True)
            nbytes = sum(v.nbytes for v in res.metrics.values())
        wall = time.perf_counter() - t0
    peak_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({
        "mode": mode, "seeds": seeds, "updates": cfg.num_updates,
        "peak_rss_mb": peak_kib / 1024, "metrics_mb": nbytes / 2**20,
        "wall_s": wall,
    }))  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, default=1024)
    parser.add_argument("--updates", type=int, default=5000)
    parser.add_argument("--child", choices=("streamed", "kept"))
    args = parser.parse_args()
    if args.child:
        child(args.child, args.seeds, args.updates)
        return
    for mode in ("streamed", "kept"):
        out = subprocess.run(
            [sys.executable, __file__, "--child", mode, "--seeds", str(args.seeds),
             "--updates", str(args.updates)],
            check=True, capture_output=True, text=True,
        )  # fmt: skip
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(
            f"{r['mode']:>8}: {r['seeds']} seeds x {r['updates']} updates  "
            f"peak RSS {r['peak_rss_mb']:,.0f} MB  metrics {r['metrics_mb']:,.1f} MB"
            f"  ({r['wall_s']:.0f} s)"
        )


if __name__ == "__main__":
    main()
