r"""Single-agent pgx games, with ``legal_action_mask`` as the action mask.

pgx's ``step(state, action, key)`` never resets: a finished state stays
finished. The adapter reads:

* ``terminated``: ``state.terminated``;
* ``truncated``: ``state.truncated`` (pgx's games set it only under a user's
  limit), or the adapter's ``max_episode_steps`` reached (``_step_count``);
* ``info["final_observation"]``: that state's observation, before the
  adapter's ``env.init`` with a fresh key.

The observation is ``{"observation": ..., "action_mask": legal_action_mask}``;
a boolean board (2048's) becomes float32 so that a network reads it.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from gymnax.environments import spaces

from jaxpg.envs.suite_base import (
    Suite,
    SuiteEnv,
    SuiteParams,
    make_named,
    with_mask,
)

Array = jax.Array


def _observation(state: Any) -> dict[str, Array]:
    obs = state.observation
    if obs.dtype == jnp.bool_:
        obs = obs.astype(jnp.float32)
    return with_mask(obs, state.legal_action_mask)


class PgxAdapter(SuiteEnv):
    """A single-agent pgx game in gymnax ≥ 1.0's API (see the module docs)."""

    def _reset(self, key, params):
        state = self._env.init(key)
        return _observation(state), state

    def _step(self, key, state, action, params):
        nxt = self._env.step(state, action, key)
        trunc = nxt.truncated
        if params.max_steps_in_episode is not None:
            trunc = trunc | (nxt._step_count >= params.max_steps_in_episode)
        return _observation(nxt), nxt, nxt.rewards[0], nxt.terminated, trunc

    def action_space(self, params: Any = None) -> spaces.Discrete:
        """``Discrete(num_actions)``."""
        return spaces.Discrete(int(self._env.num_actions))


def from_pgx(
    env: Any, *, max_episode_steps: int | None = None, name: str | None = None
) -> tuple[PgxAdapter, SuiteParams]:
    """``(env, env_params)`` for a single-agent pgx ``Env``.

    Args:
      env: from ``pgx.make`` with ``num_players == 1`` (``"2048"``, MinAtar).
      max_episode_steps: truncate after this many steps (``None``: pgx's own
        end only; then training and evaluation need ``Config.max_episode_steps``;
        by name, :data:`DEFAULT_MAX_EPISODE_STEPS`).
      name: its name, e.g. ``"pgx/2048"``.

    Raises:
      ValueError: a multi-player game, or a bad ``max_episode_steps``.
      TypeError: ``env`` is not a pgx env.
    """
    if not (callable(getattr(env, "init", None)) and hasattr(env, "num_players")):
        raise TypeError(
            f"env={type(env).__name__} is not a pgx Env (no init/num_players)"
        )
    if int(env.num_players) != 1:
        raise ValueError(
            f"env={getattr(env, 'id', type(env).__name__)!r} has "
            f"{env.num_players} players; from_pgx adapts single-agent games "
            "(2048, MinAtar)"
        )
    if max_episode_steps is not None and (
        isinstance(max_episode_steps, bool)
        or not isinstance(max_episode_steps, int)
        or max_episode_steps < 1
    ):
        raise ValueError(
            f"max_episode_steps={max_episode_steps!r} is invalid: "
            "a positive int or None"
        )
    params = SuiteParams(max_episode_steps)
    return PgxAdapter(env, name, params), params


# pgx's single-agent games have no time limit; by name they get this one, far
# past the end of a random game (2048: ~120 moves; a game reaching the 2048
# tile: ~1000), so that evaluation has a horizon and training is unchanged.
DEFAULT_MAX_EPISODE_STEPS = 10_000


def single_agent_games(pgx: Any) -> tuple[str, ...]:
    """pgx's single-agent game ids: ``"2048"`` and MinAtar's (pgx ≥ 2.6 ships
    them in its own wheel, ``pgx.minatar``)."""
    return tuple(
        g for g in pgx.available_envs() if g == "2048" or g.startswith("minatar")
    )


SUITE = Suite(
    "pgx",
    "pgx",
    "single-agent pgx",
    single_agent_games,
    lambda pgx, env_id, name: from_pgx(
        pgx.make(env_id), max_episode_steps=DEFAULT_MAX_EPISODE_STEPS, name=name
    ),
)


def make(name: str) -> tuple[PgxAdapter, SuiteParams]:
    """``"pgx/<id>"``: ``pgx.make(id)`` adapted with the time limit
    :data:`DEFAULT_MAX_EPISODE_STEPS` (a ``Config.max_episode_steps`` below it
    cuts first); ``"pgx/2048"``, ``"pgx/minatar-breakout"``, ... (see
    :func:`make_named`)."""
    return make_named(name, SUITE)
