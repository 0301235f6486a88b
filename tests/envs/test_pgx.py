"""from_pgx: single-agent pgx games reset by the adapter, with
``legal_action_mask`` as the observation's ``action_mask``."""

from __future__ import annotations

import jax
import numpy as np
import pytest
from suite_checks import (
    GOAL,
    LIMIT,
    check_cut_toy,
    check_goal_toy,
    collect,
    importer,
    needs,
)

import jaxpg

pytestmark = needs("pgx")
pgx = importer("pgx")
toys = importer("toys_pgx")


@pytest.mark.parametrize("own_cut", [True, False], ids=["pgx_truncated", "adapter"])
def test_truncation_is_bootstrapped_to_the_infinite_value(own_cut):
    """pgx's ``truncated`` flag, or the adapter's ``max_episode_steps``."""
    limit = None if own_cut else LIMIT
    env, params = jaxpg.envs.from_pgx(toys().Toy(cut=own_cut), max_episode_steps=limit)
    assert params.max_steps_in_episode == limit
    check_cut_toy(env, params)


def test_termination_keeps_the_real_final_observation_and_the_mask():
    env, params = jaxpg.envs.from_pgx(toys().Toy(goal=GOAL))
    batch = check_goal_toy(env, params)
    np.testing.assert_array_equal(batch["obs"]["action_mask"][0, 0], toys().LEGAL)
    assert not (batch["action"] == 1).any()  # the illegal action is never drawn
    space = env.observation_space(params)
    assert set(space.spaces) == {"observation", "action_mask"}


def test_2048_plays_legal_moves_and_restarts_from_a_fresh_board():
    """Random legal moves: never the illegal-move penalty; a finished game is
    terminated (no truncation without a limit), its final board kept, and the
    next observation a fresh board of two tiles."""
    env, params = jaxpg.envs.make_env("pgx/2048")
    assert params.max_steps_in_episode == 10_000  # by name: a default limit
    batch = collect(env, params, jax.random.key(0), num_envs=8, steps=300)
    assert (batch["reward"] >= 0).all() and not batch["truncated"].any()
    term = batch["terminated"]
    assert term.any()
    tiles = lambda obs: 16 - obs["observation"][..., 0].sum((-1, -2))  # noqa: E731
    np.testing.assert_array_equal(tiles(batch["next_obs"])[term], 2)
    assert (tiles(batch["final_obs"])[term] >= 8).all()  # a full-ish board
    assert batch["obs"]["observation"].dtype == np.float32


def test_no_limit_is_an_error_naming_what_to_set():
    """pgx's own games have no time limit: from_pgx without one cannot train
    until the config or the adapter gives one."""
    env, params = jaxpg.envs.from_pgx(toys().Toy())
    cfg = jaxpg.Config(env="custom", num_envs=2, rollout_steps=4, total_steps=8)
    with pytest.raises(
        ValueError,
        match=r"set Config.max_episode_steps .*from_pgx\(env, max_episode_steps=N\)",
    ):
        jaxpg.make_train(cfg, env=env, env_params=params)


def test_minatar_comes_with_pgx_by_name():
    """pgx 2.6 ships MinAtar in its own wheel (no pgx-minatar package)."""
    env, params = jaxpg.envs.make_env("pgx/minatar-breakout")
    assert env.action_space(params).n == 3
    assert env.observation_space(params).spaces["observation"].shape == (10, 10, 4)


def test_multi_player_games_and_bad_limits_are_named():
    with pytest.raises(ValueError, match="2 players"):
        jaxpg.envs.from_pgx(pgx().make("tic_tac_toe"))
    with pytest.raises(ValueError, match="max_episode_steps=0"):
        jaxpg.envs.from_pgx(toys().Toy(), max_episode_steps=0)
    with pytest.raises(ValueError, match="pgx/2048"):
        jaxpg.envs.make_env("pgx/chess")
