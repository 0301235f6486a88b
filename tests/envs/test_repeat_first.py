"""``RepeatFirst-jaxpg`` (:mod:`jaxpg.envs.repeat_first`): its dynamics
follow the documented spec, it is built by name, and its length is a
parameter."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg.envs.repeat_first import RepeatFirst, RepeatFirstParams


def _episodes(env, params, length):
    """One episode of ``length`` steps per (seed, constant action): its
    observations ``[L, O]``, rewards, terminated and truncated ``[L]``, cue, and
    the observation after its last step. Seeds 0-3 x actions, one program."""

    def episode(key, action):
        obs, state = env.reset(key, params)

        def step(carry, k):
            state, obs = carry
            nobs, state, r, term, trunc, _ = env.step(k, state, action, params)
            return (state, nobs), (obs, r, term, trunc)

        keys = jax.random.split(jax.random.fold_in(key, 1), length)
        (_, after), out = jax.lax.scan(step, (state, obs), keys)
        return out, state.cue, after

    keys = jax.vmap(jax.random.key)(jnp.repeat(jnp.arange(4), env.num_cues))
    actions = jnp.tile(jnp.arange(env.num_cues), 4)
    out = jax.jit(jax.vmap(episode))(keys, actions)
    return jax.tree.map(np.asarray, out), np.asarray(actions)


def test_dynamics_follow_the_spec():
    """Cue at t=0 only, the query flag at t=L-1 only, reward 1 at the last step
    exactly when the action is the cue, termination after L steps and an
    auto-reset that shows a new cue."""
    env, length = RepeatFirst(num_cues=3), 3
    params = RepeatFirstParams(length=length)
    ((obs, rew, term, trunc), cues, after), actions = _episodes(env, params, length)
    assert len(set(cues.tolist())) > 1  # the cue is drawn
    for i, (cue, act) in enumerate(zip(cues, actions, strict=True)):
        expect = np.zeros((length, 4), np.float32)
        expect[0, cue] = 1.0
        expect[length - 1, 3] = 1.0
        np.testing.assert_array_equal(obs[i], expect)
        want_r = np.zeros(length)
        want_r[-1] = float(act == cue)
        np.testing.assert_array_equal(rew[i], want_r)
        np.testing.assert_array_equal(term[i], np.arange(length) == length - 1)
        assert not trunc[i].any()
        assert after[i, :3].sum() == 1.0  # the next episode shows its cue


def test_built_by_name_with_spaces_and_bad_num_cues():
    env, params = jaxpg.envs.make_env("RepeatFirst-jaxpg")
    assert "RepeatFirst-jaxpg" in jaxpg.envs.known_envs()
    assert jaxpg.Config(env="RepeatFirst-jaxpg").env == "RepeatFirst-jaxpg"
    assert (env.num_cues, params.length) == (4, 8)
    assert env.action_space(params).n == 4
    assert env.observation_space(params).shape == (5,)
    with pytest.raises(ValueError, match="num_cues=1"):
        RepeatFirst(num_cues=1)
