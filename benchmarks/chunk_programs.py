"""Compile time of a chunked run: one program for every chunk length
(``jaxpg.drivers.updates``) against one program per length.

The quick start's command (``make train``: CartPole-v1 REINFORCE preset, 16
seeds, chunks sized by time) runs in a fresh process per arm with the
compilation cache off, the arms in turns. The per-length arm restores what
``jaxpg.drivers.programs.chunk`` did before: a new length compiles a program
of its own (here the same update loop, compiled for exactly that length).
A last fresh process times one call of 20 updates through a ``lax.scan`` of
20 and through the updates program, in turns (the per-update cost of the
loop), and checks that they end bit-identical. Recorded per run: the compile
and run seconds ``jaxpg train`` reports
(``summary.json``; a program compiled mid-run overlaps the chunks running,
and its seconds count as compile, not run), the whole command's seconds
after its imports, the XLA compiles that took over 0.2 s, and the
evaluation's IQM (the same in both arms: the chunking changes no number).

    .venv/bin/python benchmarks/chunk_programs.py            # writes results
    .venv/bin/python benchmarks/chunk_programs.py --smoke    # tiny, writes nothing
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RESULTS = Path(__file__).parent / "results"
ARMS = ("one program", "per length")
COMMAND = ["train", "--env", "CartPole-v1", "--algo", "reinforce", "--seeds", "16",
           "--no-progress", "--no-compile-cache"]  # fmt: skip
SMOKE = ["--steps", "4096", "--eval-episodes", "2", "--chunk-seconds", "0.001"]


def per_length() -> None:
    """Make every new chunk length compile a program of its own."""
    from jaxpg.drivers import programs, updates

    def chunk(progs, length):
        if length not in progs.chunks:
            compiled = progs.build(length)
            progs.chunks[length] = updates.Chunk(compiled, length, length, progs.layout)
        return progs.chunks[length]

    programs.chunk = chunk


_LISTENING: list[bool] = []
_COMPILES: list[list[float]] = [[]]  # the running arm's list


def _listen(event: str, seconds: float, **kwargs) -> None:
    if event == "/jax/core/compile/backend_compile_duration" and seconds > 0.2:
        _COMPILES[0].append(round(seconds, 2))


def child(arm: str, out: Path, extra: list[str]) -> dict:
    """Run the command in this process; its figures."""
    import jax

    from jaxpg.cli.main import main

    compiles: list[float] = []
    if not _LISTENING:
        jax.monitoring.register_event_duration_secs_listener(_listen)
        _LISTENING.append(True)
    _COMPILES[:] = [compiles]
    if arm == "per length":
        per_length()
    start = time.perf_counter()
    code = main([*COMMAND, *extra, "--out", str(out)])
    wall = time.perf_counter() - start
    assert code == 0, code
    summary = json.loads((out / "summary.json").read_text())
    return {
        "compile_s": round(summary["timings"]["compile_s"], 2),
        "run_s": round(summary["timings"]["run_s"], 2),
        "command_s": round(wall, 2),
        "xla_compiles_over_0.2_s": compiles,
        "eval_iqm": summary["eval"]["iqm"]["estimate"],
    }


def loop_speed(updates_per_call: int = 20, rounds: int = 4) -> dict:
    """Seconds of one call of ``updates_per_call`` updates (16 seeds, the
    same preset) through a ``lax.scan`` of that length and through the
    ``updates_program``, in turns on fresh states, and whether the two end
    bit-identical."""
    import jax
    import numpy as np

    import jaxpg
    from jaxpg.drivers import parallel, updates
    from jaxpg.drivers.train import make_algorithm
    from jaxpg.kernels.keys import key_to_data

    algo = make_algorithm(jaxpg.presets.get("CartPole-v1", "reinforce"))
    lay = parallel.layout(16)
    seeds = parallel.place((np.arange(16, dtype=np.int32),), lay)
    init = parallel.sharded(lambda s: algo.init(jax.random.key(s)), lay, raw_keys=False)
    init = init.lower(*seeds).compile()
    n = updates_per_call

    def scanned(state):
        return jax.lax.scan(lambda c, _: algo.update(c), state, None, length=n)

    state = init(*seeds)
    scan = parallel.sharded(scanned, lay, raw_keys=False).lower(state).compile()
    program = updates.lower(algo.update, lay, n, state).compile()
    arms = {"scan": scan, "updates_program": updates.Chunk(program, n, n, lay)}
    times: dict[str, list[float]] = {name: [] for name in arms}
    last = {}
    for _ in range(rounds):
        for name, call in arms.items():
            state = jax.block_until_ready(init(*seeds))
            start = time.perf_counter()
            last[name] = jax.block_until_ready(call(state))
            times[name].append(round(time.perf_counter() - start, 3))
    same = all(
        np.array_equal(np.asarray(key_to_data(x)), np.asarray(key_to_data(y)))
        for x, y in zip(
            jax.tree.leaves(last["scan"]),
            jax.tree.leaves(last["updates_program"]),
            strict=True,
        )
    )
    return {"updates_per_call": n, "seconds": times, "bit_identical": same}


def markdown(record: dict) -> str:
    lines = [
        "# One chunk program for every length against one per length",
        "",
        f"`jaxpg {' '.join(record['command'])}`, compilation cache off, "
        f"{record['repeats']} fresh processes per arm in turns; "
        f"{record['machine']}.",
        "",
        "| arm | compile s (median) | runs | run s (median) | command s (median) "
        "| XLA compiles over 0.2 s, s | eval IQM |",
        "|---|---:|---|---:|---:|---|---:|",
    ]
    for arm in ARMS:
        runs = record["arms"][arm]
        each = ", ".join(f"{r['compile_s']:.1f}" for r in runs)
        lines.append(
            f"| {arm} | {statistics.median(r['compile_s'] for r in runs):.1f} | "
            f"{each} | "
            f"{statistics.median(r['run_s'] for r in runs):.1f} | "
            f"{statistics.median(r['command_s'] for r in runs):.1f} | "
            f"{runs[0]['xla_compiles_over_0.2_s']} | {runs[0]['eval_iqm']:.2f} |"
        )
    loop = record.get("loop")
    if loop:
        med = {k: statistics.median(v) for k, v in loop["seconds"].items()}
        lines += [
            "",
            f"One call of {loop['updates_per_call']} updates of 16 seeds, "
            f"{len(loop['seconds']['scan'])} rounds in turns: `lax.scan` "
            f"{med['scan']:.2f} s, the updates program "
            f"{med['updates_program']:.2f} s (medians; "
            f"{loop['seconds']}); bit-identical: {loop['bit_identical']}.",
        ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny, in-process")
    parser.add_argument("--out", type=Path, default=RESULTS / "chunk_programs_cpu.json")
    parser.add_argument(
        "--child", nargs=2, metavar=("ARM", "DIR"), help=argparse.SUPPRESS
    )
    parser.add_argument("--loop-child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.loop_child:
        print(json.dumps(loop_speed()), flush=True)
        return {}
    if args.child:
        print(json.dumps(child(args.child[0], Path(args.child[1]), [])), flush=True)
        return {}
    arms: dict[str, list[dict]] = {arm: [] for arm in ARMS}
    with tempfile.TemporaryDirectory() as tmp:
        if args.smoke:  # in this process: the arms' code paths, tiny budgets
            from jaxpg.drivers import programs

            original = programs.chunk
            try:
                for arm in ARMS:
                    programs._cached.cache_clear()  # compile again in each arm
                    out = Path(tmp) / arm.replace(" ", "_")
                    arms[arm].append(child(arm, out, SMOKE))
            finally:
                programs.chunk = original
            return {"arms": arms}
        for i in range(args.repeats):
            for arm in ARMS:
                out = Path(tmp) / f"{arm.replace(' ', '_')}_{i}"
                cmd = [sys.executable, __file__, "--child", arm, str(out)]
                done = subprocess.run(cmd, check=True, capture_output=True, text=True)
                row = json.loads(done.stdout.strip().splitlines()[-1])
                print(arm, row, flush=True)
                arms[arm].append(row)
    cmd = [sys.executable, __file__, "--loop-child"]
    done = subprocess.run(cmd, check=True, capture_output=True, text=True)
    loop = json.loads(done.stdout.strip().splitlines()[-1])
    print("loop", loop, flush=True)
    sys.path.insert(0, str(Path(__file__).parent))
    import throughput

    env = throughput.environment()
    record = {
        "command": COMMAND,
        "repeats": args.repeats,
        "machine": f"{env['cpu_model']}, {env['cpu_count']} CPUs, "
        f"jax {env['jax_version']}",
        "environment": env,
        "arms": arms,
        "loop": loop,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    args.out.with_suffix(".md").write_text(markdown(record))
    print(f"wrote {args.out} and {args.out.with_suffix('.md')}")
    return record


if __name__ == "__main__":
    main()
