r"""``jaxpg sweep``: every setting × every seed in one program, compared.

``jaxpg sweep --grid lr=1e-3,3e-3 --grid ent_coef=0,0.01 --seeds 8 --out DIR``
trains the grid's settings (``itertools.product`` in the order the ``--grid``
options are given; see :mod:`jaxpg.drivers.sweep`) with ``--seeds`` seeds each,
in compiled chunks of updates with a progress bar over env steps
(:mod:`jaxpg.drivers.members`), evaluates every final policy, prints one row per
setting (the IQM over seeds of the evaluated return with a 95% bootstrap
interval, and the seeds whose evaluated return reaches ``--solved-at``), marks
the best setting (highest IQM) with ``*`` and writes ``DIR/sweep.json`` and
``DIR/sweep.png`` (final scores with intervals; learning curves). A folder
that holds an earlier sweep is refused before anything is computed unless
``--overwrite`` is given; without ``--out`` the first free
``runs/sweep-ENV-ALGO``, ``-2``, ``-3``, ... is used.
``--random lr=1e-4:1e-2 --num-settings 16`` draws log-uniform settings from
``--search-seed`` instead (``:linear`` for a uniform range).

Members (settings × seeds) are laid out over all devices of all processes
(:mod:`jaxpg.drivers.parallel`); ``--coordinator``, ``--num-processes`` and
``--process-id`` join several hosts, and process 0 writes the outputs.

Wiring: ``register(subparsers)`` adds the subcommand to the ``jaxpg`` parser
(append it to :data:`jaxpg.cli.main.SUBCOMMANDS`) and sets ``args.func`` (also
``args.run``), which returns the exit status. Needs the ``cli`` extra
(matplotlib).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

import jaxpg
from jaxpg import presets
from jaxpg.analysis.scores import ENV_SCORES, solved_threshold
from jaxpg.cli.options import (
    PlainHelpFormatter,
    add_cache_argument,
    add_distributed_arguments,
    add_set_argument,
    check_output_dir,
    device_name,
    enable_compilation_cache,
    first_free,
    initialize_from_args,
    strict_json,
)
from jaxpg.config import ALGOS, Config
from jaxpg.drivers.imports import load_object
from jaxpg.drivers.train import make_algorithm

__all__ = ["register", "run"]


_EXAMPLES = """\
examples:
  jaxpg sweep --grid lr=1e-3,3e-3,1e-2 --grid ent_coef=0,0.01 --seeds 8
  jaxpg sweep --algo ppo --random lr=1e-4:3e-3 --random clip_eps=0.1:0.3:linear \\
      --num-settings 16 --seeds 4 --out runs/ppo-search
  # several hosts (one process each, same command), e.g. under SLURM:
  srun jaxpg sweep --grid lr=1e-3,3e-3 --seeds 64 --coordinator auto
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``sweep`` subcommand to ``subparsers`` (from
    ``parser.add_subparsers()``); parsed arguments carry ``func`` (and
    ``run``), the command."""
    p = subparsers.add_parser(
        "sweep",
        help="train a grid (or random search) of settings x seeds in one program",
        description=__doc__.split("\n\n")[1],
        epilog=_EXAMPLES,
        formatter_class=PlainHelpFormatter,
    )
    p.add_argument("--env", default="CartPole-v1", help="environment (%(default)s)")
    p.add_argument(
        "--algo", default="reinforce", choices=ALGOS, help="algorithm (%(default)s)"
    )
    p.add_argument(
        "--preset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the tuned preset of (--env, --algo) (default: when one "
        "exists)",
    )
    p.add_argument(
        "--grid",
        action="append",
        default=[],
        type=_grid_option,
        metavar="FIELD=V1,V2,...",
        help="values of one sweepable field (repeatable; the last varies fastest)",
    )
    p.add_argument(
        "--random",
        action="append",
        default=[],
        type=_range_option,
        metavar="FIELD=LOW:HIGH[:linear]",
        help="random search: a log-uniform (or :linear) range (repeatable)",
    )
    p.add_argument(
        "--num-settings", type=int, default=8, metavar="K",
        help="settings drawn by --random (%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--search-seed", type=int, default=0, metavar="N",
        help="seed of the --random draws (%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--seeds", type=int, default=8, metavar="S",
        help="seeds per setting (%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--steps",
        type=int,
        default=None,
        metavar="N",
        help="env-step budget per member (total_steps; default: the base config's)",
    )
    p.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no compiling line and no progress bar while the sweep trains",
    )
    add_set_argument(
        p,
        "set a Config field of the base config (repeatable)",
    )
    p.add_argument(
        "--eval-episodes", type=int, default=100, metavar="N",
        help="evaluation episodes per member after training, as jaxpg train "
        "(%(default)s)",
    )  # fmt: skip
    p.add_argument(
        "--solved-at",
        type=float,
        metavar="R",
        help="evaluated return at which a seed counts as solved (default: the "
        f"env's, known for {', '.join(ENV_SCORES)})",
    )
    p.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="where sweep.json and sweep.png go (default: runs/sweep-ENV-ALGO, "
        "or the first free -2, -3, ... after it)",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the sweep.json and sweep.png of an earlier sweep in --out",
    )
    p.add_argument(
        "--algorithm",
        metavar="MODULE:FACTORY",
        default=None,
        help="your algorithm, as for jaxpg train: an import path to a function "
        "(cfg, parts) -> jaxpg.Algorithm (--algo still picks the parts)",
    )
    add_cache_argument(p)
    add_distributed_arguments(p)
    p.set_defaults(run=run, func=run)
    return p


def run(args: argparse.Namespace) -> int:
    """Run a parsed ``jaxpg sweep``; returns the exit status (2: bad options)."""
    try:
        joined = initialize_from_args(args)
        cfg, source = _base_config(args)
        settings_spec = _settings_spec(args)
        name = cfg.env.replace(":", "-")  # an import path module:make_env
        out_dir = args.out or first_free(Path("runs") / f"sweep-{name}-{cfg.algo}")
        check_output_dir(out_dir, "--out")  # before compiling, not after training
        if (out_dir / "sweep.json").exists() and not args.overwrite:
            raise ValueError(
                f"--out {out_dir} already holds a sweep (sweep.json): choose "
                "another --out, or replace it with --overwrite"
            )
        enable_compilation_cache(args)
        algorithm = None
        if args.algorithm is not None:
            algorithm = load_object(args.algorithm, "--algorithm")
        make_algorithm(cfg, algorithm=algorithm)  # a bad environment fails here
    except ValueError as e:
        print(f"jaxpg sweep: error: {e}", file=sys.stderr)
        return 2
    import jax

    from jaxpg.analysis.plotting import plot_sweep, sweep_curves
    from jaxpg.drivers.report import rank_settings
    from jaxpg.drivers.sweep import grid_settings, random_settings, sweep_and_evaluate

    try:
        if isinstance(settings_spec, dict):
            settings = grid_settings(settings_spec)
        else:
            settings = random_settings(
                jax.random.key(args.search_seed), dict(settings_spec), args.num_settings
            )
        for setting in settings:  # each setting as a whole config
            cfg.replace(**setting)
    except ValueError as e:
        print(f"jaxpg sweep: error: {e}", file=sys.stderr)
        return 2
    k, s = len(settings), args.seeds
    solved_at = (
        args.solved_at if args.solved_at is not None else solved_threshold(cfg.env)
    )
    writer = jax.process_index() == 0
    if writer:
        print(
            f"jaxpg sweep  {cfg.env} / {cfg.algo}  ({source})\n"
            f"  {k} settings x {s} seeds = {k * s} members on "
            f"{jax.device_count()} device(s), {jax.process_count()} process(es)"
        )
    episodes = args.eval_episodes
    t0 = time.perf_counter()
    result = sweep_and_evaluate(
        cfg,
        settings,
        s,
        episodes,
        algorithm=algorithm,
        progress=args.progress and writer,
    )
    total_s = time.perf_counter() - t0
    if not writer:
        return 0
    rows, best = rank_settings(result.eval_returns, episodes, solved_at)
    iqms = [r["iqm"] for r in rows]
    _print_table(settings, rows, best, solved_at, s)
    print(f"compile + train + eval {total_s:.1f} s; {device_name()}")
    out_dir.mkdir(parents=True, exist_ok=True)
    curves = sweep_curves(result.env_steps, result.episode_return)
    record = {
        "jaxpg_version": jaxpg.__version__,
        "jax_version": jax.__version__,
        "config": dataclasses.asdict(cfg),
        "config_source": source,
        "algorithm": args.algorithm,
        "search": (
            {"grid": settings_spec}
            if isinstance(settings_spec, dict)
            else {
                "random": {n: list(r) for n, r in settings_spec},
                "search_seed": args.search_seed,
            }
        ),
        "seeds": list(range(s)),
        "solved_at": solved_at,
        "results": [
            {"setting": st, **row} for st, row in zip(settings, rows, strict=True)
        ],
        "best": best,
        "curves": curves,
        "compile_s": result.compile_s,
        "total_s": total_s,
        "device": device_name(),
        "processes": jax.process_count(),
        "distributed": joined,
    }
    (out_dir / "sweep.json").write_text(
        json.dumps(strict_json(record), allow_nan=False)
    )
    title = f"{cfg.env} {cfg.algo}"
    plot_sweep(settings, iqms, best, curves, out_dir / "sweep.png", title)
    print(f"wrote {out_dir / 'sweep.json'} and {out_dir / 'sweep.png'}")
    return 0


def _base_config(args: argparse.Namespace) -> tuple[Config, str]:
    overrides = dict(args.settings)
    if args.steps is not None:
        overrides["total_steps"] = args.steps
    has_preset = (args.env, args.algo) in presets.names()
    if args.preset and not has_preset:
        presets.get(args.env, args.algo)  # raises, listing the presets
    if has_preset and args.preset is not False:
        cfg = presets.get(args.env, args.algo).replace(**overrides)
        source = f"preset {args.env}/{args.algo}"
    else:
        cfg = Config(env=args.env, algo=args.algo, **overrides)
        source = "Config defaults"
    if overrides:
        source += " + " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    for name in ("seeds", "eval_episodes", "num_settings"):
        value = getattr(args, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag}={value} is invalid: must be an integer >= 1")
    return cfg, source


def _settings_spec(args: argparse.Namespace) -> dict | list:
    if bool(args.grid) == bool(args.random):
        raise ValueError(
            "give --grid FIELD=V1,V2 or --random FIELD=LOW:HIGH (one kind)"
        )
    pairs = args.grid or args.random
    names = [n for n, _ in pairs]
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise ValueError(f"field(s) {', '.join(repeated)} given more than once")
    return dict(args.grid) if args.grid else list(args.random)


def _grid_option(text: str) -> tuple[str, list[float]]:
    name, sep, raw = text.partition("=")
    try:
        if not sep:
            raise ValueError
        return name.strip(), [float(v) for v in raw.split(",") if v.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FIELD=V1,V2,... with numbers, e.g. lr=1e-3,3e-3"
        ) from None


def _range_option(text: str) -> tuple[str, tuple]:
    name, sep, raw = text.partition("=")
    parts = raw.split(":")
    try:
        if not sep or len(parts) not in (2, 3):
            raise ValueError
        scale = parts[2].strip() if len(parts) == 3 else "log"
        return name.strip(), (float(parts[0]), float(parts[1]), scale)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FIELD=LOW:HIGH[:linear], e.g. lr=1e-4:1e-2"
        ) from None


def _print_table(settings, rows, best, solved_at, num_seeds) -> None:
    names = list(dict.fromkeys(n for st in settings for n in st))
    label = [" ".join(f"{n}={st[n]:g}" for n in names) for st in settings]
    width = max(len("setting"), *map(len, label))
    solved_head = f"solved (>= {solved_at:g})" if solved_at is not None else ""
    print()
    print(f"  {'setting':<{width}}  {'IQM':>9}  {'95% CI':>21}  {solved_head}")
    nan = {"estimate": math.nan, "low": math.nan, "high": math.nan}
    for i, (text, row) in enumerate(zip(label, rows, strict=True)):
        c = row["iqm"] or nan  # None: no seed with a finite evaluation
        mark = "*" if i == best else " "
        solved = row["seeds_solved"]
        solved = f"{solved}/{num_seeds}" if solved is not None else ""
        print(
            f"{mark} {text:<{width}}  {c['estimate']:>9.1f}  "
            f"[{c['low']:>9.1f}, {c['high']:>9.1f}]  {solved}"
        )
    print("* best setting (highest IQM of the evaluated return over seeds)")
