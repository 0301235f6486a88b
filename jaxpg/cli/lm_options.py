"""``jaxpg lm``'s options: the parser, the configs they build (errors named
by flag), and what a run directory records of them. No computation."""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable
from typing import Any

from jaxpg.cli import lm_reward_model as rm_cli
from jaxpg.cli.options import Flag, PlainHelpFormatter, add_cache_argument, add_flags
from jaxpg.drivers.chunking import default_chunk
from jaxpg.sequence import checks, tasks
from jaxpg.sequence import estimators as est
from jaxpg.sequence import rl as rlm
from jaxpg.sequence.model import POSITIONS, TransformerConfig

__all__ = [
    "NOT_RECORDED",
    "add_parser",
    "build_config",
    "chunk_length",
    "ignored_options",
    "in_flags",
    "program_description",
    "record_given",
    "recorded",
    "unused_sft_options",
]

_EXAMPLES = """\
examples:
  jaxpg lm --task sort --seeds 4                       # GRPO, k3 KL in the loss
  jaxpg lm --task add --advantage rloo --kl-placement reward --kl-estimator k1
  jaxpg lm --task sort_proxy --beta 0 --out runs/hack  # reward hacking, flagged
  jaxpg lm --task sort --reward-model --rm-noise 0.2   # RL on a learned reward
"""


def add_parser(
    subparsers: Any, description: str, run: Callable[[argparse.Namespace], int]
) -> argparse.ArgumentParser:
    """Add the ``lm`` subcommand to ``subparsers`` (from ``add_subparsers``),
    its help led by ``description``, parsed arguments run by ``run``."""
    p = subparsers.add_parser(
        "lm",
        help="policy gradients for a token policy (SFT, then RL with a KL)",
        description=description,
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
    record_given(p)
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


def unused_sft_options(args: argparse.Namespace, defaults: dict[str, Any]) -> list:
    """The SFT options given with ``--reference``, which loads the reference
    instead of training it (they are validated all the same)."""
    if not args.reference:
        return []
    return [
        f"--{k.replace('_', '-')}"
        for k in ("sft_steps", "sft_lr", "sft_batch")
        if k in defaults and getattr(args, k) != defaults[k]
    ]


def chunk_length(num_updates: int, requested: int | None) -> int:
    """``--chunk``, or about a twentieth of the updates (the runner's
    default); the last chunk runs what is left."""
    if requested is None:
        return default_chunk(num_updates)
    if requested < 1:
        raise ValueError(f"--chunk={requested} is invalid: must be an integer >= 1")
    return min(requested, num_updates)


def ignored_options(args: argparse.Namespace) -> list[str]:
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


def record_given(parser: argparse.ArgumentParser) -> None:
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
NOT_RECORDED = frozenset(
    {"func", "command", "out", "resume", "overwrite", "no_progress",
     "compile_cache", "no_compile_cache", "defaults", "help", "given"}
)  # fmt: skip


def recorded(args: argparse.Namespace) -> dict[str, Any]:
    return {k: v for k, v in sorted(vars(args).items()) if k not in NOT_RECORDED}
