"""The experiments workflow on the four preset environments, through the CLI.

Trains every preset (``jaxpg train --env E --algo A --seeds 16 --out DIR``:
run directories, streamed metrics, checkpoints, evaluation) into
``--runs`` (default ``runs/presets``, not committed), then compares them with
``jaxpg compare`` (rliable protocol on returns normalised per environment: 0 =
random policy, 1 = solved threshold) into ``benchmarks/results/compare_<backend>``:
``compare.json``, the aggregate-interval, performance-profile and
probability-of-improvement PNGs. A run directory that already holds a finished
run is reused (``--retrain`` trains it again).

    python benchmarks/compare_presets.py                 # every preset, 16 seeds
    python benchmarks/compare_presets.py --seeds 4 --runs /tmp/p --out /tmp/c
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

import jax

from jaxpg import presets

RESULTS = Path(__file__).parent / "results"


def _jaxpg(*args: str) -> None:
    cmd = [sys.executable, "-m", "jaxpg", *args]
    print("$ jaxpg", " ".join(args), flush=True)
    subprocess.run(cmd, check=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--runs", type=Path, default=Path("runs/presets"))
    p.add_argument("--out", type=Path, default=None)
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    out = args.out or RESULTS / f"compare_{jax.default_backend()}"
    dirs = []
    t0 = time.perf_counter()
    for env, algo in presets.names():
        d = args.runs / f"{env}-{algo}"
        dirs.append(str(d))
        if (d / "summary.json").exists() and not args.retrain:
            print(f"reusing {d}", flush=True)
            continue
        _jaxpg(
            "train", "--env", env, "--algo", algo, "--seeds", str(args.seeds),
            "--out", str(d), "--overwrite", "--no-progress",
        )  # fmt: skip
    _jaxpg("compare", *dirs, "--out", str(out))
    print(f"done in {time.perf_counter() - t0:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
