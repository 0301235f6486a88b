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
import re
import sys
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

import jaxpg
from jaxpg.cli import lm_reward_model as rm_cli
from jaxpg.cli.options import (
    Flag,
    PlainHelpFormatter,
    add_cache_argument,
    add_flags,
    check_output_dir,
    enable_compilation_cache,
    interrupted_status,
    strict_json,
)
from jaxpg.drivers.chunking import default_chunk
from jaxpg.drivers.progress import elapsed
from jaxpg.experiment import lock
from jaxpg.experiment.checkpoint import CheckpointError, check_path
from jaxpg.experiment.guard import SaveFailedError
from jaxpg.experiment.rundir import RunDirError
from jaxpg.sequence import checks, report, runs, sft, tasks
from jaxpg.sequence import estimators as est
from jaxpg.sequence import rl as rlm
from jaxpg.sequence.model import POSITIONS, TransformerConfig
from jaxpg.sequence.runs import RUN_FILE
from jaxpg.sequence.seeds import compiler_options, train_seeds

__all__ = ["RUN_FILE", "build_config", "register", "run"]

_EXAMPLES = """\
examples:
  jaxpg lm --task sort --seeds 4                       # GRPO, k3 KL in the loss
  jaxpg lm --task add --advantage rloo --kl-placement reward --kl-estimator k1
  jaxpg lm --task sort_proxy --beta 0 --out runs/hack  # reward hacking, flagged
  jaxpg lm --task sort --reward-model --rm-noise 0.2   # RL on a learned reward
"""


def register(subparsers: Any) -> argparse.ArgumentParser:
    """Add the ``lm`` subcommand to ``subparsers`` (from ``add_subparsers``)."""
    p = subparsers.add_parser(
        "lm",
        help="policy gradients for a token policy (SFT, then RL with a KL)",
        description=__doc__.split("\n\n")[1],
        epilog=_EXAMPLES,
        formatter_class=PlainHelpFormatter,
    )
    p.add_argument(
        "--task", default="sort", choices=tasks.TASKS, help="task (%(default)s)"
    )
    p.add_argument("--digits", type=int, default=None, help="digits per operand")
    p.add_argument(
        "--reward", default="exact", choices=("exact", "partial"),
        help="optimised reward of sort/add (sort_proxy: its proxy)",
    )  # fmt: skip
    p.add_argument(
        "--seeds", type=int, default=4, help="RL runs in one program (%(default)s)"
    )
    p.add_argument(
        "--out",
        default=None,
        help="run directory (default: runs/lm-TASK, or the first free -2, -3, ...)",
    )
    p.add_argument(
        "--resume",
        metavar="DIR",
        default=None,
        help="continue the interrupted run in DIR from its checkpoint, with its "
        "options; the result is bit-identical to an uninterrupted run",
    )
    p.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a run already in --out",
    )
    p.add_argument(
        "--checkpoint-every",
        type=int,
        metavar="U",
        default=None,
        help="also checkpoint every U updates (at the next chunk boundary), so "
        "that a killed process can resume; always at the end and on "
        "Ctrl-C/SIGTERM",
    )
    add_flags(p.add_argument_group("model"), _MODEL_FLAGS)
    add_flags(p.add_argument_group("supervised warm start (the reference)"), _SFT_FLAGS)
    g = p.add_argument_group("RL")
    add_flags(g, _rl_flags(rlm.RLConfig()))
    g.add_argument(
        "--no-progress",
        action="store_true",
        help="no progress bar and no elapsed-time line while compiling",
    )
    g.add_argument(
        "--xla-ynn", default="off", choices=("on", "off"),
        help="XLA's YNNPACK fusions for the RL program on CPU (default off: "
        "XLA's own kernels, faster at these sizes)",
    )  # fmt: skip
    rm_cli.add_arguments(p)
    add_cache_argument(p)
    p.set_defaults(func=run)
    p.set_defaults(defaults={a.dest: a.default for a in p._actions})
    p.set_defaults(given=frozenset())  # the options on the command line
    _record_given(p)
    return p


_MODEL_FLAGS: tuple[Flag, ...] = (
    ("--width", int, 32, "model width (%(default)s)"),
    ("--layers", int, 2, "layers (%(default)s)"),
    ("--heads", int, 2, "heads (%(default)s)"),
    ("--positions", POSITIONS, "learned", "position encoding (%(default)s)"),
)
_SFT_FLAGS: tuple[Flag, ...] = (
    ("--reference", str, None, "load a saved reference DIR"),
    ("--sft-steps", int, 40, "SFT steps (%(default)s)"),
    ("--sft-lr", float, 3e-3, "SFT learning rate (%(default)s)"),
    ("--sft-batch", int, 64, "SFT batch size (%(default)s)"),
)


def _rl_flags(d: rlm.RLConfig) -> tuple[Flag, ...]:
    """The RL group's flags, defaults from ``d`` (``RLConfig()``)."""
    return (
        ("--updates", int, 150, "RL updates per seed (%(default)s)"),
        ("--prompts", int, d.num_prompts, "prompts per update (%(default)s)"),
        ("--group", int, d.group_size, "samples per prompt (%(default)s)"),
        ("--max-new-tokens", int, None, "longest response (default: the task's)"),
        ("--advantage", est.ADVANTAGES, d.advantage,
         "advantage estimator (%(default)s)"),
        ("--aggregation", est.AGGREGATIONS, "token_mean",
         "how token losses are averaged (%(default)s)"),
        ("--kl-placement", rlm.KL_PLACEMENTS, d.kl_placement,
         "KL to the reference in the loss or in the reward (%(default)s)"),
        ("--kl-estimator", est.KL_ESTIMATORS, d.kl_estimator,
         "KL estimator (%(default)s)"),
        ("--beta", float, d.beta, "KL coefficient (%(default)s)"),
        ("--lr", float, 2e-3, "RL learning rate (%(default)s)"),
        ("--epochs", int, d.epochs, "passes over each batch (%(default)s)"),
        ("--clip-eps", float, 0.2, "0: no clipping"),
        ("--clip-eps-high", float, None,
         "upper ratio clip (DAPO clip-higher; default --clip-eps)"),
        ("--dual-clip", float, None, "dual-clip c > 1"),
        ("--importance-ratio", rlm.IMPORTANCE_RATIOS, "token",
         "per token, or per sequence (GSPO; needs --aggregation seq_mean)"),
        ("--dynamic-sampling", int, None,
         "groups drawn per update, --prompts informative ones kept (DAPO)"),
        ("--overlong-buffer", int, None,
         "soft overlong penalty over the budget's last tokens (DAPO)"),
        ("--overlong-penalty", float, d.overlong_penalty,
         "the overlong penalty at the budget (%(default)s)"),
        ("--mask-truncated", bool, False,
         "drop responses without EOS from the loss (DAPO)"),
        ("--temperature", float, d.temperature, "sampling temperature (%(default)s)"),
        ("--hack-window", int, 10,
         "updates over which reward hacking is judged (%(default)s)"),
        ("--chunk", int, None, "updates per chunk"),
    )  # fmt: skip


def program_description(
    args: argparse.Namespace, model_cfg, rl_cfg, reward_model: dict | None
) -> dict:
    """What determines the RL programs besides the reference's parameters
    (an argument, not part of the program): the task's options, the two
    configs and the learned reward model's version (its parameters are in
    the program); the key under which :mod:`jaxpg.drivers.executables` keeps
    them."""
    task = [args.task, args.digits, args.reward, args.max_new_tokens]
    rm = None if reward_model is None else reward_model["version"]
    return {"task": task, "model": repr(model_cfg), "rl": repr(rl_cfg), "rm": rm}


# The library's names for what the command line calls by its flags: an error
# raised by a config names the flag the user typed.
_FLAG_OF = {
    "num_prompts": "--prompts", "group_size": "--group", "num_updates": "--updates",
    "num_digits": "--digits", "max_new_tokens": "--max-new-tokens",
    "kl_placement": "--kl-placement", "kl_estimator": "--kl-estimator",
    "clip_eps_high": "--clip-eps-high", "clip_eps": "--clip-eps",
    "dual_clip": "--dual-clip", "importance_ratio": "--importance-ratio",
    "dynamic_sampling": "--dynamic-sampling", "overlong_buffer": "--overlong-buffer",
    "overlong_penalty": "--overlong-penalty", "mask_truncated": "--mask-truncated",
    "num_layers": "--layers", "num_heads": "--heads", "width": "--width",
    "positions": "--positions", "advantage": "--advantage",
    "aggregation": "--aggregation", "beta": "--beta", "lr": "--lr",
    "epochs": "--epochs", "temperature": "--temperature",
}  # fmt: skip


def in_flags(message: str) -> str:
    """``message`` with the config fields it names (``RLConfig.num_prompts``,
    ``group_size``, ``lr=``) written as ``jaxpg lm``'s flags (``--prompts``,
    ``--group``, ``--lr=``). A plain word (``advantage``) is taken for a field
    only when prefixed by its class or followed by ``=``."""

    names = "|".join(sorted(_FLAG_OF, key=len, reverse=True))
    message = re.sub(
        rf"\b(?:RLConfig|TransformerConfig)\.({names})\b",
        lambda m: _FLAG_OF[m.group(1)],
        message,
    )

    def bare(m: re.Match) -> str:
        name, equals = m.group(1), m.group(2) or ""
        return _FLAG_OF[name] + equals if equals or "_" in name else m.group(0)

    return re.sub(rf"(?<![\w.-])({names})(?:(=)|\b)", bare, message)


def build_config(args: argparse.Namespace):
    """``(task, model_cfg, rl_cfg)`` from parsed arguments (ValueError if bad,
    naming the flags)."""
    try:
        return _build_config(args)
    except ValueError as e:
        raise ValueError(in_flags(str(e))) from e


def _build_config(args: argparse.Namespace):
    kwargs = {} if args.digits is None else {"num_digits": args.digits}
    if args.task != "sort_proxy":
        kwargs["reward"] = args.reward
    if args.max_new_tokens is not None:
        kwargs["max_new_tokens"] = args.max_new_tokens
    task = tasks.make_task(args.task, **kwargs)
    if args.seeds < 1:
        raise ValueError(f"--seeds={args.seeds} is invalid: must be >= 1")
    checks.positive_int("--sft-steps", args.sft_steps)
    checks.positive_int("--sft-batch", args.sft_batch)
    checks.learning_rate("--sft-lr", args.sft_lr)
    checks.positive_int("--hack-window", args.hack_window)
    if args.checkpoint_every is not None:
        checks.positive_int("--checkpoint-every", args.checkpoint_every)
    model_cfg = TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE,
        width=args.width,
        num_layers=args.layers,
        num_heads=args.heads,
        max_len=task.prompt_len + task.max_new_tokens,
        positions=args.positions,
    )
    rl_cfg = rlm.RLConfig(
        num_prompts=args.prompts,
        group_size=args.group,
        num_updates=args.updates,
        advantage=args.advantage,
        aggregation=args.aggregation,
        kl_placement=args.kl_placement,
        kl_estimator=args.kl_estimator,
        beta=args.beta,
        lr=args.lr,
        epochs=args.epochs,
        clip_eps=args.clip_eps or None,
        temperature=args.temperature,
        clip_eps_high=args.clip_eps_high,
        dual_clip=args.dual_clip,
        importance_ratio=args.importance_ratio,
        dynamic_sampling=args.dynamic_sampling,
        overlong_buffer=args.overlong_buffer,
        overlong_penalty=args.overlong_penalty,
        mask_truncated=args.mask_truncated,
    )
    return task, model_cfg, rl_cfg


def _unused_sft_options(args: argparse.Namespace, defaults: dict[str, Any]) -> list:
    """The SFT options given with ``--reference``, which loads the reference
    instead of training it (they are validated all the same)."""
    if not args.reference:
        return []
    return [
        f"--{k.replace('_', '-')}"
        for k in ("sft_steps", "sft_lr", "sft_batch")
        if k in defaults and getattr(args, k) != defaults[k]
    ]


def _chunk(num_updates: int, requested: int | None) -> int:
    """``--chunk``, or about a twentieth of the updates (the runner's
    default); the last chunk runs what is left."""
    if requested is None:
        return default_chunk(num_updates)
    if requested < 1:
        raise ValueError(f"--chunk={requested} is invalid: must be an integer >= 1")
    return min(requested, num_updates)


def _ignored_options(args: argparse.Namespace) -> list[str]:
    """What the command line asks for that these settings leave unused."""
    given = getattr(args, "given", frozenset())
    out = []
    if "reward" in given and args.task == "sort_proxy":
        out.append("--reward not used: --task sort_proxy optimises its own proxy")
    if "overlong_penalty" in given and args.overlong_buffer is None:
        out.append("--overlong-penalty not used: no --overlong-buffer")
    if "beta" in given and args.kl_placement == "none":
        out.append("--beta not used: --kl-placement none")
    return out


def _record_given(parser: argparse.ArgumentParser) -> None:
    """Make every option of ``parser`` add its name to ``args.given`` when it
    appears on the command line (argparse alone cannot tell an option given
    at its default from one left out; ``--resume`` must)."""
    for action in parser._actions:
        if not action.option_strings or action.dest == "help":
            continue

        class Recording(type(action)):
            def __call__(self, parser, namespace, values, option_string=None):
                given = set(getattr(namespace, "given", None) or ())
                namespace.given = given | {self.dest}
                super().__call__(parser, namespace, values, option_string)

        action.__class__ = Recording


# What a run directory records of the command line: everything that changes
# the run (not where it is written, how it shows progress, or the cache).
_NOT_RECORDED = frozenset(
    {"func", "command", "out", "resume", "overwrite", "no_progress",
     "compile_cache", "no_compile_cache", "defaults", "help", "given"}
)  # fmt: skip


def _recorded(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in sorted(vars(args).items()) if k not in _NOT_RECORDED}


def _resume_args(args: argparse.Namespace, defaults: dict[str, Any]) -> Path:
    """Fill ``args`` with the options of the run in ``--resume``
    (:func:`jaxpg.sequence.runs.resume_options`). Returns the run directory."""
    if args.out is not None or args.overwrite:
        raise ValueError("--resume DIR cannot be combined with --out or --overwrite")
    stored = runs.resume_options(
        args.resume, _recorded(args), defaults, explicit=getattr(args, "given", None)
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
        chunk = _chunk(rl_cfg.num_updates, args.chunk)
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
        runs.write_run_file(out, _recorded(args), jaxpg.__version__)
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
    unused = _unused_sft_options(args, defaults)
    if unused:
        print(
            f"jaxpg lm: {', '.join(unused)} not used: --reference "
            f"{args.reference} is loaded, not trained",
            file=sys.stderr,
        )
    for line in _ignored_options(args):
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
