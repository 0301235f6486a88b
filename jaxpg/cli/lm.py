r"""``jaxpg lm``: SFT warm start, then RL of a token policy on a verifiable task.

Steps: (1) supervised warm start on the task's ground truth, or ``--reference
DIR`` to reuse a saved one; the SFT model is frozen as the KL reference and
saved to ``OUT/reference`` with its version hash; with ``--reward-model``, a
Bradley–Terry reward model trained on gold-labelled preference pairs (or
loaded) becomes the optimised reward, the gold one tracked beside it
(:mod:`jaxpg.cli.lm_reward_model`); (2) ``--seeds`` RL runs in one
compiled program (seed i starts from the reference with ``jax.random.key(i)``),
in compiled chunks of updates so that a progress bar can advance; (3) every
seed's final policy and the reference are evaluated on fresh prompts; a summary
table is printed, ``metrics.json`` (settings, reference and reward-model
versions, per-update metrics ``[S, U]``, summary) and ``curves.png`` (reward,
accuracy, KL and response length over updates, mean and range over seeds) are
written to ``--out``.

On CPU the RL program is compiled with XLA's YNNPACK fusions off
(``--xla-ynn off``, the default): XLA's own CPU kernels made the RL update
of ``benchmarks/lm_trl.py``'s setting (width 32, one seed) 6-16% faster in
``benchmarks/lm_ablate.py`` (the same model up to float rounding). The
options used are recorded in ``metrics.json``.

With several devices (GPUs, or CPU devices: ``JAX_NUM_CPU_DEVICES=2 jaxpg lm
...`` gives XLA a thread per core) the seeds are laid over the devices as
``jaxpg train`` lays its seeds (no collective: each seed's updates stay on its
device; a seed count that is not a multiple of the device count is padded by
repeating the last seed, and the padding is dropped).

:func:`register` adds the subcommand to an ``argparse`` subparsers object;
:func:`run` executes parsed arguments. Needs the ``cli`` extra (matplotlib,
tqdm).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxpg
from jaxpg.cli import lm_reward_model as rm_cli
from jaxpg.cli.lm_options import (
    add_parser,
    build_config,
    chunk_length,
    ignored_options,
    in_flags,
    program_description,
    recorded,
    unused_sft_options,
)
from jaxpg.cli.options import (
    check_output_dir,
    enable_compilation_cache,
    interrupted_status,
    strict_json,
)
from jaxpg.drivers.progress import elapsed
from jaxpg.experiment import lock
from jaxpg.experiment.checkpoint import CheckpointError, check_path
from jaxpg.experiment.guard import SaveFailedError
from jaxpg.experiment.rundir import RunDirError
from jaxpg.sequence import report, runs, sft
from jaxpg.sequence import rl as rlm
from jaxpg.sequence.runs import RUN_FILE
from jaxpg.sequence.seeds import compiler_options, train_seeds

__all__ = ["RUN_FILE", "build_config", "in_flags", "register", "run"]


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``lm`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    return add_parser(subparsers, __doc__.split("\n\n")[1], run)


def _resume_args(args: argparse.Namespace, defaults: dict[str, Any]) -> Path:
    """Fill ``args`` with the options of the run in ``--resume``
    (:func:`jaxpg.sequence.runs.resume_options`). Returns the run directory."""
    if args.out is not None or args.overwrite:
        raise ValueError("--resume DIR cannot be combined with --out or --overwrite")
    stored = runs.resume_options(
        args.resume, recorded(args), defaults, explicit=getattr(args, "given", None)
    )
    for k, v in stored.items():
        setattr(args, k, v)
    return Path(args.resume)


def _refuse_inputs_inside(out: Path, args: argparse.Namespace) -> None:
    """``--overwrite`` deletes ``out``: a saved reference or reward model to
    load from inside it would be gone before it is read."""
    for flag, given in (
        ("--reference", args.reference),
        ("--reward-model", args.reward_model),
    ):
        if given and Path(given).resolve().is_relative_to(out.resolve()):
            raise ValueError(
                f"{flag} {given} is inside --out {out}, which --overwrite "
                "deletes first: copy it elsewhere, or write to another --out"
            )


def run(args: argparse.Namespace) -> int:
    """Execute ``jaxpg lm``; returns the exit status.

    Everything is checked before anything is compiled or deleted: the
    options, ``--reference``, and the run directory (a folder that can be
    written; for a new run, none holding a run unless ``--overwrite``). The
    run directory's lock (:mod:`jaxpg.experiment.lock`) is held while the
    command runs, so a second ``jaxpg lm`` on a live run (resume or
    overwrite) is refused. The versions of the reference and the reward model
    are recorded in the run directory: ``--resume`` refuses one that changed
    since the run started (:func:`jaxpg.sequence.runs.record_version`).
    """
    defaults = getattr(args, "defaults", None) or {}
    try:
        resuming = args.resume is not None
        if resuming:
            out = _resume_args(args, defaults)
        task, model_cfg, rl_cfg = build_config(args)
        chunk = chunk_length(rl_cfg.num_updates, args.chunk)
        if args.reference:
            runs.check_reference(args.reference)
        rm_cli.check(args, task)
        if not resuming:
            out = runs.new_out(args.out, args.task, args.overwrite)
            if args.overwrite:
                _refuse_inputs_inside(out, args)
        check_output_dir(out, "--resume" if resuming else "--out")
        check_path(out)
    except ValueError as e:
        print(f"jaxpg lm: error: {e}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as held:
        try:
            held.enter_context(lock.hold(out))
        except RunDirError as e:  # a live run holds it, or it cannot be made
            print(f"jaxpg lm: error: {e}", file=sys.stderr)
            return 2
        return _run(args, defaults, out, resuming, task, model_cfg, rl_cfg, chunk)


def _run(args, defaults, out, resuming, task, model_cfg, rl_cfg, chunk) -> int:
    """:func:`run` once the run directory is checked and locked."""
    if not resuming and args.overwrite and (out / RUN_FILE).exists():
        runs.clear(out)  # only now: validated, and no live run holds it
    if not resuming:
        _warn_unused(args, defaults)
    enable_compilation_cache(args)
    if not resuming:
        runs.write_run_file(out, recorded(args), jaxpg.__version__)
    t0 = time.perf_counter()
    try:
        loaded = runs.load_reference(args.reference, out, resuming, model_cfg)
    except ValueError as e:
        print(f"jaxpg lm: error: {e}", file=sys.stderr)
        return 2
    ref_dir = Path(args.reference) if args.reference else out / "reference"
    ref_params, version = loaded or _fit_reference(args, ref_dir, task, model_cfg)
    try:  # a resumed run trains against the reference it started with
        runs.record_version(out, "reference", version, ref_dir, resuming)
    except ValueError as e:
        print(f"jaxpg lm: error: {e}", file=sys.stderr)
        return 2
    sft_s = time.perf_counter() - t0
    print(f"reference {version} ({'loaded' if loaded else 'SFT'}, {sft_s:.1f}s)")
    try:
        task, rm_record = rm_cli.prepare(
            args, out, resuming, task, model_cfg, ref_params
        )
    except ValueError as e:
        print(f"jaxpg lm: error: {e}", file=sys.stderr)
        return 2
    if rm_record is not None:
        print(rm_cli.describe(rm_record))

    options = compiler_options(args.xla_ynn, jax.default_backend())
    try:
        result = train_seeds(
            task, model_cfg, rl_cfg, ref_params, args.seeds, chunk, options,
            show_compile=not args.no_progress, run_dir=out, resume=resuming,
            progress=not args.no_progress, checkpoint_every=args.checkpoint_every,
            description=program_description(args, model_cfg, rl_cfg, rm_record),
        )  # fmt: skip
    except SaveFailedError as e:
        print(f"jaxpg lm: error: {e}", file=sys.stderr)
        return 1
    except CheckpointError as e:  # only restoring raises it (saves: above)
        print(f"jaxpg lm: error: cannot resume {out}: {e}", file=sys.stderr)
        return 2
    if result.interrupted:
        return interrupted_status("lm", result, rl_cfg.num_updates, out)
    _finish(
        args,
        out,
        task,
        model_cfg,
        rl_cfg,
        ref_params,
        result,
        version,
        sft_s,
        rm_record,
    )
    return 0


def _warn_unused(args, defaults) -> None:
    """Say on stderr which options a new run leaves unused (a loaded
    reference or reward model is not trained; one not asked for is not)."""
    unused = unused_sft_options(args, defaults)
    if unused:
        print(
            f"jaxpg lm: {', '.join(unused)} not used: --reference "
            f"{args.reference} is loaded, not trained",
            file=sys.stderr,
        )
    for line in ignored_options(args):
        print(f"jaxpg lm: {line}", file=sys.stderr)
    unused = rm_cli.unused_options(args, defaults)
    if unused:
        why = (
            f"--reward-model {args.reward_model} is loaded, not trained"
            if args.reward_model
            else "no --reward-model"
        )
        print(f"jaxpg lm: {', '.join(unused)} not used: {why}", file=sys.stderr)


def _fit_reference(args, ref_dir, task, model_cfg):
    """``(params, version)``: the reference fitted by SFT now and saved in
    ``ref_dir``; rejected non-finite steps are reported on stderr."""
    doing = f"fitting the reference by SFT ({args.sft_steps} steps, compile included)"
    with elapsed(doing, not args.no_progress, done="fitted the reference"):
        params, version, rejected = sft.fit_reference(
            task, model_cfg, ref_dir, num_steps=args.sft_steps,
            batch_size=args.sft_batch, lr=args.sft_lr,
        )  # fmt: skip
    if rejected:
        print(
            f"jaxpg lm: SFT: {rejected} of {args.sft_steps} steps rejected as "
            "non-finite (parameters kept)",
            file=sys.stderr,
        )
    return params, version


def _finish(
    args, out, task, model_cfg, rl_cfg, ref_params, result, version, sft_s, rm_record
):
    """Evaluate a finished run against its reference; print the table and
    write ``metrics.json`` and ``curves.png``."""
    metrics, final_params = result.metrics, result.params
    compile_s, run_s, options = result.compile_s, result.run_s, result.options
    rejected = np.sum(metrics["nonfinite"] > 0, axis=1)
    if rejected.any():
        print(
            "non-finite updates rejected (parameters kept): "
            + ", ".join(f"seed {i}: {int(n)}" for i, n in enumerate(rejected) if n)
        )
    ref_eval, finals = report.evaluate_run(task, model_cfg, ref_params, final_params)
    flags = rlm.reward_hacking_flag(
        metrics["true_reward"], metrics["reward"], args.hack_window
    )
    summary = report.summary(metrics, finals, ref_eval, flags, args.hack_window)
    _print_table(summary, ref_eval, task, rl_cfg, compile_s, run_s, args.seeds)
    record = {
        "task": task.name,
        "reference_version": version,
        "reward_model_version": rm_record and rm_record["version"],
        "reward_model": rm_record,
        "model": dataclasses.asdict(model_cfg),
        "rl": dataclasses.asdict(rl_cfg),
        "seeds": args.seeds,
        "devices": result.devices,
        "compiler_options": options,
        "sft_s": sft_s,
        "compile_s": compile_s,
        "run_s": run_s,
        "reference_eval": ref_eval,
        "summary": summary,
        "metrics": {k: v.tolist() for k, v in metrics.items()},
        "hack_flag": flags.tolist(),
        "nonfinite_updates": rejected.tolist(),
    }
    # Standard JSON: a NaN or inf (a seed that diverged) is written as null.
    (out / "metrics.json").write_text(
        json.dumps(strict_json(record), allow_nan=False) + "\n"
    )
    report.plot_curves(metrics, flags, out / "curves.png", task, rl_cfg, version)
    print(f"wrote {out / 'metrics.json'} and {out / 'curves.png'}")


def _print_table(summary, ref_eval, task, rl_cfg, compile_s, run_s, num_seeds):
    print(
        f"\n{task.name}: {rl_cfg.advantage}, {rl_cfg.aggregation}, KL "
        f"{rl_cfg.kl_estimator} in the {rl_cfg.kl_placement} (beta={rl_cfg.beta}), "
        f"{rl_cfg.num_updates} updates x {rl_cfg.num_prompts}x{rl_cfg.group_size}"
    )
    head = f"{'seed':>4} {'accuracy':>9} {'true':>7} {'reward':>7} {'KL':>7} "
    print(head + f"{'length':>7} {'hacked at':>9}")
    print(
        f"{'ref':>4} {ref_eval['accuracy']:9.3f} {ref_eval['true_reward']:7.3f} "
        f"{ref_eval['reward']:7.3f} {0.0:7.3f} {'':>7} {'':>9}"
    )
    s = summary
    for i in range(num_seeds):
        hacked = s["hack_first_update"][i]
        print(
            f"{i:>4} {s['final_accuracy'][i]:9.3f} {s['final_true_reward'][i]:7.3f} "
            f"{s['final_reward'][i]:7.3f} {s['last_kl_exact'][i]:7.3f} "
            f"{s['last_length'][i]:7.2f} {hacked if hacked >= 0 else '-':>9}"
        )
    print(
        f"mean {np.mean(s['final_accuracy']):9.3f} "
        f"{np.mean(s['final_true_reward']):7.3f} {np.mean(s['final_reward']):7.3f} "
        f"{np.mean(s['last_kl_exact']):7.3f} {np.mean(s['last_length']):7.2f} "
        f"{sum(h >= 0 for h in s['hack_first_update'])}/{num_seeds:<7}"
    )
    print(
        f"compile {compile_s:.1f}s, run {run_s:.1f}s (accuracy: "
        f"{report.EVAL_PROMPTS} fresh prompts)"
    )
