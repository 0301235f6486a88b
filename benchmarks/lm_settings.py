"""What the token-policy benchmarks share: the model and batch options
(all of ``lm_throughput.py``, ``lm_host_reward.py``, ``lm_trl.py`` and
``lm_ablate.py``) and the model built from them; for the two timing scripts
also the seeds, timing and ``--tiny`` options, compiling the timed programs,
and the record's description of the run."""

from __future__ import annotations

import argparse
import platform
import time
from typing import Any

import jax

from jaxpg.sequence import model, tasks


def add_model_options(p: argparse.ArgumentParser) -> None:
    """The model (``--width --layers --heads``) and a seed's batch
    (``--prompts --group``); ``lm_trl.py`` and ``lm_ablate.py`` use them too."""
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--heads", type=int, default=2)
    p.add_argument("--prompts", type=int, default=16)
    p.add_argument("--group", type=int, default=4)


def add_rl_options(p: argparse.ArgumentParser) -> None:
    """The learning settings the comparisons against TRL and Tunix share:
    ``--updates``, the SFT warm start (``--sft-steps --sft-lr``), ``--lr``,
    ``--beta`` and ``--seed``."""
    p.add_argument("--updates", type=int, default=150)
    p.add_argument("--sft-steps", type=int, default=40)
    p.add_argument("--sft-lr", type=float, default=3e-3)
    p.add_argument("--lr", type=float, default=2e-3)
    p.add_argument("--beta", type=float, default=0.04)
    p.add_argument("--seed", type=int, default=0)


def add_options(p: argparse.ArgumentParser, iters_help: str) -> None:
    """:func:`add_model_options`, the seeds (``--seeds``), the timing
    (``--repeats --iters``), ``--tiny`` and ``--out``."""
    add_model_options(p)
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--iters", type=int, default=20, help=iters_help)
    p.add_argument("--tiny", action="store_true", help="a few seconds' check")
    p.add_argument("--out", default=None, help="JSON path (default: results/)")


def parse(p: argparse.ArgumentParser) -> argparse.Namespace:
    """The parsed options; ``--tiny`` shrinks the model, batch and timing."""
    a = p.parse_args()
    if a.tiny:
        a.width, a.layers, a.prompts, a.group, a.seeds = 8, 1, 2, 2, 2
        a.repeats, a.iters = 1, 2
    return a


def model_config(
    task: tasks.Task, a: argparse.Namespace, transformer: Any = model
) -> model.TransformerConfig:
    """The transformer of the options, long enough for a prompt and response
    (``transformer``: the module holding ``TransformerConfig``, today's
    ``jaxpg.sequence.model`` or an older version's)."""
    return transformer.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=a.width, num_layers=a.layers,
        num_heads=a.heads, max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip


def compile_programs(
    programs: dict[str, tuple[Any, ...]],
) -> tuple[dict[str, Any], dict[str, float]]:
    """``(compiled, compile seconds)`` of ``{name: (function, argument, ...)}``."""
    compiled, compile_s = {}, {}
    for name, (fn, arg, *_) in programs.items():
        t0 = time.perf_counter()
        compiled[name] = jax.jit(fn).lower(arg).compile()
        compile_s[name] = time.perf_counter() - t0
    return compiled, compile_s


def run_record(a: argparse.Namespace, **fields: Any) -> dict[str, Any]:
    """The record: the settings (not ``--out``), ``fields``, the device, JAX's
    version and the machine."""
    device = jax.devices()[0]
    return {
        "settings": {k: v for k, v in vars(a).items() if k != "out"},
        **fields,
        "device": str(device),
        "device_kind": device.device_kind,
        "jax": jax.__version__,
        "machine": platform.platform(),
    }
