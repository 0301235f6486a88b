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
        return json.loads((out / "summary.json").read_text())["timings"]["compile_s"]
    return json.loads((out / "metrics.json").read_text())["compile_s"]


def run(name: str, argv: list[str], out: Path, cache: list[str]) -> dict:
    cmd = [sys.executable, "-m", "jaxpg", *argv, "--out", str(out), *cache]
    if name == "train":
        cmd.append("--overwrite")
    t0 = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, text=True)
    row = {"compile_s": compile_seconds(name, out), "wall_s": time.perf_counter() - t0}
    if name == "train":  # the device the command ran on, as its run recorded it
        row["device"] = json.loads((out / "versions.json").read_text())["device"]
    return row


def split_child(cache: str) -> None:
    """Print the trace-and-lower and the XLA-compile seconds of the two
    programs of ``jaxpg train`` (init and one chunk), with ``cache``."""
    import jax
    import numpy as np
    from jax.sharding import NamedSharding, PartitionSpec

    jax.config.update("jax_compilation_cache_dir", cache)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    import jaxpg
    from jaxpg.drivers import parallel

    cfg = jaxpg.presets.get("CartPole-v1", "reinforce")
    algo = jaxpg.make_algorithm(cfg)
    lay = parallel.layout(4)
    spec = NamedSharding(lay.mesh, PartitionSpec(parallel.MEMBER_AXIS))
    seeds = jax.ShapeDtypeStruct((lay.padded,), np.int32, sharding=spec)
    init = parallel.sharded(lambda s: algo.init(jax.random.key(s)), lay, raw_keys=False)
    t0 = time.perf_counter()
    lowered = init.lower(seeds)
    t1 = time.perf_counter()
    exe = lowered.compile()
    t2 = time.perf_counter()
    state = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        exe.out_info,
    )

    def chunk(s):
        return jax.lax.scan(lambda c, _: algo.update(c), s, None, length=1)

    lowered = parallel.sharded(chunk, lay, raw_keys=False).lower(state)
    t3 = time.perf_counter()
    lowered.compile()
    t4 = time.perf_counter()
    print(
        json.dumps(
            {"lower_s": (t1 - t0) + (t3 - t2), "compile_s": (t2 - t1) + (t4 - t3)}
        )
    )


def split(cache: str) -> dict:
    cmd = [sys.executable, __file__, "--split-child", cache]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--smoke", action="store_true", help="tiny budgets")
    parser.add_argument("--out", type=Path, default=RESULTS / "compile_cache_cpu.json")
    parser.add_argument("--split-child", metavar="CACHE", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.split_child:
        split_child(args.split_child)
        return
    with tempfile.TemporaryDirectory() as tmp:
        parts = {"first": split(tmp), "second (cached)": split(tmp)}
    print(json.dumps({"train programs, trace+lower vs XLA compile": parts}), flush=True)
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
        "device": rows[0]["first"].get("device"),
        "rows": rows,
        "train programs, trace+lower vs XLA compile": parts,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
