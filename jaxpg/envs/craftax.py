"""Craftax (symbolic observations) with death and the time limit told apart."""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from jaxpg.envs.legacy import LegacyStepAdapter

CRAFTAX_ENVS = ("Craftax-Classic-Symbolic-v1", "Craftax-Symbolic-v1")
_INT32_MAX = int(np.iinfo(np.int32).max)


class CraftaxAdapter(LegacyStepAdapter):
    r"""Craftax with the six-value step; death and the time limit told apart.

    Craftax's ``done`` is ``timestep >= max_timesteps`` or the game ending
    (death, lava in Classic, the final boss in Craftax). ``terminated`` is the
    env's own ``is_terminal`` with the time limit lifted, so a death on the last
    step is a termination; ``truncated = done and not terminated``.
    """

    def _split(self, done, state, params):
        no_limit = params.replace(max_timesteps=_INT32_MAX)
        term = jnp.asarray(self._env.is_terminal(state, no_limit), jnp.bool_)
        return term, done & ~term


def make_craftax(name: str, **kwargs: Any) -> tuple[CraftaxAdapter, Any]:
    """``(env, env_params)`` for a Craftax environment, ready for jaxpg.

    Args:
      name: one of ``CRAFTAX_ENVS`` (symbolic observations: flat float32).
      **kwargs: passed to the Craftax env's constructor (its class as
        ``craftax.craftax_env.make_craftax_env_from_name`` picks it, e.g.
        ``static_env_params=``).

    Raises:
      ValueError: ``name`` is not a Craftax symbolic env.
      ImportError: the ``craftax`` package is missing.
    """
    if name not in CRAFTAX_ENVS:
        raise ValueError(
            f"name={name!r} is not supported; Craftax envs: {', '.join(CRAFTAX_ENVS)}"
        )
    try:
        from craftax.craftax_env import make_craftax_env_from_name
    except ImportError as err:
        raise ImportError(
            f"env={name!r} needs the craftax package: pip install 'jaxpg[craftax]'"
        ) from err
    env = make_craftax_env_from_name(name, auto_reset=True)
    if kwargs:  # Craftax's factory takes none: the class it picked does
        env = type(env)(**kwargs)
    return CraftaxAdapter(env), env.default_params
