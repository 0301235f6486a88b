r"""Prompts from a user's dataset, a character-level tokenizer, and reward
functions that read the dataset's extra columns.

A dataset is ``D`` rows: a prompt each (token ids, or a string with a
tokenizer) and any extra columns (an answer, a test case, a difficulty).
:func:`dataset_task` makes a :class:`.tasks.Task` of it: each update draws
``n`` rows uniformly with replacement from its key, the prompts go to the
policy and the rows' columns go to the reward functions as keywords
(``reward(prompts, responses, mask, **columns)``), so RL, evaluation and
reward-model pairs run on it as on a built-in task.

Prompts of different lengths are left-padded with ``PAD`` to the longest
(``Lp``), so that every response starts at the same position; the model reads
the padding as tokens (there is no prompt attention mask), which a model
learns to ignore. Token ids follow :mod:`.tasks`: ``PAD = 0``, ``EOS = 1``.

Columns: a numeric array-like with ``D`` rows travels with the prompts on the
device (``[N, ...]`` in a jittable reward); any other column (strings,
objects) stays on the host and only reaches host rewards
(:func:`jaxpg.sequence.host_reward.host_reward`), looked up there by row.

:class:`CharTokenizer` is the built-in tokenizer: one id per character. A
trained subword tokenizer (the ``tokenizers`` package's BPE) works wherever
an object with ``encode(text) -> list[int]`` and ``decode(ids) -> str`` is
taken, if its ids reserve ``0`` for padding and ``1`` for EOS.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.sequence import checks
from jaxpg.sequence.tasks import EOS, PAD, RewardFn, Task

Array = jax.Array

__all__ = ["ROW", "CharTokenizer", "Tokenizer", "dataset_task", "pad_left"]

# The column that carries each drawn row's index (for host-side columns).
ROW = "_row"


class Tokenizer(Protocol):
    """What a tokenizer must provide (``PAD = 0`` and ``EOS = 1`` reserved)."""

    def encode(self, text: str) -> list[int]: ...

    def decode(self, ids: Sequence[int]) -> str: ...


@dataclasses.dataclass(frozen=True)
class CharTokenizer:
    """One token per character of ``alphabet``: ids ``2 ..`` in its order,
    ``pad_id = 0`` and ``eos_id = 1`` (as :mod:`.tasks`).

    Example: ``CharTokenizer("0123456789+=")`` has ``vocab_size`` 14 and
    encodes ``"1+2="`` to ``[3, 12, 4, 13]``.
    """

    alphabet: str
    pad_id: int = dataclasses.field(default=PAD, init=False)
    eos_id: int = dataclasses.field(default=EOS, init=False)

    def __post_init__(self):
        if not isinstance(self.alphabet, str) or not self.alphabet:
            raise ValueError(
                f"CharTokenizer(alphabet={self.alphabet!r}) is invalid: must be "
                "a non-empty string"
            )
        if len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(
                f"CharTokenizer(alphabet={self.alphabet!r}) repeats a character"
            )

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> CharTokenizer:
        """The tokenizer of every character in ``texts`` (sorted)."""
        return cls("".join(sorted(set("".join(texts)))))

    @property
    def vocab_size(self) -> int:
        """``V = len(alphabet) + 2``."""
        return len(self.alphabet) + 2

    def encode(self, text: str) -> list[int]:
        """Token ids of ``text`` (no EOS); ValueError naming an unknown
        character."""
        index = {c: i + 2 for i, c in enumerate(self.alphabet)}
        unknown = sorted({c for c in text if c not in index})
        if unknown:
            raise ValueError(
                f"CharTokenizer: text {text!r} has characters {unknown} not in "
                f"the alphabet {self.alphabet!r}"
            )
        return [index[c] for c in text]

    def decode(self, ids: Sequence[int]) -> str:
        """The text of ``ids``: padding skipped, up to the first EOS."""
        out = []
        for i in np.asarray(ids, np.int64).reshape(-1):
            if i == self.eos_id:
                break
            if i != self.pad_id:
                if not 2 <= i < self.vocab_size:
                    raise ValueError(
                        f"CharTokenizer.decode: id {i} is not in [0, {self.vocab_size})"
                    )
                out.append(self.alphabet[i - 2])
        return "".join(out)


def pad_left(rows: Sequence[Sequence[int]], pad_id: int = PAD) -> np.ndarray:
    """Token rows of any lengths as ``[D, Lp]`` int32, left-padded with
    ``pad_id`` to the longest."""
    length = max(len(r) for r in rows)
    out = np.full((len(rows), length), pad_id, np.int32)
    for i, r in enumerate(rows):
        if len(r):
            out[i, length - len(r) :] = r
    return out


def _prompt_table(prompts: Any, tokenizer: Tokenizer | None) -> np.ndarray:
    """``[D, Lp]`` int32 from token arrays, token lists or strings."""
    if isinstance(prompts, str):
        raise ValueError("dataset_task: prompts is one string; pass a list of prompts")
    if isinstance(prompts, np.ndarray | jax.Array) and np.ndim(prompts) == 2:
        table = np.asarray(prompts)
    else:
        prompts = list(prompts)
        if not prompts:
            raise ValueError("dataset_task: prompts is empty: need at least one row")
        if all(isinstance(p, str) for p in prompts):
            if tokenizer is None:
                raise ValueError(
                    "dataset_task: prompts are strings: pass tokenizer= (e.g. "
                    "jaxpg.sequence.data.CharTokenizer.from_texts(prompts))"
                )
            prompts = [tokenizer.encode(p) for p in prompts]
        table = pad_left(prompts)
    if table.ndim != 2 or table.shape[0] < 1 or table.shape[1] < 1:
        raise ValueError(
            f"dataset_task: prompts of shape {list(table.shape)}: must be [D, Lp] "
            "with D, Lp >= 1"
        )
    if not np.issubdtype(table.dtype, np.integer):
        raise ValueError(
            f"dataset_task: prompts have dtype {table.dtype}: must be token ids"
        )
    return table.astype(np.int32)


def _split_columns(
    columns: Mapping[str, Any], d: int
) -> tuple[dict[str, np.ndarray], dict[str, list]]:
    """``(device, host)``: numeric columns as arrays, the rest as lists; each
    must have ``D`` rows (ValueError naming it)."""
    device, host = {}, {}
    for name, values in columns.items():
        if not isinstance(name, str) or not name.isidentifier() or name == ROW:
            raise ValueError(
                f"dataset_task: column name {name!r} is invalid: must be a "
                f"Python identifier other than {ROW!r} (it becomes a keyword)"
            )
        if name in ("prompts", "responses", "mask", "completions"):
            raise ValueError(
                f"dataset_task: column name {name!r} is taken by the reward "
                "function's own arguments"
            )
        if len(values) != d:
            raise ValueError(
                f"dataset_task: column {name!r} has {len(values)} rows, the prompts {d}"
            )
        array = np.asarray(values) if not isinstance(values, str) else None
        if array is not None and array.dtype.kind in "biuf":
            device[name] = array
        else:
            host[name] = list(values)
    return device, host


def _bind(fn: RewardFn, what: str, host: dict[str, list]) -> RewardFn:
    """``fn`` called with the device columns; a host reward also receives
    the host columns (it looks them up by :data:`ROW`)."""
    if not callable(fn):
        raise TypeError(f"dataset_task: {what}={fn!r} is not callable")
    bind = getattr(fn, "with_host_columns", None)
    if bind is not None:
        return bind(host)

    def reward(prompts, responses, mask, **columns):
        columns.pop(ROW, None)
        return fn(prompts, responses, mask, **columns)

    reward.__qualname__ = getattr(fn, "__qualname__", what)
    return reward


def dataset_task(
    prompts: Any,
    reward: RewardFn,
    *,
    max_new_tokens: int,
    columns: Mapping[str, Any] | None = None,
    true_reward: RewardFn | None = None,
    accuracy: RewardFn | None = None,
    tokenizer: Tokenizer | None = None,
    name: str = "dataset",
) -> Task:
    r"""A :class:`.tasks.Task` whose prompts are rows of a user's dataset.

    Args:
      prompts: ``D`` prompts: an int array ``[D, Lp]``, token lists of any
        lengths, or strings (with ``tokenizer``); shorter ones are left-padded
        with ``PAD`` (see the module docstring).
      reward: the optimised reward, ``reward(prompts [N, Lp], responses [N, R],
        mask [N, R], **columns) -> [N]``: jittable, or a host function wrapped
        by :func:`jaxpg.sequence.host_reward.host_reward`.
      max_new_tokens: the response budget ``R``.
      columns: ``{name: D values}``; numeric ones reach every reward as
        ``[N, ...]`` arrays, others only host rewards.
      true_reward: tracked beside ``reward`` (default: ``reward`` itself; given,
        the task is a proxy task and the reward-hacking flag compares them).
      accuracy: reported as ``accuracy`` (default: ``true_reward``).
      tokenizer: encodes string prompts.
      name: for reports.

    The task has no ground-truth answers (``answers`` raises ValueError):
    start RL from your own model's parameters rather than from :func:`.sft.make_sft`.
    """
    table = _prompt_table(prompts, tokenizer)
    d, lp = table.shape
    checks.positive_int("dataset_task: max_new_tokens", max_new_tokens)
    device, host = _split_columns(columns or {}, d)
    proxy = true_reward is not None
    true_reward = reward if true_reward is None else true_reward
    accuracy = true_reward if accuracy is None else accuracy
    table_j = jnp.asarray(table)
    device_j = {k: jnp.asarray(v) for k, v in device.items()}

    def rows(key, n):
        return jax.random.randint(key, (n,), 0, d)

    def sample_prompts(key, n):
        return table_j[rows(key, n)]

    def sample_columns(key, n):
        index = rows(key, n)
        return {ROW: index, **{k: v[index] for k, v in device_j.items()}}

    def answers(prompts):
        raise ValueError(
            f"task {name!r} (dataset_task) has no ground-truth answers, which "
            "supervised fine-tuning needs: start RL from your own model's "
            "parameters"
        )

    return Task(
        name, lp, 1, max_new_tokens, sample_prompts, answers,
        _bind(reward, "reward", host), _bind(true_reward, "true_reward", host),
        _bind(accuracy, "accuracy", host), proxy, sample_columns,
    )  # fmt: skip
