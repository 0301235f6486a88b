r"""Drivers: ``make_train``, ``train_seeds``, ``evaluate``.

``make_train(cfg)`` returns a pure ``train(key) -> TrainOutput`` that scans the
algorithm's ``update`` ``cfg.num_updates`` times; wrap it in ``jax.jit``.
``train_seeds`` runs seed ``i`` as ``train(jax.random.key(i))`` for every
``i < num_seeds`` inside one compiled program (``jit ∘ vmap``), split across
the available devices along the seed axis.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.algorithms.base import Algorithm, TrainState, policy_for
from jaxpg.algorithms.reinforce import make_reinforce
from jaxpg.batching import SEED_AXIS
from jaxpg.config import CUSTOM_ENV, Config, Hyperparams
from jaxpg.envs import EnvSpec, env_spec, make_env
from jaxpg.rollout import EnvStepper, evaluate_episodes, make_stepper

Array = jax.Array


class TrainOutput(NamedTuple):
    """What a training run returns.

    Attributes:
      params: final parameters of the policy (pytree).
      metrics: ``{name: [num_updates]}`` per-update metrics; always
        ``episode_return`` (mean undiscounted return of the episodes that ended
        in that update, NaN if none) and ``env_steps`` (cumulative real
        transitions that fed the gradient).
      state: the final :class:`~jaxpg.algorithms.base.TrainState` (critic,
        optimizer, env state, key), to continue training or inspect.
    """

    params: Any
    metrics: dict[str, Array]
    state: TrainState


def resolve_env(cfg: Config, env: Any = None, env_params: Any = None):
    """``(env, env_params, spec)`` from the config or the given env."""
    if env is None:
        if cfg.env == CUSTOM_ENV:
            raise ValueError(
                "Config.env='custom' needs an environment: make_train(cfg, env=...)"
            )
        env, default_params = make_env(cfg.env)
        env_params = default_params if env_params is None else env_params
    elif env_params is None:
        env_params = env.default_params
    spec = env_spec(env, env_params)
    if spec.max_episode_steps is None and cfg.max_episode_steps is None:
        raise ValueError(
            "the environment has no time limit (env_params.max_steps_in_episode); "
            "set Config.max_episode_steps"
        )
    return env, env_params, spec


def make_stepper_for(
    cfg: Config, env: Any, env_params: Any, spec: EnvSpec, num_envs: int
) -> EnvStepper:
    """Batched env of ``num_envs`` copies with the configured time limit."""
    return make_stepper(env, env_params, spec, num_envs, cfg.max_episode_steps)


def make_algorithm(cfg: Config, env: Any = None, env_params: Any = None) -> Algorithm:
    """The configured algorithm's ``(init, update)`` pair for one seed."""
    env, env_params, spec = resolve_env(cfg, env, env_params)
    stepper = make_stepper_for(cfg, env, env_params, spec, cfg.num_envs)
    if cfg.algo == "reinforce":
        return make_reinforce(cfg, spec, stepper)
    from jaxpg.algorithms.actor_critic import make_actor_critic

    return make_actor_critic(cfg, spec, stepper)


def make_train(
    cfg: Config, env: Any = None, env_params: Any = None
) -> Callable[..., TrainOutput]:
    """``train(key, hparams=None) -> TrainOutput``: the whole run, pure.

    ``hparams`` (a :class:`~jaxpg.config.Hyperparams`) overrides the config's
    sweepable scalars; ``jax.vmap(train)(keys, hparams)`` sweeps them.
    """
    algo = make_algorithm(cfg, env, env_params)

    def train(key: Array, hparams: Hyperparams | None = None) -> TrainOutput:
        state = algo.init(key, hparams)
        state, metrics = jax.lax.scan(
            lambda s, _: algo.update(s), state, None, length=cfg.num_updates
        )
        return TrainOutput(state.params["policy"], metrics, state)

    return train


def seed_keys(num_seeds: int, first_seed: int = 0) -> Array:
    """``[S]`` keys ``jax.random.key(i)`` for ``first_seed <= i < first_seed + S``."""
    return jax.vmap(jax.random.key)(jnp.arange(first_seed, first_seed + num_seeds))


def shard_seeds(tree: Any) -> Any:
    """Place a pytree with a leading seed axis across all devices (when the
    seed count divides evenly; otherwise leave it where it is)."""
    devices = jax.devices()
    leading = jax.tree.leaves(tree)[0].shape[0]
    if len(devices) == 1 or leading % len(devices):
        return tree
    mesh = jax.sharding.Mesh(np.array(devices), ("seeds",))
    sharding = jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("seeds"))
    return jax.device_put(tree, sharding)


def train_seeds(
    cfg: Config,
    num_seeds: int,
    env: Any = None,
    env_params: Any = None,
    first_seed: int = 0,
) -> TrainOutput:
    """Train ``num_seeds`` independent runs in one compiled program.

    Seed ``i`` is ``make_train(cfg)(jax.random.key(first_seed + i))``: the same
    random draws, the same result up to float rounding. Every leaf of the
    output gains a leading ``[num_seeds]`` axis.
    """
    if isinstance(num_seeds, bool) or not isinstance(num_seeds, int) or num_seeds < 1:
        raise ValueError(f"num_seeds={num_seeds!r} is invalid: must be an int >= 1")
    train = make_train(cfg, env, env_params)
    keys = shard_seeds(seed_keys(num_seeds, first_seed))
    return jax.jit(jax.vmap(train, axis_name=SEED_AXIS))(keys)


def evaluate(
    cfg: Config,
    params: Any,
    key: Array,
    num_episodes: int = 100,
    deterministic: bool = False,
    env: Any = None,
    env_params: Any = None,
) -> Array:
    """Undiscounted returns of ``num_episodes`` fresh episodes: ``[num_episodes]``.

    Runs the episodes in parallel up to the time limit with actions sampled from
    the policy (``deterministic=True``: its mode). Jittable; vmap it over
    ``params`` and ``key`` to evaluate many seeds.
    """
    if (
        isinstance(num_episodes, bool)
        or not isinstance(num_episodes, int)
        or num_episodes < 1
    ):
        raise ValueError(
            f"num_episodes={num_episodes!r} is invalid: must be an int >= 1"
        )
    env, env_params, spec = resolve_env(cfg, env, env_params)
    stepper = make_stepper_for(cfg, env, env_params, spec, num_episodes)
    policy = policy_for(cfg, spec)
    horizon = cfg.max_episode_steps or spec.max_episode_steps
    return evaluate_episodes(
        key, stepper, policy.apply, params, int(horizon), deterministic
    )
