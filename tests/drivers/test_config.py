"""Config validation: a clear error naming the field, or the right value.

Each case is one a user hit: a string where a bool belongs, a bool where an int
belongs, NumPy scalars from a sweep script, numbers the int32 counters or
float32 hyperparameters cannot hold.
"""

import dataclasses
import json

import numpy as np
import pytest

from jaxpg.config import INT32_MAX, Config


def test_numpy_scalars_are_numbers_and_become_python_ones():
    cfg = Config(
        num_envs=np.int64(16),
        total_steps=np.int32(1024),
        gamma=np.float32(0.99),
        lr=np.float64(1e-3),
        clip_value=np.bool_(True),
        max_episode_steps=np.int64(50),
        hidden=(np.int64(8), 8),
        loop_chunk=np.int32(4),
    )
    assert cfg == Config(
        num_envs=16,
        total_steps=1024,
        gamma=float(np.float32(0.99)),
        lr=1e-3,
        clip_value=True,
        max_episode_steps=50,
        hidden=(8, 8),
        loop_chunk=4,
    )
    for name in ("num_envs", "total_steps", "max_episode_steps", "loop_chunk"):
        assert type(getattr(cfg, name)) is int, name
    for name in ("gamma", "lr"):
        assert type(getattr(cfg, name)) is float, name
    assert type(cfg.clip_value) is bool
    assert all(type(h) is int for h in cfg.hidden)
    hash(cfg)  # frozen dataclass of Python scalars: hashable (jit static arg)
    json.dumps(dataclasses.asdict(cfg))  # and JSON-able (run directories)


def test_hidden_from_json_list_becomes_a_tuple():
    assert Config(hidden=[32, 32]).hidden == (32, 32)


@pytest.mark.parametrize(
    ("changes", "field", "says"),
    [
        # bools are bools: "false" is truthy, True is the int 1
        ({"algo": "ppo", "clip_value": "false"}, "clip_value", "True or False"),
        ({"clip_value": 1}, "clip_value", "True or False"),
        ({"max_episode_steps": True}, "max_episode_steps", "must be an int"),
        ({"num_envs": True}, "num_envs", "must be an int"),
        ({"num_envs": 16.0}, "num_envs", "must be an int"),
        ({"gamma": "0.99"}, "gamma", "must be a number"),
        ({"lr": True}, "lr", "must be a number"),
        ({"env": 3}, "env", "must be a string"),
        ({"hidden": (64, True)}, "hidden", "tuple of positive ints"),
        ({"hidden": 64}, "hidden", "tuple of positive ints"),
        # what the int32 counters cannot count
        ({"total_steps": 2**31 + 100}, "total_steps", "int32"),
        (
            {"num_envs": 10**7, "rollout_steps": 1000, "total_steps": 2**31 - 1},
            "num_envs",
            "int32",
        ),
        ({"max_episode_steps": 2**31}, "max_episode_steps", str(INT32_MAX)),
        # what float32 cannot hold: inf after the cast, or 0 for a positive field
        ({"lr": 1e40}, "lr", "float32"),
        ({"lr": 1e-50}, "lr", "> 0"),
        ({"lr": float("nan")}, "lr", "finite"),
        ({"init_log_std": -1e39}, "init_log_std", "float32"),
        ({"max_grad_norm": float("inf")}, "max_grad_norm", "finite"),
        ({"ent_coef": -0.1}, "ent_coef", ">= 0"),
        # the episode loops' chunk: a positive int, or None (the platform's)
        ({"loop_chunk": 0}, "loop_chunk", "positive int"),
        ({"loop_chunk": -4}, "loop_chunk", "positive int"),
        ({"loop_chunk": True}, "loop_chunk", "must be an int"),
        ({"loop_chunk": 16.0}, "loop_chunk", "must be an int"),
        ({"loop_chunk": "16"}, "loop_chunk", "must be an int"),
        ({"loop_chunk": 2**31}, "loop_chunk", str(INT32_MAX)),
        # the torso a config names, and what a recurrent one needs
        ({"torso": "rnn"}, "torso", "allowed: mlp, gru, lstm"),
        ({"torso": None}, "torso", "must be a string"),
        ({"recurrent_size": 0}, "recurrent_size", "positive integer"),
        (
            {
                "algo": "ppo",
                "torso": "lstm",
                "num_envs": 6,
                "num_minibatches": 4,
                "rollout_steps": 2,
            },
            "num_minibatches",
            "divide num_envs = 6 with torso='lstm'",
        ),
    ],
)
def test_invalid_value_names_field_and_rule(changes, field, says):
    with pytest.raises(ValueError, match=rf"Config\.{field}=.*{says}") as err:
        Config(**changes)
    assert repr(changes[field])[:20] in str(err.value)


def test_replace_validates_again():
    with pytest.raises(ValueError, match=r"Config\.clip_value="):
        Config().replace(clip_value="no")


def test_largest_representable_values_pass():
    cfg = Config(total_steps=INT32_MAX, max_episode_steps=INT32_MAX, lr=3e38)
    assert cfg.num_updates == INT32_MAX // (cfg.num_envs * cfg.rollout_steps)
