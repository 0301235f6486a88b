"""from_jumanji: LAST with discount 0 terminates, LAST with discount > 0
truncates; the observation keeps its structure and its action mask."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from suite_checks import (
    GOAL,
    check_cut_toy,
    check_goal_toy,
    check_lockstep,
    importer,
    needs,
    train_a_few_ppo_updates,
)

import jaxpg

pytestmark = needs("jumanji")
jumanji = importer("jumanji")
toys = importer("toys_jumanji")


def test_truncation_discount_one_is_bootstrapped_to_the_infinite_value():
    env, params = jaxpg.envs.from_jumanji(toys().Toy())
    check_cut_toy(env, params)


def test_discount_zero_terminates_with_the_real_final_observation_and_mask():
    env, params = jaxpg.envs.from_jumanji(toys().Toy(goal=GOAL))
    assert params.max_steps_in_episode is None  # no time_limit: Config's applies
    batch = check_goal_toy(env, params)
    assert set(batch["obs"]) == {"observation", "action_mask"}
    assert batch["obs"]["action_mask"].dtype == np.bool_
    np.testing.assert_array_equal(batch["obs"]["action_mask"][0, 0], toys().MASK)
    assert not (batch["action"] == 1).any()  # the masked action is never drawn
    space = env.observation_space(params)
    assert space.spaces["action_mask"].shape == (4,)
    assert space.spaces["observation"].shape == (2,)


def test_unsupported_action_spec_and_wrappers_are_named():
    class Multi(toys().Toy):
        @property
        def action_spec(self):
            return jumanji().specs.MultiDiscreteArray(jnp.array([2, 3]), name="action")

    with pytest.raises(TypeError, match=r"mask has shape \(4,\), with Multi"):
        jaxpg.envs.from_jumanji(Multi(goal=GOAL))  # a [4] mask for nvec [2, 3]
    env, params = jaxpg.envs.from_jumanji(Multi())  # no mask: per factor
    assert env.action_space(params).nvec.tolist() == [2, 3]
    wrapper = pytest.importorskip("jumanji.wrappers").AutoResetWrapper
    with pytest.raises(TypeError, match="auto-reset"):
        jaxpg.envs.from_jumanji(wrapper(toys().Toy()))
    with pytest.raises(TypeError, match="not a Jumanji"):
        jaxpg.envs.from_jumanji(object())


def test_multidiscrete_mask_shape_decides_joint_or_per_factor():
    """nvec [2, 3] with a [2, 3] mask: joint by default (Discrete(6), a [6]
    mask); told per factor, MultiDiscrete with the padded rows cut to [5]."""

    class Multi(toys().Toy):
        def _obs(self, count):
            mask = jnp.array([[True, False, False], [True, True, False]])
            return toys().Observation(jnp.stack([count, 0.5]).astype(jnp.float32), mask)

        @property
        def action_spec(self):
            return jumanji().specs.MultiDiscreteArray(jnp.array([2, 3]), name="action")

    env, params = jaxpg.envs.from_jumanji(Multi(goal=GOAL))
    assert env.action_space(params).n == 6
    mask = env.reset(jax.random.key(0), params)[0]["action_mask"]
    np.testing.assert_array_equal(mask, [1, 0, 0, 1, 1, 0])
    env, params = jaxpg.envs.from_jumanji(Multi(goal=GOAL), joint_mask=False)
    assert env.action_space(params).nvec.tolist() == [2, 3]
    mask = env.reset(jax.random.key(0), params)[0]["action_mask"]
    np.testing.assert_array_equal(mask, [1, 0, 1, 1, 0])  # row 0 cut to 2


def test_snake_steps_as_jumanji_does_and_resets_after_the_end():
    """Snake-v1 (4x4, time_limit=6) against its own step on the same states:
    equal final observation, reward and flags. Jumanji 1.1.2's Snake ends at
    its time limit with discount 0 (the step count is in its observation), so
    that end is a termination, as Jumanji says; after any end the next
    observation is a reset one (step_count 0)."""
    snake = jumanji().make("Snake-v1", num_rows=4, num_cols=4, time_limit=6)
    env, params = jaxpg.envs.from_jumanji(snake, name="jumanji/Snake-v1")
    assert params.max_steps_in_episode == 6

    def own(state, action):
        _, ts = snake.step(state, action)
        obs = ts.observation._asdict()
        last, discount = ts.last(), ts.discount
        return obs, ts.reward, last & (discount == 0), last & (discount > 0)

    batch = check_lockstep(env, params, own, jax.random.key(0))
    count = batch["obs"]["step_count"]
    ended = batch["terminated"][:-1]
    assert ended.any() and (count[1:][ended] == 0).all()
    assert (count[1:][~ended] == count[:-1][~ended] + 1).all()
    mask = batch["obs"]["action_mask"]  # random legal actions only
    assert np.take_along_axis(mask, batch["action"][..., None], -1).all()


def test_registry_builds_jumanji_by_name():
    env, params = jaxpg.envs.make_env("jumanji/Game2048-v1")
    assert env.name == "jumanji/Game2048-v1"
    assert env.action_space(params).n == 4
    with pytest.raises(ValueError, match="jumanji/Snake-v1"):
        jaxpg.envs.make_env("jumanji/Nope-v0")


def _minesweeper(invalid_reward=0.0):
    """Jumanji's Minesweeper on a 4x4 board with 2 mines: MultiDiscreteArray
    actions (row, col), a joint [4, 4] mask."""
    ms = pytest.importorskip("jumanji.environments.logic.minesweeper")
    return ms.Minesweeper(
        generator=ms.generator.UniformSamplingGenerator(
            num_rows=4, num_cols=4, num_mines=2
        ),
        reward_function=ms.reward.DefaultRewardFn(1.0, 0.0, invalid_reward),
    )


def test_a_joint_multidiscrete_mask_becomes_one_flat_discrete_action():
    """Minesweeper's [rows, cols] mask is joint: the adapter acts in
    Discrete(16) with the flat mask and steps the env with (a // 4, a % 4),
    the same as Jumanji's own step on that action; random legal actions."""
    mines = _minesweeper()
    env, params = jaxpg.envs.from_jumanji(mines)
    assert env.action_space(params).n == 16

    def own(state, action):
        _, ts = mines.step(state, jnp.stack([action // 4, action % 4]))
        obs = ts.observation._asdict()
        obs["action_mask"] = obs["action_mask"].reshape(-1)
        last, discount = ts.last(), ts.discount
        return obs, ts.reward, last & (discount == 0), last & (discount > 0)

    batch = check_lockstep(env, params, own, jax.random.key(0), num_envs=4, steps=24)
    mask = batch["obs"]["action_mask"]
    assert mask.shape == (24, 4, 16) and batch["terminated"].any()
    assert np.take_along_axis(mask, batch["action"][..., None], -1).all()


@pytest.mark.slow
def test_ppo_on_minesweeper_never_takes_an_illegal_action():
    """An invalid action (a revealed square) pays -100 here, legal returns are
    >= 0: no training episode returns below 0."""
    env = jaxpg.envs.from_jumanji(_minesweeper(invalid_reward=-100.0))
    out = train_a_few_ppo_updates("custom", env=env, max_episode_steps=16)
    returns = np.asarray(out.metrics["episode_return"])
    assert np.isfinite(returns).any() and np.nanmin(returns) >= 0


@pytest.mark.parametrize(
    "name",
    [
        "Tetris-v0",  # plain Python values in its state
        "RubiksCube-v0",  # a NamedTuple observation without a mask
        "Maze-v0",  # a NamedTuple nested in the observation
        "BinPack-v2",  # dataclasses in the observation
        "Connector-v3",  # per-agent rewards and discounts
        "SearchAndRescue-v0",
    ],
)
def test_structured_and_multi_agent_envs_build_and_step(name):
    """Each builds its spec (the observation as nested dicts of arrays) and
    steps to one scalar reward and scalar flags (traced, nothing compiled)."""
    env, params = jaxpg.envs.make_env(f"jumanji/{name}")
    spec = jaxpg.envs.env_spec(env, params)
    obs, state = jax.eval_shape(env.reset, jax.random.key(0), params)
    leaves = jax.tree_util.tree_leaves_with_path(obs)
    assert leaves and all(
        all(isinstance(k, jax.tree_util.DictKey) for k in path) for path, _ in leaves
    ), name
    action = jax.eval_shape(
        lambda k: env.action_space(params).sample(k), jax.random.key(1)
    )
    out = jax.eval_shape(
        env.step, jax.random.key(2), state,
        jax.ShapeDtypeStruct(action.shape, action.dtype), params,
    )  # fmt: skip
    _, _, reward, terminated, truncated, _ = out
    assert reward.shape == terminated.shape == truncated.shape == (), name
    assert spec.num_actions >= 1
    assert jax.tree.structure(spec.obs_template) == jax.tree.structure(obs)
