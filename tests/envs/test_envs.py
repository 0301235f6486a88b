"""Environments: API detection, adapters, the time limiter, observation encoding.

Each adapter test checks the three things a wrong adapter gets silently wrong:
terminated vs truncated, ``final_observation`` (the real ``s_{t+1}``, not the
reset observation) and, where a native six-value env exists, equality with it.
"""

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from gymnax.wrappers import LegacyStepAPIWrapper
from toy_envs import (
    ConstantReward,
    DictObservation,
    LegacyCounter,
    LegacyCounterNoStepEnv,
    RandomStart,
    SixValueNoFinalObs,
)

import jaxpg
from jaxpg import envs


def run(stepper, key, actions):
    """Reset, then step through ``actions [T, B]``; stack the step outputs."""
    key_reset, key_steps = jax.random.split(key)
    obs, state = stepper.reset(key_reset)

    def body(carry, inp):
        obs, state = carry
        key_t, action = inp
        nxt, state, reward, term, trunc, final = stepper.step(key_t, state, action)
        return (nxt, state), (obs, reward, term, trunc, final, nxt)

    keys = jax.random.split(key_steps, actions.shape[0])
    _, out = jax.lax.scan(body, (obs, state), (keys, actions))
    return dict(
        zip(("obs", "reward", "term", "trunc", "final", "next"), out, strict=True)
    )


# ------------------------------------------------------------ API detection


def test_five_value_env_is_rejected_naming_the_adapter():
    env, params = gymnax.make("CartPole-v1")
    with pytest.raises(TypeError, match=r"5 values.*LegacyStepAdapter"):
        envs.env_spec(LegacyStepAPIWrapper(env), params)


def test_six_value_env_without_final_observation_is_rejected():
    env = SixValueNoFinalObs()
    with pytest.raises(TypeError, match=r"final_observation.*LegacyStepAdapter"):
        envs.check_env(env, env.default_params)


def test_stepper_never_substitutes_the_reset_observation():
    # Bypassing check_env: the stepper itself refuses to trace without it.
    env = SixValueNoFinalObs()
    spec = envs.EnvSpec((2,), True, 2, None, None, 6)
    stepper = envs.make_stepper(env, env.default_params, spec, 2)
    _, state = stepper.reset(jax.random.key(0))
    with pytest.raises(TypeError, match="final_observation"):
        stepper.step(jax.random.key(1), state, jnp.zeros((2,), jnp.int32))


def test_non_gymnax_env_is_a_type_error_naming_env():
    with pytest.raises(TypeError, match=r"env=object is not a gymnax-API"):
        envs.env_spec(object(), None)
    cfg = jaxpg.Config(env="custom", num_envs=2, rollout_steps=4, total_steps=8)
    with pytest.raises(TypeError, match=r"env=object"):
        jaxpg.make_train(cfg, env=object(), env_params=ConstantReward().default_params)


def test_dict_space_around_one_array_is_read_from_the_array():
    # A Dict observation space is no longer refused; this env returns one
    # array, which the spec describes (the space has no shape).
    env = DictObservation()
    spec = envs.env_spec(env, env.default_params)
    assert spec.obs_shape == (2,) and not envs.is_structured(spec)
    assert spec.obs_template == jax.ShapeDtypeStruct((2,), jnp.float32)


# ---------------------------------------------------------------- adapters


def test_legacy_wrapper_adapter_equals_native_cartpole():
    # LegacyStepAPIWrapper keeps final_observation/terminated/truncated in info:
    # the adapter must give back exactly CartPole's own transitions. A short
    # limit and random actions make both kinds of episode end happen.
    native, params = gymnax.make("CartPole-v1")
    params = params.replace(max_steps_in_episode=15)
    adapted = envs.LegacyStepAdapter(LegacyStepAPIWrapper(native))
    spec = envs.env_spec(native, params)
    assert envs.env_spec(adapted, params) == spec
    assert spec.obs_dtype == np.float32  # CartPole's own, not a guess
    actions = jax.random.bernoulli(jax.random.key(1), 0.5, (80, 4)).astype(jnp.int32)
    want = run(envs.make_stepper(native, params, spec, 4), jax.random.key(2), actions)
    got = run(envs.make_stepper(adapted, params, spec, 4), jax.random.key(2), actions)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name], err_msg=name)
    assert want["term"].any() and want["trunc"].any()


def test_step_env_adapter_splits_done_and_keeps_final_observation():
    env = envs.LegacyStepAdapter(LegacyCounter())
    params = env.default_params
    spec = envs.env_spec(env, params)
    # Env 0 always moves right: pos >= 2 after 4 steps (start in [0, 1)) or 3,
    # before the limit of 6: terminations. Env 1 always moves left: the limit
    # truncates it at time 6.
    actions = jnp.tile(jnp.array([1, 0], jnp.int32), (30, 1))
    out = run(envs.make_stepper(env, params, spec, 2), jax.random.key(0), actions)
    term, trunc = np.asarray(out["term"]), np.asarray(out["trunc"])
    final, nxt, obs = (np.asarray(out[k]) for k in ("final", "next", "obs"))
    assert term[:, 0].sum() >= 7 and not trunc[:, 0].any()
    assert not term[:, 1].any()
    np.testing.assert_array_equal(np.flatnonzero(trunc[:, 1]), np.arange(5, 30, 6))
    # final_observation is s_{t+1}: [obs pos + move, obs time + 1], whether or not
    # the episode ended; the next observation is a fresh start after an end.
    move = np.where(np.asarray(actions) == 1, 0.5, -0.5)
    np.testing.assert_allclose(final[..., 0], obs[..., 0] + move, rtol=1e-6)
    np.testing.assert_array_equal(final[..., 1], obs[..., 1] + 1)
    ended = term | trunc
    assert (final[ended][:, 0] >= 2).sum() == term.sum()
    np.testing.assert_array_equal(nxt[ended][:, 1], 0)
    np.testing.assert_array_equal(nxt[~ended], final[~ended])


def test_step_env_adapter_matches_the_legacy_env_where_episodes_go_on():
    # Same key split as the env's own auto-reset: identical next observations.
    legacy = LegacyCounter()
    env = envs.LegacyStepAdapter(legacy)
    key, state = jax.random.key(3), legacy.reset(jax.random.key(4))[1]
    for action in (1, 0, 1, 1, 1):
        action = jnp.int32(action)
        want = legacy.step(key, state, action)
        got = env.step(key, state, action)
        np.testing.assert_array_equal(got[0], want[0])
        assert bool(got[3] | got[4]) == bool(want[3])
        state = got[1]
        key = jax.random.fold_in(key, 1)


def test_five_value_env_without_step_env_cannot_be_adapted():
    env = envs.LegacyStepAdapter(LegacyCounterNoStepEnv())
    with pytest.raises(TypeError, match="finished episode is lost"):
        envs.check_env(env, env.default_params)


def test_custom_time_limit_reached_decides_truncation():
    # A callable replaces the default clock (state.time >= 6 here): reaching
    # it truncates, and the adapter resets, even though the env's done is False.
    env = envs.LegacyStepAdapter(
        LegacyCounter(), time_limit_reached=lambda state, params: state.time >= 2
    )
    _, state = env.reset(jax.random.key(0))
    out = env.step(jax.random.key(1), state, jnp.int32(0))
    assert not out[3] and not out[4]
    out = env.step(jax.random.key(2), out[1], jnp.int32(0))
    assert not out[3] and out[4]  # time 2: truncated (and reset)


# ----------------------------------------------------------- time limiter


def test_time_limiter_truncates_at_the_limit_with_the_real_final_obs():
    env = RandomStart()  # never terminates; obs = [start draw, time]
    params = env.default_params
    spec = envs.env_spec(env, params)
    stepper = envs.make_stepper(env, params, spec, 3, time_limit=7)
    out = run(stepper, jax.random.key(0), jnp.zeros((30, 3), jnp.int32))
    trunc = np.asarray(out["trunc"])
    for b in range(3):
        np.testing.assert_array_equal(np.flatnonzero(trunc[:, b]), [6, 13, 20, 27])
    final, nxt = np.asarray(out["final"]), np.asarray(out["next"])
    np.testing.assert_array_equal(final[trunc][:, 1], 7)  # s_{t+1}, not the reset
    np.testing.assert_array_equal(nxt[trunc][:, 1], 0)
    assert not out["term"].any()


def test_time_limiter_never_reuses_a_reset_state():
    # 5 envs, limit 3: a spare per env, renewed ⌈5/3⌉ = 2 at a time. Every
    # episode start is a fresh uniform draw, so all of them are distinct. Env 0
    # is frozen right after its cut at t=8 (at an episode boundary, as
    # REINFORCE freezes finished envs) until t=24, which must neither stop the
    # renewal of the others' spares nor leave env 0 a used one.
    env = RandomStart()
    params = env.default_params
    stepper = envs.make_stepper(env, params, envs.env_spec(env, params), 5, 3)
    obs, state = stepper.reset(jax.random.key(0))
    starts = [np.asarray(obs[:, 0])]
    step = jax.jit(stepper.step)
    action = jnp.zeros((5,), jnp.int32)
    for t in range(40):
        nxt, new, *_, trunc, _ = step(jax.random.key(t + 1), state, action)
        active = jnp.arange(5) > 0 if 9 <= t < 25 else jnp.ones(5, bool)
        state = envs.select_envs(active, new, state)
        obs = envs.select_envs(active, nxt, obs)
        starts.append(np.asarray(obs[:, 0])[np.asarray(trunc & active)])
    starts = np.concatenate(starts)
    assert starts.size > 50
    assert np.unique(starts).size == starts.size


def test_time_limiter_is_skipped_when_the_env_cuts_first():
    env = ConstantReward()  # its own limit: 20
    params = env.default_params
    spec = envs.env_spec(env, params)
    _, state = envs.make_stepper(env, params, spec, 2, 20).reset(jax.random.key(0))
    _, plain = envs.make_stepper(env, params, spec, 2).reset(jax.random.key(0))
    assert jax.tree.structure(state) == jax.tree.structure(plain)


def test_time_limit_is_validated():
    env = ConstantReward()
    spec = envs.env_spec(env, env.default_params)
    for bad in (0, True, 2.5):
        with pytest.raises(ValueError, match="time_limit"):
            envs.make_stepper(env, env.default_params, spec, 2, bad)


# ----------------------------------------------------------- observations


def test_discrete_observation_is_one_hot():
    env, params = gymnax.make("FrozenLake-misc")
    spec = envs.env_spec(env, params)
    assert spec.obs_shape == (16,) and spec.obs_categories == 16
    assert spec.obs_dtype == np.float32
    stepper = envs.make_stepper(env, params, spec, 3)
    actions = jax.random.randint(jax.random.key(1), (40, 3), 0, 4)
    out = run(stepper, jax.random.key(0), actions)
    for name in ("obs", "final", "next"):
        x = np.asarray(out[name])
        assert x.dtype == np.float32 and x.shape == (40, 3, 16)
        np.testing.assert_array_equal(x.sum(-1), 1.0)
    # The one-hot index is the env's own integer observation.
    key_reset = jax.random.split(jax.random.key(0))[0]
    raw, _ = jax.vmap(env.reset, (0, None))(jax.random.split(key_reset, 3), params)
    np.testing.assert_array_equal(np.argmax(out["obs"][0], -1), raw)


# ------------------------------------------------------------------ Craftax


@pytest.fixture(scope="module")
def craftax_classic():
    pytest.importorskip("craftax")
    env, params = envs.make_env("Craftax-Classic-Symbolic-v1")
    return env, params.replace(max_timesteps=3)


def test_craftax_adapter_equals_craftax_and_splits_death_from_time_limit(
    craftax_classic,
):
    # One compiled program (Craftax compiles slowly): 2 envs x 3 noop steps with
    # a time limit of 3. Env 0 lives: truncated at its 3rd step. Env 1 starts at
    # timestep 2 with no health: it dies on the limit's last step, which is a
    # termination, then restarts. The two envs run one after the other
    # (``lax.map``): tracing Craftax under ``vmap`` took 2.5 s more CPU, and
    # each env's transitions are the same either way.
    env, params = craftax_classic
    native = env.unwrapped  # Craftax's own five-value auto-reset step
    noop = jnp.int32(0)

    def one_env(key, dead):
        key_reset, key_steps = jax.random.split(key)
        _, state = env.reset(key_reset, params)
        state = state.replace(
            timestep=jnp.where(dead, 2, state.timestep),
            player_health=jnp.where(dead, 0 * state.player_health, state.player_health),
        )

        def body(state, key):
            obs, nxt, reward, term, trunc, info = env.step(key, state, noop, params)
            n_obs, _, n_reward, n_done, _ = native.step(key, state, noop, params)
            out = (obs, reward, term, trunc, info["final_observation"])
            return nxt, (*out, n_obs, n_reward, n_done)

        return jax.lax.scan(body, state, jax.random.split(key_steps, 3))[1]

    keys = jax.random.split(jax.random.key(0), 2)
    out = jax.jit(lambda xs: jax.lax.map(lambda x: one_env(*x), xs))(
        (keys, jnp.array([False, True]))
    )
    obs, reward, term, trunc, final, n_obs, n_reward, n_done = out
    # Same key split and reset as Craftax's own step: the same transitions.
    np.testing.assert_allclose(obs, n_obs, rtol=1e-6)
    np.testing.assert_allclose(reward, n_reward, rtol=1e-6)
    np.testing.assert_array_equal(term | trunc, n_done)
    # final_observation is s_{t+1}: Craftax's next observation where the episode
    # goes on; where it ended, not the reset observation that replaced it.
    ended = np.asarray(term | trunc)
    np.testing.assert_allclose(final[~ended], n_obs[~ended], rtol=1e-6)
    for f, o in zip(final[ended], obs[ended], strict=True):
        assert not np.allclose(f, o)
    np.testing.assert_array_equal(term, [[False, False, False], [True, False, False]])
    np.testing.assert_array_equal(trunc, [[False, False, True], [False, False, False]])


@pytest.mark.slow
def test_craftax_trains_a_few_ppo_updates(craftax_classic):
    # Compile dominates; a tiny network and 2 updates of 4 envs x 8 steps.
    cfg = jaxpg.Config(
        env="Craftax-Classic-Symbolic-v1",
        algo="ppo",
        num_envs=4,
        rollout_steps=8,
        total_steps=64,
        num_epochs=1,
        num_minibatches=2,
        hidden=(16,),
    )
    out = jax.jit(jaxpg.make_train(cfg))(jax.random.key(0))
    np.testing.assert_array_equal(out.metrics["env_steps"], [32, 64])
    leaves = jax.tree.leaves(out.params)
    assert all(bool(jnp.isfinite(x).all()) for x in leaves)
    # The policy's initial parameters (the ones train starts from), leaf by leaf
    # against the trained policy's (pairing every initial leaf, the critic's
    # too, with the policy's compared unrelated arrays). Under jit only the
    # networks' init is compiled (the envs' reset is dead code); run eagerly,
    # init resets Craftax op by op (3 s of CPU).
    algo = jaxpg.make_algorithm(cfg)
    init = jax.jit(lambda key: algo.init(key).params["policy"])(jax.random.key(0))
    assert jax.tree.structure(init) == jax.tree.structure(out.params)
    changed = [
        not np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(init), jax.tree.leaves(out.params), strict=True)
    ]
    assert any(changed)


def test_make_craftax_passes_keywords_to_the_env_it_builds():
    pytest.importorskip("craftax")
    from craftax.craftax_classic.envs.craftax_state import StaticEnvParams

    static = StaticEnvParams(map_size=(32, 32))
    env, _ = envs.make_craftax("Craftax-Classic-Symbolic-v1", static_env_params=static)
    assert env.unwrapped.static_env_params == static
    with pytest.raises(TypeError):
        envs.make_craftax("Craftax-Classic-Symbolic-v1", no_such_option=1)
