r"""What every algorithm shares: the train state, the optimizer step, packing.

An algorithm is a pair of pure functions, as in optax:
``state = algo.init(key)`` and ``state, metrics = algo.update(state)``. A
research stack can drive ``update`` itself, vmap it, or scan it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import flax.linen as nn
import flax.struct
import jax
import jax.numpy as jnp
import optax

from jaxpg.config import Config, Hyperparams
from jaxpg.envs import EnvSpec
from jaxpg.envs.observations import ObsView
from jaxpg.kernels.batching import while_loop
from jaxpg.kernels.normalise import RewardScaler, RunningMeanStd
from jaxpg.networks import Critic, Policy, make_critic, make_policy, torso_from
from jaxpg.rollout import RunningEpisodes

Array = jax.Array


@flax.struct.dataclass
class TrainState:
    """Everything that changes during training; a pytree (vmap it over seeds).

    Attributes:
      params: ``{"policy": ..., ["critic": ...]}``.
      opt_state: the optimizer's state (with jaxpg's default optimizer, an
        ``optax.inject_hyperparams`` state holding the traced learning rate).
      env_state: ``[B]`` env states (plus jaxpg's time-limit counter if any).
      obs: ``[B, *O]`` current observations (a pytree for pytree observations).
      key: PRNG key, split once per update.
      hparams: sweepable scalars (see :class:`jaxpg.config.Hyperparams`).
      update_idx: ``[]`` int32, updates done.
      env_steps: ``[]`` int32, real transitions that fed the gradient so far.
      episode: the running return and length of each env's current episode
        (windowed rollouts carry episodes across updates).
      obs_norm: :class:`~jaxpg.kernels.normalise.RunningMeanStd` of the observations
        seen (``[*O]``; per floating-point leaf of a pytree observation); what
        the networks see when ``cfg.normalise_obs``.
      reward_norm: :class:`~jaxpg.kernels.normalise.RewardScaler` (``[B]`` running
        returns); used when ``cfg.scale_rewards``.
      carry: the recurrent networks' carries for ``obs`` (``{"policy": [B,
        ...], "critic": [B, ...]}``, an entry per recurrent network; ``{}``
        without one), already reset where ``obs`` starts an episode.
    """

    params: Any
    opt_state: Any
    env_state: Any
    obs: Any
    key: Array
    hparams: Hyperparams
    update_idx: Array
    env_steps: Array
    episode: RunningEpisodes
    obs_norm: RunningMeanStd
    reward_norm: RewardScaler
    carry: dict[str, Any]


class Algorithm(NamedTuple):
    """A pair of pure functions, plus the gradient estimator they use.

    Attributes:
      init: ``init(key, hparams=None) -> TrainState``.
      update: ``update(state) -> (state, metrics)`` with scalar metrics.
      estimate: ``estimate(state) -> (grads, metrics, state)``: collect data and
        return the gradient of the loss (what ``update`` descends) without
        applying it; the returned state has advanced what collecting does (env
        state, key, env-step count, the observation and reward statistics;
        actor-critic also its episode records and recurrent carry), not the
        parameters or the optimizer.
    """

    init: Callable[..., TrainState]
    update: Callable[[TrainState], tuple[TrainState, dict[str, Array]]]
    estimate: Callable[[TrainState], tuple[Any, dict[str, Array], TrainState]]


class Parts(NamedTuple):
    """What an algorithm is built from; every part replaceable.

    Attributes:
      spec: the environment's :class:`~jaxpg.envs.EnvSpec`.
      stepper: ``B`` batched envs (:func:`jaxpg.envs.make_stepper`).
      policy: :class:`~jaxpg.networks.Policy` ``init``/``apply`` pair.
      critic: :class:`~jaxpg.networks.Critic`, or ``None``.
      optimizer: any ``optax.GradientTransformation``.
      lr_from_hparams: the optimizer is jaxpg's default, whose learning rate
        :func:`make_init` sets from ``hparams.lr`` (so sweeps can vmap it). A
        user's optimizer keeps its own learning rate or schedule.
    """

    spec: EnvSpec
    stepper: Any
    policy: Policy
    critic: Critic | None
    optimizer: optax.GradientTransformation
    lr_from_hparams: bool = False


def config_torso(cfg: Config) -> nn.Module:
    """The torso ``cfg`` names: ``cfg.torso`` of ``cfg.hidden``,
    ``cfg.activation`` and ``cfg.recurrent_size``."""
    return torso_from(cfg.torso, cfg.hidden, cfg.activation, cfg.recurrent_size)


def policy_for(
    cfg: Config,
    spec: EnvSpec,
    policy_network: nn.Module | None = None,
    *,
    policy_obs: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> Policy:
    """The policy ``cfg`` describes (its torso ``policy_network`` if given),
    reading ``policy_obs`` (default ``cfg.policy_obs``) of the observation and
    masking with ``action_mask_fn`` (default: the observation's mask leaf).
    Without ``policy_network``, the torso is ``cfg.torso``'s
    (:func:`~jaxpg.networks.torso_from`)."""
    return make_policy(
        spec,
        cfg.hidden,
        cfg.activation,
        cfg.init_log_std,
        cfg.policy_head_scale,
        torso=config_torso(cfg) if policy_network is None else policy_network,
        obs_view=cfg.policy_obs if policy_obs is None else policy_obs,
        action_mask_fn=action_mask_fn,
    )


def critic_for(
    cfg: Config,
    spec: EnvSpec,
    critic_network: nn.Module | None = None,
    *,
    critic_obs: ObsView = None,
) -> Critic:
    """The critic ``cfg`` describes (its torso ``critic_network`` if given),
    reading ``critic_obs`` (default ``cfg.critic_obs``) of the observation.
    Without ``critic_network``, the torso is ``cfg.torso``'s."""
    return make_critic(
        spec,
        cfg.hidden,
        cfg.activation,
        torso=config_torso(cfg) if critic_network is None else critic_network,
        obs_view=cfg.critic_obs if critic_obs is None else critic_obs,
    )


def make_init(cfg: Config, parts: Parts) -> Callable[..., TrainState]:
    """``init(key, hparams=None) -> TrainState``: fresh networks (the critic
    only when there is one), optimizer state and envs reset; the key is split
    into named subkeys, each used once."""
    policy, critic, tx, stepper = (
        parts.policy,
        parts.critic,
        parts.optimizer,
        parts.stepper,
    )

    def init(key: Array, hparams: Hyperparams | None = None) -> TrainState:
        hparams = cfg.hyperparams() if hparams is None else hparams
        key, key_policy, key_critic, key_env = jax.random.split(key, 4)
        params = {"policy": policy.init(key_policy)}
        if critic is not None:
            params["critic"] = critic.init(key_critic)
        opt_state = tx.init(params)
        if parts.lr_from_hparams:
            opt_state = set_learning_rate(opt_state, hparams.lr)
        obs, env_state = stepper.reset(key_env)
        return TrainState(
            params=params,
            opt_state=opt_state,
            env_state=env_state,
            obs=obs,
            key=key,
            hparams=hparams,
            update_idx=jnp.int32(0),
            env_steps=jnp.int32(0),
            episode=RunningEpisodes.zeros(cfg.num_envs),
            obs_norm=RunningMeanStd.for_observation(
                jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), obs)
            ),
            reward_norm=RewardScaler.zeros(cfg.num_envs),
            carry=initial_carries(parts, cfg.num_envs),
        )

    return init


def initial_carries(parts: Parts, num_envs: int) -> dict[str, Any]:
    """The carries of ``parts``' recurrent networks at an episode start for
    ``num_envs`` envs: :attr:`TrainState.carry` after ``init``."""
    nets = {"policy": parts.policy, "critic": parts.critic}
    return {
        name: net.initial_carry(num_envs)
        for name, net in nets.items()
        if net is not None and net.recurrent
    }


def acting(policy: Policy, see: Callable[[Array], Array]) -> Callable:
    """What a rollout acts with (:mod:`jaxpg.rollout`): ``policy.apply`` or, for
    a recurrent policy, ``policy.step``, composed with the observation
    transform ``see``."""
    if policy.recurrent:
        return lambda params, carry, obs, reset: policy.step(
            params, carry, see(obs), reset
        )
    return observing(policy.apply, see)


def observe(cfg: Config, state: TrainState) -> Callable[[Array], Array]:
    """What the networks see of an observation batch in this update: the
    observations standardised by ``state.obs_norm`` when ``cfg.normalise_obs``
    (fixed for the whole update), else the observations themselves."""
    if cfg.normalise_obs:
        return state.obs_norm.normalise
    return lambda obs: obs


def observing(
    apply: Callable[[Any, Array], Any], see: Callable[[Array], Array]
) -> Callable[[Any, Array], Any]:
    """``apply(params, obs)`` composed with the observation transform ``see``."""
    return lambda params, obs: apply(params, see(obs))


def update_statistics(
    cfg: Config,
    state: TrainState,
    obs: Array,
    weights: Array | None = None,
) -> TrainState:
    """Merge an update's raw observations ``[N, *O]`` (``weights``: ``[N]``
    0/1, those that count) into ``state.obs_norm`` when ``cfg.normalise_obs``."""
    if not cfg.normalise_obs:
        return state
    return state.replace(obs_norm=state.obs_norm.update(obs, weights))


def clip_by_global_norm_per_network(max_norm: float) -> optax.GradientTransformation:
    """Clip each top-level entry of a dict of gradients (``{"policy": ...,
    "critic": ...}``) by its own global norm ``max_norm``."""
    clip = optax.clip_by_global_norm(max_norm)

    def init_fn(params: Any) -> optax.EmptyState:
        del params
        return optax.EmptyState()

    def update_fn(updates: Any, state: Any, params: Any = None):
        del params
        if not isinstance(updates, dict):
            raise TypeError(
                "clip_by_global_norm_per_network needs a dict of networks' "
                f"gradients, got {type(updates).__name__}"
            )
        clipped = {k: clip.update(g, optax.EmptyState())[0] for k, g in updates.items()}
        return clipped, state

    return optax.GradientTransformation(init_fn, update_fn)


def _adam_chain(
    learning_rate: Array | float,
    max_grad_norm: float | None,
    per_network: bool,
    eps: float,
) -> optax.GradientTransformation:
    parts = []
    if max_grad_norm is not None:
        clip = (
            clip_by_global_norm_per_network
            if per_network
            else (optax.clip_by_global_norm)
        )
        parts.append(clip(max_grad_norm))
    parts += [
        optax.scale_by_adam(eps=eps),
        optax.scale_by_learning_rate(learning_rate),
    ]
    return optax.chain(*parts)


def injected_adam(
    learning_rate: float,
    max_grad_norm: float | None = None,
    *,
    per_network: bool = False,
    eps: float = 1e-5,
) -> optax.GradientTransformation:
    """jaxpg's default optimizer, for both halves (gymnax and token policies):
    global-norm clipping when ``max_grad_norm`` is set (per network with
    ``per_network``), then Adam (``eps``), then the learning rate, injected
    with ``optax.inject_hyperparams`` so that it is a traced value in the
    optimizer state (:func:`set_learning_rate` sets it: a sweep vmaps it, a
    schedule changes it every update without recompiling).

    Args:
      learning_rate: the initial learning rate (float32 in the state).
      max_grad_norm: clip the gradient's global norm to it; ``None``: no clip.
      per_network: clip each top-level entry of a dict of gradients apart
        (:func:`clip_by_global_norm_per_network`).
      eps: Adam's epsilon.
    """
    build = functools.partial(
        _adam_chain, max_grad_norm=max_grad_norm, per_network=per_network, eps=eps
    )
    # per_network and eps shape the chain: static, not traced hyperparameters.
    return optax.inject_hyperparams(build, static_args=("per_network", "eps"))(
        learning_rate=learning_rate
    )


def make_optimizer(cfg: Config) -> optax.GradientTransformation:
    """jaxpg's default for ``cfg``: :func:`injected_adam` (``eps=1e-5``) with
    ``cfg.lr``, clipping at ``cfg.max_grad_norm`` when it is set (per network
    with ``cfg.clip_per_network``). The learning rate is a traced value in the
    optimizer state: :func:`make_init` sets it from ``hparams.lr``, and with
    ``cfg.anneal_lr`` every update sets it to :func:`annealed_learning_rate`."""
    return injected_adam(
        cfg.lr, cfg.max_grad_norm, per_network=cfg.clip_per_network, eps=1e-5
    )


def annealed_learning_rate(cfg: Config, state: TrainState) -> Array:
    r"""``lr × max(0, 1 − env_steps / total_steps)`` with the env steps done
    before this update: linear in the step budget, from ``lr`` at the first
    update to ``lr / num_updates`` at the last one (a2c, ppo; exactly so when
    ``total_steps`` is a multiple of ``num_envs * rollout_steps``). For reinforce,
    whose updates use a varying number of steps, the decay still follows the
    budget, not the update count."""
    frac = 1.0 - state.env_steps.astype(jnp.float32) / cfg.total_steps
    return state.hparams.lr * jnp.clip(frac, 0.0, 1.0)


def schedule_learning_rate(cfg: Config, parts: Parts, state: TrainState) -> Any:
    """The optimizer state this update steps with: with ``cfg.anneal_lr`` (and
    jaxpg's default optimizer) its learning rate set to
    :func:`annealed_learning_rate` of ``state``, else ``state.opt_state``."""
    if not (cfg.anneal_lr and parts.lr_from_hparams):
        return state.opt_state
    return set_learning_rate(state.opt_state, annealed_learning_rate(cfg, state))


def set_learning_rate(opt_state: Any, lr: Array) -> Any:
    """The default optimizer's state with its learning rate set to ``lr``."""
    hyperparams = dict(opt_state.hyperparams)
    hyperparams["learning_rate"] = jnp.asarray(lr, hyperparams["learning_rate"].dtype)
    return opt_state._replace(hyperparams=hyperparams)


def apply_gradients(
    tx: optax.GradientTransformation,
    params: Any,
    opt_state: Any,
    grads: Any,
    skip: Array | bool = False,
) -> tuple[Any, Any, dict[str, Array]]:
    """One optimizer step that refuses non-finite gradients.

    A diverging run (NaN or inf in the gradient or the new parameters) keeps
    its previous parameters and optimizer state and reports ``nonfinite = 1``;
    under ``vmap`` the other seeds are unaffected either way. ``skip`` (a
    traced bool) also keeps them, for an update that collected no data.

    Returns ``(params, opt_state, {"grad_norm", "nonfinite"})``.
    """
    grad_norm = optax.tree.norm(grads)
    updates, new_opt_state = tx.update(grads, opt_state, params)
    new_params = optax.apply_updates(params, updates)
    (params, opt_state), nonfinite = keep_if_finite(
        grad_norm, (new_params, new_opt_state), (params, opt_state), skip
    )
    return params, opt_state, {"grad_norm": grad_norm, "nonfinite": nonfinite}


def keep_if_finite(
    grad_norm: Array, new: Any, old: Any, skip: Array | bool = False
) -> tuple[Any, Array]:
    """The guard of every optimizer step in jaxpg (the token side's too):
    ``(new if the step is finite and not skipped else old, nonfinite)``.

    A step is non-finite when ``grad_norm`` or the norm of ``new``'s first
    element (the parameters) is NaN or inf: a finite gradient can still give
    non-finite parameters (an overflowing step, a NaN learning rate in a
    sweep). ``nonfinite`` is ``[]`` float32, 1 for a rejected step.
    """
    finite = jnp.isfinite(grad_norm) & jnp.isfinite(optax.tree.norm(new[0]))
    take = finite & ~jnp.asarray(skip)
    kept = jax.tree.map(lambda a, b: jnp.where(take, a, b), new, old)
    return kept, (~finite).astype(jnp.float32)


def pack_rows(mask: Array, chunk: int, **arrays: Array) -> tuple[dict, Array]:
    """Move the valid rows of ``[L, B, ...]`` arrays to the front of ``[R, ...]``.

    ``R = L * B`` rounded up to a multiple of ``chunk``; the order of valid rows
    is kept (a pytree, e.g. pytree observations, is packed leaf by leaf).
    Returns ``(packed, count)`` with ``count`` the number of valid rows.
    """
    flat_mask = mask.reshape(-1)
    size = flat_mask.shape[0]
    rows = -(-size // chunk) * chunk
    valid = flat_mask > 0
    dest = jnp.where(valid, jnp.cumsum(valid) - 1, rows)
    packed = {}

    def pack(x: Array) -> Array:
        flat = x.reshape((size, *x.shape[2:]))
        out = jnp.zeros((rows, *x.shape[2:]), x.dtype)
        return out.at[dest].set(flat, mode="drop")

    for name, x in arrays.items():
        packed[name] = jax.tree.map(pack, x)
    return packed, jnp.sum(valid).astype(jnp.int32)


def chunked_grad(
    loss_fn: Callable[[Any, dict, Array], tuple[Array, dict[str, Array]]],
    params: Any,
    packed: dict,
    count: Array,
    chunk: int,
) -> tuple[Any, dict[str, Array]]:
    r"""Sum of ``grad(loss_fn)`` over the chunks that hold valid rows.

    ``loss_fn(params, rows, row_mask)`` must be a *sum* over rows (a loss that
    is linear in its rows), so the chunks add up to the loss of the whole
    batch; only ``ceil(count / chunk)`` chunks are computed (a
    :func:`jaxpg.kernels.batching.while_loop`), so padding costs no forward or
    backward pass.

    Returns ``(grads, aux)`` with ``aux`` the summed auxiliary outputs.
    """
    grad_fn = jax.grad(loss_fn, has_aux=True)
    num_chunks = (count + chunk - 1) // chunk
    zero_aux = jax.tree.map(
        jnp.zeros_like,
        jax.eval_shape(
            lambda: loss_fn(params, _slice(packed, 0, chunk), jnp.ones((chunk,)))[1]
        ),
    )

    def body(c: _ChunkLoop) -> _ChunkLoop:
        # Past this member's last chunk (a batched loop), the row mask is all
        # zero: the iteration adds exact zeros.
        rows = _slice(packed, c.i * chunk, chunk)
        row_mask = ((c.i * chunk + jnp.arange(chunk)) < count).astype(jnp.float32)
        g, a = grad_fn(params, rows, row_mask)
        return _ChunkLoop(
            c.i + 1, jax.tree.map(jnp.add, c.grads, g), jax.tree.map(jnp.add, c.aux, a)
        )

    init = _ChunkLoop(jnp.int32(0), jax.tree.map(jnp.zeros_like, params), zero_aux)
    out = while_loop(lambda c: c.i < num_chunks, body, init)
    return out.grads, out.aux


class _ChunkLoop(NamedTuple):
    i: Array  # [] int32, chunks done
    grads: Any  # summed gradients, like params
    aux: dict[str, Array]  # summed auxiliary outputs


def _slice(packed: dict, start: Array | int, size: int) -> dict:
    return {
        k: jax.tree.map(
            lambda x: jax.lax.dynamic_slice_in_dim(x, start, size, axis=0), v
        )
        for k, v in packed.items()
    }


def nan_if_empty(total: Array, count: Array) -> Array:
    """``total / count``, NaN when ``count == 0``."""
    return jnp.where(count > 0, total / jnp.maximum(count, 1), jnp.nan)
