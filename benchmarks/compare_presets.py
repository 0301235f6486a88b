"""The experiments workflow on the four preset environments, through the CLI.

Trains every preset (``jaxpg train --env E --algo A --seeds 16 --out DIR``:
run directories, streamed metrics, checkpoints, evaluation) into
``--runs`` (default ``runs/presets``, not committed), then compares them with
``jaxpg compare`` (rliable protocol on returns normalised per environment: 0 =
random policy, 1 = solved threshold): A2C against PPO on all four environments
into ``benchmarks/results/compare_<backend>/``, and REINFORCE, A2C and PPO on
the two discrete ones (REINFORCE has no continuous preset) into its
``discrete/`` folder; each holds ``compare.json`` and the aggregate-interval,
performance-profile and probability-of-improvement PNGs. A run directory
that already holds a finished run is reused (``--retrain`` trains it again).

    python benchmarks/compare_presets.py                 # every preset, 16 seeds
    python benchmarks/compare_presets.py --seeds 2 --steps 4096 --runs R --out C
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
    p.add_argument("--steps", type=int, help="env steps per seed (default: preset)")
    p.add_argument("--retrain", action="store_true")
    args = p.parse_args()
    out = args.out or RESULTS / f"compare_{jax.default_backend()}"
    dirs = {}
    t0 = time.perf_counter()
    for env, algo in presets.names():
        d = args.runs / f"{env}-{algo}"
        dirs[env, algo] = str(d)
        if (d / "summary.json").exists() and not args.retrain:
            print(f"reusing {d}", flush=True)
            continue
        _jaxpg(
            "train", "--env", env, "--algo", algo, "--seeds", str(args.seeds),
            "--out", str(d), "--overwrite", "--no-progress",
            *(["--steps", str(args.steps)] if args.steps else []),
        )  # fmt: skip
    every_env = [d for (_, algo), d in dirs.items() if algo != "reinforce"]
    _jaxpg("compare", *every_env, "--out", str(out))
    discrete = {env for env, algo in dirs if algo == "reinforce"}
    _jaxpg(
        "compare",
        *(d for (env, _), d in dirs.items() if env in discrete),
        "--out",
        str(out / "discrete"),
    )
    print(f"done in {time.perf_counter() - t0:.0f} s; wrote {out}")


if __name__ == "__main__":
    main()
