"""A probe that counts how many times ``vmap`` batches the code around it."""

from __future__ import annotations

from typing import Any

from jax import custom_batching


class VmapProbe:
    """``probe(x)`` is ``x``; ``probe.calls`` counts the batchings of the code
    around its calls: one per pass of JAX's batching over that code, at every
    enclosing ``vmap`` (the rule leaves a probe in the batched code, so an
    outer ``vmap`` counts too). A probe whose input is not batched is not
    counted (nothing is batched there)."""

    def __init__(self) -> None:
        self.calls = 0

        @custom_batching.custom_vmap
        def probe(x: Any) -> Any:
            return x

        @probe.def_vmap
        def rule(axis_size, in_batched, x):
            self.calls += 1
            return probe(x), in_batched[0]

        self._probe = probe

    def __call__(self, x: Any) -> Any:
        return self._probe(x)
