r"""Reward functions written in plain Python on the host, called from the
jitted update through :func:`jax.pure_callback`.

The function has the shape TRL's GRPO trainer takes,
``fn(prompts, completions, **columns) -> list[float]``: ``prompts`` and
``completions`` are lists of ``N`` token-id arrays (``int32``; a prompt
without its left padding, a completion up to, not including, its EOS), or of
decoded strings when a tokenizer is given; ``columns`` are the dataset's
extra columns of the ``N`` rows (:func:`jaxpg.sequence.data.dataset_task`), a
list each. It returns ``N`` numbers; anything else raises ValueError naming the
function, what it returned and what was expected.

Cost: each call stops the compiled update at the callback, copies the batch
to the host (``N (Lp + 2R)`` numbers), runs the Python function over ``N``
completions (decoding them first with a tokenizer) and copies ``N`` rewards
back; XLA cannot overlap or fuse across the callback. Under ``vmap`` (several
seeds) the function is called once per seed in turn (``vmap_method=
"sequential"``). ``benchmarks/lm_host_reward.py`` measures an update with a
host reward against the same reward written in ``jax.numpy``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.sequence.data import ROW, Tokenizer
from jaxpg.sequence.tasks import EOS, PAD

Array = jax.Array

__all__ = ["HostReward", "host_reward"]


class HostReward:
    """A jittable ``reward(prompts, responses, mask, **columns) -> [N]`` that
    calls a host function (:func:`host_reward` makes one)."""

    def __init__(
        self,
        fn: Callable[..., Any],
        tokenizer: Tokenizer | None = None,
        host_columns: Mapping[str, list] | None = None,
    ):
        if not callable(fn):
            raise TypeError(f"host_reward: fn={fn!r} is not callable")
        for method in ("encode", "decode") if tokenizer is not None else ():
            if not callable(getattr(tokenizer, method, None)):
                raise TypeError(
                    f"host_reward: tokenizer={tokenizer!r} has no {method}()"
                )
        self.fn = fn
        self.tokenizer = tokenizer
        self.host_columns = dict(host_columns or {})
        self.__qualname__ = getattr(fn, "__qualname__", repr(fn))

    def with_host_columns(self, host_columns: Mapping[str, list]) -> HostReward:
        """The same reward with a dataset's host-side columns (looked up by
        the drawn rows' :data:`jaxpg.sequence.data.ROW`)."""
        return HostReward(self.fn, self.tokenizer, host_columns)

    def __call__(
        self, prompts: Array, responses: Array, mask: Array, **columns: Array
    ) -> Array:
        n = responses.shape[0]
        return jax.pure_callback(
            self._host,
            jax.ShapeDtypeStruct((n,), jnp.float32),
            prompts,
            responses,
            mask,
            columns,
            vmap_method="sequential",
        )

    def _host(self, prompts, responses, mask, columns) -> np.ndarray:
        prompts, responses, mask = map(np.asarray, (prompts, responses, mask))
        n = responses.shape[0]
        lengths = mask.sum(axis=1).astype(np.int64)
        ps = [p[p != PAD] for p in prompts]
        cs = []
        for r, length in zip(responses, lengths, strict=True):
            c = r[:length]
            cs.append(c[:-1] if length and c[-1] == EOS else c)
        if self.tokenizer is not None:
            ps = [self.tokenizer.decode(p) for p in ps]
            cs = [self.tokenizer.decode(c) for c in cs]
        rows = columns.pop(ROW, None)
        kw = {k: list(np.asarray(v)) for k, v in columns.items()}
        if self.host_columns:
            rows = np.asarray(rows)
            kw.update({k: [v[i] for i in rows] for k, v in self.host_columns.items()})
        out = self.fn(prompts=ps, completions=cs, **kw)
        return _check(self.__qualname__, out, n)


def _check(name: str, out: Any, n: int) -> np.ndarray:
    expected = f"a list of {n} numbers, one per completion"
    try:
        values = np.asarray(out, np.float64)
    except (TypeError, ValueError):
        values = None
    if values is None or values.shape != (n,) or isinstance(out, str | bytes):
        kind = type(out).__name__
        if isinstance(out, str | bytes):
            got = f"{kind} {out[:20]!r}"
        elif hasattr(out, "__len__"):
            got = f"{kind} of length {len(out)}"
            got += " holding non-numbers" if values is None else ""
        else:
            got = kind
        raise ValueError(f"host reward {name} returned {got}: expected {expected}")
    return values.astype(np.float32)


def host_reward(
    fn: Callable[..., Any], *, tokenizer: Tokenizer | None = None
) -> HostReward:
    """Wrap ``fn(prompts, completions, **columns) -> list[float]`` (see the
    module docstring) as a jittable reward function for a task
    (:func:`jaxpg.sequence.tasks.with_reward`,
    :func:`jaxpg.sequence.data.dataset_task`).

    Args:
      fn: the host function; called with keywords ``prompts``, ``completions``
        and one per column.
      tokenizer: decodes prompts and completions to strings before the call.
    """
    return HostReward(fn, tokenizer)
