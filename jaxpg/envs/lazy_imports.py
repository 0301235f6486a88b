"""Defer the plotting libraries that gymnax imports at its top level.

``import gymnax`` imports every environment module, and two of them import
seaborn (with it SciPy's statistics) and matplotlib's pyplot, for their
``render`` methods only: more than a second of every ``import jaxpg`` and of
every ``jaxpg`` command. :func:`defer` puts a stand-in module in
``sys.modules`` for each: the import statement binds it, and the first
attribute read imports the real module, which then replaces the stand-in
(the stand-in forwards every later read). A module already imported, or not
installed, is left alone; ``import seaborn`` in user code works as before.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import types

DEFERRED = ("seaborn", "matplotlib.pyplot")


class Deferred(types.ModuleType):
    """A module that imports the real one on its first attribute read."""

    def __getattr__(self, attr: str):
        name = self.__name__
        if sys.modules.get(name) is self:
            del sys.modules[name]
        real = importlib.import_module(name)
        self.__dict__.update(
            (k, v) for k, v in vars(real).items() if k not in ("__class__",)
        )
        return getattr(real, attr)


def defer(names: tuple[str, ...] = DEFERRED) -> None:
    """Register a :class:`Deferred` stand-in for each module in ``names`` that
    is installed and not yet imported (a submodule's package is imported, and
    the stand-in set as its attribute, as an import would)."""
    for name in names:
        if name in sys.modules:
            continue
        parent, _, child = name.rpartition(".")
        try:
            if importlib.util.find_spec(name) is None:
                continue
        except ImportError:  # the parent package is missing
            continue
        stand_in = Deferred(name)
        sys.modules[name] = stand_in
        if parent:
            setattr(importlib.import_module(parent), child, stand_in)
