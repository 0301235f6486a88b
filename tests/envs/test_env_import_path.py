"""A user's environment by import path (jaxpg.envs.custom): the registry and
Config accept ``module:function``, build ``(env, env_params)`` from it, and
every mistake is a ValueError naming ``env`` and the path."""

from __future__ import annotations

import pytest
from my_envs import TwoArms

import jaxpg
from jaxpg.envs import make_env
from jaxpg.envs.custom import is_import_path, make_custom_env

PATH = "my_envs:make_env"


def test_an_import_path_builds_the_users_env_and_params():
    env, params = make_env(PATH)
    assert isinstance(env, TwoArms) and params.max_steps_in_episode == 10
    assert is_import_path(PATH) and not is_import_path("CartPole-v1")
    assert not is_import_path(":make_env") and not is_import_path("my_envs:")


def test_config_takes_an_import_path_and_still_rejects_unknown_names():
    assert jaxpg.Config(env=PATH).env == PATH
    with pytest.raises(ValueError, match=r"Config.env='NoSuchEnv-v0'.*MODULE:FUNCTION"):
        jaxpg.Config(env="NoSuchEnv-v0")


@pytest.mark.parametrize(
    "path, match",
    [
        ("no_such_module_xyz:make_env", "cannot import 'no_such_module_xyz'"),
        ("my_envs:no_such_function", "'my_envs' has no 'no_such_function'"),
        ("my_envs:EPISODE", "'EPISODE' is not a function"),
        ("my_envs:not_a_pair", r"returned TwoArms; it must return a pair"),
        ("my_envs", "must be MODULE:FUNCTION"),
    ],
)
def test_a_bad_import_path_names_env_and_the_path(path, match):
    with pytest.raises(ValueError, match=match) as raised:
        make_custom_env(path)
    assert f"env={path!r}" in str(raised.value)


def test_make_train_runs_the_env_an_import_path_names():
    """The path alone is enough for the drivers: make_train builds the env."""
    import jax

    cfg = jaxpg.Config(
        env=PATH, algo="a2c", num_envs=2, rollout_steps=5, total_steps=20, hidden=(4,)
    )
    out = jax.jit(jaxpg.make_train(cfg))(jax.random.key(0))
    assert out.metrics["env_steps"].tolist() == [10, 20]
