r"""A user's environment named by an import path, ``"package.module:make_env"``.

``make_env`` is a function of no arguments that returns ``(env, env_params)``
in gymnax's API (see :mod:`jaxpg.envs.spec`). The path is an environment
name like any other: ``Config(env="my_pkg.envs:make_env")``, ``jaxpg train
--env my_pkg.envs:make_env``, and since a run directory records the config,
``jaxpg train --resume``, ``jaxpg eval`` and ``jaxpg compare`` build the same
environment again. The module must be importable where the run is resumed or
evaluated (installed, or on ``PYTHONPATH``); the current directory is searched
too, as ``python -m`` does.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

__all__ = ["is_import_path", "make_custom_env"]


def is_import_path(name: str) -> bool:
    """Whether ``name`` has the form ``MODULE:FUNCTION`` (no registry name
    contains ``:``)."""
    module, sep, attr = str(name).partition(":")
    return bool(sep and module and attr)


def make_custom_env(path: str) -> tuple[Any, Any]:
    """``(env, env_params)`` returned by the function ``path`` names.

    Args:
      path: ``"package.module:function"`` (``function`` may be dotted,
        ``Class.method``), a function of no arguments.

    Raises:
      ValueError: ``path`` is not ``MODULE:FUNCTION``, the module cannot be
        imported, has no such function, or the function does not return a
        pair ``(env, env_params)``; the message names ``env`` and the path.
    """
    if not is_import_path(path):
        raise ValueError(
            f"env={path!r} is invalid: an import path must be MODULE:FUNCTION, "
            "e.g. my_package.envs:make_env"
        )
    module_name, _, attr = str(path).partition(":")
    if "" not in sys.path and os.getcwd() not in sys.path:
        sys.path.append(os.getcwd())  # as `python -m` would find it
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as e:
        raise ValueError(
            f"env={path!r}: cannot import {module_name!r} ({e}); install it or "
            "add its folder to PYTHONPATH"
        ) from e
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"env={path!r}: {module_name!r} has no {attr!r}")
        obj = getattr(obj, part)
    if not callable(obj):
        raise ValueError(f"env={path!r}: {attr!r} is not a function")
    made = obj()
    if not isinstance(made, tuple) or len(made) != 2:
        raise ValueError(
            f"env={path!r}: {attr}() returned {type(made).__name__}; it must "
            "return a pair (env, env_params)"
        )
    return made
