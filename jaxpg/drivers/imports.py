r"""Objects named by an import path, ``"package.module:attribute"``: how a
run directory and the command line name a user's algorithm or environment."""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["load_object"]


def load_object(path: str, what: str = "object") -> Any:
    """The attribute ``path`` names, ``"package.module:attr"`` (``attr`` may
    be dotted, ``Class.method``).

    Raises:
      ValueError: ``path`` is not ``MODULE:ATTR``, the module cannot be
        imported or has no such attribute (the message names ``what``).
    """
    module_name, sep, attr = str(path).partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(
            f"{what}={path!r} is invalid: must be an import path MODULE:ATTR, "
            "e.g. my_package.algos:make_my_algorithm"
        )
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(f"{what}={path!r}: cannot import {module_name!r}: {e}") from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{what}={path!r}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    return obj
