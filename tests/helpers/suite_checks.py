"""Checks every suite adapter passes, on toy envs written with the suite's own
types: a constant observation paying 1 per step and cut by a time limit it
does not show (``LIMIT``), and a counter that terminates after ``GOAL`` steps.
"""

from __future__ import annotations

import functools
import importlib
import importlib.util
import types
from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jaxpg
from jaxpg.kernels.returns import generalized_advantage_estimation


def installed(name: str) -> bool:
    """Whether the top-level package ``name`` can be imported (not importing it)."""
    return importlib.util.find_spec(name.split(".")[0]) is not None


def needs(*names: str) -> pytest.MarkDecorator:
    """A module's ``pytestmark``: skip its tests unless every package is
    installed. Unlike a module-level ``pytest.importorskip``, nothing is
    imported when pytest collects the module, so each xdist worker does not
    import every suite (navix, brax, MJX: seconds each)."""
    missing = [name for name in names if not installed(name)]
    return pytest.mark.skipif(bool(missing), reason=f"needs {', '.join(missing)}")


def importer(name: str) -> Callable[[], types.ModuleType]:
    """A function that imports the module ``name`` when called. Test modules
    keep this at module level rather than the module itself, so that pytest's
    collection (which reads attributes of every module-level object) imports
    nothing heavy: each xdist worker collects every test module."""
    return functools.partial(importlib.import_module, name)


GAMMA = 0.9
LIMIT = 20  # the cut toy's time limit
GOAL = 3  # steps until the terminating toy ends
NUM_ENVS = 3
STEPS = 2 * LIMIT + 5


def random_action(space, key, obs):
    """A uniformly random (legal, where the observation has a mask) action."""
    if isinstance(obs, dict) and "action_mask" in obs:
        logits = jnp.where(obs["action_mask"], 0.0, -jnp.inf)
        return jax.random.categorical(key, logits)
    return space.sample(key)


def collect(env, params, key, num_envs=NUM_ENVS, steps=STEPS, own_step=None):
    """``steps`` random steps of ``num_envs`` envs through the adapter's own
    reset/step (vmapped): time-major ``obs, action, reward, terminated,
    truncated, final_obs, next_obs``, and with ``own_step`` (a function of one
    env's state and action) its value on each step's state as ``"own"``."""
    space = env.action_space(params)
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))
    act = jax.vmap(lambda k, o: random_action(space, k, o))

    def run(key):
        key_reset, key_run = jax.random.split(key)
        carry = reset(jax.random.split(key_reset, num_envs), params)

        def body(carry, key):
            obs, state = carry
            key_act, key_step = jax.random.split(key)
            action = act(jax.random.split(key_act, num_envs), obs)
            nobs, nstate, reward, term, trunc, info = step(
                jax.random.split(key_step, num_envs), state, action, params
            )
            out = dict(
                obs=obs,
                action=action,
                reward=reward,
                terminated=term,
                truncated=trunc,
                final_obs=info["final_observation"],
                next_obs=nobs,
            )
            if own_step is not None:
                out["own"] = jax.vmap(own_step)(state, action)
            return (nobs, nstate), out

        return jax.lax.scan(body, carry, jax.random.split(key_run, steps))[1]

    return jax.tree.map(np.asarray, jax.jit(run)(key))


def scalar_td_fixed_point(batch, cut_is_end: bool) -> float:
    """The value a critic fits on data with one observation: ``V`` with
    ``V = mean(r + γ (1 - end) V)``, iterated through jaxpg's GAE kernel (λ = 0).
    ``end`` is ``terminated`` (jaxpg's rule) or, with ``cut_is_end``, also
    ``truncated`` (the common mistake)."""
    end = batch["terminated"] | (batch["truncated"] if cut_is_end else False)
    discounts = GAMMA * (1.0 - jnp.asarray(end, jnp.float32))
    rewards = jnp.asarray(batch["reward"])

    def fit(_, value):
        v = jnp.full(rewards.shape, value)
        _, targets = generalized_advantage_estimation(rewards, discounts, v, v, 0.0)
        return targets.mean()

    return float(jax.jit(lambda: jax.lax.fori_loop(0, 300, fit, 0.0))())


def check_cut_toy(env, params, seed=0):
    """Reward 1 each step, never terminated, truncated exactly every ``LIMIT``
    steps; the value fitted on the data is ``1/(1-γ)``, not the ≈ 7 of
    treating the cut as the end (7.1 on this window)."""
    batch = collect(env, params, jax.random.key(seed))
    np.testing.assert_array_equal(batch["reward"], 1.0)
    assert not batch["terminated"].any()
    t = np.arange(STEPS)[:, None]
    expected = np.broadcast_to((t + 1) % LIMIT == 0, batch["truncated"].shape)
    np.testing.assert_array_equal(batch["truncated"], expected)
    right = scalar_td_fixed_point(batch, cut_is_end=False)
    wrong = scalar_td_fixed_point(batch, cut_is_end=True)
    assert abs(right - 1.0 / (1.0 - GAMMA)) < 1e-3, right
    assert wrong < 7.5, wrong
    return batch


def counter(obs):
    """The terminating toy's step counter, read from its observation."""
    leaf = obs["observation"] if isinstance(obs, dict) else obs
    return np.asarray(leaf).reshape((*leaf.shape[:2], -1))[..., 0]


def check_goal_toy(env, params, seed=0):
    """Terminated exactly when the counter reaches ``GOAL``, never truncated;
    ``final_obs`` is the real terminal observation and the next one a reset;
    the target of a terminal step is its reward (nothing bootstrapped, even
    from a huge ``V``) and the return from a start is ``Σ_{k<GOAL} γ^k``."""
    batch = collect(env, params, jax.random.key(seed))
    final, nxt = counter(batch["final_obs"]), counter(batch["next_obs"])
    term = batch["terminated"]
    assert not batch["truncated"].any()
    np.testing.assert_array_equal(term, final == GOAL)
    assert term.sum() == NUM_ENVS * (STEPS // GOAL)
    np.testing.assert_array_equal(nxt[term], 0)  # the reset observation ...
    np.testing.assert_array_equal(final[~term], nxt[~term])  # ... only at the end
    rewards = jnp.asarray(batch["reward"])
    discounts = GAMMA * (1.0 - jnp.asarray(term, jnp.float32))
    huge = jnp.full(rewards.shape, 1e3)
    _, targets = generalized_advantage_estimation(rewards, discounts, huge, huge, 0.0)
    np.testing.assert_allclose(np.asarray(targets)[term], batch["reward"][term])
    returns = np.asarray(jaxpg.discounted_returns(rewards, discounts, huge[0]))
    start = counter(batch["obs"]) == 0
    start[-GOAL:] = False  # episodes that finish inside the window
    expected = sum(GAMMA**k for k in range(GOAL))
    np.testing.assert_allclose(returns[start], expected, rtol=1e-6)
    return batch


def check_lockstep(env, params, own_step, key, num_envs=8, steps=40):
    """The adapter's step against the suite's own on the same state and action
    (``own_step(state, action) -> (obs, reward, terminated, truncated)``, read
    off the suite's raw API): observation (before the reset), reward and flags
    equal on every step; after an episode's end the next state is a reset one.
    Returns the collected batch."""
    batch = collect(env, params, key, num_envs, steps, own_step=own_step)
    mine = tuple(batch[k] for k in ("final_obs", "reward", "terminated", "truncated"))
    for a, b in zip(jax.tree.leaves(mine), jax.tree.leaves(batch["own"]), strict=True):
        np.testing.assert_array_equal(a, np.asarray(b, a.dtype))
    return batch


def train_a_few_ppo_updates(env_name: str, env=None, **overrides):
    """Three PPO updates of 4 envs x 16 steps on ``env_name`` (or on ``env``, an
    ``(env, env_params)`` pair) through ``make_train``; checks the step count
    and finite losses, returns the output."""
    cfg = jaxpg.Config(
        env=env_name,
        algo="ppo",
        num_envs=4,
        rollout_steps=16,
        num_minibatches=2,
        num_epochs=1,
        hidden=(16,),
        total_steps=4 * 16 * 3,
        **overrides,
    )
    given = {} if env is None else dict(env=env[0], env_params=env[1])
    out = jax.jit(jaxpg.make_train(cfg, **given))(jax.random.key(0))
    np.testing.assert_array_equal(out.metrics["env_steps"], [64, 128, 192])
    assert np.isfinite(np.asarray(out.metrics["loss"])).all()
    return out
