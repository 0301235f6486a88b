"""Scaling: throughput and time-to-solve against seeds and devices; memory.

Three measurements on CartPole-v1, each in fresh subprocesses (a process's
device count is fixed when JAX starts):

* **Seeds** (``--seeds``, for each of ``--algos``): ``S`` seeds of the
  algorithm's preset trained by :func:`jaxpg.drivers.parallel.run_members` on all
  devices of the platform (CPU: one device). Compile (``lower().compile()``)
  is timed apart from the run. *Throughput*: env steps that fed the gradient,
  all seeds together, per second of a ``--updates``-update run (the same
  short run for every ``S``). *Time to solve*, for ``S <= --solve-max-seeds``:
  a run of the preset's full budget; a seed is solved at the first update
  whose training return reaches 475; its time is the run time times the
  fraction of the run's updates done by then (update costs are taken as equal;
  REINFORCE's are not quite: its episodes get longer as it learns). Reported:
  the median over seeds (solved seeds only) and the fraction solved.
* **Devices** (``--devices``): ``--device-seeds`` seeds of each algorithm on
  1, 2, 4 forced CPU devices (``jax_num_cpu_devices``; on a GPU machine the
  real devices, ``--devices`` capped at their count). *Efficiency* =
  steps/s on ``D`` devices / (``D`` x steps/s on one). Forced CPU devices share
  the machine's cores: on 2 cores the ceiling is about 2x, whatever ``D``.
* **Memory** (``--memory-seeds`` x ``--memory-updates``): a PPO run through
  :func:`jaxpg.drivers.runner.run` (chunked; metrics streamed per chunk to a temporary
  run directory with ``keep_metrics=False``, and a final checkpoint) in a
  child process; peak host RSS (``getrusage``) and, where the device reports
  it, peak device memory (``memory_stats()["peak_bytes_in_use"]``). Several
  ``--memory-updates`` values show whether memory grows with run length.

Sizes are configurable (an empty list skips a part: ``--devices ""``); the
defaults take about 10 to 15 minutes on 2 quiet CPU cores, most of it XLA
compiles (one per row).

Usage::

    python benchmarks/scaling.py                       # defaults for the platform
    python benchmarks/scaling.py --seeds 1,4 --devices 1,2 --updates 2 \\
        --solve-max-seeds 0 --memory-seeds 8 --memory-updates 20 --out smoke-scaling

Writes ``benchmarks/results/scaling_<platform>.json``, ``.md`` and ``.png``.
"""

from __future__ import annotations

import argparse
import datetime
import inspect
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ENV = "CartPole-v1"


# --------------------------------------------------------------------------
# Children (one JAX process each)


def child_train(args: argparse.Namespace) -> dict:
    """Train ``args.num_seeds`` seeds sharded over ``args.num_devices``."""
    import jax

    wanted = args.num_devices  # 0: all devices (one on CPU)
    if jax_platform_is_cpu():
        wanted = wanted or 1
        jax.config.update("jax_num_cpu_devices", wanted)
    import numpy as np

    import jaxpg
    from jaxpg.drivers import parallel

    devices = jax.devices()[:wanted] if wanted else jax.devices()
    base = jaxpg.presets.get(ENV, args.algo)
    per_update = base.num_envs * base.rollout_steps
    if args.updates > 0:
        cfg = base.replace(total_steps=args.updates * per_update)
    else:
        cfg = base
    train = jaxpg.make_train(cfg)
    seeds = np.arange(args.num_seeds, dtype=np.int32)
    lay = parallel.layout(args.num_seeds, devices)

    def member(seed):
        out = train(jax.random.key(seed))
        return {
            "env_steps": out.metrics["env_steps"],
            "episode_return": out.metrics["episode_return"],
        }

    placed = parallel.place((seeds,), lay)
    t0 = time.perf_counter()
    compiled = parallel.sharded(member, lay).lower(*placed).compile()
    compile_s = time.perf_counter() - t0
    analysis = compiled.memory_analysis()
    temp = getattr(analysis, "temp_size_in_bytes", None)
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(*placed))
    run_s = time.perf_counter() - t0
    out = jax.tree.map(lambda x: np.asarray(x)[: args.num_seeds], out)
    steps = out["env_steps"].astype(np.int64)  # [S, U]
    total = int(steps[:, -1].sum())
    record = {
        "algo": args.algo,
        "seeds": args.num_seeds,
        "devices": len(devices),
        "updates": cfg.num_updates,
        "steps_per_seed": cfg.total_steps,
        "compile_s": compile_s,
        "run_s": run_s,
        "env_steps": total,
        "steps_per_s": total / run_s,
        # XLA's scratch memory for the whole program (all local devices).
        "program_temp_mib": None if temp is None else temp / 2**20,
    }
    if args.updates <= 0:
        record.update(_time_to_solve(out, run_s))
    return record


def _threshold() -> float:
    """CartPole-v1's solved score, as jaxpg's scores define it."""
    from jaxpg.analysis.scores import solved_threshold

    return solved_threshold(ENV)


def _time_to_solve(out: dict, run_s: float) -> dict:
    import numpy as np

    returns = np.nan_to_num(out["episode_return"], nan=-np.inf)  # [S, U]
    steps = out["env_steps"]
    # Updates that did any work: REINFORCE's last updates after the budget
    # is spent are empty for every seed and cost next to nothing.
    active = np.flatnonzero(np.diff(steps.max(axis=0), prepend=0) > 0)
    num_active = int(active[-1]) + 1 if active.size else steps.shape[1]
    times = []
    threshold = _threshold()
    for row in returns:
        hit = np.flatnonzero(row >= threshold)
        if hit.size:
            times.append(run_s * (hit[0] + 1) / num_active)
    return {
        "solved_fraction": len(times) / returns.shape[0],
        "median_time_to_solve_s": float(np.median(times)) if times else None,
    }


def child_memory(args: argparse.Namespace) -> dict:
    """Peak host RSS and device memory of a long chunked PPO run."""
    import resource

    import jax
    import numpy as np

    import jaxpg
    from jaxpg.drivers import runner

    cfg = jaxpg.presets.get(ENV, "ppo").replace(
        num_envs=args.memory_envs,
        rollout_steps=args.memory_rollout,
        num_minibatches=1,
        num_epochs=1,
        total_steps=args.memory_envs * args.memory_rollout * args.updates,
    )
    rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Streamed: metrics go to a run directory per chunk, none kept in memory
    # (where the runner supports it).
    params = inspect.signature(runner.run).parameters
    streamed = "keep_metrics" in params and "checkpoint_dir" in params
    with tempfile.TemporaryDirectory() as run_dir:
        extra = {"checkpoint_dir": run_dir, "keep_metrics": False} if streamed else {}
        t0 = time.perf_counter()
        result = runner.run(cfg, args.num_seeds, progress=False, **extra)
        wall_s = time.perf_counter() - t0
    rss_kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    stats = jax.devices()[0].memory_stats() or {}
    metrics = getattr(result, "metrics", None)
    metric_bytes = (
        int(sum(np.asarray(v).nbytes for v in metrics.values()))
        if isinstance(metrics, dict)
        else None
    )
    state_bytes = int(
        sum(x.nbytes for x in jax.tree.leaves(result.state) if hasattr(x, "nbytes"))
    )
    return {
        "seeds": args.num_seeds,
        "updates": cfg.num_updates,
        "streamed": streamed,
        "num_envs": cfg.num_envs,
        "rollout_steps": cfg.rollout_steps,
        "wall_s": wall_s,
        "peak_rss_mib": rss_kib / 1024,
        "rss_after_imports_mib": rss_before / 1024,
        "peak_device_mib": (
            stats["peak_bytes_in_use"] / 2**20 if "peak_bytes_in_use" in stats else None
        ),
        "train_state_mib": state_bytes / 2**20,
        "metrics_in_result_mib": None if metric_bytes is None else metric_bytes / 2**20,
        "steps_per_s": getattr(result, "steps_per_s", None),
    }


def jax_platform_is_cpu() -> bool:
    """Whether JAX will pick the CPU (decided before its backend starts)."""
    wanted = os.environ.get("JAX_PLATFORMS", "")
    if wanted:
        return wanted.split(",")[0] == "cpu"
    import importlib.util

    return not any(
        importlib.util.find_spec(m)
        for m in ("jax_cuda12_plugin", "jax_cuda13_plugin", "libtpu")
    )


# --------------------------------------------------------------------------
# Parent


def _spawn(kind: str, timeout: float, **opts: Any) -> dict:
    cmd = [sys.executable, str(Path(__file__).resolve()), "--child", kind]
    for name, value in opts.items():
        cmd += [f"--{name.replace('_', '-')}", str(value)]
    t0 = time.perf_counter()
    try:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return _failed(kind, opts, f"timed out after {timeout:g} s")
    if proc.returncode != 0:
        return _failed(kind, opts, proc.stderr[-4000:])
    record = json.loads(proc.stdout.strip().splitlines()[-1])
    record["process_s"] = time.perf_counter() - t0
    print(f"  {kind} {opts}: {_short(record)}", flush=True)
    return record


def _failed(kind: str, opts: dict, why: str) -> dict:
    """The row of a child that did not finish. The other rows are kept; the
    tables show this one as failed, the JSON keeps the last line of the reason
    and stderr all of it."""
    print(f"  {kind} {opts}: FAILED\n{why}", file=sys.stderr, flush=True)
    lines = why.strip().splitlines()
    row = {"seeds": opts["num_seeds"], "error": lines[-1] if lines else why}
    for key in ("algo", "updates", "num_devices", "memory_envs", "memory_rollout"):
        if key in opts:
            row[key] = opts[key]
    return row


def _short(r: dict) -> str:
    keys = (
        "steps_per_s",
        "compile_s",
        "run_s",
        "median_time_to_solve_s",
        "peak_rss_mib",
    )
    return ", ".join(
        f"{k}={r[k]:,.1f}" if isinstance(r.get(k), float) else f"{k}={r.get(k)}"
        for k in keys
        if k in r
    )


def _ints(text: str) -> list[int]:
    return [int(v) for v in text.split(",") if v.strip()]


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--algos", default="reinforce,ppo")
    p.add_argument("--seeds", type=_ints, help="seed counts (default: platform)")
    p.add_argument("--updates", type=int, default=2, help="updates per throughput run")
    p.add_argument("--solve-max-seeds", type=int, help="largest S for time-to-solve")
    p.add_argument("--devices", type=_ints, default=[1, 2, 4])
    p.add_argument("--device-seeds", type=int, default=256)
    p.add_argument("--memory-seeds", type=int, default=4096)
    p.add_argument("--memory-updates", type=_ints, default=[1000])
    p.add_argument("--memory-envs", type=int, default=2)
    p.add_argument("--memory-rollout", type=int, default=4)
    p.add_argument("--timeout", type=float, default=1800, help="per child, seconds")
    p.add_argument("--out", type=Path, default=HERE / "results")
    p.add_argument(
        "--parts",
        default="seeds,devices,memory",
        help="sections to run; the others are kept from the existing record "
        "(each section records when it was measured)",
    )
    # Child options.
    p.add_argument("--child", choices=("train", "memory"), help=argparse.SUPPRESS)
    p.add_argument("--algo", help=argparse.SUPPRESS)
    p.add_argument("--num-seeds", type=int, help=argparse.SUPPRESS)
    p.add_argument("--num-devices", type=int, default=0, help=argparse.SUPPRESS)
    args = p.parse_args(argv)

    if args.child == "train":
        print(json.dumps(child_train(args)))
        return
    if args.child == "memory":
        print(json.dumps(child_memory(args)))
        return

    cpu = jax_platform_is_cpu()
    platform_name = "cpu" if cpu else "gpu"
    seeds = args.seeds or (
        [1, 16, 256, 4096] if cpu else [1, 4, 16, 64, 256, 1024, 4096]
    )
    solve_max = args.solve_max_seeds
    if solve_max is None:
        solve_max = 16 if cpu else 4096
    algos = [a for a in args.algos.split(",") if a]
    parts = [x for x in args.parts.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown or not parts:
        raise SystemExit(
            f"--parts={args.parts!r} is invalid: choose from {', '.join(PARTS)}"
        )
    stem = args.out / f"scaling_{platform_name}"
    previous = {}
    if set(parts) != set(PARTS):
        if not stem.with_suffix(".json").exists():
            raise SystemExit(
                f"--parts={args.parts!r} keeps the other sections from "
                f"{stem}.json, which does not exist: run every part first"
            )
        previous = json.loads(stem.with_suffix(".json").read_text())
    now = datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds")
    command = _command(sys.argv)
    t_start = time.perf_counter()
    sections = {
        "seeds": lambda: _run_seeds(args, algos, seeds, solve_max),
        "devices": lambda: _run_devices(args, algos),
        "memory": lambda: _run_memory(args),
    }
    record = {
        "date": now,
        "env": ENV,
        "threshold": _threshold(),
        "measured": dict(previous.get("measured", {})),
    }
    args.out.mkdir(parents=True, exist_ok=True)
    partial = stem.with_name(stem.name + ".partial.json")
    for part in PARTS:
        if part in parts:
            print(f"{part}:", flush=True)
            record[part] = []
            record["measured"][part] = {"date": now, "command": command}
            for row in sections[part]():
                record[part].append(row)
                # Every finished child is on disk at once: a run stopped from
                # outside keeps what it measured.
                partial.write_text(json.dumps(record, indent=1))
        else:
            record[part] = previous[part]
            record["measured"].setdefault(
                part,
                {"date": previous.get("date"), "command": previous.get("command")},
            )
    # Only now does the parent start JAX's backend: on a GPU, a parent holding
    # the device (and by default most of its memory) would starve the children.
    record["machine"] = _machine()
    record["total_s"] = time.perf_counter() - t_start
    record["command"] = command
    stem.with_suffix(".json").write_text(json.dumps(record, indent=1))
    stem.with_suffix(".md").write_text(_markdown(record))
    _plot(record, stem.with_suffix(".png"))
    partial.unlink(missing_ok=True)
    print(f"wrote {stem}.json, .md, .png in {record['total_s']:.0f} s")


PARTS = ("seeds", "devices", "memory")


def _command(argv: list[str]) -> str:
    """The command line as recorded: the script's name, and no ``--out`` (where
    the files went is not part of the measurement, and may be a machine path)."""
    args, skip = [], False
    for a in argv[1:]:
        if skip:
            skip = False
        elif a == "--out":
            skip = True
        elif not a.startswith("--out="):
            args.append(a)
    return " ".join([Path(argv[0]).name, *args])


def _run_seeds(args, algos, seeds, solve_max) -> Iterator[dict]:
    for algo in algos:
        for s in seeds:
            yield _spawn(
                "train", args.timeout, algo=algo, num_seeds=s, updates=args.updates
            )
            if s <= solve_max:
                yield _spawn("train", args.timeout, algo=algo, num_seeds=s, updates=0)


def _run_devices(args, algos) -> Iterator[dict]:
    for algo in algos:
        rows = []
        for d in args.devices:
            row = _spawn(
                "train",
                args.timeout,
                algo=algo,
                num_seeds=args.device_seeds,
                updates=args.updates,
                num_devices=d,
            )
            rows.append(row)
            yield row  # speed-ups are filled in below, once the 1-device row exists
        ok = [r for r in rows if "error" not in r]
        base = next((r for r in ok if r["devices"] == 1), None)
        for r in ok if base else []:
            r["speedup"] = r["steps_per_s"] / base["steps_per_s"]
            r["efficiency"] = r["speedup"] / r["devices"]


def _run_memory(args) -> Iterator[dict]:
    for u in args.memory_updates:
        yield _spawn(
            "memory",
            args.timeout,
            num_seeds=args.memory_seeds,
            updates=u,
            memory_envs=args.memory_envs,
            memory_rollout=args.memory_rollout,
        )


def _machine() -> dict:
    import jax

    devices = jax.devices()
    return {
        "platform": devices[0].platform,
        "device_kind": devices[0].device_kind,
        "device_count": len(devices),
        "cpu": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "jax": jax.__version__,
        "python": platform.python_version(),
    }


def _fmt(v: Any, spec: str = ",.0f") -> str:
    return "–" if v is None else format(v, spec)


def _markdown(rec: dict) -> str:
    m = rec["machine"]
    lines = [
        f"# Scaling on {m['platform']} ({m['device_count']} x {m['device_kind']}, "
        f"{m['cpu_count']} CPU cores), {rec['date']}",
        "",
        f"`{rec['command']}`; {rec['env']}, presets; total {rec['total_s']:.0f} s.",
        "",
        *[
            f"- {part}: measured {when.get('date')} (`{when.get('command')}`)"
            for part, when in rec.get("measured", {}).items()
        ],
        "",
        "## Seeds (one program, all devices)",
        "",
        "| algo | seeds | updates | steps/s | compile s | run s | solved | "
        "median time to solve s | XLA temp MiB |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rec["seeds"]:
        if "error" in r:
            updates = "full" if r.get("updates") == 0 else r.get("updates")
            lines.append(_failed_line([r.get("algo"), r["seeds"], updates], 9))
            continue
        solved = r.get("solved_fraction")
        lines.append(
            f"| {r['algo']} | {r['seeds']} | {r['updates']} | {_fmt(r['steps_per_s'])} "
            f"| {r['compile_s']:.1f} | {r['run_s']:.1f} | "
            f"{'–' if solved is None else f'{solved:.0%}'} | "
            f"{_fmt(r.get('median_time_to_solve_s'), '.1f')} | "
            f"{_fmt(r.get('program_temp_mib'), ',.0f')} |"
        )
    lines += [
        "",
        "## Devices (forced CPU devices share the same cores)"
        if m["platform"] == "cpu"
        else "## Devices",
        "",
        *(
            [
                "| algo | seeds | devices | steps/s | speed-up | efficiency |",
                "|---|---:|---:|---:|---:|---:|",
            ]
            if rec["devices"]
            else ["Not measured in this record."]
        ),
    ]
    for r in rec["devices"]:
        if "error" in r:
            lines.append(
                _failed_line([r.get("algo"), r["seeds"], r.get("num_devices")], 6)
            )
            continue
        lines.append(
            f"| {r['algo']} | {r['seeds']} | {r['devices']} | {_fmt(r['steps_per_s'])} "
            f"| {_fmt(r.get('speedup'), '.2f')} | {_fmt(r.get('efficiency'), '.2f')} |"
        )
    lines += [
        "",
        "## Memory (PPO through jaxpg.drivers.runner.run)",
        "",
        "| seeds | updates | envs x steps | metrics streamed | peak host RSS MiB | "
        "peak device MiB | train state MiB | metrics held MiB | wall s |",
        "|---:|---:|---|---|---:|---:|---:|---:|---:|",
    ]
    for r in rec["memory"]:
        if "error" in r:
            lines.append(_failed_line([r["seeds"], r.get("updates")], 9))
            continue
        lines.append(
            f"| {r['seeds']} | {r['updates']} | {r['num_envs']} x {r['rollout_steps']} "
            f"| {'yes' if r.get('streamed') else 'no'} | {r['peak_rss_mib']:,.0f} "
            f"| {_fmt(r['peak_device_mib'])} "
            f"| {r['train_state_mib']:.1f} | {_fmt(r['metrics_in_result_mib'], '.1f')} "
            f"| {r['wall_s']:.0f} |"
        )
    errors = [r for part in PARTS for r in rec.get(part, []) if "error" in r]
    if errors:
        lines += ["", "## Failed runs", ""]
        lines += [f"- {_row_name(r)}: {r['error']}" for r in errors]
    return "\n".join(lines) + "\n"


def _row_name(r: dict) -> str:
    keys = ("algo", "seeds", "updates", "num_devices")
    return ", ".join(f"{k}={r[k]}" for k in keys if r.get(k) is not None)


def _failed_line(first: list, columns: int) -> str:
    cells = ["–" if c is None else str(c) for c in first]
    cells += ["failed"] + ["–"] * (columns - len(cells) - 1)
    return "| " + " | ".join(cells) + " |"


def _plot(rec: dict, path: Path) -> None:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    rec = {
        **rec,
        **{part: [r for r in rec.get(part, []) if "error" not in r] for part in PARTS},
    }
    panels = 3 if rec["devices"] else 2  # no devices panel when none were measured
    fig = Figure(figsize=(4 * panels, 4), layout="constrained")
    FigureCanvasAgg(fig)
    a, b, c = [*fig.subplots(1, panels), None][:3]
    for algo in dict.fromkeys(r["algo"] for r in rec["seeds"]):
        short = [
            r for r in rec["seeds"] if r["algo"] == algo and "solved_fraction" not in r
        ]
        a.plot(
            [r["seeds"] for r in short],
            [r["steps_per_s"] for r in short],
            "o-",
            label=algo,
        )
        full = [
            r
            for r in rec["seeds"]
            if r["algo"] == algo and r.get("median_time_to_solve_s")
        ]
        if full:
            b.plot(
                [r["seeds"] for r in full],
                [r["median_time_to_solve_s"] for r in full],
                "o-",
                label=algo,
            )
        dev = [r for r in rec["devices"] if r["algo"] == algo]
        if c is not None:
            c.plot(
                [r["devices"] for r in dev],
                [r.get("speedup") for r in dev],
                "o-",
                label=algo,
            )
    a.set(xscale="log", yscale="log", xlabel="seeds", ylabel="env steps/s (all seeds)")
    b.set(xscale="log", xlabel="seeds", ylabel="median time to solve (s)")
    if c is not None:
        c.set(xlabel="devices", ylabel="speed-up over 1 device")
        c.set_title("devices")
    m = rec["machine"]
    a.set_title(f"throughput ({m['platform']}: {m['device_kind']})")
    b.set_title(f"time to return {rec['threshold']:g}")
    for ax in (a, b, c)[:panels]:
        ax.grid(alpha=0.3)
        if ax.get_legend_handles_labels()[0]:
            ax.legend()
    fig.savefig(str(path), dpi=110)


if __name__ == "__main__":
    main()
