"""Environments by name: gymnax's registry and the adapted suites."""

from __future__ import annotations

from typing import Any

import gymnax

from jaxpg.envs.craftax import CRAFTAX_ENVS, make_craftax
from jaxpg.envs.custom import is_import_path, make_custom_env


def known_envs() -> tuple[str, ...]:
    """Names accepted by ``Config(env=...)``: gymnax's registry and Craftax's."""
    return (*gymnax.registered_envs, *CRAFTAX_ENVS)


def make_env(name: str) -> tuple[Any, Any]:
    """``(env, env_params)`` for a gymnax or Craftax environment name, or a
    user's ``"package.module:make_env"`` (:mod:`jaxpg.envs.custom`).

    Raises:
      ValueError: ``name`` is not known (the message lists the known names),
        or an import path that does not give ``(env, env_params)``.
      ImportError: a Craftax name without the ``craftax`` package.
    """
    if is_import_path(name):
        return make_custom_env(name)
    if name in CRAFTAX_ENVS:
        return make_craftax(name)
    if name not in gymnax.registered_envs:
        raise ValueError(
            f"env={name!r} is not a known environment; known: "
            f"{', '.join(known_envs())} (or pass env=<gymnax Environment>, or "
            "an import path MODULE:FUNCTION returning (env, env_params))"
        )
    return gymnax.make(name)
