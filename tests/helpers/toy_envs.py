"""Small environments with the gymnax ≥ 1.0 API, for exact tests."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from flax import struct
from gymnax.environments import environment, spaces


@struct.dataclass
class TabularState(environment.EnvState):
    s: jax.Array
    time: int


@struct.dataclass
class TabularParams(environment.EnvParams):
    max_steps_in_episode: int = 5


class TabularMDP(environment.Environment):
    """A random finite MDP: ``N`` states (one-hot observations), ``A`` actions,
    transition ``P[s, a, s']`` over ``N`` states plus an absorbing terminal
    state (index ``N``), rewards ``R[s, a]``, start distribution ``p0``, and a
    time limit (truncation).

    :meth:`exact_return` computes the expected undiscounted return of a tabular
    policy by dynamic programming over the remaining time, so ``jax.grad`` of it
    is the exact policy gradient.
    """

    def __init__(self, num_states: int = 3, num_actions: int = 2, seed: int = 0):
        super().__init__()
        rng = np.random.default_rng(seed)
        n = num_states
        logits = rng.normal(size=(n, num_actions, n + 1))
        logits[..., n] += 0.5  # a fair chance to terminate
        probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
        self.P = jnp.asarray(probs, jnp.float32)
        self.R = jnp.asarray(rng.normal(size=(n, num_actions)), jnp.float32)
        p0 = rng.uniform(size=n) + 0.2
        self.p0 = jnp.asarray(p0 / p0.sum(), jnp.float32)
        self.n = n
        self.num_a = num_actions

    @property
    def default_params(self) -> TabularParams:
        return TabularParams()

    def step_env(self, key, state, action, params):
        reward = self.R[state.s, action]
        nxt = jax.random.choice(key, self.n + 1, p=self.P[state.s, action])
        terminated = nxt == self.n
        s = jnp.minimum(nxt, self.n - 1)
        new = TabularState(s=s, time=state.time + 1)
        return self.get_obs(new), new, reward, terminated, {}

    def reset_env(self, key, params):
        s = jax.random.choice(key, self.n, p=self.p0)
        state = TabularState(s=s, time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jax.nn.one_hot(state.s, self.n)

    def is_terminated(self, state, params):
        return jnp.bool_(False)

    def action_space(self, params=None):
        return spaces.Discrete(self.num_a)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (self.n,), jnp.float32)

    def exact_return(self, probs: jax.Array, horizon: int) -> jax.Array:
        """Expected undiscounted return over ``horizon`` steps of the policy
        ``probs [N, A]`` from ``p0`` (termination absorbs with value 0)."""
        value = jnp.zeros((self.n + 1,))
        for _ in range(horizon):
            q = self.R + jnp.einsum("sat,t->sa", self.P, value)
            v = jnp.sum(probs * q, axis=-1)
            value = jnp.concatenate([v, jnp.zeros((1,))])
        return jnp.dot(self.p0, value[: self.n])


class ConstantReward(environment.Environment):
    """Never terminates, pays 1 each step, truncated at the time limit; the
    observation is constant, so it does not reveal the time."""

    @property
    def default_params(self) -> TabularParams:
        return TabularParams(max_steps_in_episode=20)

    def step_env(self, key, state, action, params):
        new = TabularState(s=state.s, time=state.time + 1)
        return self.get_obs(new), new, jnp.float32(1.0), jnp.bool_(False), {}

    def reset_env(self, key, params):
        state = TabularState(s=jnp.int32(0), time=0)
        return self.get_obs(state), state

    def get_obs(self, state, params=None, key=None):
        return jnp.ones((2,), jnp.float32)

    def is_terminated(self, state, params):
        return jnp.bool_(False)

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(0.0, 1.0, (2,), jnp.float32)


# ------------------------------------------------------- envs for adapter tests


@struct.dataclass
class CounterState:
    pos: jax.Array
    time: jax.Array


@struct.dataclass
class CounterParams:
    max_steps_in_episode: int = 6


class LegacyCounter:
    """Old gymnax (< 1.0) API: ``step`` returns ``(obs, state, reward, done,
    info)`` after its own auto-reset, so ``s_{t+1}`` of a finished episode is
    lost; ``done`` includes the time limit. It also has ``step_env`` and
    ``reset_env``, as old gymnax envs did.

    The observation is ``[pos, time]``: ``pos`` starts uniform in ``[0, 1)``
    and moves by ``action - 0.5``; the episode terminates when ``pos >= 2``
    (action 1 four times in a row from any start), else truncates at the limit.
    Reward is ``pos`` after the move.
    """

    @property
    def default_params(self) -> CounterParams:
        return CounterParams()

    def reset_env(self, key, params):
        state = CounterState(pos=jax.random.uniform(key), time=jnp.int32(0))
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        pos = state.pos + action.astype(jnp.float32) - 0.5
        new = CounterState(pos=pos, time=state.time + 1)
        done = (pos >= 2.0) | (new.time >= params.max_steps_in_episode)
        return self.get_obs(new), new, pos, done, {"pos": pos}

    def get_obs(self, state):
        return jnp.stack([state.pos, state.time.astype(jnp.float32)])

    def reset(self, key, params=None):
        return self.reset_env(key, params or self.default_params)

    def step(self, key, state, action, params=None):
        params = params or self.default_params
        key_step, key_reset = jax.random.split(key)
        obs, new, reward, done, info = self.step_env(key_step, state, action, params)
        obs_re, state_re = self.reset_env(key_reset, params)
        pick = lambda a, b: jax.lax.select(done, a, b)  # noqa: E731
        return (
            jax.tree.map(pick, obs_re, obs),
            jax.tree.map(pick, state_re, new),
            reward,
            done,
            info,
        )

    def action_space(self, params=None):
        return spaces.Discrete(2)

    def observation_space(self, params):
        return spaces.Box(-10.0, 10.0, (2,), jnp.float32)


class LegacyCounterNoStepEnv(LegacyCounter):
    """The five-value API with no ``step_env``/``reset_env`` to rebuild from."""

    def __getattribute__(self, name):
        if name in ("step_env", "reset_env"):
            raise AttributeError(name)
        return super().__getattribute__(name)

    def reset(self, key, params=None):
        return LegacyCounter.reset_env(self, key, params)

    def step(self, key, state, action, params=None):
        params = params or self.default_params
        obs, new, reward, done, info = LegacyCounter.step_env(
            self, key, state, action, params
        )
        obs_re, state_re = LegacyCounter.reset_env(self, key, params)
        pick = lambda a, b: jax.lax.select(done, a, b)  # noqa: E731
        return (
            jax.tree.map(pick, obs_re, obs),
            jax.tree.map(pick, state_re, new),
            reward,
            done,
            info,
        )


class SixValueNoFinalObs(LegacyCounter):
    """gymnax ≥ 1.0's six values, but no ``info["final_observation"]``."""

    def step(self, key, state, action, params=None):
        params = params or self.default_params
        obs, state, reward, done, info = super().step(key, state, action, params)
        return obs, state, reward, done, jnp.zeros_like(done), info


class DictObservation(ConstantReward):
    """A ``Dict`` observation space, which jaxpg does not flatten itself."""

    def observation_space(self, params):
        return spaces.Dict({"x": spaces.Box(0.0, 1.0, (2,), jnp.float32)})


class RandomStart(ConstantReward):
    """Never terminates; each episode starts from a fresh uniform draw, so two
    episodes that start alike reveal a reused reset state."""

    def reset_env(self, key, params):
        state = TabularState(s=jax.random.uniform(key), time=0)
        return self.get_obs(state), state

    def step_env(self, key, state, action, params):
        new = TabularState(s=state.s, time=state.time + 1)
        return self.get_obs(new), new, jnp.float32(1.0), jnp.bool_(False), {}

    def get_obs(self, state, params=None, key=None):
        return jnp.stack([state.s, jnp.asarray(state.time, jnp.float32)])

    @property
    def default_params(self) -> TabularParams:
        return TabularParams(max_steps_in_episode=1000)
