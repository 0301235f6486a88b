"""``jaxpg train``: train seeds into a run directory, evaluate them, and
resume after Ctrl-C (its options: :mod:`jaxpg.cli.train_options`)."""

from __future__ import annotations

import argparse
import contextlib
import importlib.util
import math
import sys
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxpg
from jaxpg.cli import train_options
from jaxpg.cli.options import (
    enable_compilation_cache,
    initialize_from_args,
    interrupted_status,
)
from jaxpg.config import Config
from jaxpg.drivers import parallel
from jaxpg.drivers.evaluation import recorded_algorithm
from jaxpg.drivers.imports import load_object

__all__ = ["register", "train_command"]


def register(sub: Any) -> None:
    """Add ``jaxpg train`` to argparse's subparsers ``sub``."""
    train_options.add_parser(sub, train_command)


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
    from jaxpg.experiment.rundir import config_from_dict, config_to_dict

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
    except ValueError as e:  # RunDirError, or a setting refused before training
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
            cfg, source, num_seeds, first_seed = train_options.resume_config(args)
            out = args.resume
            if algorithm is None:
                algorithm = recorded_algorithm(load_run(out)[1])
        else:
            cfg, source = train_options.config_from_args(args)
            num_seeds, first_seed = args.seeds or 16, 0
            out = args.out or train_options.default_out(cfg)
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
            chunk_seconds=train_options.chunk_seconds(args),
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
        return interrupted_status("train", result, cfg.num_updates, out, say=writer)
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
    timings = summary["timings"]  # the training's, also when it ended before
    print(
        f"throughput {timings['steps_per_s']:,.0f} env steps/s (all seeds)   "
        f"compile {timings['compile_s']:.1f} s   run {timings['run_s']:.1f} s   "
        f"eval {timings['eval_s']:.1f} s (incl. compile)"
    )
    print(f"device {summary['device']}")
    print(f"wrote {out / SUMMARY} and {out / CURVE}")
    return 0
