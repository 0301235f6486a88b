r"""Drivers: ``make_train``, ``train_seeds``, ``evaluate``.

``make_train(cfg)`` returns a pure ``train(key) -> TrainOutput`` that scans the
algorithm's ``update`` ``cfg.num_updates`` times; wrap it in ``jax.jit``.
``train_seeds`` runs seed ``i`` as ``train(jax.random.key(i))`` for every
``i < num_seeds`` inside one compiled program (``jit ∘ vmap``), split across
the available devices along the seed axis.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpg.algorithms import ALGORITHMS, needs_critic
from jaxpg.algorithms.base import (
    Algorithm,
    Parts,
    TrainState,
    critic_for,
    make_optimizer,
    policy_for,
)
from jaxpg.algorithms.reinforce import loop_chunk
from jaxpg.checks import positive_int
from jaxpg.config import CUSTOM_ENV, Config, Hyperparams
from jaxpg.drivers.parallel import run_members
from jaxpg.envs import EnvSpec, env_spec, make_env
from jaxpg.envs.observations import ObsView
from jaxpg.kernels.batching import batched_like
from jaxpg.kernels.keys import is_key
from jaxpg.kernels.normalise import RunningMeanStd
from jaxpg.networks import carries_obs_norm, warn_plain_convolutions, with_obs_norm
from jaxpg.rollout import EnvStepper, evaluate_episodes, make_stepper

Array = jax.Array

# ``algorithm(cfg, parts) -> Algorithm``: a user's algorithm (see make_algorithm).
AlgorithmFactory = Callable[[Config, Parts], Algorithm]


class TrainOutput(NamedTuple):
    """What a training run returns.

    Attributes:
      params: final parameters of the policy (pytree): everything acting
        needs. With ``cfg.normalise_obs`` they carry the observation
        statistics the policy was trained with under ``"obs_norm"`` (see
        :mod:`jaxpg.networks`), so ``evaluate(cfg, out.params, key)`` works
        for every config.
      metrics: ``{name: [num_updates]}`` per-update metrics; always
        ``episode_return`` (mean undiscounted return of the episodes that ended
        in that update, NaN if none) and ``env_steps`` (cumulative real
        transitions that fed the gradient); with jaxpg's algorithms also
        ``update``, the number of the update the metrics come from. REINFORCE
        ends when its step budget is spent, possibly before the last of its
        ``num_updates`` slots: the slots after its last update repeat that
        update's metrics (``update`` and ``env_steps`` stop rising there), so
        ``metrics[name][-1]`` is the last update's and
        ``np.diff(update, prepend=0) > 0`` marks the updates that ran.
      state: the final :class:`~jaxpg.algorithms.base.TrainState` (critic,
        optimizer, env state, key), to continue training or inspect.
    """

    params: Any
    metrics: dict[str, Array]
    state: TrainState


def resolve_env(cfg: Config, env: Any = None, env_params: Any = None):
    """``(env, env_params, spec)`` from the config or the given env.

    Raises:
      ValueError: ``cfg.env == "custom"`` without ``env=``; an ``env=`` whose
        name disagrees with ``cfg.env``; no time limit anywhere.
    """
    if env is None:
        if cfg.env == CUSTOM_ENV:
            raise ValueError(
                "Config.env='custom' needs an environment: make_train(cfg, env=...)"
            )
        env, default_params = make_env(cfg.env)
        env_params = default_params if env_params is None else env_params
    else:
        name = getattr(env, "name", None)
        if cfg.env != CUSTOM_ENV and name != cfg.env:
            raise ValueError(
                f"env={type(env).__name__} (name {name!r}) was passed but "
                f"Config.env={cfg.env!r}: set Config(env='custom') to train the "
                "given environment, or leave env= out to build Config.env"
            )
        if env_params is None:
            # A non-gymnax object gets env_spec's TypeError naming env=.
            env_params = getattr(env, "default_params", None)
    spec = env_spec(env, env_params)
    if spec.max_episode_steps is None and cfg.max_episode_steps is None:
        raise ValueError(
            f"env={type(env).__name__ if cfg.env == CUSTOM_ENV else cfg.env} has "
            "no time limit (its env_params.max_steps_in_episode is None): set "
            "Config.max_episode_steps (jaxpg train --set max_episode_steps=N), or "
            "build the env with one (e.g. jaxpg.envs.from_pgx(env, "
            "max_episode_steps=N))"
        )
    return env, env_params, spec


def make_stepper_for(
    cfg: Config, env: Any, env_params: Any, spec: EnvSpec, num_envs: int
) -> EnvStepper:
    """Batched env of ``num_envs`` copies with the configured time limit."""
    return make_stepper(env, env_params, spec, num_envs, cfg.max_episode_steps)


def make_parts(
    cfg: Config,
    env: Any = None,
    env_params: Any = None,
    *,
    policy_network: nn.Module | None = None,
    critic_network: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    policy_obs: ObsView = None,
    critic_obs: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> Parts:
    """The :class:`~jaxpg.algorithms.Parts` that ``cfg`` describes (specs,
    batched envs, policy, critic when the algorithm has one, optimizer), any
    of them replaced by the caller's: what an algorithm factory is built from.

    ``jaxpg.algorithms.ppo(cfg, jaxpg.make_parts(cfg))`` is the algorithm that
    ``make_algorithm(cfg)`` returns for ``cfg.algo == "ppo"``; a research
    variant composes the same parts differently and runs through every driver
    with ``algorithm=``.

    Raises:
      TypeError: an ``optimizer`` that is not an ``optax.GradientTransformation``.
      ValueError: ``cfg.anneal_lr`` with a custom ``optimizer``; the errors of
        :func:`resolve_env` and of the networks.
    """
    env, env_params, spec = resolve_env(cfg, env, env_params)
    stepper = make_stepper_for(cfg, env, env_params, spec, cfg.num_envs)
    policy = policy_for(
        cfg,
        spec,
        policy_network,
        policy_obs=policy_obs,
        action_mask_fn=action_mask_fn,
    )
    warn_plain_convolutions(spec, policy, policy_network, "policy_network")
    critic = None
    if needs_critic(cfg):
        critic = critic_for(cfg, spec, critic_network, critic_obs=critic_obs)
        warn_plain_convolutions(spec, critic, critic_network, "critic_network")
    if optimizer is not None and not isinstance(
        optimizer, optax.GradientTransformation
    ):
        raise TypeError(
            f"optimizer={optimizer!r} is invalid: must be an "
            "optax.GradientTransformation (e.g. optax.adamw(3e-4))"
        )
    if optimizer is not None and cfg.anneal_lr:
        raise ValueError(
            "Config.anneal_lr=True anneals jaxpg's default optimizer, but "
            "optimizer= was given: set anneal_lr=False and give your optimizer "
            "its own schedule (e.g. optax.adam(optax.linear_schedule(...)))"
        )
    tx = make_optimizer(cfg) if optimizer is None else optimizer
    return Parts(spec, stepper, policy, critic, tx, lr_from_hparams=optimizer is None)


def make_algorithm(
    cfg: Config,
    env: Any = None,
    env_params: Any = None,
    *,
    policy_network: nn.Module | None = None,
    critic_network: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    algorithm: AlgorithmFactory | None = None,
    policy_obs: ObsView = None,
    critic_obs: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> Algorithm:
    """The configured algorithm's ``(init, update)`` pair for one seed.

    Args:
      cfg: the run's configuration.
      env, env_params: any gymnax-API environment (``cfg.env`` must then be
        ``"custom"`` or the env's name); default ``gymnax.make(cfg.env)``.
      policy_network: a ``flax.linen.Module`` torso mapping observations
        ``[N, *O]`` (original shape and dtype) to features ``[N, F]``; jaxpg
        adds the action head. Default: an MLP from ``cfg.hidden`` and
        ``cfg.activation``.
      critic_network: the same for the value network (when the algorithm has
        one).
      optimizer: any ``optax.GradientTransformation`` (with its own learning
        rate or schedule). Default: Adam with the traced ``lr`` of the
        hyperparameters (and ``cfg.max_grad_norm`` clipping).
      algorithm: your algorithm, ``algorithm(cfg, parts) -> Algorithm``
        (e.g. ``functools.partial(jaxpg.algorithms.make_actor_critic,
        policy_loss=my_loss)``), built from the :class:`Parts` that ``cfg``
        and the keywords above describe; ``cfg.algo`` then only says which
        parts (a critic for ``a2c``, ``ppo`` and ``baseline="value"``).
        Default: ``jaxpg.algorithms.ALGORITHMS[cfg.algo]``.
      policy_obs, critic_obs: what the policy's and the critic's torsos read
        of the observation (a pytree): a key, a tuple of keys of a dict
        observation, or a function ``obs -> pytree`` (any leading axes);
        default ``cfg.policy_obs`` / ``cfg.critic_obs`` (keys, saved with the
        run), else every leaf but the action mask. A privileged critic reads
        a leaf the policy does not.
      action_mask_fn: ``obs [..., *O] -> [..., A]`` bool, True for the legal
        actions of a discrete policy; default the observation's boolean leaf
        ``"action_mask"`` or ``"legal_action_mask"`` if it has one. Illegal
        actions get probability 0 in training and evaluation; a state with no
        legal action falls back to the unmasked distribution.
    """
    parts = make_parts(
        cfg,
        env,
        env_params,
        policy_network=policy_network,
        critic_network=critic_network,
        optimizer=optimizer,
        policy_obs=policy_obs,
        critic_obs=critic_obs,
        action_mask_fn=action_mask_fn,
    )
    if algorithm is None:
        return ALGORITHMS[cfg.algo](cfg, parts)
    if not callable(algorithm):
        raise TypeError(
            f"algorithm={algorithm!r} is invalid: must be a callable "
            "(cfg, parts) -> jaxpg.Algorithm, e.g. functools.partial("
            "jaxpg.algorithms.make_actor_critic, policy_loss=my_loss)"
        )
    algo = algorithm(cfg, parts)
    if not isinstance(algo, Algorithm):
        raise TypeError(
            f"algorithm={getattr(algorithm, '__name__', algorithm)!r} returned "
            f"{type(algo).__name__}: it must return a jaxpg.Algorithm "
            "(init, update, estimate)"
        )
    return algo


def make_train(
    cfg: Config,
    env: Any = None,
    env_params: Any = None,
    *,
    policy_network: nn.Module | None = None,
    critic_network: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    algorithm: AlgorithmFactory | None = None,
    policy_obs: ObsView = None,
    critic_obs: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> Callable[..., TrainOutput]:
    """``train(key, hparams=None) -> TrainOutput``: the whole run, pure.

    ``hparams`` (a :class:`~jaxpg.config.Hyperparams`) overrides the config's
    sweepable scalars; ``jax.vmap(train)(keys, hparams)`` sweeps them, and a
    plain ``jax.jit(jax.vmap(train))(keys)`` trains many seeds as fast as
    :func:`train_seeds` on one device.

    Args:
      cfg: the run's configuration.
      env, env_params, policy_network, critic_network, optimizer, algorithm,
      policy_obs, critic_obs, action_mask_fn: the parts, as
        :func:`make_algorithm` takes them.
    """
    algo = make_algorithm(
        cfg,
        env,
        env_params,
        policy_network=policy_network,
        critic_network=critic_network,
        optimizer=optimizer,
        algorithm=algorithm,
        policy_obs=policy_obs,
        critic_obs=critic_obs,
        action_mask_fn=action_mask_fn,
    )

    def train(key: Array, hparams: Hyperparams | None = None) -> TrainOutput:
        state = _batched_from_start(algo.init(key, hparams), (key, hparams))
        state, metrics = jax.lax.scan(
            lambda s, _: algo.update(s), state, None, length=cfg.num_updates
        )
        return TrainOutput(policy_params(cfg, state), metrics, state)

    return train


def _batched_from_start(state: Any, like: Any) -> Any:
    """``state`` with the fields that updates make per-member batched like
    ``like`` from the start (:func:`jaxpg.kernels.batching.batched_like`: under
    ``vmap`` the update is then batched once, a quarter less trace time for a
    vmapped PPO program). The key is batched already; the hyperparameters and
    the update count are the same for every member and stay as they are. A
    user's own state type is left alone."""
    if not isinstance(state, TrainState):
        return state
    shared = {"key", "hparams", "update_idx"}
    varying = {
        f.name: getattr(state, f.name)
        for f in dataclasses.fields(state)
        if f.name not in shared
    }
    return state.replace(**batched_like(varying, like))


def policy_params(cfg: Config, state: TrainState) -> Any:
    """The policy object of a train state (any leading ``[S]`` axes): the
    policy network's parameters, carrying ``state.obs_norm`` when
    ``cfg.normalise_obs``."""
    obs_norm = state.obs_norm if cfg.normalise_obs else None
    return with_obs_norm(state.params["policy"], obs_norm)


def seed_keys(num_seeds: int, first_seed: int = 0) -> Array:
    """``[S]`` keys ``jax.random.key(i)`` for ``first_seed <= i < first_seed + S``."""
    return jax.vmap(jax.random.key)(jnp.arange(first_seed, first_seed + num_seeds))


def train_seeds(
    cfg: Config,
    num_seeds: int,
    env: Any = None,
    env_params: Any = None,
    first_seed: int = 0,
    *,
    policy_network: nn.Module | None = None,
    critic_network: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    algorithm: AlgorithmFactory | None = None,
    policy_obs: ObsView = None,
    critic_obs: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> TrainOutput:
    """Train ``num_seeds`` independent runs in one compiled program.

    Seed ``i`` is ``make_train(cfg)(jax.random.key(first_seed + i))``: the same
    random draws, the same result up to float rounding. Every leaf of the
    output gains a leading ``[num_seeds]`` axis. The seeds are split over all
    devices (of all processes, after :func:`jax.distributed.initialize`) by
    :func:`jaxpg.drivers.parallel.run_members`, any seed count, with no collective
    inside the training loops.

    Memory: the whole output, every per-update metric of every seed included,
    is returned at once. For long runs of many seeds use
    :func:`jaxpg.drivers.runner.run`, which brings metrics to the host per chunk.

    Args:
      env, env_params, policy_network, critic_network, optimizer, algorithm,
      policy_obs, critic_obs, action_mask_fn: the parts, as
        :func:`make_algorithm` takes them.
    """
    num_seeds = positive_int("num_seeds", num_seeds)
    train = make_train(
        cfg,
        env,
        env_params,
        policy_network=policy_network,
        critic_network=critic_network,
        optimizer=optimizer,
        algorithm=algorithm,
        policy_obs=policy_obs,
        critic_obs=critic_obs,
        action_mask_fn=action_mask_fn,
    )
    first_seed = positive_int("first_seed", first_seed, 0)
    return run_members(train, np.arange(first_seed, first_seed + num_seeds))


def evaluate(
    cfg: Config,
    params: Any,
    key: Array,
    num_episodes: int = 100,
    deterministic: bool = False,
    env: Any = None,
    env_params: Any = None,
    *,
    obs_norm: RunningMeanStd | None = None,
    policy_network: nn.Module | None = None,
    critic_network: nn.Module | None = None,
    optimizer: optax.GradientTransformation | None = None,
    algorithm: AlgorithmFactory | None = None,
    policy_obs: ObsView = None,
    critic_obs: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> Array:
    """Undiscounted returns of ``num_episodes`` fresh episodes: ``[num_episodes]``.

    Runs the episodes in parallel until each has ended (at most the time
    limit) with actions sampled from the policy (``deterministic=True``: its
    mode). Jittable; vmap it over ``params`` and ``key`` to evaluate many
    seeds. ``policy_network``, ``policy_obs`` and ``action_mask_fn`` must be
    those the parameters were trained with; ``critic_network``,
    ``critic_obs``, ``optimizer`` and ``algorithm`` are accepted (so one set
    of keywords serves every driver) and unused.

    Args:
      cfg: the configuration the policy was trained with.
      params: ``TrainOutput.params`` (which carry the observation statistics
        when ``cfg.normalise_obs``), or the :class:`TrainOutput` itself.
      key: PRNG key of the episodes.
      num_episodes: episodes to run, an int >= 1.
      obs_norm: observation statistics for bare network parameters (those
        without an ``"obs_norm"`` entry) of a ``cfg.normalise_obs`` policy.

    Raises:
      ValueError: ``num_episodes`` < 1; a ``cfg.normalise_obs`` policy without
        statistics; statistics for a policy trained on raw observations;
        parameters of another policy (another env or network).
      TypeError: ``key`` is not a PRNG key.
    """
    if isinstance(params, TrainOutput):
        params = params.params
    num_episodes = positive_int("num_episodes", num_episodes)
    if obs_norm is not None:
        if carries_obs_norm(params):
            raise ValueError(
                "obs_norm was given but params already carry observation "
                "statistics ('obs_norm' entry): leave obs_norm out"
            )
        params = with_obs_norm(params, obs_norm)
    if cfg.normalise_obs and not carries_obs_norm(params):
        raise ValueError(
            "params lack observation statistics: Config.normalise_obs=True, so "
            "pass the parameters training returned (TrainOutput.params, which "
            "carry them) or the TrainOutput itself"
        )
    if not cfg.normalise_obs and carries_obs_norm(params):
        raise ValueError(
            "params carry observation statistics but Config.normalise_obs=False: "
            "evaluate with the config the policy was trained with"
        )
    # A typed key, or a legacy raw one (uint32 [..., 2]).
    if not isinstance(key, jax.Array) or not (
        is_key(key) or (key.dtype == jnp.uint32 and key.shape[-1:] == (2,))
    ):
        raise TypeError(
            f"key={key!r} is invalid: must be a PRNG key, e.g. jax.random.key(0)"
        )
    env, env_params, spec = resolve_env(cfg, env, env_params)
    stepper = make_stepper_for(cfg, env, env_params, spec, num_episodes)
    policy = policy_for(
        cfg,
        spec,
        policy_network,
        policy_obs=policy_obs,
        action_mask_fn=action_mask_fn,
    )
    horizon = cfg.max_episode_steps or spec.max_episode_steps
    try:
        return evaluate_episodes(
            key,
            stepper,
            policy.step if policy.recurrent else policy.apply,
            params,
            int(horizon),
            deterministic,
            loop_chunk(cfg),
            carry=policy.initial_carry(num_episodes) if policy.recurrent else None,
        )
    except flax.errors.FlaxError as e:
        raise ValueError(
            f"params do not fit the policy of cfg (env {cfg.env!r}, hidden "
            f"{cfg.hidden}): evaluate with the config they were trained with "
            f"({str(e).split(' (https')[0]})"
        ) from None
