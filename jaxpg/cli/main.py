r"""The ``jaxpg`` command: train, evaluate and compare multi-seed runs.

Subcommands (argparse subparsers, one module-level function each; other
modules add theirs through a ``register(subparsers)`` function, see
:data:`SUBCOMMANDS`):

* ``jaxpg train`` starts from the tuned preset of ``(--env, --algo)`` when one
  exists (else :class:`~jaxpg.config.Config`'s defaults), applies the options
  given on the command line, trains all seeds with :func:`jaxpg.drivers.runner.run`
  into a run directory (:mod:`jaxpg.experiment.rundir`: config, versions, streamed
  metrics, checkpoints, final parameters), evaluates every seed's final
  policy, prints a summary and writes ``summary.json`` and
  ``learning_curve.png``. Ctrl-C / SIGTERM checkpoint and exit (status 130 /
  143) with the command that resumes: ``jaxpg train --resume DIR``. With
  ``--coordinator``/``--num-processes``/``--process-id`` (one process per
  host) the seeds are split over the devices of all processes and process 0
  writes the run directory.
* ``jaxpg eval DIR`` and ``jaxpg compare DIR [DIR ...]``: see
  :mod:`jaxpg.cli.compare`.
* ``jaxpg sweep`` (:mod:`jaxpg.cli.sweep`) and ``jaxpg lm``
  (:mod:`jaxpg.cli.lm`).

Needs the ``cli`` extra (matplotlib, tqdm) and ``checkpoint`` (orbax).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import importlib.util
import math
import os
import shlex
import signal
import sys
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxpg
from jaxpg import presets
from jaxpg.cli.options import (
    PlainHelpFormatter,
    add_cache_argument,
    add_distributed_arguments,
    enable_compilation_cache,
    hidden_widths,
    initialize_from_args,
    parse_setting,
)
from jaxpg.config import ALGOS, Config
from jaxpg.drivers import parallel
from jaxpg.drivers.evaluation import recorded_algorithm
from jaxpg.drivers.imports import load_object
from jaxpg.drivers.train import resolve_env
from jaxpg.kernels.advantages import BASELINES
from jaxpg.networks import TORSOS

__all__ = ["SUBCOMMANDS", "build_parser", "config_from_args", "main", "parse_setting"]


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
Train --seeds independent runs (seed i uses jax.random.key(i)) in one compiled
program, evaluate each final policy on --eval-episodes fresh episodes, print a
summary (per seed, then the IQM over seeds with a 95% bootstrap CI, seeds that
reach the env's solved score, env steps/s, compile and run time).

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
            return f"(default: {tuned} in the CartPole-v1 preset, else {base})"
    return f"(default: {base})"


def _show(value: Any) -> str:
    return ",".join(map(str, value)) if isinstance(value, tuple) else str(value)


def _add_train(sub: Any) -> None:
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
    train.add_argument(
        "--set",
        dest="settings",
        type=parse_setting,
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
    train.set_defaults(func=train_command)


def _register_builtin(sub: Any) -> None:
    from jaxpg.cli import compare as cli_compare

    _add_train(sub)
    cli_compare.register(sub)


def _register_sweep(sub: Any) -> None:
    from jaxpg.cli import sweep as sweep_cli

    sweep_cli.register(sub)


def _register_lm(sub: Any) -> None:
    from jaxpg.cli import lm as sequence_cli

    sequence_cli.register(sub)


# Functions that add subcommands: each takes argparse's subparsers object and
# calls ``add_parser(...).set_defaults(func=command)`` with
# ``command(args) -> exit status``.
SUBCOMMANDS: list[Callable[[Any], None]] = [
    _register_builtin,
    _register_sweep,
    _register_lm,
]


def build_parser() -> argparse.ArgumentParser:
    """The ``jaxpg`` argument parser (subcommands from :data:`SUBCOMMANDS`)."""
    parser = argparse.ArgumentParser(
        formatter_class=PlainHelpFormatter,
        prog="jaxpg",
        description="Policy-gradient RL in JAX: many seeds in one compiled program.",
    )
    parser.add_argument("--version", action="version", version=jaxpg.__version__)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for register in SUBCOMMANDS:
        register(sub)
    return parser


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
    _check_counts(args)
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


def _chunk_seconds(args: argparse.Namespace) -> float | None:
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


def _check_counts(args: argparse.Namespace) -> None:
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


def _resume_config(args: argparse.Namespace) -> tuple[Config, str, int, int]:
    """``(config, source, num_seeds, first_seed)`` of the run in ``--resume``;
    options given on the command line must agree with it.

    Raises:
      ValueError: not a run directory, or options that differ (named).
    """
    from jaxpg.experiment.rundir import load_run

    cfg, record = load_run(args.resume)
    _check_counts(args)
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


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``jaxpg`` command; returns the exit status."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    try:
        code = args.func(args)
    except KeyboardInterrupt:
        print(f"jaxpg {args.command}: interrupted", file=sys.stderr)
        code = 130
    except OSError as e:  # a full or read-only disk, a vanished folder
        where = f" ({e.filename})" if e.filename else ""
        print(f"jaxpg {args.command}: error: {e.strerror or e}{where}", file=sys.stderr)
        code = 1
    if argv is None:
        _exit_if_stuck(code)
    return code


# How long the command waits, when it is done, for threads a library left
# running (orbax's writers after a failed save) before it exits anyway.
EXIT_GRACE_S = 10.0


def _exit_if_stuck(code: int) -> None:
    """As the ``jaxpg`` command (not when called from Python): exit with
    ``code`` even when a library left a non-daemon thread blocked (Python
    would wait for it forever), after ``EXIT_GRACE_S`` seconds."""
    deadline = time.monotonic() + EXIT_GRACE_S
    for thread in threading.enumerate():
        if thread is threading.current_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
        if thread.is_alive():
            print(
                f"jaxpg: thread {thread.name!r} did not finish; exiting anyway",
                file=sys.stderr,
            )
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(code)


def _default_out(cfg: Config) -> Path:
    """``runs/<env>-<algo>``, or the first free ``-2``, ``-3``, ... after it."""
    from jaxpg.experiment.rundir import is_empty

    name = cfg.env.replace(":", "-")  # an import path module:make_env
    base = Path("runs") / f"{name}-{cfg.algo}"
    out, n = base, 1
    while out.exists() and (not out.is_dir() or not is_empty(out)):
        n += 1
        out = base.with_name(f"{base.name}-{n}")
    return out


def train_command(args: argparse.Namespace) -> int:
    """``jaxpg train``: returns the exit status.

    With several processes (``--coordinator``, ``--num-processes``,
    ``--process-id`` or ``$JAX_COORDINATOR_ADDRESS``, ...) every process runs
    the same command and trains its share of the seeds; process 0 resolves
    the options, checks the run directory and alone writes it (its outcome is
    shared with the others, which write nothing and exit with the same
    status).
    """
    try:
        initialize_from_args(args)
    except ValueError as e:
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as held:
        return _train_command(args, held)


def _train_command(args: argparse.Namespace, held: contextlib.ExitStack) -> int:
    from jaxpg.drivers.memory import OutOfMemoryError
    from jaxpg.experiment.guard import SaveFailedError
    from jaxpg.experiment.rundir import RunDirError, config_from_dict, config_to_dict

    opened = _open_run(args, held) if jax.process_index() == 0 else None
    if jax.process_count() > 1:
        if isinstance(opened, dict):
            reply = {**opened, "cfg": config_to_dict(opened["cfg"])}
        else:
            reply = {"exit": opened}  # an error's status (None: not process 0)
        shared = parallel.broadcast_object(reply)
        if jax.process_index() != 0:
            opened = shared.get("exit")
            if opened is None:
                opened = {**shared, "cfg": config_from_dict(shared["cfg"])}
    if isinstance(opened, int):
        return opened
    assert opened is not None
    enable_compilation_cache(args)
    try:
        return _train(
            opened["cfg"],
            opened["source"],
            args,
            Path(opened["out"]),
            opened["num_seeds"],
            opened["first_seed"],
            opened["algorithm"],
        )
    except SaveFailedError as e:
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 1
    except OutOfMemoryError as e:
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 2
    except RunDirError as e:
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 2


def _open_run(
    args: argparse.Namespace, held: contextlib.ExitStack
) -> dict[str, Any] | int:
    """The run ``jaxpg train`` starts or resumes (config, source, seeds, run
    directory, checked, locked in ``held`` and ready), or the exit status of an
    error (printed)."""
    from jaxpg.experiment import lock
    from jaxpg.experiment.rundir import RunDirError, load_run

    try:
        algorithm = args.algorithm
        if args.start_over and args.resume is None:
            raise ValueError("--start-over needs --resume DIR")
        if args.resume is not None:
            cfg, source, num_seeds, first_seed = _resume_config(args)
            out = args.resume
            if algorithm is None:
                algorithm = recorded_algorithm(load_run(out)[1])
        else:
            cfg, source = config_from_args(args)
            num_seeds, first_seed = args.seeds or 16, 0
            out = args.out or _default_out(cfg)
        if algorithm is not None:
            load_object(algorithm, "--algorithm")  # fails now, not after compiling
    except ValueError as e:  # RunDirError included
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 2
    from jaxpg.experiment.guard import prepare_run_dir

    needed = [("orbax.checkpoint", "checkpoint")]
    if args.tensorboard:
        needed.append(("tensorboardX", "tensorboard"))
    for module, extra in needed:
        if importlib.util.find_spec(module.split(".")[0]) is None:
            print(
                f"jaxpg train: error: {module} is not installed: "
                f"pip install 'jaxpg[{extra}]'",
                file=sys.stderr,
            )
            return 2
    try:
        # Before anything is compiled: a bad --out fails now, not after
        # training. The lock is held until the command ends.
        if not Path(out).is_file():
            held.enter_context(lock.hold(out))
        prepare_run_dir(out, args.resume is not None, args.overwrite, args.start_over)
    except RunDirError as e:
        print(f"jaxpg train: error: {e}", file=sys.stderr)
        return 2
    return {
        "cfg": cfg,
        "source": source,
        "num_seeds": num_seeds,
        "first_seed": first_seed,
        "out": str(out),
        "algorithm": algorithm,
    }


def _train(
    cfg: Config,
    source: str,
    args: argparse.Namespace,
    out: Path,
    num_seeds: int,
    first_seed: int,
    algorithm_path: str | None = None,
) -> int:
    from jaxpg.cli.compare import print_eval
    from jaxpg.drivers.report import CURVE
    from jaxpg.drivers.runner import run
    from jaxpg.experiment.rundir import SUMMARY

    # With several processes, process 0 alone prints, logs and writes.
    writer = jax.process_index() == 0
    if writer:
        print(f"jaxpg {jaxpg.__version__}  {cfg.env} / {cfg.algo}  ({source})")
        bound = "up to " if cfg.algo == "reinforce" else ""
        print(
            f"  {num_seeds} seeds x {cfg.total_steps:,} steps, {bound}"
            f"{cfg.num_updates} updates of {cfg.num_envs} envs x "
            f"{cfg.rollout_steps} steps; lr={cfg.lr} gamma={cfg.gamma} "
            f"baseline={cfg.baseline} hidden={cfg.hidden}"
            + (
                f" torso={cfg.torso}({cfg.recurrent_size})"
                if cfg.torso != "mlp"
                else ""
            )
        )
        print(
            f"  {jax.device_count()} device(s) in {jax.process_count()} "
            f"process(es); run directory {out}"
        )
    algorithm = None
    if algorithm_path is not None:
        algorithm = load_object(algorithm_path, "--algorithm")
    logger = None
    if args.tensorboard and writer:
        from jaxpg.experiment.tblog import TensorBoardLogger

        logger = TensorBoardLogger(out / "tensorboard", num_seeds, first_seed)
    try:
        result = run(
            cfg,
            num_seeds,
            first_seed=first_seed,
            progress=args.progress,
            checkpoint_dir=out,
            resume=args.resume is not None,
            overwrite=args.overwrite,
            start_over=args.start_over,
            checkpoint_every=args.checkpoint_every,
            chunk_seconds=_chunk_seconds(args),
            keep_metrics=False,
            callback=logger,
            algorithm=algorithm,
            eval_episodes=args.eval_episodes if writer else None,
            source=source,
        )
    finally:
        if logger is not None:
            logger.close()
    if result.interrupted:
        name = signal.Signals(result.signal).name if result.signal else "stop"
        if writer:
            print(
                f"jaxpg train: interrupted ({name}) at update "
                f"{result.updates_done}/{cfg.num_updates}; checkpoint saved; "
                f"resume with: jaxpg train --resume {shlex.quote(str(out))}",
                file=sys.stderr,
            )
        return 128 + int(result.signal) if result.signal else 1
    if not writer:
        return 0

    summary = result.summary
    evaluation, train = summary["eval"], summary["train"]
    rejected = np.asarray(train["rejected_updates"])
    last = [math.nan if x is None else x for x in train["last_return"]]
    print()
    print_eval(
        evaluation,
        extra_header=f"  {'last train':>10}  {'env steps':>10}  {'rejected':>8}",
        extra_rows=[
            f"  {last[i]:>10.1f}  {train['env_steps'][i]:>10,}  {rejected[i]:>8}"
            for i in range(num_seeds)
        ],
    )
    if rejected.any():
        print(
            f"{int(np.count_nonzero(rejected))} seed(s) had updates rejected as "
            "non-finite (column 'rejected': updates with any rejected step)"
        )
    print(
        f"throughput {result.steps_per_s:,.0f} env steps/s (all seeds)   "
        f"compile {result.compile_s:.1f} s   run {result.run_s:.1f} s   "
        f"eval {summary['timings']['eval_s']:.1f} s (incl. compile)"
    )
    print(f"device {summary['device']}")
    print(f"wrote {out / SUMMARY} and {out / CURVE}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
