r"""Rollouts: vmapped environments stepped inside ``lax`` loops.

Two schemes, both on-policy and both with gradients stopped (the loss recomputes
log-probabilities from stored observations and actions):

* :func:`collect_episodes` (REINFORCE). An update starts every env at an episode
  boundary. An episode is *included* iff it starts before step
  ``start_budget``; included episodes run to their end, other envs freeze. The
  loop stops as soon as every included episode is done (a while loop),
  so no compute is spent on a fixed 500-step horizon when episodes last 20
  steps, and every return is an exact Monte-Carlo return of a complete episode.
  The inclusion rule looks only at the past, so included episodes are ordinary
  samples of the current policy: with ``K`` included episodes per env,
  ``E[Σ_k g(τ_k)] = E[K] ∇J`` (Wald's identity). Envs end each update at an
  episode boundary, so the next update starts cleanly.
* :func:`collect_window` (A2C, PPO). Fixed windows of ``T`` steps that stream
  across updates (envs are not reset between updates); the window's end is a
  cut, bootstrapped by the critic.

Both, and evaluation, act through one function, :func:`actor_step` (policy ->
sample -> env step -> a :class:`Transition`). A recurrent policy
(:mod:`jaxpg.recurrent`) acts with a carry: every loop takes ``carry`` (``[B,
...]`` leaves; ``None`` for a feed-forward policy) and ``policy_apply`` is then
``(params, carry, obs [B, *O], reset [B]) -> (carry, Distribution)``, called
with ``reset`` true at the first step of every episode. Step ``t`` stores
``(s_t, a_t, r_t)`` and the flags of ``s_{t+1}``. Every loop whose length
depends on data is a :func:`jaxpg.kernels.batching.chunked_while_loop`: under
``vmap`` it has no whole-carry select and no collective across devices, and it
tests its predicate every ``chunk`` steps (:data:`LOOP_CHUNK` per platform by
default). Steps after the predicate turned false are masked: they write
nothing and change no result, so every ``chunk`` gives the same batch, bit for
bit, and so does a batched loop that runs on for other members.

Observations may be pytrees: wherever an observation is written ``[B, *O]``
(or ``[T, B, *O]``), read every leaf of the pytree with those leading axes.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxpg.checks import positive_int
from jaxpg.envs import EnvSpec, EnvStepper, select_envs
from jaxpg.envs import make_stepper as make_stepper  # re-exported
from jaxpg.kernels.batching import chunked_while_loop

Array = jax.Array

# Steps an episode loop runs between tests of its predicate, by platform
# (``jax.default_backend()``); the episode loops' default ``chunk``. A CPU
# reads the predicate from its own memory, so a chunk saves next to nothing
# and its masked steps cost a full step each: 1. A GPU reads it back to the
# host after every iteration of a data-dependent while loop, while a chunk's
# inner scan has a static trip count: one read-back per chunk. 16 keeps the
# masked steps (7.5 per loop on average) small beside the hundreds of steps of
# an update; on an H200 it beat 1, 4 and 64 at 1 and 4096 seeds
# (``benchmarks/results/episode_loop_chunks_gpu.md``). A TPU runs the whole
# loop on the chip: 1 until measured (``benchmarks/throughput.py --loop-chunks``).
LOOP_CHUNK: dict[str, int] = {"cpu": 1, "gpu": 16, "tpu": 1}


def default_loop_chunk(platform: str | None = None) -> int:
    """:data:`LOOP_CHUNK` of ``platform`` (default: ``jax.default_backend()``);
    1 for a platform it does not list."""
    platform = jax.default_backend() if platform is None else platform
    return LOOP_CHUNK.get(platform, 1)


class Transition(NamedTuple):
    r"""One step of ``B`` envs: ``(s_t, a_t, r_t, s_{t+1})`` and its flags.

    Attributes:
      obs: ``[B, *O]`` :math:`s_t`.
      action: ``[B]`` int32, ``[B, K]`` int32 (MultiDiscrete) or ``[B, D]``
        float32 (the unclipped sample).
      log_prob: ``[B]`` :math:`\log\pi(a_t|s_t)` at acting time.
      reward: ``[B]`` float32 :math:`r_t`.
      terminated: ``[B]`` bool, :math:`s_{t+1}` is terminal.
      truncated: ``[B]`` bool, the episode was cut after this step.
      final_obs: ``[B, *O]`` the real :math:`s_{t+1}` (before an auto-reset).
      next_obs: ``[B, *O]`` the observation the next step acts on (a reset
        observation where the episode ended).
    """

    obs: Array
    action: Array
    log_prob: Array
    reward: Array
    terminated: Array
    truncated: Array
    final_obs: Array
    next_obs: Array

    @property
    def done(self) -> Array:
        """``[B]`` bool: the episode ended (terminated or truncated)."""
        return self.terminated | self.truncated


def actor_step(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    env_state: Any,
    obs: Array,
    deterministic: bool = False,
    carry: Any = None,
    reset: Array | None = None,
) -> tuple[Transition, Any, Any]:
    """Act in ``B`` envs: policy -> sample (or mode) -> env step.

    Args:
      key: PRNG key (split into an action key and an env key).
      stepper: batched env of ``B`` copies.
      policy_apply: ``(params, obs [B, *O]) -> Distribution``; with a
        ``carry``, ``(params, carry, obs, reset) -> (carry, Distribution)``.
      params: policy parameters.
      env_state, obs: ``[B]`` env states and ``[B, *O]`` observations.
      deterministic: act with the distribution's mode instead of a sample.
      carry: a recurrent policy's carry (``None``: feed-forward).
      reset: ``[B]`` bool, ``obs`` starts an episode (with ``carry``).

    Returns:
      ``(transition, next_env_state, carry)`` (``carry`` after the policy's
      step, not reset where the episode ended; ``None`` without one).
    """
    key_act, key_env = jax.random.split(key)
    if carry is None:
        dist = policy_apply(params, obs)
    else:
        carry, dist = policy_apply(params, carry, obs, reset)
    action = dist.mode() if deterministic else dist.sample(key_act)
    next_obs, env_state, reward, term, trunc, final_obs = stepper.step(
        key_env, env_state, action
    )
    transition = Transition(
        obs=obs,
        action=action,
        log_prob=dist.log_prob(action),
        reward=reward,
        terminated=term,
        truncated=trunc,
        final_obs=final_obs,
        next_obs=next_obs,
    )
    return transition, env_state, carry


class EpisodeStats(NamedTuple):
    """Sums over the episodes that ended in an update (``[]`` float32 each)."""

    return_sum: Array
    length_sum: Array
    count: Array

    @classmethod
    def zeros(cls) -> EpisodeStats:
        return cls(*(jnp.zeros((), jnp.float32) for _ in range(3)))

    def add(self, running: RunningEpisodes, ended: Array) -> EpisodeStats:
        """Add the running episodes where ``ended`` (``[B]`` float 0/1)."""
        return EpisodeStats(
            self.return_sum + jnp.sum(running.ret * ended),
            self.length_sum + jnp.sum(running.length * ended),
            self.count + jnp.sum(ended),
        )


class RunningEpisodes(NamedTuple):
    """The undiscounted return and length so far of each env's episode."""

    ret: Array  # [B] float32
    length: Array  # [B] float32

    @classmethod
    def zeros(cls, num_envs: int) -> RunningEpisodes:
        return cls(*(jnp.zeros((num_envs,), jnp.float32) for _ in range(2)))

    def step(self, reward: Array, counted: Array) -> RunningEpisodes:
        """Add a step's ``reward`` where ``counted`` (``[B]`` float 0/1)."""
        return RunningEpisodes(self.ret + reward * counted, self.length + counted)

    def restart(self, ended: Array) -> RunningEpisodes:
        """Zero the episodes that ``ended`` (``[B]`` float 0/1)."""
        return RunningEpisodes(self.ret * (1.0 - ended), self.length * (1.0 - ended))


class EpisodeBatch(NamedTuple):
    r"""Complete episodes in a ``[L, B]`` buffer (``L`` = buffer length).

    Attributes:
      obs: ``[L, B, *O]`` observations ``s_t``.
      actions: ``[L, B]`` int or ``[L, B, D]`` float (unclipped samples).
      log_probs: ``[L, B]`` float, :math:`\log\pi(a_t|s_t)` at acting time.
      rewards: ``[L, B]`` float, 0 on padding.
      dones: ``[L, B]`` float, 1 where ``s_{t+1}`` ends the episode (or padding).
      mask: ``[L, B]`` float, 1 for steps of included episodes.
      episode_start: ``[L, B]`` float, 1 at the first step of an included episode.
      num_steps: ``[]`` int32, the steps this member's loop ran until its
        predicate turned false (a bound on valid ``t``; the same for every
        ``chunk`` and under a batched loop).
      stats: the included episodes' :class:`EpisodeStats`.
    """

    obs: Array
    actions: Array
    log_probs: Array
    rewards: Array
    dones: Array
    mask: Array
    episode_start: Array
    num_steps: Array
    stats: EpisodeStats


def action_template(spec: EnvSpec) -> tuple[tuple[int, ...], Any]:
    """Per-env action shape and dtype: ``()`` int32 (Discrete), ``[K]`` int32
    (``K`` factors of a MultiDiscrete), ``[D]`` float32 (Box)."""
    if spec.nvec is not None:
        return (len(spec.nvec),), jnp.int32
    if spec.discrete:
        return (), jnp.int32
    return (spec.num_actions,), jnp.float32


class _EpisodeLoop(NamedTuple):
    t: Array  # [] int32, loop iterations so far
    num_steps: Array  # [] int32, iterations whose predicate held
    key: Array
    env_state: Any
    obs: Array  # [B, *O]
    active: Array  # [B] bool, inside an included episode
    carry: Any  # a recurrent policy's [B, ...] carry, or None
    running: RunningEpisodes
    buffers: dict[str, Array]  # [L, B, ...] each
    stats: EpisodeStats


def collect_episodes(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    spec: EnvSpec,
    env_state: Any,
    obs: Array,
    start_budget: int | Array,
    buffer_len: int,
    chunk: int = 1,
    carry: Any = None,
) -> tuple[EpisodeBatch, Any, Array]:
    """Run included episodes to completion (see the module docstring).

    Args:
      key: PRNG key.
      stepper: batched env of ``B`` copies, each at an episode boundary.
      policy_apply: ``(params, obs [B, *O]) -> Distribution``.
      params: policy parameters (not differentiated here).
      spec: the env's :class:`EnvSpec`.
      env_state, obs: ``[B]`` env states and ``[B, *O]`` observations.
      start_budget: episodes starting at ``t < start_budget`` are included
        (may be traced; 0 collects nothing).
      buffer_len: ``L >= start_budget - 1 + longest episode``.
      chunk: steps between tests of the loop's predicate (an int >= 1; at
        most ``L`` used). The batch is the same for every ``chunk``: the up
        to ``chunk - 1`` steps after the last included episode ends are
        masked (no write lands in the buffer, frozen envs stay frozen).
      carry: a recurrent policy's carry (``None``: feed-forward); reset at
        every included episode's first step (``episode_start``), so its value
        on entry does not matter. A learner replays each env's buffer from the
        initial carry with ``reset = episode_start``.

    Returns:
      ``(batch, env_state, obs)`` with envs again at episode boundaries.

    Raises:
      ValueError: ``chunk`` is not an int >= 1.
    """
    chunk = min(positive_int("chunk", chunk), max(buffer_len, 1))
    num_envs = stepper.num_envs
    act_shape, act_dtype = action_template(spec)
    zeros = lambda shape, dtype=jnp.float32: jnp.zeros(  # noqa: E731
        (buffer_len, num_envs, *shape), dtype
    )
    buffers = {
        "obs": jax.tree.map(lambda x: zeros(x.shape[1:], x.dtype), obs),
        "actions": zeros(act_shape, act_dtype),
        "log_probs": zeros(()),
        "rewards": zeros(()),
        "dones": jnp.ones((buffer_len, num_envs), jnp.float32),
        "mask": zeros(()),
        "episode_start": zeros(()),
    }
    init = _EpisodeLoop(
        t=jnp.int32(0),
        num_steps=jnp.int32(0),
        key=key,
        env_state=env_state,
        obs=obs,
        active=jnp.zeros((num_envs,), jnp.bool_),
        carry=carry,
        running=RunningEpisodes.zeros(num_envs),
        buffers=buffers,
        stats=EpisodeStats.zeros(),
    )

    def cond(c: _EpisodeLoop) -> Array:
        return (c.t < buffer_len) & ((c.t < start_budget) | jnp.any(c.active))

    def body(c: _EpisodeLoop) -> _EpisodeLoop:
        # Once this member's own predicate is false (a chunk's tail, or other
        # members of a batched loop still running) this is a masked step:
        # nothing starts, nothing is active, and the writes go to row L,
        # outside the buffer, where a scatter drops them.
        live = cond(c)
        key, key_step = jax.random.split(c.key)
        starting = (~c.active) & (c.t < start_budget) & live
        active = c.active | starting
        tr, next_state, next_carry = actor_step(
            key_step,
            stepper,
            policy_apply,
            params,
            c.env_state,
            c.obs,
            carry=c.carry,
            reset=starting,
        )
        f32 = jnp.float32
        m = active.astype(f32)
        row, buf = jnp.where(live, c.t, buffer_len), c.buffers

        def put(name: str, value: Array) -> Array:
            return buf[name].at[row].set(value, mode="drop")

        buf = {
            "obs": jax.tree.map(
                lambda b, v: b.at[row].set(v, mode="drop"), buf["obs"], tr.obs
            ),
            "actions": put("actions", tr.action),
            "log_probs": put("log_probs", tr.log_prob),
            "rewards": put("rewards", tr.reward * m),
            "dones": put("dones", jnp.where(active, tr.done, True).astype(f32)),
            "mask": put("mask", m),
            "episode_start": put("episode_start", starting.astype(f32)),
        }
        running = c.running.step(tr.reward, m)
        ended = (active & tr.done).astype(f32)
        # Frozen envs keep their state: they stay at an episode boundary.
        return _EpisodeLoop(
            t=c.t + 1,
            num_steps=c.num_steps + live.astype(jnp.int32),
            key=key,
            env_state=select_envs(active, next_state, c.env_state),
            obs=select_envs(active, tr.next_obs, c.obs),
            active=active & ~tr.done,
            carry=select_envs(active, next_carry, c.carry),
            running=running.restart(ended),
            buffers=buf,
            stats=c.stats.add(running, ended),
        )

    out = chunked_while_loop(cond, body, init, chunk)
    batch = EpisodeBatch(num_steps=out.num_steps, stats=out.stats, **out.buffers)
    return batch, out.env_state, out.obs


class _EvalLoop(NamedTuple):
    t: Array  # [] int32
    key: Array
    env_state: Any
    obs: Array  # [B, *O]
    alive: Array  # [B] bool, the first episode has not ended
    total: Array  # [B] float32, its return so far
    carry: Any  # a recurrent policy's [B, ...] carry, or None


def evaluate_episodes(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    horizon: int,
    deterministic: bool = False,
    chunk: int = 1,
    carry: Any = None,
) -> Array:
    """Undiscounted return of the first episode of each of ``B`` envs.

    Steps until every env's first episode has ended (at most ``horizon`` steps,
    the time limit); a batched loop under ``vmap`` that tests its predicate
    every ``chunk`` steps (at most ``horizon`` used; the returns are the same
    for every ``chunk``). A recurrent policy's ``carry`` (``[B, ...]``) is
    reset at the first step. Returns ``[B]`` float32.

    Raises:
      ValueError: ``chunk`` is not an int >= 1.
    """
    chunk = min(positive_int("chunk", chunk), max(int(horizon), 1))
    key_reset, key = jax.random.split(key)
    obs, env_state = stepper.reset(key_reset)
    num_envs = stepper.num_envs
    init = _EvalLoop(
        t=jnp.int32(0),
        key=key,
        env_state=env_state,
        obs=obs,
        alive=jnp.ones((num_envs,), jnp.bool_),
        total=jnp.zeros((num_envs,), jnp.float32),
        carry=carry,
    )

    def cond(c: _EvalLoop) -> Array:
        return (c.t < horizon) & jnp.any(c.alive)

    def body(c: _EvalLoop) -> _EvalLoop:
        # Past the horizon a step is masked like a step after the episode.
        alive = c.alive & (c.t < horizon)
        key, key_step = jax.random.split(c.key)
        tr, env_state, carry = actor_step(
            key_step,
            stepper,
            policy_apply,
            params,
            c.env_state,
            c.obs,
            deterministic,
            c.carry,
            reset=jnp.full((num_envs,), c.t == 0),
        )
        return _EvalLoop(
            t=c.t + 1,
            key=key,
            env_state=env_state,
            obs=tr.next_obs,
            alive=alive & ~tr.done,
            total=c.total + jnp.where(alive, tr.reward, 0.0),
            carry=carry,
        )

    return chunked_while_loop(cond, body, init, chunk).total


class Window(NamedTuple):
    r"""A fixed window of ``T`` steps from ``B`` streaming envs.

    Attributes:
      transitions: a :class:`Transition` of ``[T, B, ...]`` arrays.
      stats: :class:`EpisodeStats` of the episodes that ended in the window.
      initial_carry: a recurrent policy's carry at the window's first step
        (``[B, ...]``; ``None`` for a feed-forward policy).
      final_carry: its carry after the last step, not reset where that step
        ended an episode.
    """

    transitions: Transition
    stats: EpisodeStats
    initial_carry: Any = None
    final_carry: Any = None

    @property
    def resets(self) -> Array:
        """``[T, B]`` bool: step ``t`` starts an episode inside the window
        (``done`` of step ``t - 1``; false at ``t = 0``, where the initial
        carry is already that of the step)."""
        done = self.transitions.done
        return jnp.concatenate([jnp.zeros_like(done[:1]), done[:-1]])


def collect_window(
    key: Array,
    stepper: EnvStepper,
    policy_apply: Callable,
    params: Any,
    env_state: Any,
    obs: Array,
    running: RunningEpisodes,
    length: int,
    carry: Any = None,
) -> tuple[Window, Any, Array, RunningEpisodes]:
    """Step ``B`` envs for ``length`` steps (a ``lax.scan``), streaming.

    Args:
      running: the current episodes' return and length so far.
      carry: a recurrent policy's carry for ``obs`` (already reset where
        ``obs`` starts an episode); inside the window it is reset at
        :attr:`Window.resets`.

    Returns:
      ``(window, env_state, obs, running)`` to carry into the next update.
    """

    def body(loop, key_t):
        env_state, obs, running, stats, policy_carry, reset = loop
        tr, env_state, policy_carry = actor_step(
            key_t,
            stepper,
            policy_apply,
            params,
            env_state,
            obs,
            carry=policy_carry,
            reset=reset,
        )
        running = running.step(tr.reward, jnp.ones_like(tr.reward))
        done = tr.done.astype(jnp.float32)
        stats = stats.add(running, done)
        loop = (env_state, tr.next_obs, running.restart(done), stats)
        return (*loop, policy_carry, tr.done), tr

    keys = jax.random.split(key, length)
    no_reset = jnp.zeros((stepper.num_envs,), jnp.bool_)
    init = (env_state, obs, running, EpisodeStats.zeros(), carry, no_reset)
    (env_state, obs, running, stats, final, _), transitions = jax.lax.scan(
        body, init, keys
    )
    window = Window(transitions, stats, carry, final)
    return window, env_state, obs, running
