"""Compile time a user feels: the same ``jaxpg`` command run twice, the second
time with the programs in JAX's persistent compilation cache.

Each run is a fresh process (as a user's second command is) with its own
empty cache directory for the pair; the compile time is the one the command
records (``summary.json``'s ``compile_s`` for ``jaxpg train``: lowering and
compiling the init and chunk programs; ``metrics.json``'s for ``jaxpg lm``).
A third run with ``--no-compile-cache`` is the control.

    .venv/bin/python benchmarks/compile_cache.py            # writes results
    .venv/bin/python benchmarks/compile_cache.py --smoke    # tiny budgets
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"

COMMANDS = {
    "train": ["train", "--env", "CartPole-v1", "--algo", "reinforce", "--seeds", "4",
              "--steps", "40960", "--eval-episodes", "8", "--no-progress"],
    "lm": ["lm", "--task", "sort", "--seeds", "2", "--updates", "4", "--sft-steps",
           "4", "--no-progress"],
}  # fmt: skip
SMOKE = {"train": ["--steps", "4096"], "lm": ["--updates", "2"]}


def compile_seconds(name: str, out: Path) -> float:
    if name == "train":
        return json.loads((out / "summary.json").read_text())["compile_s"]
    return json.loads((out / "metrics.json").read_text())["compile_s"]


def run(name: str, argv: list[str], out: Path, cache: list[str]) -> dict:
    cmd = [sys.executable, "-m", "jaxpg", *argv, "--out", str(out), *cache]
    if name == "train":
        cmd.append("--overwrite")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    return {"compile_s": compile_seconds(name, out), "wall_s": time.perf_counter() - t0}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budgets")
    parser.add_argument("--out", type=Path, default=RESULTS / "compile_cache_cpu.json")
    args = parser.parse_args()
    rows = []
    for name, argv in COMMANDS.items():
        argv = [*argv, *SMOKE[name]] if args.smoke else argv
        with tempfile.TemporaryDirectory() as tmp:
            cache = ["--compile-cache", f"{tmp}/cache"]
            first = run(name, argv, Path(tmp) / "a", cache)
            second = run(name, argv, Path(tmp) / "b", cache)
            control = run(name, argv, Path(tmp) / "c", ["--no-compile-cache"])
        row = {"command": "jaxpg " + " ".join(argv), "first": first,
               "second (cached)": second, "no cache": control}  # fmt: skip
        print(json.dumps(row), flush=True)
        rows.append(row)
    if args.smoke:
        return
    record = {
        "machine": f"{platform.processor() or platform.machine()}, "
        f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "rows": rows,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
