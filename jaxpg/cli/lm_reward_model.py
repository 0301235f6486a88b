r"""``jaxpg lm --reward-model``: RL against a learned Bradley–Terry reward model.

``--reward-model`` alone trains one before RL: ``--rm-pairs`` preference pairs
are sampled from the SFT reference (two responses per prompt), labelled by the
task's gold reward with the label flipped with probability ``--rm-noise``
(ties dropped), and a reward model with the policy's architecture is fitted to
them (:func:`jaxpg.sequence.reward_model.make_reward_model_train`); its
accuracy on ``--rm-heldout`` fresh pairs with noiseless gold labels is
reported. It is saved with its version (a hash of its parameters, as the
reference's) to ``OUT/reward_model``. ``--reward-model DIR`` loads a saved one
instead (``OUT/reward_model`` of an earlier run).

RL then optimises the learned reward (``reward`` in the metrics) while the gold
reward is tracked beside it (``true_reward``, ``accuracy``), and the
reward-hacking flag compares the two. The run directory records the reward
model's version in ``lm_config.json`` and ``metrics.json``; ``--resume``
refuses a reward model whose version differs from the recorded one.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path
from typing import Any

from jaxpg.cli.options import Flag, add_flags
from jaxpg.drivers.progress import elapsed
from jaxpg.sequence import checks, runs, tasks
from jaxpg.sequence import reward_model as rm
from jaxpg.sequence.model import TransformerConfig
from jaxpg.sequence.protocol import as_model

__all__ = ["FOLDER", "add_arguments", "check", "prepare", "unused_options"]

FOLDER = "reward_model"
# What jaxpg.sequence.reward_model.save_reward_model writes.
FILES = ("reward_model.json", "reward_model.msgpack")

_TRAINING: tuple[Flag, ...] = (
    ("--rm-pairs", int, 512, "preference pairs to train on (%(default)s)"),
    ("--rm-noise", float, 0.1, "label-flip probability of the pairs (%(default)s)"),
    ("--rm-steps", int, 200, "reward-model training steps (%(default)s)"),
    ("--rm-lr", float, 1e-3, "reward-model learning rate (%(default)s)"),
    ("--rm-batch", int, 64, "pairs per training step (%(default)s)"),
    ("--rm-heldout", int, 256,
     "held-out pairs (noiseless labels) for the accuracy (%(default)s)"),
)  # fmt: skip
TRAINING_OPTIONS = tuple(f[0][2:].replace("-", "_") for f in _TRAINING)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The ``reward model`` group of ``jaxpg lm``."""
    g = parser.add_argument_group("reward model (RL against a learned reward)")
    g.add_argument(
        "--reward-model",
        nargs="?",
        const="",
        default=None,
        metavar="DIR",
        help="optimise a Bradley-Terry reward model learned from preference "
        "pairs labelled by the task's gold reward (tracked beside it): trained "
        "here with the --rm-* options, or loaded from DIR (OUT/reward_model of "
        "an earlier run)",
    )
    add_flags(g, _TRAINING)


def check(args: argparse.Namespace, task: tasks.Task) -> None:
    """Validate the options and a ``--reward-model DIR`` (it holds a saved
    reward model that fits ``task``): ValueError naming the option, before
    anything runs."""
    checks.positive_int("--rm-pairs", args.rm_pairs)
    checks.number("--rm-noise", args.rm_noise, 0.0, 0.5)
    checks.positive_int("--rm-steps", args.rm_steps)
    checks.learning_rate("--rm-lr", args.rm_lr)
    checks.positive_int("--rm-batch", args.rm_batch)
    checks.positive_int("--rm-heldout", args.rm_heldout)
    if args.reward_model:
        directory = runs.check_saved(
            args.reward_model, "--reward-model", "reward model", FILES,
            f"jaxpg lm --reward-model writes one to OUT/{FOLDER}",
        )  # fmt: skip
        try:
            info = json.loads((directory / FILES[0]).read_text())
            backbone = TransformerConfig(**info["model"])
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise ValueError(
                f"--reward-model {directory}: cannot read {FILES[0]} ({e})"
            ) from None
        _check_fits("--reward-model", directory, backbone, task)


def unused_options(args: argparse.Namespace, defaults: dict[str, Any]) -> list[str]:
    """The ``--rm-*`` options given where no reward model is trained."""
    if args.reward_model == "":
        return []
    return [
        f"--{k.replace('_', '-')}"
        for k in TRAINING_OPTIONS
        if k in defaults and getattr(args, k) != defaults[k]
    ]


def prepare(
    args: argparse.Namespace,
    out: Path,
    resuming: bool,
    task: tasks.Task,
    model_cfg: Any,
    ref_params: Any,
) -> tuple[tasks.Task, dict[str, Any] | None]:
    """``(task, record)``: with ``--reward-model``, the task optimising the
    learned reward (its gold reward kept as ``true_reward``) and the reward
    model's record (version, folder, how it was trained, held-out accuracy),
    which is also written to ``OUT/lm_config.json``; else ``(task, None)``.

    Raises:
      ValueError: the reward model cannot be loaded, does not fit the task,
        or (on ``--resume``) is not the version the run was trained against.
    """
    if args.reward_model is None:
        return task, None
    t0 = time.perf_counter()
    own = out / FOLDER
    if args.reward_model:
        option, directory = "--reward-model", Path(args.reward_model)
    elif resuming and own.is_dir():
        option, directory = "--resume", own
    else:
        option, directory = None, own
    if option is None:
        params, info = _train(args, task, model_cfg, ref_params, own)
        how = "trained"
    else:
        params, backbone, info = _load(option, directory)
        _check_fits(option, directory, backbone, task)
        model_cfg = backbone
        how = "loaded"
    version = info["version"]
    runs.record_version(out, "reward model", version, directory, resuming)
    record = {
        "version": version,
        "folder": str(directory),
        "how": how,
        "seconds": time.perf_counter() - t0,
        **{k: v for k, v in info.items() if k not in ("version", "model")},
    }
    return rm.learned_reward_task(task, model_cfg, params), record


def describe(record: dict[str, Any]) -> str:
    """One line for the console."""
    line = f"reward model {record['version']} ({record['how']}"
    if "heldout_accuracy" in record:
        acc = record["heldout_accuracy"]
        untied = record["heldout_pairs"] - record["heldout_ties"]
        line += (
            f" on {record['pairs']} pairs with label noise {record['noise']}, "
            f"{record['ties_dropped']} ties dropped; held-out accuracy "
            + ("n/a" if acc is None else f"{acc:.3f}")
            + f" on {untied} untied noiseless pairs"
        )
    return line + f", {record['seconds']:.1f}s)"


def _train(args, task, model_cfg, ref_params, directory: Path):
    """The reward model fitted with the ``--rm-*`` options
    (:func:`jaxpg.sequence.reward_model.fit_from_reference`), saved to
    ``directory``."""
    doing = (
        f"training the reward model ({args.rm_pairs} pairs, {args.rm_steps} steps, "
        "compile included)"
    )
    with elapsed(doing, not args.no_progress, done="trained the reward model"):
        params, metadata = rm.fit_from_reference(
            task, model_cfg, ref_params, num_pairs=args.rm_pairs,
            noise=args.rm_noise, num_steps=args.rm_steps, lr=args.rm_lr,
            batch_size=args.rm_batch, num_heldout=args.rm_heldout,
        )  # fmt: skip
    version = rm.save_reward_model(directory, params, model_cfg, **metadata)
    return params, {"version": version, **metadata}


def _load(option: str, directory: Path):
    try:
        return rm.load_reward_model(directory)
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise ValueError(
            f"{option} {directory}: cannot load the reward model ({e})"
        ) from None


def _check_fits(option, directory, backbone, task) -> None:
    """A loaded reward model reads the task's tokens: its vocabulary is the
    task's and it holds a prompt and a whole response."""
    m = as_model(backbone)
    length = task.prompt_len + task.max_new_tokens
    if m.vocab_size != tasks.VOCAB_SIZE or m.max_len < length:
        raise ValueError(
            f"{option} {directory}: the reward model (vocabulary {m.vocab_size}, "
            f"max_len {m.max_len}) does not fit task {task.name!r} (vocabulary "
            f"{tasks.VOCAB_SIZE}, prompt + response {length} tokens)"
        )
