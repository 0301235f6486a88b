"""Do the presets solve on every seed? Seed sets of 16, counted.

For each preset ``(env, algo)`` (or the ones named), trains the seeds of the
chosen sets (default 0-15 and 100-115) in one compiled program
(``jit(vmap(make_train(cfg)))``, the path users take), evaluates every final
policy as ``jaxpg train`` does (its keys, ``--episodes`` episodes with sampled
actions, 100 by default as there), and reports per
seed set: the seeds whose mean evaluated return reaches the environment's
threshold (:func:`jaxpg.analysis.scores.solved_threshold`), the IQM with its 95%
stratified bootstrap interval, and the worst seed. Seeds 100-115 were meant to
be held out; the searches behind the Pendulum (PPO, A2C) and
MountainCarContinuous (PPO, A2C) presets scored every setting on 0-15 and
100-115 together, so for those the held-out set is 200-215 (``--sets
200-215``), which no search used. The CartPole REINFORCE preset was searched
on seeds 300-363 (``--sets 300-315,316-331,...``), apart from every check set.

    python benchmarks/presets.py                              # every preset
    python benchmarks/presets.py --only Pendulum-v1/ppo --set lr=3e-4
    python benchmarks/presets.py --sets 200-215 --out results/presets_heldout_cpu

Writes ``benchmarks/results/presets_<device>.json`` and ``.md`` (``--out`` to
change; ``--set`` runs are printed, not written, unless ``--out`` is given;
``--only`` runs replace their rows and keep the others, each row dated).
"""

from __future__ import annotations

import argparse
import datetime
import json
import time
from pathlib import Path

import jax
import numpy as np

import jaxpg
from jaxpg import presets
from jaxpg.analysis.scores import solved_threshold
from jaxpg.analysis.stats import iqm, stratified_bootstrap_ci
from jaxpg.cli.options import parse_setting
from jaxpg.drivers.evaluation import eval_keys
from jaxpg.experiment.rundir import device_name

RESULTS = Path(__file__).parent / "results"
SEED_SETS = {
    "0-15": range(0, 16),
    "100-115": range(100, 116),
    # Never used by any preset search: the held-out check for presets whose
    # search looked at both sets above.
    "200-215": range(200, 216),
    # Search sets: settings are compared here before the checks above.
    "300-315": range(300, 316),
    "316-331": range(316, 332),
    "332-347": range(332, 348),
    "348-363": range(348, 364),
    # Fresh check sets, used by no search and no earlier check.
    "400-415": range(400, 416),
    "500-515": range(500, 516),
    "600-615": range(600, 616),
    "700-715": range(700, 716),
    "800-815": range(800, 816),
    "900-915": range(900, 916),
    "1200-1215": range(1200, 1216),
    "1300-1315": range(1300, 1316),
}
DEFAULT_SETS = ("0-15", "100-115")
# The experiments issue's per-seed bar where it differs from the solved
# threshold: Pendulum's target is IQM >= -200 with 15 of 16 seeds >= -250.
PER_SEED_BAR = {"Pendulum-v1": -250.0}


def check(cfg: jaxpg.Config, episodes: int, sets=DEFAULT_SETS) -> dict:
    """Train the seed ``sets`` of ``cfg`` in one program and evaluate them; a
    JSON-ready row."""
    seeds = np.concatenate([np.asarray(list(SEED_SETS[s])) for s in sets])
    keys = jax.vmap(jax.random.key)(seeds)
    t0 = time.perf_counter()
    out = jax.block_until_ready(jax.jit(jax.vmap(jaxpg.make_train(cfg)))(keys))
    train_s = time.perf_counter() - t0
    # The keys jaxpg train evaluates seed i with (round 0), so a row's seeds
    # can be checked with `jaxpg train --first-seed`.
    returns = jax.jit(jax.vmap(lambda p, k: jaxpg.evaluate(cfg, p, k, episodes)))(
        out.params, eval_keys(seeds)
    )
    per_seed = np.asarray(returns, np.float64).mean(axis=1)
    print("per seed:", np.round(per_seed, 1).tolist(), flush=True)
    threshold = solved_threshold(cfg.env)
    row = {
        "train_eval_s": time.perf_counter() - t0,
        "train_s": train_s,
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "sets": {},
    }
    start = 0
    for name in sets:
        seed_range = SEED_SETS[name]
        scores = per_seed[start : start + len(seed_range)]
        start += len(seed_range)
        finite = scores[np.isfinite(scores)]
        ci = stratified_bootstrap_ci(finite[:, None], stat=iqm, seed=0)
        row["sets"][name] = {
            "solved": int(np.sum(finite >= threshold)),
            "seeds": len(scores),
            "iqm": float(ci.estimate),
            "ci": [float(ci.low), float(ci.high)],
            "worst": float(np.min(finite)) if len(finite) else None,
            "at_least_bar": (
                int(np.sum(finite >= PER_SEED_BAR[cfg.env]))
                if cfg.env in PER_SEED_BAR
                else None
            ),
            "per_seed": [float(x) for x in scores],
        }
    return row


def _line(env: str, algo: str, row: dict) -> str:
    cells = []
    for s in row["sets"].values():
        bar = s.get("at_least_bar")
        extra = "" if bar is None else f" ({bar}/{s['seeds']} >= {PER_SEED_BAR[env]:g})"
        cells.append(
            f"{s['solved']}/{s['seeds']}{extra} | {s['iqm']:.1f} [{s['ci'][0]:.1f}, "
            f"{s['ci'][1]:.1f}] | {s['worst']:.1f}"
        )
    return f"| {env} | {algo} | " + " | ".join(cells) + f" | {row['train_s']:.0f} |"


def _header(sets) -> str:
    cells = "".join(f" solved {s} | IQM {s} [95% CI] | worst {s} |" for s in sets)
    return (
        f"| env | algo |{cells} train s ({16 * len(sets)} seeds) |\n"
        + "|---" * (3 + 3 * len(sets))
        + "|"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", action="append", default=[], help="ENV/ALGO")
    parser.add_argument("--set", action="append", default=[], type=parse_setting)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument(
        "--sets",
        default=",".join(DEFAULT_SETS),
        help=f"seed sets, trained in one program (from {', '.join(SEED_SETS)}; "
        "default: %(default)s)",
    )
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    pairs = [tuple(p.split("/")) for p in args.only] or list(presets.names())
    sets = tuple(x for x in args.sets.split(",") if x)
    if not sets or any(x not in SEED_SETS for x in sets):
        parser.error(f"--sets={args.sets!r}: choose from {', '.join(SEED_SETS)}")
    overrides = dict(args.set)
    out = args.out
    if out is None and not overrides:
        out = RESULTS / f"presets_{jax.default_backend()}"
    rows = {}
    if out is not None and args.only and Path(f"{out}.json").exists():
        # A partial rerun updates its rows and keeps the others (each row
        # records when it was measured).
        rows = json.loads(Path(f"{out}.json").read_text())["rows"]
    print(_header(sets))
    for env, algo in pairs:
        cfg = presets.get(env, algo).replace(**overrides)
        row = check(cfg, args.episodes, sets)
        row["config"] = {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()
        }
        rows[f"{env}/{algo}"] = row
        print(_line(env, algo, row), flush=True)
    if out is None:
        return
    device = device_name()
    meta = {"device": device, "jax": jax.__version__, "episodes": args.episodes}
    Path(f"{out}.json").write_text(json.dumps({"meta": meta, "rows": rows}, indent=1))
    lines = [
        "# Presets on two seed sets",
        "",
        f"Device: {device}; jax {jax.__version__}. Per seed: mean return of "
        f"{args.episodes} evaluation episodes (sampled actions) of the final "
        "policy, with the keys jaxpg train evaluates each seed with (round 0), "
        "so `jaxpg train --first-seed` evaluates a row's seeds on the same "
        "episodes. Solved: seeds at or "
        "above the threshold (CartPole 475, Acrobot "
        "-100, Pendulum -200, MountainCarContinuous 90). IQM over the 16 seeds "
        "with a 95% stratified bootstrap interval per seed set. Pendulum also "
        "counts the seeds at or above -250 (the per-seed bar of its target).",
        "",
        _header(sets),
        *(_line(*k.split("/"), r) for k, r in rows.items()),
        "",
    ]
    Path(f"{out}.md").write_text("\n".join(lines))
    print(f"wrote {out}.json and {out}.md")


if __name__ == "__main__":
    main()
