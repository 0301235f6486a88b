r"""The ``jaxpg`` command: train many seeds, evaluate them, report and save.

``jaxpg train`` starts from the tuned preset of ``(--env, --algo)`` when one
exists (else :class:`~jaxpg.config.Config`'s defaults), applies the options
given on the command line, trains all seeds with :func:`jaxpg.runner.run`,
evaluates every seed's final policy, prints a summary (per seed, then the IQM
over seeds with a 95% bootstrap interval, throughput and timings) and writes
``metrics.json`` and ``learning_curve.png`` to ``--out``.

Needs the ``cli`` extra (matplotlib, tqdm).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxpg
from jaxpg import presets
from jaxpg.advantages import BASELINES
from jaxpg.config import ALGOS, Config
from jaxpg.train import evaluate, resolve_env

__all__ = ["build_parser", "config_from_args", "main"]

# Evaluation keys: fold_in(key(EVAL_SEED), seed), independent of training keys
# and of how many seeds run together.
EVAL_SEED = 2_024_999

# CLI option -> Config field, for the options that override the config.
_OVERRIDES = {
    "baseline": "baseline",
    "steps": "total_steps",
    "lr": "lr",
    "num_envs": "num_envs",
    "rollout_steps": "rollout_steps",
    "gamma": "gamma",
    "ent_coef": "ent_coef",
    "hidden": "hidden",
}

_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_DEFAULTS = {name: f.default for name, f in _FIELDS.items()}

_DESCRIPTION = """\
Train --seeds independent runs (seed i uses jax.random.key(i)) in one compiled
program, evaluate each final policy on --eval-episodes fresh episodes, print a
summary (per seed, then the IQM over seeds with a 95% bootstrap CI, env steps/s,
compile and run time) and write metrics.json and learning_curve.png to --out.
"""

_EXAMPLES = """\
examples:
  jaxpg train                                  # CartPole-v1 REINFORCE preset, 16 seeds
  jaxpg train --env Acrobot-v1 --seeds 8 --steps 100000
  jaxpg train --no-preset --baseline loo --lr 0.005 --hidden 32,32 --out runs/loo

Options left out come from the preset of (--env, --algo) when one exists,
otherwise from jaxpg.Config's defaults (both shown above).
Presets: {presets}.
"""


def _hidden(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(",") if part.strip())
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of ints, e.g. 64,64"
        ) from None


_SETTABLE = tuple(name for name in _FIELDS if name not in ("env", "algo"))


def _setting(text: str) -> tuple[str, Any]:
    """Parse ``--set FIELD=VALUE`` into ``(field, value)``, typed like the
    field's default (``none`` for an optional field, ``true``/``false`` for a
    flag, comma-separated ints for ``hidden``)."""
    name, sep, raw = text.partition("=")
    name, raw = name.strip(), raw.strip()
    if not sep or name not in _SETTABLE:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not FIELD=VALUE with FIELD one of {', '.join(_SETTABLE)}"
        )
    kind = str(_FIELDS[name].type)
    try:
        if raw.lower() == "none" and "None" in kind:
            return name, None
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0"):
                raise ValueError
            return name, raw.lower() in ("true", "1")
        if kind.startswith("tuple"):
            return name, _hidden(raw)
        if kind.startswith("int"):
            return name, int(raw)
        if kind.startswith("float"):
            return name, float(raw)
    except (ValueError, argparse.ArgumentTypeError):
        raise argparse.ArgumentTypeError(
            f"{text!r}: {raw!r} is not a valid {kind} for {name}"
        ) from None
    return name, raw


def _default_text(field: str) -> str:
    """``(default: ...)`` for a Config field: the default env/algo preset's
    value when it differs from Config's."""
    base = _show(_DEFAULTS[field])
    if ("CartPole-v1", "reinforce") in presets.names():
        tuned = _show(getattr(presets.get("CartPole-v1", "reinforce"), field))
        if tuned != base:
            return f"(default: {tuned} in the CartPole-v1 preset, else {base})"
    return f"(default: {base})"


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxpg`` argument parser (subcommand ``train``)."""
    parser = argparse.ArgumentParser(
        prog="jaxpg",
        description="Policy-gradient RL in JAX: many seeds in one compiled program.",
    )
    parser.add_argument("--version", action="version", version=jaxpg.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    known = ", ".join(f"{e}/{a}" for e, a in presets.names())
    train = sub.add_parser(
        "train",
        help="train seeds, evaluate them, write metrics.json and a learning curve",
        description=_DESCRIPTION,
        epilog=_EXAMPLES.format(presets=known or "none"),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    d = _default_text
    train.add_argument(
        "--env",
        default="CartPole-v1",
        help="gymnax environment name (default: %(default)s)",
    )
    train.add_argument(
        "--algo",
        default="reinforce",
        choices=ALGOS,
        help="algorithm (default: %(default)s)",
    )
    train.add_argument(
        "--baseline",
        choices=(*BASELINES, "value"),
        help=f"REINFORCE baseline; ignored by a2c/ppo {d('baseline')}",
    )
    train.add_argument(
        "--seeds",
        type=int,
        default=16,
        metavar="S",
        help="number of seeds, trained together (default: %(default)s)",
    )
    train.add_argument(
        "--steps",
        type=int,
        metavar="N",
        help=f"env-step budget per seed, total_steps {d('total_steps')}",
    )
    train.add_argument("--lr", type=float, help=f"Adam learning rate {d('lr')}")
    train.add_argument(
        "--num-envs",
        type=int,
        metavar="B",
        help=f"parallel environments per seed {d('num_envs')}",
    )
    train.add_argument(
        "--rollout-steps",
        type=int,
        metavar="T",
        help="steps per update window; reinforce: episodes starting in the "
        f"first T steps run to their end {d('rollout_steps')}",
    )
    train.add_argument("--gamma", type=float, help=f"discount in [0, 1] {d('gamma')}")
    train.add_argument(
        "--ent-coef",
        type=float,
        help=f"entropy bonus coefficient >= 0 {d('ent_coef')}",
    )
    train.add_argument(
        "--hidden",
        type=_hidden,
        metavar="W,W",
        help=f"MLP hidden widths, comma-separated {d('hidden')}",
    )
    train.add_argument(
        "--set",
        dest="settings",
        type=_setting,
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="set any Config field, e.g. --set policy_head_scale=1.0 "
        "--set max_grad_norm=none (repeatable; applied after the options above)",
    )
    train.add_argument(
        "--eval-episodes",
        type=int,
        default=100,
        metavar="N",
        help="evaluation episodes per seed, actions sampled (default: %(default)s)",
    )
    train.add_argument(
        "--out",
        type=Path,
        metavar="DIR",
        help="output directory (default: runs/<env>-<algo>)",
    )
    train.add_argument(
        "--preset",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="start from the tuned preset of (--env, --algo); default: use it "
        "when one exists; --preset fails if none does",
    )
    train.add_argument(
        "--no-progress",
        dest="progress",
        action="store_false",
        help="no progress bar",
    )
    return parser


def config_from_args(args: argparse.Namespace) -> tuple[Config, str]:
    """``(config, source)`` for parsed ``train`` options; ``source`` says what
    the config started from.

    Raises:
      ValueError: an invalid option value (the message names it).
    """
    overrides = {
        field: getattr(args, opt)
        for opt, field in _OVERRIDES.items()
        if getattr(args, opt) is not None
    }
    overrides.update(dict(args.settings))
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
    for name in ("seeds", "eval_episodes"):
        value = getattr(args, name)
        if value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag}={value} is invalid: must be an integer >= 1")
    resolve_env(cfg)  # the environment must exist and have a time limit
    return cfg, source


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxpg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        cfg, source = config_from_args(args)
    except ValueError as e:
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 2
    _enable_compilation_cache()
    _train(cfg, source, args)
    return 0


def _enable_compilation_cache() -> None:
    """Keep compiled programs on disk (``$JAXPG_CACHE_DIR``, default
    ``~/.cache/jaxpg/xla``; empty disables): a repeated command skips XLA's
    compile. The first run of a configuration still compiles in full."""
    path = os.environ.get("JAXPG_CACHE_DIR", str(Path.home() / ".cache/jaxpg/xla"))
    if path:
        jax.config.update("jax_compilation_cache_dir", path)


def _train(cfg: Config, source: str, args: argparse.Namespace) -> None:
    from jaxpg.plotting import plot_learning_curve
    from jaxpg.runner import run
    from jaxpg.stats import bootstrap_ci, iqm

    out = args.out or Path("runs") / f"{cfg.env}-{cfg.algo}"
    num_seeds = args.seeds
    print(f"jaxpg {jaxpg.__version__}  {cfg.env} / {cfg.algo}  ({source})")
    bound = "up to " if cfg.algo == "reinforce" else ""
    print(
        f"  {num_seeds} seeds x {cfg.total_steps:,} steps, {bound}{cfg.num_updates} "
        f"updates of {cfg.num_envs} envs x {cfg.rollout_steps} steps; "
        f"lr={cfg.lr} gamma={cfg.gamma} baseline={cfg.baseline} "
        f"hidden={cfg.hidden}"
    )
    result = run(cfg, num_seeds, progress=args.progress)

    t0 = time.perf_counter()
    seeds = np.arange(num_seeds)
    keys = jax.vmap(lambda i: jax.random.fold_in(jax.random.key(EVAL_SEED), i))(seeds)
    eval_fn = jax.jit(
        jax.vmap(lambda p, k: evaluate(cfg, p, k, num_episodes=args.eval_episodes))
    )
    eval_returns = np.asarray(eval_fn(result.params, keys))  # [S, episodes]
    eval_s = time.perf_counter() - t0

    per_seed = eval_returns.mean(axis=1)
    agg = bootstrap_ci(per_seed, stat=iqm)
    mean_ci = bootstrap_ci(per_seed)
    env_steps = result.metrics["env_steps"][:, -1]
    train_last = [_last_finite(r) for r in result.metrics["episode_return"]]
    device = _device()

    print()
    print(
        f"{'seed':>5}  {'eval return':>11}  {'± sd':>6}  {'last train':>10}  "
        f"{'env steps':>10}"
    )
    for i in range(num_seeds):
        print(
            f"{i:>5}  {per_seed[i]:>11.1f}  {eval_returns[i].std():>6.1f}  "
            f"{train_last[i]:>10.1f}  {int(env_steps[i]):>10,}"
        )
    print()
    print(
        f"eval return over {num_seeds} seeds ({args.eval_episodes} episodes each):"
        f"  IQM {agg.estimate:.1f} [95% CI {agg.low:.1f}, {agg.high:.1f}]"
        f"  mean {mean_ci.estimate:.1f} [{mean_ci.low:.1f}, {mean_ci.high:.1f}]"
    )
    print(
        f"throughput {result.steps_per_s:,.0f} env steps/s (all seeds)   "
        f"compile {result.compile_s:.1f} s   run {result.run_s:.1f} s   "
        f"eval {eval_s:.1f} s (incl. compile)"
    )
    print(f"device {device}")

    out.mkdir(parents=True, exist_ok=True)
    record = {
        "jaxpg_version": jaxpg.__version__,
        "jax_version": jax.__version__,
        "config": dataclasses.asdict(cfg),
        "config_source": source,
        "num_updates": cfg.num_updates,
        "seeds": seeds.tolist(),
        "metrics": {k: _json_array(v) for k, v in result.metrics.items()},
        "eval": {
            "episodes": args.eval_episodes,
            "deterministic": False,
            "key": f"fold_in(key({EVAL_SEED}), seed)",
            "returns": _json_array(eval_returns),
            "mean_per_seed": _json_array(per_seed),
            "iqm": agg._asdict(),
            "mean": mean_ci._asdict(),
            "confidence": 0.95,
        },
        "timings": {
            "compile_s": result.compile_s,
            "run_s": result.run_s,
            "eval_s": eval_s,
            "steps_per_s": result.steps_per_s,
            "total_env_steps": int(np.sum(env_steps, dtype=np.int64)),
        },
        "device": device,
    }
    (out / "metrics.json").write_text(json.dumps(record, allow_nan=False))
    plot_learning_curve(
        result.metrics["env_steps"],
        result.metrics["episode_return"],
        out / "learning_curve.png",
        title=f"{cfg.env} {cfg.algo} ({num_seeds} seeds)",
    )
    print(f"wrote {out / 'metrics.json'} and {out / 'learning_curve.png'}")


def _last_finite(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite[-1]) if finite.size else math.nan


def _json_array(x: Any) -> Any:
    """A nested list with NaN and inf as ``null`` (strict JSON)."""
    a = np.asarray(x)
    if a.dtype.kind != "f":
        return a.tolist()
    obj = a.astype(np.float64).astype(object)  # Python floats
    obj[~np.isfinite(a)] = None
    return obj.tolist()


def _device() -> str:
    devices = jax.devices()
    return f"{devices[0].platform}: {len(devices)} x {devices[0].device_kind}"


if __name__ == "__main__":
    sys.exit(main())
