"""Environments by name: gymnax's registry, Craftax, jaxpg's own memory task
(``RepeatFirst-jaxpg``, :mod:`jaxpg.envs.repeat_first`), and ``"SUITE/NAME"`` for
the adapted suites (each an optional extra, imported only when built)."""

from __future__ import annotations

import importlib
from typing import Any

import gymnax

from jaxpg.envs.craftax import CRAFTAX_ENVS, make_craftax
from jaxpg.envs.custom import is_import_path, make_custom_env
from jaxpg.envs.repeat_first import REPEAT_FIRST_ENVS, make_repeat_first

# suite prefix -> jaxpg module whose ``make(name)`` builds "SUITE/NAME"
SUITES = {
    "brax": "jaxpg.envs.brax",
    "playground": "jaxpg.envs.brax",
    "jumanji": "jaxpg.envs.jumanji",
    "navix": "jaxpg.envs.navix",
    "xminigrid": "jaxpg.envs.xminigrid",
    "pgx": "jaxpg.envs.pgx",
}


def known_envs() -> tuple[str, ...]:
    """Names accepted by ``Config(env=...)``: gymnax's registry, Craftax's and
    jaxpg's own (besides ``"SUITE/NAME"`` for a suite in ``SUITES``, see
    :func:`is_known_env`)."""
    return (*gymnax.registered_envs, *CRAFTAX_ENVS, *REPEAT_FIRST_ENVS)


def is_known_env(name: str) -> bool:
    """A gymnax or Craftax name, or ``"SUITE/NAME"`` with ``SUITE`` in
    ``SUITES`` (the name itself is checked when the env is built, so that a
    config never imports the suite)."""
    suite, sep, rest = name.partition("/")
    return name in known_envs() or bool(sep and suite in SUITES and rest)


def make_env(name: str) -> tuple[Any, Any]:
    """``(env, env_params)`` for a gymnax, Craftax or jaxpg name, ``"SUITE/NAME"``, or a
    user's ``"package.module:make_env"`` (:mod:`jaxpg.envs.custom`).

    Raises:
      ValueError: ``name`` is not known; the message lists the known names
        (the suite's, for ``"SUITE/NAME"``); or an import path that does not
        give ``(env, env_params)``.
      ImportError: the suite's package is missing; the message names the extra.
    """
    if is_import_path(name):
        return make_custom_env(name)
    if name in CRAFTAX_ENVS:
        return make_craftax(name)
    if name in REPEAT_FIRST_ENVS:
        return make_repeat_first(name)
    suite, sep, _ = name.partition("/")
    if sep and suite in SUITES:
        return importlib.import_module(SUITES[suite]).make(name)
    if name not in gymnax.registered_envs:
        raise ValueError(
            f"env={name!r} is not a known environment; known: "
            f"{', '.join(known_envs())}, SUITE/NAME with SUITE one of "
            f"{', '.join(SUITES)}, an import path MODULE:FUNCTION returning "
            "(env, env_params) (or pass env=<gymnax Environment>)"
        )
    return gymnax.make(name)
