"""Pytree observations and action spaces beyond Discrete/Box at the env layer:
the spec's template and mask leaf, the checks that name a malformed mask or
final observation, and the batched stepper (with jaxpg's time limiter) carrying
a dict observation with its real final observation."""

from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from masked_envs import MaskedTargets
from toy_envs import ConstantReward

from jaxpg import envs


def test_dict_observation_spec_has_its_template_and_mask():
    env = MaskedTargets((4,))
    spec = envs.env_spec(env, env.default_params)
    assert envs.is_structured(spec)
    assert spec.obs_shape is None and spec.mask_key == "action_mask"
    assert spec.discrete and spec.num_actions == 4 and spec.nvec is None
    assert spec.obs_template == {
        "action_mask": jax.ShapeDtypeStruct((4,), jnp.bool_),
        "secret": jax.ShapeDtypeStruct((1,), jnp.float32),
        "target": jax.ShapeDtypeStruct((4,), jnp.float32),
    }


@pytest.mark.parametrize("actions", ["multi", "tuple"])
def test_multidiscrete_and_tuple_action_spaces_are_factorised(actions):
    env = MaskedTargets((2, 3), actions)
    spec = envs.env_spec(env, env.default_params)
    assert spec.discrete and spec.nvec == (2, 3) and spec.num_actions == 5
    action = jnp.asarray([[1, 2], [0, 1]], jnp.int32)
    got = envs.to_env_action(spec, action, env, env.default_params)
    if actions == "tuple":  # the env receives a tuple of its factors' actions
        assert isinstance(got, tuple) and len(got) == 2
        np.testing.assert_array_equal(got[1], [2, 1])
    else:
        np.testing.assert_array_equal(got, action)


def test_multidiscrete_space_samples_inside_and_is_validated():
    space = envs.MultiDiscrete([2, 5])
    x = jax.vmap(space.sample)(jax.random.split(jax.random.key(0), 500))
    assert x.shape == (500, 2) and x.dtype == jnp.int32
    assert bool(jax.vmap(space.contains)(x).all())
    np.testing.assert_array_equal(x.max(0), [1, 4])
    with pytest.raises(ValueError, match=r"nvec=\[2, 0\] is invalid"):
        envs.MultiDiscrete([2, 0])


class _Mangled(MaskedTargets):
    """Masked targets with an observation changed by ``mangle``."""

    def __init__(self, mangle):
        super().__init__((4,))
        self.mangle = mangle

    def get_obs(self, state, params=None, key=None):
        return self.mangle(super().get_obs(state))


def test_a_mask_that_is_not_bool_is_a_type_error_naming_it():
    env = _Mangled(lambda o: {**o, "action_mask": o["action_mask"].astype(jnp.int32)})
    with pytest.raises(TypeError, match=r"'action_mask' is int32\(4,\).*bool"):
        envs.env_spec(env, env.default_params)


def test_a_mask_of_the_wrong_size_is_a_type_error_naming_the_sizes():
    env = _Mangled(lambda o: {**o, "action_mask": jnp.ones((3,), bool)})
    with pytest.raises(TypeError, match=r"has shape \(3,\).*needs \(4,\)"):
        envs.env_spec(env, env.default_params)


def test_two_mask_leaves_are_refused():
    env = _Mangled(lambda o: {**o, "legal_action_mask": o["action_mask"]})
    with pytest.raises(TypeError, match="both 'action_mask' and 'legal_action_mask'"):
        envs.env_spec(env, env.default_params)


class _FinalObsDiffers(MaskedTargets):
    def step(self, key, state, action, params=None):
        out = super().step(key, state, action, params)
        info = dict(out[5])
        info["final_observation"] = {
            k: v for k, v in info["final_observation"].items() if k != "secret"
        }
        return (*out[:5], info)


def test_a_final_observation_of_another_structure_is_refused():
    env = _FinalObsDiffers()
    with pytest.raises(TypeError, match=r"final_observation.*must match"):
        envs.check_env(env, env.default_params)


def test_stepper_and_time_limiter_carry_a_dict_observation():
    # The env's own limit is 8; jaxpg cuts at 3. Every leaf keeps [B]; the
    # final observation of a cut is s_{t+1} of the same episode (its secret,
    # drawn once per episode), the next observation a fresh episode's.
    env = MaskedTargets((4,))
    params = env.default_params
    spec = envs.env_spec(env, params)
    stepper = envs.make_stepper(env, params, spec, 5, time_limit=3)
    obs, state = stepper.reset(jax.random.key(0))
    assert jax.tree.map(lambda x: x.shape, obs) == {
        "action_mask": (5, 4),
        "secret": (5, 1),
        "target": (5, 4),
    }
    step = jax.jit(stepper.step)
    for t in range(9):
        action = jnp.argmax(obs["target"], -1).astype(jnp.int32)
        nxt, state, reward, term, trunc, final = step(jax.random.key(t), state, action)
        np.testing.assert_array_equal(reward, 1.0)  # the targets are legal
        assert not term.any() and bool(trunc.all()) == (t % 3 == 2)
        np.testing.assert_array_equal(final["secret"], obs["secret"])
        if t % 3 == 2:  # a new episode: another secret
            assert (nxt["secret"] != final["secret"]).all()
        obs = nxt


class _Obs(NamedTuple):
    x: jax.Array
    legal_action_mask: jax.Array


class NamedTupleObs(ConstantReward):
    """ConstantReward whose observation is a NamedTuple with pgx's mask name."""

    def get_obs(self, state, params=None, key=None):
        return _Obs(jnp.ones((2,), jnp.float32), jnp.asarray([True, False]))


def test_named_tuple_observation_with_a_legal_action_mask():
    env = NamedTupleObs()
    spec = envs.env_spec(env, env.default_params)
    assert spec.mask_key == "legal_action_mask" and envs.is_structured(spec)
    obs, _ = envs.make_stepper(env, env.default_params, spec, 2).reset(
        jax.random.key(0)
    )
    assert isinstance(obs, _Obs) and obs.x.shape == (2, 2)


def test_a_mask_per_factor_may_come_as_k_by_n():
    # K = 2 factors of n = 3: a [..., 2, 3] mask is each factor's row in turn.
    from jaxpg.envs.observations import mask_fn

    env = MaskedTargets((3, 3), "multi")
    spec = envs.env_spec(env, env.default_params)
    rows = jnp.asarray([[[True, False, True], [False, True, False]]])
    read = mask_fn(spec, lambda obs: obs)
    np.testing.assert_array_equal(read(rows), rows.reshape((1, 6)))
    with pytest.raises(ValueError, match=r"must end in \(6,\) or \(2, 3\)"):
        read(jnp.ones((1, 4), bool))


def test_a_named_tuple_observation_feeds_the_policy_without_its_mask():
    import jaxpg
    from jaxpg.drivers.train import make_parts

    env = NamedTupleObs()
    cfg = jaxpg.Config(env="custom", algo="ppo", num_envs=2, rollout_steps=2,
                       total_steps=4, num_minibatches=1, hidden=(8,))  # fmt: skip
    parts = make_parts(cfg, env=env)
    params = parts.policy.init(jax.random.key(0))
    assert params["torso"]["params"]["Dense_0"]["kernel"].shape == (2, 8)
    obs, _ = parts.stepper.reset(jax.random.key(1))
    probs = jnp.exp(parts.policy.apply(params, obs).log_probs())
    np.testing.assert_array_equal(probs[:, 1], 0.0)  # action 1 is illegal
