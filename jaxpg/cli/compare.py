r"""``jaxpg eval`` and ``jaxpg compare``: evaluate saved runs again, compare runs.

``jaxpg eval DIR`` restores the final policy parameters of every seed of the
run in ``DIR`` (or, for an unfinished run, its newest checkpoint), evaluates
them on fresh episodes (another key round than training's own evaluation),
prints the per-seed table and the IQM with its 95% bootstrap interval, and
writes ``DIR/eval.json``.

``jaxpg compare RUN [RUN ...]`` (``RUN`` is ``DIR`` or ``LABEL=DIR``) groups
the runs by label (default: the algorithm) into methods and environments into
tasks, normalises every seed's evaluated return per environment
(:mod:`jaxpg.analysis.scores`), and reports the rliable protocol
(:func:`jaxpg.analysis.compare.compare`): IQM, mean, median and optimality gap with
stratified bootstrap 95% intervals, the probability of improvement of every
ordered pair, and performance profiles; a terminal table, ``compare.json`` and
PNGs (``aggregates.png``, ``profiles.png``, ``improvement.png``).

Per-seed scores that are NaN or infinite (a diverged policy) are reported and
left out of the statistics, never silently averaged.

Shapes: ``S`` seeds, ``E`` episodes, ``N`` runs, ``M`` tasks.
"""

from __future__ import annotations

import argparse
import json
import sys
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from jaxpg.analysis import runs as run_scores
from jaxpg.cli.options import PlainHelpFormatter, check_output_dir
from jaxpg.drivers.evaluation import evaluate_seeds, load_policy
from jaxpg.drivers.report import eval_summary

__all__ = [
    "compare_command",
    "eval_command",
    "eval_summary",
    "print_eval",
    "register",
]


def register(sub: Any) -> None:
    """Add the ``eval`` and ``compare`` subcommands to argparse's subparsers."""
    ev = sub.add_parser(
        "eval",
        formatter_class=PlainHelpFormatter,
        help="evaluate the saved policies of a run directory again",
        description="Evaluate every seed's saved policy of the run in DIR on fresh "
        "episodes; print the per-seed table and the IQM with its 95% bootstrap "
        "CI; write DIR/eval.json.",
    )
    ev.add_argument("dir", type=Path, metavar="DIR", help="a jaxpg run directory")
    ev.add_argument(
        "--episodes",
        type=int,
        default=100,
        metavar="N",
        help="episodes per seed (default: %(default)s)",
    )
    ev.add_argument(
        "--deterministic",
        action="store_true",
        help="take the policy's mode instead of sampling actions",
    )
    ev.add_argument(
        "--round",
        type=int,
        default=1,
        metavar="K",
        help="which set of evaluation episodes: round 0 is the one training's "
        "own evaluation drew, any other round draws fresh ones; the same round "
        "gives the same episodes (default: %(default)s)",
    )
    ev.set_defaults(func=eval_command)

    cmp = sub.add_parser(
        "compare",
        help="compare runs across environments (rliable: IQM, intervals, "
        "probability of improvement, profiles)",
        description=__doc__.split("\n\n")[2],
        formatter_class=PlainHelpFormatter,
        epilog="examples:\n"
        "  jaxpg compare runs/cartpole-ppo runs/acrobot-ppo runs/cartpole-a2c "
        "runs/acrobot-a2c\n"
        "  jaxpg compare lr3e-3=runs/a lr1e-2=runs/b --out runs/lr-study",
    )
    cmp.add_argument(
        "runs", nargs="+", metavar="RUN", help="a run directory, or LABEL=DIR"
    )
    cmp.add_argument(
        "--out",
        type=Path,
        default=Path("runs/compare"),
        metavar="DIR",
        help="where compare.json and the PNGs go (default: %(default)s)",
    )
    cmp.add_argument(
        "--scores",
        choices=("summary", "eval"),
        default="summary",
        help="per-seed scores from training's evaluation (summary.json) or the "
        "latest `jaxpg eval` (eval.json) (default: %(default)s)",
    )
    cmp.add_argument(
        "--reps",
        type=int,
        default=50_000,
        help="bootstrap resamples (default: %(default)s, as rliable)",
    )
    cmp.add_argument(
        "--raw",
        action="store_true",
        help="do not normalise (only for runs of a single environment; no "
        "optimality gap, which has no meaning in raw returns)",
    )
    cmp.add_argument(
        "--reference",
        action="append",
        default=[],
        metavar="ENV=RANDOM,SOLVED",
        help="the random policy's and the solved score of an environment jaxpg "
        "has none for (e.g. your own, my_pkg.envs:make_env=0.5,9.5); repeat it "
        "for several",
    )
    cmp.add_argument(
        "--references",
        type=Path,
        default=None,
        metavar="FILE",
        help='the same from a JSON file {"ENV": {"random": R, "solved": S}}',
    )
    cmp.set_defaults(func=compare_command)


def print_eval(
    summary: dict[str, Any],
    extra_header: str = "",
    extra_rows: list[str] | None = None,
) -> None:
    """Print the per-seed table and the aggregate line of :func:`eval_summary`."""
    print(f"{'seed':>5}  {'eval return':>11}  {'± sd':>6}{extra_header}")
    for i, seed in enumerate(summary["seeds"]):
        m, s = summary["mean_per_seed"][i], summary["std_per_seed"][i]
        shown = (
            f"{m:>11.1f}  {s:>6.1f}"
            if m is not None
            else f"{summary['nonfinite_seeds'][str(seed)]:>11}  {'-':>6}"
        )
        print(f"{seed:>5}  {shown}{extra_rows[i] if extra_rows else ''}")
    print()
    n = len(summary["seeds"])
    bad = summary["nonfinite_seeds"]
    mode = "mode of the policy" if summary["deterministic"] else "actions sampled"
    if summary["iqm"] is None:
        print(f"eval return: no seed has a finite return ({n} seeds)")
    else:
        agg, mean = summary["iqm"], summary["mean"]
        counted = n - len(bad)
        print(
            f"eval return over {counted} seeds ({summary['episodes']} episodes "
            f"each, {mode}):  IQM {agg['estimate']:.1f} [95% CI {agg['low']:.1f}, "
            f"{agg['high']:.1f}]  mean {mean['estimate']:.1f} "
            f"[{mean['low']:.1f}, {mean['high']:.1f}]"
        )
    if bad:
        listed = ", ".join(f"{k} ({v})" for k, v in bad.items())
        print(f"non-finite evaluation, left out of the statistics: seeds {listed}")
    if summary["solved_threshold"] is not None:
        print(
            f"seeds solved (eval return >= {summary['solved_threshold']:g}): "
            f"{summary['seeds_solved']} of {n}"
        )


def eval_command(args: argparse.Namespace) -> int:
    """``jaxpg eval``: returns the exit status."""
    from jaxpg.analysis.scores import solved_threshold
    from jaxpg.experiment import rundir

    try:
        if args.episodes < 1:
            raise ValueError(
                f"--episodes={args.episodes} is invalid: must be an integer >= 1"
            )
        if args.round < 0:
            raise ValueError(
                f"--round={args.round} is invalid: must be an integer >= 0"
            )
        rundir.load_run(args.dir)  # a run directory, before the write check
        check_output_dir(Path(args.dir), "DIR (where eval.json goes)")
        cfg, record, params, what = load_policy(args.dir)
    except ValueError as e:
        print(f"jaxpg eval: error: {e}", file=sys.stderr)
        return 2
    print(f"{args.dir}: {cfg.env} / {cfg.algo}, {record['num_seeds']} seeds ({what})")
    returns = evaluate_seeds(
        cfg,
        params,
        record["num_seeds"],
        record["first_seed"],
        args.episodes,
        args.deterministic,
        args.round,
    )
    summary = eval_summary(
        returns,
        record["first_seed"],
        args.episodes,
        args.deterministic,
        args.round,
        solved_threshold(cfg.env),
    )
    summary["evaluated"] = what
    print_eval(summary)
    rundir.write_json(Path(args.dir) / "eval.json", summary)
    print(f"wrote {Path(args.dir) / 'eval.json'}")
    return 0


def _parse_run(text: str) -> tuple[str | None, Path]:
    label, sep, path = text.partition("=")
    if sep and label and "/" not in label:
        return label, Path(path)
    return None, Path(text)


def _references(args: argparse.Namespace) -> dict:
    """``{env: EnvScores}`` given by ``--references`` and ``--reference``
    (the latter wins)."""
    from jaxpg.analysis.scores import load_references, parse_reference

    refs = {} if args.references is None else load_references(args.references)
    refs.update(parse_reference(text) for text in args.reference)
    return refs


def compare_command(args: argparse.Namespace) -> int:
    """``jaxpg compare``: returns the exit status."""
    from jaxpg.analysis.compare import AGGREGATES, compare
    from jaxpg.analysis.plotting import plot_aggregates, plot_improvement, plot_profiles
    from jaxpg.analysis.scores import normalise
    from jaxpg.experiment import rundir

    try:
        check_output_dir(args.out, "--out")  # before any work
        references = _references(args)
        runs = [_parse_run(text) for text in args.runs]
        table, envs, dropped = run_scores.load_scores(runs, args.scores)
        if args.raw and len(envs) > 1:
            raise ValueError(f"--raw needs runs of one environment, got {envs}")
        matrices, notes = {}, []
        for label, per_env in table.items():
            missing = [e for e in envs if e not in per_env]
            if missing:
                raise ValueError(f"{label} has no run on {', '.join(missing)}")
            n = min(per_env[e].size for e in envs)
            if n == 0:
                raise ValueError(f"{label} has no seed with a finite score")
            if any(per_env[e].size != n for e in envs):
                notes.append(f"{label}: first {n} finite seeds of each env used")
            cols = [
                per_env[e][:n] if args.raw else normalise(e, per_env[e][:n], references)
                for e in envs
            ]
            matrices[label] = np.stack(cols, axis=1)
        result = compare(matrices, reps=args.reps)
    except ValueError as e:  # RunDirError included
        print(f"jaxpg compare: error: {e}", file=sys.stderr)
        return 2
    shown = [m for m in AGGREGATES if not (args.raw and m == "optimality_gap")]
    if args.raw:  # the gap is a shortfall from the solved score: none here
        for agg in result["aggregates"].values():
            agg.pop("optimality_gap")
    result["tasks"] = envs
    result["per_task"] = run_scores.per_task(table, envs, references)
    result["references"] = {e: references[e]._asdict() for e in envs if e in references}
    result["normalised"] = not args.raw
    result["scores"] = {k: v.tolist() for k, v in matrices.items()}
    result["dropped_nonfinite_seeds"] = dropped
    result["notes"] = notes
    unit = "raw return" if args.raw else "normalised score (0 random, 1 solved)"
    print(f"tasks: {', '.join(envs)}; {unit}; {args.reps:,} stratified resamples")
    width = max(6, *(len(k) for k in matrices)) + 2
    cells_of = {
        label: [
            f"{agg[m]['estimate']:.3f} [{agg[m]['low']:.3f},{agg[m]['high']:.3f}]"
            for m in shown
        ]
        for label, agg in result["aggregates"].items()
    }
    # Columns as wide as their widest cell (raw returns are wider).
    cw = [
        max(22, len(m), *(len(c[i]) for c in cells_of.values()))
        for i, m in enumerate(shown)
    ]
    print(
        f"{'method':<{width}} {'runs':>4}  "
        + "  ".join(
            f"{m.replace('_', ' '):>{w}}" for m, w in zip(shown, cw, strict=True)
        )
    )
    for label in result["aggregates"]:
        cells = "  ".join(f"{c:>{w}}" for c, w in zip(cells_of[label], cw, strict=True))
        print(f"{label:<{width}} {matrices[label].shape[0]:>4}  {cells}")
    if result["probability_of_improvement"]:
        print("\nprobability of improvement P(X > Y) [95% CI]")
        for pair, est in result["probability_of_improvement"].items():
            print(
                f"  {pair:<{2 * width}} {est['estimate']:.3f} "
                f"[{est['low']:.3f}, {est['high']:.3f}]"
            )
    print("\nper environment: IQM of evaluated returns, seeds solved")
    for label, per_env in result["per_task"].items():
        cells = "  ".join(
            f"{env} {t['iqm']:.1f} ({t['solved']}/{t['seeds']})"
            if t["solved"] is not None
            else f"{env} {t['iqm']:.1f}"
            for env, t in per_env.items()
        )
        print(f"  {label:<{width}} {cells}")
    for note in notes:
        print(f"note: {note}")
    for key, seeds in dropped.items():
        print(f"note: {key}: seeds {seeds} have non-finite scores, left out")
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    rundir.write_json(out / "compare.json", json.loads(json.dumps(result)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        plot_aggregates(result, out / "aggregates.png")
        plot_profiles(result, out / "profiles.png")
        plot_improvement(result, out / "improvement.png")
    print(
        f"wrote {out / 'compare.json'}, aggregates.png, profiles.png, improvement.png"
    )
    return 0
