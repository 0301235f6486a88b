"""``jaxpg train``'s options: its argument parser and the
:class:`~jaxpg.config.Config` they make (a preset, or ``Config``'s defaults,
with the options given on the command line), or the config of the run that
``--resume`` continues, checked against the options given. The command itself
is :mod:`jaxpg.cli.train`."""

from __future__ import annotations

import argparse
import dataclasses
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from jaxpg import presets
from jaxpg.cli.options import (
    PlainHelpFormatter,
    add_cache_argument,
    add_distributed_arguments,
    add_set_argument,
    first_free,
    hidden_widths,
)
from jaxpg.config import ALGOS, Config
from jaxpg.drivers.train import resolve_env
from jaxpg.kernels.advantages import BASELINES
from jaxpg.networks import TORSOS

__all__ = [
    "add_parser",
    "check_counts",
    "chunk_seconds",
    "config_from_args",
    "default_out",
    "resume_config",
]


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
    "torso": "torso",
    "recurrent_size": "recurrent_size",
}

_FIELDS = {f.name: f for f in dataclasses.fields(Config)}
_DEFAULTS = {name: f.default for name, f in _FIELDS.items()}

_DESCRIPTION = """\
Train --seeds independent runs (seed i uses jax.random.key(i)) together, in
compiled chunks of updates; evaluate each final policy on --eval-episodes fresh
episodes; print a summary (per seed, then the IQM over seeds with a 95%
bootstrap CI, seeds that reach the env's solved score, env steps/s, compile and
run time).

--out DIR becomes a run directory: config.json (enough to rebuild the run),
versions.json, metrics/ (streamed per chunk), checkpoints/ (the whole train
state of every seed), params/ (final policy parameters), summary.json and
learning_curve.png. Ctrl-C or SIGTERM saves a checkpoint at the next chunk
boundary and exits (status 130 / 143); --resume DIR continues it, and the
result is bit-identical to an uninterrupted run on the same machine.
"""

_EXAMPLES = """\
examples:
  jaxpg train                                  # CartPole-v1 REINFORCE preset, 16 seeds
  jaxpg train --env Acrobot-v1 --seeds 8 --steps 100000
  jaxpg train --no-preset --baseline loo --lr 0.005 --hidden 32,32 --out runs/loo
  jaxpg train --env MemoryChain-bsuite --torso gru --hidden 64   # a recurrent policy
  jaxpg train --algo ppo --out runs/ppo --checkpoint-every 50   # Ctrl-C, then:
  jaxpg train --resume runs/ppo
  jaxpg train --seeds 1024 --coordinator host0:8476 --num-processes 4 --process-id I
      # one process per host (I = 0..3): the seeds split over all devices of
      # all hosts; process 0 writes the run directory

Options left out come from the preset of (--env, --algo) when one exists,
otherwise from jaxpg.Config's defaults (both shown above).
Presets: {presets}.
"""


def _default_text(field: str) -> str:
    """``(default: ...)`` for a Config field: the default env/algo preset's
    value when it differs from Config's."""
    base = _show(_DEFAULTS[field])
    if ("CartPole-v1", "reinforce") in presets.names():
        tuned = _show(getattr(presets.get("CartPole-v1", "reinforce"), field))
        if tuned != base:
            return (
                f"(default: the preset's, e.g. {tuned} for CartPole-v1/reinforce; "
                f"without a preset {base})"
            )
    return f"(default: {base})"


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def add_parser(sub: Any, command: Callable[[argparse.Namespace], int]) -> None:
    """Add the ``train`` subcommand to argparse's ``sub``, running ``command``."""
    known = ", ".join(f"{e}/{a}" for e, a in presets.names())
    train = sub.add_parser(
        "train",
        help="train seeds into a run directory, evaluate them, resume after Ctrl-C",
        description=_DESCRIPTION,
        epilog=_EXAMPLES.format(presets=known or "none"),
        formatter_class=PlainHelpFormatter,
    )
    d = _default_text
    # --env, --algo and --seeds default to None so that --resume can tell the
    # options given from the defaults.
    train.add_argument(
        "--env",
        help="gymnax environment name, or your own as an import path "
        "MODULE:FUNCTION returning (env, env_params) (default: CartPole-v1)",
    )
    train.add_argument("--algo", choices=ALGOS, help="algorithm (default: reinforce)")
    train.add_argument(
        "--baseline",
        choices=(*BASELINES, "value"),
        help=f"REINFORCE baseline; ignored by a2c/ppo {d('baseline')}",
    )
    train.add_argument(
        "--seeds",
        type=int,
        metavar="S",
        help="number of seeds, trained together (default: 16)",
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
        type=hidden_widths,
        metavar="W,W",
        help=f"MLP hidden widths, comma-separated {d('hidden')}",
    )
    train.add_argument(
        "--torso",
        choices=TORSOS,
        help="the policy's and critic's torso: mlp (--hidden widths), or a gru / "
        "lstm cell of --recurrent-size units after a --hidden encoder, for "
        f"partially observed tasks {d('torso')}",
    )
    train.add_argument(
        "--recurrent-size",
        type=int,
        metavar="H",
        help=f"units of a gru / lstm torso's cell {d('recurrent_size')}",
    )
    add_set_argument(
        train,
        "set any Config field but env and algo, e.g. --set policy_head_scale=1.0 "
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
        help="run directory; must be new or empty unless --overwrite "
        "(default: runs/<env>-<algo>, numbered -2, -3, ... when taken)",
    )
    train.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the run in DIR from its newest valid checkpoint; options "
        "given must match the run's config",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace the run already in --out (refused while another process "
        "is training it)",
    )
    train.add_argument(
        "--start-over",
        action="store_true",
        help="with --resume: when no checkpoint of the run restores (or it has "
        "none), start it again from update 0, deleting its metrics and "
        "checkpoints; without it such a resume is refused and nothing is deleted",
    )
    train.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="U",
        help="also checkpoint every U updates (at the next chunk boundary); "
        "always at the end and on Ctrl-C/SIGTERM",
    )
    train.add_argument(
        "--chunk-seconds",
        type=float,
        metavar="S",
        help="size compiled chunks so that each runs about S seconds (after a "
        "first two chunks of one update that measure the speed), so that Ctrl-C or "
        "SIGTERM stops within about 2 S plus a checkpoint's save; 0: fixed "
        "chunks of about a twentieth of the run (default: 5; with --resume, "
        "the run's own)",
    )
    train.add_argument(
        "--tensorboard",
        action="store_true",
        help="write TensorBoard event files to DIR/tensorboard, one run per seed "
        "(needs tensorboardX: the tensorboard extra)",
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
    train.add_argument(
        "--algorithm",
        metavar="MODULE:FACTORY",
        default=None,
        help="your algorithm: an import path to a function (cfg, parts) -> "
        "jaxpg.Algorithm, used in place of --algo's update rule (--algo still "
        "picks the parts: a critic for a2c and ppo); recorded for --resume",
    )
    add_cache_argument(train)
    add_distributed_arguments(train)
    train.set_defaults(func=command)


def config_from_args(args: argparse.Namespace) -> tuple[Config, str]:
    """``(config, source)`` for parsed ``train`` options; ``source`` says what
    the config started from.

    Raises:
      ValueError: an invalid option value (the message names it).
    """
    env = args.env or "CartPole-v1"
    algo = args.algo or "reinforce"
    overrides = _overrides(args)
    has_preset = (env, algo) in presets.names()
    if args.preset and not has_preset:
        presets.get(env, algo)  # raises, listing the presets
    if has_preset and args.preset is not False:
        cfg = presets.get(env, algo).replace(**overrides)
        source = f"preset {env}/{algo}"
    else:
        cfg = Config(env=env, algo=algo, **overrides)
        source = "Config defaults"
    if overrides:
        source += " + " + ", ".join(f"{k}={v}" for k, v in overrides.items())
    check_counts(args)
    resolve_env(cfg)  # the environment must exist and have a time limit
    return cfg, source


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    overrides = {
        field: getattr(args, opt)
        for opt, field in _OVERRIDES.items()
        if getattr(args, opt) is not None
    }
    overrides.update(dict(args.settings))
    return overrides


def chunk_seconds(args: argparse.Namespace) -> float | None:
    """``chunk_seconds`` for :func:`jaxpg.drivers.runner.run`: ``None`` on a
    resume (the run's own: a differing ``--chunk-seconds`` was refused) and
    for ``--chunk-seconds 0`` (fixed chunks)."""
    from jaxpg.drivers.runner import DEFAULT_CHUNK_SECONDS

    if args.resume is not None:
        return None
    seconds = getattr(args, "chunk_seconds", None)
    if seconds is None:
        return DEFAULT_CHUNK_SECONDS
    return seconds or None


def check_counts(args: argparse.Namespace) -> None:
    for name in ("seeds", "eval_episodes", "checkpoint_every"):
        value = getattr(args, name, None)
        if value is not None and value < 1:
            flag = "--" + name.replace("_", "-")
            raise ValueError(f"{flag}={value} is invalid: must be an integer >= 1")
    seconds = getattr(args, "chunk_seconds", None)
    if seconds is not None and not (math.isfinite(seconds) and seconds >= 0):
        raise ValueError(
            f"--chunk-seconds={seconds} is invalid: must be a finite number >= 0 "
            "(0: fixed chunks)"
        )


def resume_config(args: argparse.Namespace) -> tuple[Config, str, int, int]:
    """``(config, source, num_seeds, first_seed)`` of the run in ``--resume``;
    options given on the command line must agree with it.

    Raises:
      ValueError: not a run directory, or options that differ (named).
    """
    from jaxpg.experiment.rundir import load_run

    cfg, record = load_run(args.resume)
    check_counts(args)
    if args.out is not None or args.overwrite:
        raise ValueError("--resume DIR cannot be combined with --out or --overwrite")
    given = _overrides(args)
    if args.env is not None:
        given["env"] = args.env
    if args.algo is not None:
        given["algo"] = args.algo
    differ = [
        f"{k}: run has {getattr(cfg, k)!r}, command line {v!r}"
        for k, v in given.items()
        if getattr(cfg, k) != v
    ]
    seconds = getattr(args, "chunk_seconds", None)
    if seconds is not None and (seconds or None) != record.get("chunk_seconds"):
        differ.append(
            f"chunk_seconds: run has {record.get('chunk_seconds') or 0}, command "
            f"line {seconds}"
        )
    if args.seeds is not None and args.seeds != record["num_seeds"]:
        differ.append(
            f"seeds: run has {record['num_seeds']}, command line {args.seeds}"
        )
    if differ:
        raise ValueError(
            f"--resume {args.resume}: options differ from the run's config: "
            + "; ".join(differ)
        )
    return cfg, f"resumed {args.resume}", record["num_seeds"], record["first_seed"]


def default_out(cfg: Config) -> Path:
    """``runs/<env>-<algo>``, or the first free ``-2``, ``-3``, ... after it."""
    name = cfg.env.replace(":", "-")  # an import path module:make_env
    return first_free(Path("runs") / f"{name}-{cfg.algo}")
