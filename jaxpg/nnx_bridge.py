r"""``flax.nnx`` torsos behind the same pure ``init`` / ``apply`` as linen ones.

An ``nnx.Module`` given as ``policy_network=`` or ``critic_network=`` is split
once (:func:`split_params`, which :func:`jaxpg.sequence.from_nnx` uses too)
into its static graph and its ``nnx.Param`` state. The parameters, as a plain
nested dict of arrays (``nnx.to_pure_dict``), are the torso's entry of the
params pytree: they vmap over seeds and settings, checkpoint and evaluate like
a linen torso's. ``apply`` merges the graph with the parameters it is given,
so every call is pure.

Initial parameters, two ways:

* a *factory* ``rngs -> nnx.Module`` (a function, ``functools.partial`` or the
  module's class when its constructor takes only ``rngs``): every seed builds
  its module from its own key, ``factory(nnx.Rngs(key))`` inside ``init``, so
  seeds start from different parameters, as linen torsos do. The factory is
  also called once with ``nnx.Rngs(0)`` for the graph; it must build the same
  structure for every key.
* a module *instance*, already built with its own ``rngs``: its parameters
  are every seed's initial parameters (the heads, the envs and the actions
  still differ by seed). Pass a factory for seeds that differ.

A recurrent NNX torso follows :mod:`jaxpg.recurrent`'s protocol
(``initialize_carry(batch_size)`` and ``__call__(carry, obs, reset)``).

State other than parameters is refused with an error naming it: batch
statistics (``BatchNorm`` without ``use_running_average``, linen's
``batch_stats``), dropout (an ``rngs`` stream, linen's ``"dropout"`` rng),
any other collection or variable type. jaxpg carries no such state between
updates. NNX modules in evaluation mode (a ``BatchNorm`` with
``use_running_average=True``, a ``Dropout`` with ``deterministic=True`` or
rate 0) are accepted: their statistics and rng stream stay in the graph's
state, read and never trained. Linen's ``batch_stats`` collection is refused
in either mode (linen torsos carry their ``params`` alone).

``flax.nnx`` is imported on first use (:func:`_nnx`), not with this module:
it costs about a third of a second of every ``import jaxpg`` (with IPython,
when installed, which ``flax.nnx`` probes at import), and a user who passes an
NNX module has imported it already.
"""

from __future__ import annotations

import importlib
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, NamedTuple

import flax.linen as nn
import jax

if TYPE_CHECKING:
    from flax import nnx

Array = jax.Array


def _nnx() -> Any:
    """``flax.nnx``, imported on first use."""
    return importlib.import_module("flax.nnx")


def is_nnx_module(obj: Any) -> bool:
    """Whether ``obj`` is an ``nnx.Module`` (without importing ``flax.nnx``
    when nothing has: then nothing can be one)."""
    loaded = sys.modules.get("flax.nnx")
    return loaded is not None and isinstance(obj, loaded.Module)


class UnsupportedState(ValueError):
    """A torso with state other than parameters (batch statistics, dropout
    rngs): a ``ValueError`` that names it."""


class NNXParts(NamedTuple):
    """An ``nnx.Module`` split once (:func:`split_params`).

    Attributes:
      graph: the static graph (``nnx.GraphDef``).
      state: the ``nnx.Param`` state, the template :func:`merge_params` fills.
      rest: every other variable (``nnx.State``; empty for a torso).
      params: the parameters as a pure nested dict of arrays.
    """

    graph: Any
    state: Any
    rest: Any
    params: Any


def split_params(module: nnx.Module) -> NNXParts:
    """``module`` split into its graph, its ``nnx.Param`` state (also as a pure
    nested dict of arrays: the params pytree) and the rest of its state."""
    nnx = _nnx()
    graph, state, rest = nnx.split(module, nnx.Param, ...)
    return NNXParts(graph, state, rest, nnx.to_pure_dict(state))


def merge_params(parts: NNXParts, params: Any) -> nnx.Module:
    """A new module: ``parts``' graph and other state, with ``params`` (a pure
    dict of :attr:`NNXParts.params`' structure) as its parameters; pure,
    ``parts`` is left as it was."""
    nnx = _nnx()
    state = jax.tree.map(lambda x: x, parts.state)  # a fresh copy
    nnx.replace_by_pure_dict(state, params)
    return nnx.merge(parts.graph, state, parts.rest)


class NNXTorso:
    """An ``nnx.Module`` (or a factory ``rngs -> nnx.Module``) with linen's
    ``init`` / ``apply`` / ``init_with_output`` (what jaxpg's networks call).

    Attributes:
      module: the module as given, or the factory's module for
        ``nnx.Rngs(0)`` (its graph).
      factory: the factory, or ``None`` for a module instance.
    """

    def __init__(
        self,
        module: nnx.Module,
        name: str = "policy_network",
        factory: Callable[[nnx.Rngs], nnx.Module] | None = None,
    ):
        check_nnx_state(module, name)
        self.module = module
        self.factory = factory
        self._parts = split_params(module)

    def __repr__(self) -> str:
        return f"NNXTorso({type(self.module).__name__})"

    def init(self, key: Array, *args: Any) -> Any:
        """Initial parameters: the factory's module for ``nnx.Rngs(key)``, or
        (a module instance) the module's own parameters, whatever ``key``."""
        del args
        if self.factory is None:
            return jax.tree.map(lambda x: x, self._parts.params)
        nnx = _nnx()
        params = nnx.to_pure_dict(nnx.state(self.factory(nnx.Rngs(key)), nnx.Param))
        want = jax.tree.structure(self._parts.params)
        if jax.tree.structure(params) != want:
            raise ValueError(
                f"the factory of {self!r} built parameters {jax.tree.structure(params)}"
                f" for one key and {want} for nnx.Rngs(0): it must build the same "
                "module for every key"
            )
        return params

    def apply(self, params: Any, *args: Any) -> Any:
        """The module, with ``params``, called on ``args``."""
        return merge_params(self._parts, params)(*args)

    def init_with_output(self, key: Array, *args: Any) -> tuple[Any, dict]:
        params = self.init(key)
        return self.apply(params, *args), {"params": params}


class NNXRecurrentTorso(NNXTorso):
    """:class:`NNXTorso` of a module with ``initialize_carry``."""

    def initialize_carry(self, batch_size: int) -> Any:
        return self.module.initialize_carry(batch_size)


ACCEPTED = (
    "a flax.linen.Module or a flax.nnx.Module mapping observations [N, *O] to "
    "features [N, F] (or a recurrent torso, see jaxpg.recurrent), or a function "
    "rngs -> nnx.Module (each seed's module built from its own key)"
)


def wrap(torso: Any, name: str = "policy_network") -> Any:
    """``torso`` as jaxpg's networks take it: an ``nnx.Module`` or a factory
    ``rngs -> nnx.Module`` wrapped in :class:`NNXTorso`
    (:class:`NNXRecurrentTorso` when the module has ``initialize_carry``), a
    linen module (or anything not callable) unchanged.

    Raises:
      ValueError: an NNX module with state other than parameters.
      TypeError: a callable that is neither a linen module nor a factory of an
        ``nnx.Module`` (called once with ``nnx.Rngs(0)`` to find out).
    """
    factory = None
    if not is_nnx_module(torso):
        if isinstance(torso, nn.Module) or not callable(torso):
            return torso
        nnx = _nnx()  # a callable: perhaps a factory of an nnx.Module
        factory = torso
        kind = f"{type(torso).__module__}.{type(torso).__qualname__}"
        try:
            torso = factory(nnx.Rngs(0))
        except Exception as err:
            raise TypeError(
                f"{name}=<a {kind}> is invalid: must be {ACCEPTED}; called with "
                f"nnx.Rngs(0) as a factory it raised {type(err).__name__}: {err}"
            ) from err
        if not isinstance(torso, nnx.Module):
            raise TypeError(
                f"{name}=<a {kind}> is invalid: must be {ACCEPTED}; called with "
                f"nnx.Rngs(0) as a factory it returned a {type(torso).__name__}"
            )
    if callable(getattr(torso, "initialize_carry", None)):
        return NNXRecurrentTorso(torso, name, factory)
    return NNXTorso(torso, name, factory)


def check_nnx_state(module: nnx.Module, name: str) -> None:
    """Refuse an NNX module with batch statistics, dropout or any non-Param
    variable.

    Raises:
      ValueError: naming the variable type, the module path and the fix.
    """
    nnx = _nnx()
    evaluating = []  # paths of eval-mode BatchNorm and Dropout modules
    for path, node in nnx.iter_graph(module):
        where = ".".join(map(str, path)) or "the module"
        if isinstance(node, nnx.Dropout) and (node.deterministic or not node.rate):
            evaluating.append(tuple(path))
        if isinstance(node, nnx.BatchNorm) and node.use_running_average:
            evaluating.append(tuple(path))
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
    # An eval-mode BatchNorm's statistics and a deterministic Dropout's rng
    # stream are read-only: they stay in the graph's state, untrained.
    kinds = sorted(
        {
            type(v).__name__
            for path, v in nnx.to_flat_state(rest)
            if not any(tuple(path[: len(p)]) == p for p in evaluating)
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
            "trains and carries only parameters (BatchNorm: use LayerNorm, or "
            "an NNX BatchNorm with use_running_average=True)"
        )
