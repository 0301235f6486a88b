"""Run rejax 0.1.3's PPO on gymnax 1.x environments, for side-by-side benchmarks.

Why an adapter is needed
------------------------
rejax 0.1.3 was written against gymnax 0.0.x, whose ``Environment.step`` returns
five values ``(obs, state, reward, done, info)``. gymnax 1.x splits ``done`` and
returns six: ``(obs, state, reward, terminated, truncated, info)``. rejax unpacks
five values in two places (PPO's rollout and its evaluation loop), so handing it a
gymnax 1.x environment fails with ``ValueError: too many values to unpack``.
:class:`FiveValueStep` wraps a gymnax 1.x environment and merges the two flags,
``done = terminated | truncated``, which is exactly what gymnax 0.0.x reported.

What rejax then does with ``done`` (worth knowing when comparing numbers):

* PPO treats every ``done`` as terminal: GAE cuts the bootstrap at time-limit
  truncations as well as at real terminations (no ``V(s_final)`` bootstrap). The
  ``final_observation`` that gymnax 1.x puts in ``info`` is ignored.
* Evaluation (:func:`rejax.evaluate.evaluate`) runs ``num_eval_episodes``
  episodes with the *stochastic* policy (it samples, no argmax / mean), each until
  ``done`` or ``env_params.max_steps_in_episode`` steps, inside a
  ``lax.while_loop``; under ``vmap`` the loop runs until the slowest episode ends.
  Its cost is part of the measured run time, so keep ``eval_freq`` large for
  throughput measurements.
* ``max_grad_norm`` is passed to ``optax.clip``, i.e. *element-wise* clipping of
  the gradient, not ``clip_by_global_norm``. Actor and critic are separate MLPs
  with separate Adam states, so ``vf_coef`` only rescales the critic gradient
  before Adam (almost no effect). Layers use flax's default ``lecun_normal``
  initialisation and rejax's default activation is ``swish``.

Only this adapter's own code is used here; rejax is imported, not copied. rejax
needs ``distrax`` (which pulls ``tfp-nightly``) on top of the jaxpg pins.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import gymnax
import jax
import jax.numpy as jnp
import numpy as np
import rejax
from rejax.evaluate import evaluate

TrainFn = Callable[[jax.Array], tuple[Any, tuple[jax.Array, jax.Array]]]


class FiveValueStep:
    """Present a gymnax 1.x environment with gymnax 0.0.x's five-value ``step``.

    ``step`` returns ``(obs, state, reward, done, info)`` with
    ``done = terminated | truncated``; ``info`` keeps gymnax 1.x's
    ``terminated``, ``truncated`` and ``final_observation`` entries. Everything
    else (``reset``, spaces, ``default_params``, ``name``...) is forwarded to the
    wrapped environment. Instances hash by identity, so they can be static
    arguments of ``jax.jit`` as rejax requires.
    """

    def __init__(self, env: Any) -> None:
        self._env = env

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not found normally. Refuse private names so
        # that copy/deepcopy (which probe ``__deepcopy__`` etc. on an instance
        # without ``_env``) do not recurse forever.
        if name.startswith("_"):
            raise AttributeError(name)
        return getattr(self._env, name)

    @property
    def unwrapped(self) -> Any:
        """The wrapped gymnax 1.x environment."""
        return self._env

    def reset(self, key: jax.Array, params: Any = None) -> tuple[jax.Array, Any]:
        """Reset exactly as the wrapped environment does."""
        return self._env.reset(key, params)

    def step(
        self, key: jax.Array, state: Any, action: Any, params: Any = None
    ) -> tuple[jax.Array, Any, jax.Array, jax.Array, dict[str, Any]]:
        """Step (with auto-reset) and merge ``terminated``/``truncated``."""
        obs, state, reward, terminated, truncated, info = self._env.step(
            key, state, action, params
        )
        done = jnp.logical_or(terminated, truncated)
        return obs, state, reward, done, info


def make_rejax_ppo(
    env_name: str,
    total_timesteps: int,
    num_envs: int,
    num_steps: int,
    num_epochs: int,
    num_minibatches: int,
    hidden: tuple[int, ...],
    lr: float,
    gamma: float,
    gae_lambda: float,
    clip_eps: float,
    ent_coef: float,
    vf_coef: float,
    max_grad_norm: float,
    eval_freq: int,
    *,
    activation: str = "tanh",
    normalize_observations: bool = False,
    normalize_rewards: bool = False,
    skip_initial_evaluation: bool = True,
    num_eval_episodes: int = 128,
) -> tuple[Any, TrainFn]:
    """Build rejax PPO on ``gymnax.make(env_name)`` wrapped in :class:`FiveValueStep`.

    ``total_timesteps`` must be a multiple of ``eval_freq``, itself a multiple of
    ``num_envs * num_steps`` (rejax rounds each up silently, so otherwise it
    trains on more steps than asked). ``activation`` is the name of a
    ``flax.linen`` function, used in every hidden layer of actor and critic.

    Returns ``(algo, train_fn)``: ``train_fn(key)`` (not jitted) trains one seed
    and returns ``(train_state, (episode_lengths, episode_returns))``, the
    evaluation arrays having shape ``(num_evals, num_eval_episodes)`` with
    ``num_evals = total_timesteps // eval_freq`` (+1 for the step-0 evaluation if
    ``skip_initial_evaluation`` is false).
    """
    iteration = num_envs * num_steps
    if eval_freq % iteration or total_timesteps % eval_freq:
        raise ValueError(
            f"need total_timesteps ({total_timesteps}) % eval_freq ({eval_freq}) == 0"
            f" and eval_freq % (num_envs * num_steps) ({iteration}) == 0"
        )
    if iteration % num_minibatches:
        raise ValueError(
            f"num_envs * num_steps ({iteration}) not divisible by "
            f"num_minibatches ({num_minibatches})"
        )

    env, env_params = gymnax.make(env_name)
    algo = rejax.get_algo("ppo").create(
        env=FiveValueStep(env),
        env_params=env_params,
        total_timesteps=total_timesteps,
        eval_freq=eval_freq,
        skip_initial_evaluation=skip_initial_evaluation,
        num_envs=num_envs,
        num_steps=num_steps,
        num_epochs=num_epochs,
        num_minibatches=num_minibatches,
        learning_rate=lr,
        gamma=gamma,
        gae_lambda=gae_lambda,
        clip_eps=clip_eps,
        ent_coef=ent_coef,
        vf_coef=vf_coef,
        max_grad_norm=max_grad_norm,
        normalize_observations=normalize_observations,
        normalize_rewards=normalize_rewards,
        agent_kwargs={"hidden_layer_sizes": tuple(hidden), "activation": activation},
    )
    if num_eval_episodes != 128:  # rejax hard-codes 128 episodes per evaluation
        eval_env = algo.env

        def eval_callback(
            algo: Any, ts: Any, rng: jax.Array
        ) -> tuple[jax.Array, jax.Array]:
            act = algo.make_act(ts)
            max_steps = algo.env_params.max_steps_in_episode
            return evaluate(
                act, rng, eval_env, algo.env_params, num_eval_episodes, max_steps
            )

        algo = algo.replace(eval_callback=eval_callback)
    return algo, algo.train


@dataclasses.dataclass(frozen=True)
class SeedsResult:
    """Outcome of :func:`train_seeds`.

    ``eval_returns`` has shape ``(num_seeds, num_evals, num_eval_episodes)``;
    ``final_returns`` is the mean over episodes of the last evaluation, one value
    per seed. ``env_steps`` counts training steps over all seeds (evaluation
    steps excluded).
    """

    final_returns: np.ndarray
    eval_returns: np.ndarray
    eval_lengths: np.ndarray
    compile_s: float
    run_s: float
    env_steps: int

    @property
    def steps_per_s(self) -> float:
        """Training environment steps per second of run time, all seeds."""
        return self.env_steps / self.run_s


def train_seeds(
    algo: Any, train_fn: TrainFn, num_seeds: int, seed: int = 0
) -> SeedsResult:
    """Train ``num_seeds`` seeds in one program (``jit(vmap(train_fn))``).

    Compile time is ``lower`` + ``compile``; run time is one call of the
    compiled program until its outputs are ready (includes evaluation).
    """
    keys = jax.random.split(jax.random.key(seed), num_seeds)
    program = jax.jit(jax.vmap(train_fn))

    start = time.perf_counter()
    compiled = program.lower(keys).compile()
    compile_s = time.perf_counter() - start

    start = time.perf_counter()
    _, (lengths, returns) = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start

    eval_returns = np.asarray(returns)
    steps_per_seed = algo.total_timesteps  # exact, given make_rejax_ppo's checks
    return SeedsResult(
        final_returns=eval_returns[:, -1].mean(axis=-1),
        eval_returns=eval_returns,
        eval_lengths=np.asarray(lengths),
        compile_s=compile_s,
        run_s=run_s,
        env_steps=steps_per_seed * num_seeds,
    )
