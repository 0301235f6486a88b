r"""``flax.nnx`` torsos behind the same pure ``init`` / ``apply`` as linen ones.

An ``nnx.Module`` given as ``policy_network=`` or ``critic_network=`` is split
once (:func:`wrap`) into its static graph and its ``nnx.Param`` state. The
parameters, as a plain nested dict of arrays (``nnx.to_pure_dict``), are
the torso's entry of the params pytree: they vmap over seeds and settings,
checkpoint and evaluate like a linen torso's. ``apply`` merges the graph with
the parameters it is given, so every call is pure.

The module was built with its own ``rngs``: its initial parameters are those,
for every seed (the head, the critic's head, the envs and the actions still
differ by seed). A recurrent NNX torso follows :mod:`jaxpg.recurrent`'s
protocol (``initialize_carry(batch_size)`` and ``__call__(carry, obs,
reset)``).

State other than parameters is refused with an error naming it: batch
statistics (``BatchNorm`` without ``use_running_average``, linen's
``batch_stats``), dropout (an ``rngs`` stream, linen's ``"dropout"`` rng),
any other collection or variable type. jaxpg carries no such state between
updates; evaluate-mode modules (``use_running_average=True``,
``deterministic=True``) are accepted.
"""

from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
from flax import nnx

Array = jax.Array


class UnsupportedState(ValueError):
    """A torso with state other than parameters (batch statistics, dropout
    rngs): a ``ValueError`` that names it."""


class NNXTorso:
    """An ``nnx.Module`` with linen's ``init`` / ``apply`` /
    ``init_with_output`` (what jaxpg's networks call).

    Attributes:
      module: the module as given.
    """

    def __init__(self, module: nnx.Module, name: str = "policy_network"):
        check_nnx_state(module, name)
        self.module = module
        self._graph, state = nnx.split(module, nnx.Param)
        self._state = state
        self._params = nnx.to_pure_dict(state)

    def __repr__(self) -> str:
        return f"NNXTorso({type(self.module).__name__})"

    def _merged(self, params: Any) -> nnx.Module:
        state = jax.tree.map(lambda x: x, self._state)  # a fresh copy
        nnx.replace_by_pure_dict(state, params)
        return nnx.merge(self._graph, state)

    def init(self, key: Array, *args: Any) -> Any:
        """The module's own parameters (``key`` is unused: see the module
        docstring)."""
        del key, args
        return jax.tree.map(lambda x: x, self._params)

    def apply(self, params: Any, *args: Any) -> Any:
        """The module, with ``params``, called on ``args``."""
        return self._merged(params)(*args)

    def init_with_output(self, key: Array, *args: Any) -> tuple[Any, dict]:
        params = self.init(key)
        return self.apply(params, *args), {"params": params}


class NNXRecurrentTorso(NNXTorso):
    """:class:`NNXTorso` of a module with ``initialize_carry``."""

    def initialize_carry(self, batch_size: int) -> Any:
        return self.module.initialize_carry(batch_size)


def wrap(torso: Any, name: str = "policy_network") -> Any:
    """``torso`` as jaxpg's networks take it: an ``nnx.Module`` wrapped in
    :class:`NNXTorso` (:class:`NNXRecurrentTorso` when it has
    ``initialize_carry``), anything else unchanged.

    Raises:
      ValueError: an NNX module with state other than parameters.
    """
    if not isinstance(torso, nnx.Module):
        return torso
    if callable(getattr(torso, "initialize_carry", None)):
        return NNXRecurrentTorso(torso, name)
    return NNXTorso(torso, name)


def check_nnx_state(module: nnx.Module, name: str) -> None:
    """Refuse an NNX module with batch statistics, dropout or any non-Param
    variable.

    Raises:
      ValueError: naming the variable type, the module path and the fix.
    """
    for path, node in nnx.iter_graph(module):
        where = ".".join(map(str, path)) or "the module"
        if isinstance(node, nnx.Dropout) and not node.deterministic and node.rate:
            raise UnsupportedState(
                f"{name} ({type(module).__name__}) has a Dropout at {where} that "
                "draws from an rngs stream ('dropout'): jaxpg trains torsos "
                "without dropout rngs; build it with deterministic=True or "
                "rate=0.0"
            )
        if isinstance(node, nnx.BatchNorm) and not node.use_running_average:
            raise UnsupportedState(
                f"{name} ({type(module).__name__}) has a BatchNorm at {where} "
                "that updates its batch statistics (BatchStat, linen's "
                "'batch_stats' collection): jaxpg carries no state but "
                "parameters; use nnx.LayerNorm or use_running_average=True"
            )
    _, _, rest = nnx.split(module, nnx.Param, ...)
    kinds = sorted(
        {
            type(v).__name__
            for v in jax.tree.leaves(
                rest, is_leaf=lambda x: isinstance(x, nnx.Variable)
            )
        }
    )
    if kinds:
        raise UnsupportedState(
            f"{name} ({type(module).__name__}) holds state other than "
            f"nnx.Param ({', '.join(kinds)}): jaxpg trains and carries only "
            "parameters; remove that state (or keep it outside the module)"
        )


def check_collections(variables: Any, torso: Any, name: str) -> None:
    """Refuse a linen torso whose ``init`` made collections other than
    ``"params"`` (e.g. BatchNorm's ``"batch_stats"``).

    Raises:
      ValueError: naming the collection.
    """
    extra = sorted(k for k in variables if k != "params")
    if extra and isinstance(torso, nn.Module):
        raise UnsupportedState(
            f"{name} ({type(torso).__name__}) has the collection(s) "
            f"{', '.join(repr(k) for k in extra)} besides 'params': jaxpg "
            "trains and carries only parameters (BatchNorm: use LayerNorm or "
            "use_running_average=True)"
        )
