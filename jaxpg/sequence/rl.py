r"""RL on token policies: sample groups, score, advantages, (clipped) policy
gradient with a KL to the frozen reference. Pure ``(init, update)`` pair and a
``train(key, params, ref_params)`` driver that ``vmap`` runs over seeds.

One update:

1. draw ``P`` prompts from the key, repeat each ``G`` times (``N = P G``);
2. sample responses with the KV-cached sampler (:mod:`.sampling`); every
   forward pass here and below runs a group's shared prompt once
   (``group_size=G``), its keys/values shared by the ``G`` responses;
3. score them with the task's optimised reward (and its true reward and
   accuracy, for the metrics);
4. teacher-forced log-probs of the reference; with ``kl_placement="reward"``
   subtract :math:`\beta\sum_t k_t` from the reward;
5. group advantages :math:`[P, G]` (:func:`.estimators.group_advantages`);
6. ``epochs`` full-batch gradient steps on
   ``aggregate(surrogate_terms) (+ beta * aggregate(k_t) if kl_placement="loss")``
   (ratios against the sampling policy, PPO-clipped when ``clip_eps`` is set).

Seeds: seed ``i`` is ``train(jax.random.key(i), params, ref_params)``;
:func:`train_seeds` maps it over seeds laid over all devices, with
``params``/``ref_params`` shared.

Devices: ``batch_sharding`` (:func:`make_rl`, :func:`make_rl_train`,
:func:`rollout`) lays each update's ``P`` prompts, and with them everything
computed per response, over devices; XLA's partitioner combines the gradients
and the batch means across them (data parallelism; parameters replicated).
The draws are the same as on one device (JAX's partitionable threefry), so
the result differs only by float rounding. :func:`data_parallel` builds the
sharding over all devices.

Metrics per update (``[U]`` each, first epoch unless said): ``reward``
(optimised; the proxy on a proxy task), ``true_reward``, ``accuracy`` (exact
match), ``kl_exact`` (full-vocabulary :math:`\sum_t \mathrm{KL}_t` per response,
mean over N), ``kl_estimate`` (:math:`\sum_t k_t` of the chosen estimator),
``entropy`` (per token), ``response_length`` (before any truncation mask),
``truncated`` (fraction without EOS), ``informative`` (fraction of the drawn
groups whose rewards are not all equal; with ``dynamic_sampling`` the reward
metrics are those of the kept groups), ``clip_frac`` (over all epochs),
``loss``, ``grad_norm``, ``nonfinite`` (1 when an epoch's step was not
finite and was rejected: the parameters and optimizer state are kept, as on
the gymnax side, and the other seeds of a vmapped run are unaffected).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jaxpg.algorithms.base import injected_adam, keep_if_finite, set_learning_rate
from jaxpg.drivers import parallel
from jaxpg.kernels.batching import batched_like
from jaxpg.kernels.losses import masked_mean
from jaxpg.sequence import checks, sampling, tasks
from jaxpg.sequence import estimators as est
from jaxpg.sequence.rlconfig import (  # re-exported: rl.RLConfig and friends
    IMPORTANCE_RATIOS,  # noqa: F401
    KL_PLACEMENTS,  # noqa: F401
    Hyperparams,
    RLConfig,
)
from jaxpg.sequence.sampling import ModelLike
from jaxpg.sequence.tasks import EOS, PAD, Task

Array = jax.Array


class Rollout(NamedTuple):
    """Sampled responses and everything scored on them (``N = P G``)."""

    prompts: Array  # [N, Lp] int32, grouped: rows g*G .. g*G+G-1 share a prompt
    responses: Array  # [N, R] int32
    mask: Array  # [N, R] float32
    behaviour_log_probs: Array  # [N, R] log mu(y_t) of the sampler
    log_probs: Array  # [N, R] log pi_theta(y_t) (T = 1)
    ref_logits: Array  # [N, R, V] reference's teacher-forced logits
    reward: Array  # [N] optimised reward
    true_reward: Array  # [N]
    accuracy: Array  # [N]
    informative: Array  # [] fraction of the drawn groups with unequal rewards


class Batch(NamedTuple):
    """One update's on-policy data: a rollout with its advantages."""

    prompts: Array  # [N, Lp] int32
    responses: Array  # [N, R] int32
    mask: Array  # [N, R] float32
    behaviour_log_probs: Array  # [N, R]
    ref_logits: Array  # [N, R, V]
    advantages: Array  # [N] float32
    reward: Array  # [N] optimised reward (before KL shaping)
    true_reward: Array  # [N]
    accuracy: Array  # [N]
    kl_estimate: Array  # [N] sum_t m k_t of the chosen estimator
    truncated: Array  # [N] float 1 where the response has no EOS


def data_parallel(devices: Any = None) -> jax.sharding.NamedSharding:
    """The ``batch_sharding`` that splits the prompts over ``devices`` (default:
    all devices): a one-dimensional mesh, axis ``"data"``, the prompt axis
    sharded over it. ``num_prompts`` must be a multiple of the device count."""
    devs = np.asarray(jax.devices() if devices is None else list(devices))
    mesh = jax.sharding.Mesh(devs.reshape(-1), ("data",))
    return jax.sharding.NamedSharding(mesh, jax.sharding.PartitionSpec("data"))


def _check_sharding(sharding: Any, task: Task, rl: RLConfig) -> None:
    if sharding is None:
        return
    if rl.dynamic_sampling is not None:
        raise ValueError(
            "batch_sharding with dynamic_sampling is not supported: the kept "
            "groups are gathered across the drawn ones (set one of them)"
        )
    shape = (rl.num_prompts, task.prompt_len)
    if not isinstance(sharding, jax.sharding.Sharding):
        raise ValueError(
            f"batch_sharding={sharding!r} is invalid: must be a "
            "jax.sharding.Sharding (e.g. jaxpg.sequence.rl.data_parallel())"
        )
    try:
        local = sharding.shard_shape(shape)
    except Exception as e:  # JAX says why; its message is kept
        raise ValueError(
            f"batch_sharding={sharding!r} is invalid for the [num_prompts, "
            f"prompt_len] = {list(shape)} prompt batch: {e}"
        ) from e
    if local[1] != shape[1] or rl.num_prompts % local[0]:
        raise ValueError(
            f"batch_sharding={sharding!r} is invalid: it must split only the "
            f"prompt axis, evenly (num_prompts={rl.num_prompts} into shards of "
            f"{local[0]}, prompt_len={shape[1]} into {local[1]})"
        )


def rollout(
    key: Array,
    params: Any,
    ref_params: Any,
    task: Task,
    model_cfg: ModelLike,
    rl: RLConfig,
    *,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> Rollout:
    """Steps 1-4 of the module docstring, before any KL shaping.

    ``batch_sharding``: lays the ``[P, Lp]`` prompts (and so every ``[N, ...]``
    array after them) over devices; see the module docstring.
    """
    _check_sharding(batch_sharding, task, rl)
    prompt_key, sample_key = jax.random.split(key)
    r, g, pool = rl.response_len(task), rl.group_size, rl.pool_size()
    prompts = task.sample_prompts(prompt_key, pool)
    columns = tasks.draw_columns(task, prompt_key, pool, g)
    if batch_sharding is not None:
        prompts = jax.lax.with_sharding_constraint(prompts, batch_sharding)
    prompts = jnp.repeat(prompts, g, axis=0)  # [N, Lp], grouped
    samples = sampling.sample(
        sample_key, params, model_cfg, prompts, r, eos_id=EOS, pad_id=PAD,
        temperature=rl.temperature, top_k=rl.top_k, group_size=g,
    )  # fmt: skip
    drawn = "dynamic_sampling" if rl.dynamic_sampling else "num_prompts"
    scored = scores(
        task, prompts, samples.responses, samples.mask, f"{drawn} * group_size",
        columns,
    )  # fmt: skip
    rows = (prompts, samples.responses, samples.mask, samples.log_probs, *scored)
    grouped = scored[0].reshape(pool, g)
    informative = jnp.any(grouped != grouped[:, :1], axis=1)
    if rl.dynamic_sampling is not None:
        index, _ = est.dynamic_groups(grouped, rl.num_prompts)
        kept = (index[:, None] * g + jnp.arange(g)[None, :]).reshape(-1)
        rows = tuple(x[kept] for x in rows)
    prompts, responses, mask, behaviour, reward, true_reward, accuracy = rows
    ref_logits = sampling.response_logits(ref_params, model_cfg, prompts, responses, g)
    if rl.temperature == 1.0 and rl.top_k is None:
        logp = behaviour  # the sampler's distribution is pi itself
    else:
        logits = sampling.response_logits(params, model_cfg, prompts, responses, g)
        logp = sampling.token_log_probs(logits, responses)
    ro = Rollout(
        prompts, responses, mask, behaviour, logp, ref_logits, reward, true_reward,
        accuracy, jnp.mean(informative.astype(jnp.float32)),
    )  # fmt: skip
    return jax.tree.map(jax.lax.stop_gradient, ro)


def scores(
    task: Task,
    prompts: Array,
    responses: Array,
    mask: Array,
    what: str,
    columns: dict[str, Array] | None = None,
) -> tuple[Array, Array, Array]:
    """``(reward, true_reward, accuracy)`` of ``N`` responses, each ``[N]``
    float32; a task function (a user's ``reward_fn``) that returns another
    shape raises ValueError naming it and ``[N]`` (``what`` says where ``N``
    comes from). ``columns`` (``{name: [N, ...]}``) go to each as keywords."""
    n = responses.shape[0]
    columns = columns or {}
    return tuple(
        checks.check_rewards(
            f"task.{name} ({task.name})",
            getattr(task, name)(prompts, responses, mask, **columns),
            n,
            f"N = {what} = {n}",
        )
        for name in ("reward", "true_reward", "accuracy")
    )


def score(ro: Rollout, rl: RLConfig, beta: Array | float | None = None) -> Batch:
    """Step 5: KL estimate (and shaping if in the reward), the overlong
    penalty, group advantages; with ``rl.mask_truncated`` the loss mask of a
    response without EOS is 0 (its reward still enters its group's baseline).

    ``beta`` (may be traced) overrides ``rl.beta``.
    """
    beta = rl.beta if beta is None else beta
    ref_logp = sampling.token_log_probs(ro.ref_logits, ro.responses)
    logp, ref_logp = _on_mask(ro.mask, ro.log_probs, ref_logp)
    kl = est.kl_tokens(logp, ref_logp, rl.kl_estimator) * ro.mask
    shaped = ro.reward
    if rl.overlong_buffer is not None:
        length = jnp.sum(ro.mask, axis=1)
        r = ro.responses.shape[1]
        shaped = shaped + rl.overlong_penalty * est.overlong_penalty(
            length, r, rl.overlong_buffer
        )
    truncated = est.truncated(ro.responses, ro.mask, EOS)
    mask = ro.mask * (1.0 - truncated[:, None]) if rl.mask_truncated else ro.mask
    if rl.kl_placement == "reward":
        shaped = est.kl_shaped_rewards(shaped, kl, ro.mask, beta)
    adv = est.group_advantages(
        shaped.reshape(rl.num_prompts, rl.group_size), rl.advantage
    )
    return Batch(
        ro.prompts, ro.responses, mask, ro.behaviour_log_probs, ro.ref_logits,
        adv.reshape(-1), ro.reward, ro.true_reward, ro.accuracy, jnp.sum(kl, axis=1),
        truncated,
    )  # fmt: skip


def make_batch(
    key: Array,
    params: Any,
    ref_params: Any,
    task: Task,
    model_cfg: ModelLike,
    rl: RLConfig,
    *,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> Batch:
    """Steps 1-5 of the module docstring (no gradient flows through it)."""
    ro = rollout(
        key, params, ref_params, task, model_cfg, rl, batch_sharding=batch_sharding
    )
    return score(ro, rl)


def _on_mask(mask: Array, *log_probs: Array) -> tuple[Array, ...]:
    """``[N, R]`` log-probs set to 0 where ``mask`` is 0: there the ratios are 1
    and the KL terms 0, so an overflow at a padding position (a ratio or a k3
    term of ``exp(88)`` or more) cannot make the masked sums ``0 * inf = NaN``,
    in the loss or its gradient."""
    return tuple(jnp.where(mask > 0, lp, 0.0) for lp in log_probs)


def loss_fn(
    params: Any,
    batch: Batch,
    model_cfg: ModelLike,
    rl: RLConfig,
    beta: Array | float | None = None,
) -> tuple[Array, dict[str, Array]]:
    """The scalar to minimise for one batch, and diagnostics.

    ``beta`` (may be traced) overrides ``rl.beta``.

    ``-grad`` of it at the sampling parameters is the policy-gradient estimate
    (times ``1/C`` for ``aggregation="constant"``), plus the KL term's gradient
    when ``kl_placement="loss"``.

    ``batch.prompts`` must be grouped as :func:`rollout` lays them out (rows
    ``g G .. g G + G - 1`` share a prompt, ``G = rl.group_size``): the
    teacher-forced pass runs each prompt once per group.
    """
    logits = sampling.response_logits(
        params, model_cfg, batch.prompts, batch.responses, rl.group_size
    )
    mask = batch.mask
    logp, behaviour = _on_mask(
        mask,
        sampling.token_log_probs(logits, batch.responses),
        batch.behaviour_log_probs,
    )
    adv = jnp.broadcast_to(batch.advantages[:, None], mask.shape)
    surrogate = (
        est.surrogate_terms
        if rl.importance_ratio == "token"
        else functools.partial(est.sequence_surrogate_terms, mask=mask)
    )
    terms, clipped = surrogate(
        logp, behaviour, adv, clip_eps=rl.clip_eps,
        clip_eps_high=rl.clip_eps_high, dual_clip=rl.dual_clip,
    )  # fmt: skip
    norm = rl.loss_norm if rl.loss_norm is not None else mask.shape[1]
    loss = est.aggregate(terms, mask, rl.aggregation, norm)
    if rl.kl_placement == "loss":
        (ref_logp,) = _on_mask(
            mask, sampling.token_log_probs(batch.ref_logits, batch.responses)
        )
        kl = est.kl_tokens(logp, ref_logp, rl.kl_estimator)
        beta = rl.beta if beta is None else beta
        loss = loss + beta * est.aggregate(kl, mask, rl.aggregation, norm)
    logits_sg = jax.lax.stop_gradient(logits)
    # The policy's KL and entropy over every sampled token, as ``kl_estimate``:
    # with ``mask_truncated`` the loss mask drops truncated responses, which
    # (no EOS) have every position of the response budget.
    response_mask = jnp.maximum(mask, batch.truncated[:, None])
    aux = {
        "kl_exact": jnp.mean(
            jnp.sum(est.exact_kl(logits_sg, batch.ref_logits) * response_mask, axis=1)
        ),
        "entropy": masked_mean(est.entropy(logits_sg), response_mask),
        "clip_frac": masked_mean(clipped, mask),
    }
    return loss, aux


@flax.struct.dataclass
class RLState:
    """Train state of one seed (treat as an opaque pytree)."""

    params: Any
    opt_state: Any
    key: Array
    step: Array  # [] int32


class RL(NamedTuple):
    init: Callable[[Array, Any], RLState]
    update: Callable[..., tuple[RLState, dict[str, Array]]]


def make_rl(
    task: Task,
    model_cfg: ModelLike,
    rl: RLConfig,
    *,
    optimizer: optax.GradientTransformation | None = None,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> RL:
    """``init(key, params) -> RLState``; ``update(state, ref_params, hyper=None)
    -> (state, metrics)`` with the metrics of the module docstring (scalars).

    ``batch_sharding``: each update's prompts over devices (data parallel; see
    the module docstring and :func:`data_parallel`).

    ``hyper`` (:class:`Hyperparams`, may be traced; default
    ``rl.hyperparams()``) sets beta and the learning rate. The default optimizer
    is :func:`default_optimizer` (the gymnax side's injected-learning-rate
    Adam), whose learning rate each update sets to ``hyper.lr``; a user
    ``optimizer`` (any optax transformation, its own learning rate included)
    replaces it and ``hyper.lr`` is unused.
    """
    if rl.response_len(task) < task.answer_len:
        raise ValueError(
            f"max_new_tokens={rl.response_len(task)} < answer length "
            f"{task.answer_len} of task {task.name!r}"
        )
    _check_sharding(batch_sharding, task, rl)
    if rl.overlong_buffer is not None and rl.overlong_buffer > rl.response_len(task):
        raise ValueError(
            f"RLConfig.overlong_buffer={rl.overlong_buffer} exceeds the response "
            f"budget R={rl.response_len(task)}"
        )
    lr_injected = optimizer is None
    if optimizer is None:
        optimizer = default_optimizer(rl)

    def init(key: Array, params: Any) -> RLState:
        return RLState(params, optimizer.init(params), key, jnp.zeros((), jnp.int32))

    def update(
        state: RLState, ref_params: Any, hyper: Hyperparams | None = None
    ) -> tuple[RLState, dict[str, Array]]:
        hyper = rl.hyperparams() if hyper is None else hyper
        key, batch_key = jax.random.split(state.key)
        ro = rollout(
            batch_key, state.params, ref_params, task, model_cfg, rl,
            batch_sharding=batch_sharding,
        )  # fmt: skip
        batch = score(ro, rl, hyper.beta)
        grad_fn = jax.value_and_grad(loss_fn, has_aux=True)

        def epoch(carry, _):
            params, opt_state = carry
            (loss, aux), grads = grad_fn(params, batch, model_cfg, rl, hyper.beta)
            # This update's (possibly traced) learning rate; a rejected step
            # below keeps the state as it was, rate included.
            stepping = (
                set_learning_rate(opt_state, hyper.lr) if lr_injected else opt_state
            )
            updates, new_opt_state = optimizer.update(grads, stepping, params)
            grad_norm = optax.tree.norm(grads)
            # The same guard as every gymnax-side step: a non-finite step is
            # rejected (parameters and optimizer state kept) and reported.
            (params, opt_state), nonfinite = keep_if_finite(
                grad_norm,
                (optax.apply_updates(params, updates), new_opt_state),
                (params, opt_state),
            )
            aux = {**aux, "loss": loss, "grad_norm": grad_norm, "nonfinite": nonfinite}
            return (params, opt_state), aux

        (params, opt_state), aux = jax.lax.scan(
            epoch, (state.params, state.opt_state), None, length=rl.epochs
        )
        metrics = {name: value[0] for name, value in aux.items()}
        metrics["clip_frac"] = jnp.mean(aux["clip_frac"])
        metrics["nonfinite"] = jnp.max(aux["nonfinite"])  # any epoch rejected
        metrics.update(
            reward=jnp.mean(batch.reward),
            true_reward=jnp.mean(batch.true_reward),
            accuracy=jnp.mean(batch.accuracy),
            kl_estimate=jnp.mean(batch.kl_estimate),
            response_length=jnp.mean(jnp.sum(ro.mask, axis=1)),
            truncated=jnp.mean(batch.truncated),
            informative=ro.informative,
        )
        return RLState(params, opt_state, key, state.step + 1), metrics

    return RL(init, update)


def default_optimizer(rl: RLConfig) -> optax.GradientTransformation:
    """The token side's default optimizer: the gymnax side's
    :func:`jaxpg.algorithms.base.injected_adam` (global-norm clipping at
    ``rl.max_grad_norm``, Adam with optax's ``eps=1e-8``, the learning rate
    injected into the optimizer state, ``rl.lr`` at init). :func:`make_rl`'s
    ``update`` sets the injected rate to ``hyper.lr`` before each update."""
    return injected_adam(rl.lr, rl.max_grad_norm, eps=1e-8)


def run_updates(
    algo: RL,
    state: RLState,
    ref_params: Any,
    num_updates: int,
    hyper: Hyperparams | None = None,
) -> tuple[RLState, dict[str, Array]]:
    """``num_updates`` calls of ``algo.update`` in one ``lax.scan``:
    ``(state, metrics)`` with each metric stacked to ``[num_updates]``.

    The same keys and draws as calling ``algo.update`` that many times in a
    Python loop (equal up to float rounding between separately compiled
    programs), without a dispatch and a host round trip per update: ``jit``
    it and call it once per chunk of updates (what ``jaxpg lm`` does between
    progress reports). ``num_updates`` is static.
    """
    num_updates = checks.positive_int("num_updates", num_updates)
    return jax.lax.scan(
        lambda s, _: algo.update(s, ref_params, hyper),
        state,
        None,
        length=num_updates,
    )


class RLOutput(NamedTuple):
    params: Any  # final policy
    metrics: dict[str, Array]  # name -> [U] per update


def make_rl_train(
    task: Task,
    model_cfg: ModelLike,
    rl: RLConfig,
    *,
    optimizer: optax.GradientTransformation | None = None,
    batch_sharding: jax.sharding.Sharding | None = None,
) -> Callable[[Array, Any, Any], RLOutput]:
    """``train(key, params, ref_params, hyper=None) -> RLOutput``:
    ``rl.num_updates`` updates in one ``lax.scan`` (:func:`run_updates`),
    starting from ``params`` (usually the SFT reference itself). ``hyper``
    and ``batch_sharding``: see :func:`make_rl`."""
    algo = make_rl(
        task, model_cfg, rl, optimizer=optimizer, batch_sharding=batch_sharding
    )

    def train(
        key: Array, params: Any, ref_params: Any, hyper: Hyperparams | None = None
    ) -> RLOutput:
        state = algo.init(key, params)
        # Per-member from the start under vmap: the update is batched once
        # (jaxpg.kernels.batching.batched_like).
        params, opt_state = batched_like((state.params, state.opt_state), (key, hyper))
        state = state.replace(params=params, opt_state=opt_state)
        state, metrics = run_updates(algo, state, ref_params, rl.num_updates, hyper)
        return RLOutput(state.params, metrics)

    return train


def train_seeds(
    task: Task,
    model_cfg: ModelLike,
    rl: RLConfig,
    params: Any,
    ref_params: Any,
    num_seeds: int,
    *,
    optimizer: optax.GradientTransformation | None = None,
    first_seed: int = 0,
    devices: Sequence[Any] | None = None,
) -> RLOutput:
    """Seeds ``first_seed .. first_seed + num_seeds - 1`` in one compiled
    program (leaves gain ``[S]``): seed ``i`` is
    ``make_rl_train(...)(jax.random.key(i), params, ref_params)``.

    The seeds are laid over ``devices`` (default: all devices of all
    processes) as :func:`jaxpg.train_seeds` lays them
    (:func:`jaxpg.drivers.parallel.run_members`): any seed count, ``params``
    and ``ref_params`` copied to every device (with several processes, the
    same values on each), no collective. Called from the host, not inside
    ``jit``: for a traced call, ``jax.vmap(make_rl_train(...), (0, None,
    None))`` over keys is the same program on one device. For chunks,
    checkpoints and a progress bar, see
    :func:`jaxpg.sequence.seeds.train_seeds` (what ``jaxpg lm`` runs).
    """
    num_seeds = checks.positive_int("num_seeds", num_seeds)
    first_seed = checks.positive_int("first_seed", first_seed, 0)
    train = make_rl_train(task, model_cfg, rl, optimizer=optimizer)
    return parallel.run_members(
        train,
        np.arange(first_seed, first_seed + num_seeds),
        shared=(params, ref_params),
        devices=devices,
    )


def evaluate(
    key: Array,
    params: Any,
    task: Task,
    model_cfg: ModelLike,
    num_prompts: int = 512,
    max_new_tokens: int | None = None,
    temperature: float = 1.0,
) -> dict[str, Array]:
    """Mean ``accuracy``, ``true_reward`` and ``reward`` of sampled responses to
    ``num_prompts`` fresh prompts (scalars)."""
    num_prompts = checks.positive_int("evaluate: num_prompts", num_prompts)
    if max_new_tokens is not None:
        max_new_tokens = checks.positive_int("evaluate: max_new_tokens", max_new_tokens)
    prompt_key, sample_key = jax.random.split(key)
    r = task.max_new_tokens if max_new_tokens is None else max_new_tokens
    prompts = task.sample_prompts(prompt_key, num_prompts)
    columns = tasks.draw_columns(task, prompt_key, num_prompts)
    s = sampling.sample(
        sample_key, params, model_cfg, prompts, r, eos_id=EOS, pad_id=PAD,
        temperature=temperature,
    )  # fmt: skip
    reward, true_reward, accuracy = scores(
        task, prompts, s.responses, s.mask, "num_prompts", columns
    )
    return {
        "accuracy": jnp.mean(accuracy),
        "true_reward": jnp.mean(true_reward),
        "reward": jnp.mean(reward),
    }


def reward_hacking_flag(
    true_reward: Array | np.ndarray,
    proxy_reward: Array | np.ndarray,
    window: int = 10,
    tol: float = 0.05,
) -> np.ndarray:
    r"""Where the proxy rises while the true reward falls, over a window.

    At update ``u >= 2 window - 1``, with :math:`\Delta x` the mean of ``x`` over
    updates ``(u - window, u]`` minus its mean over ``(u - 2 window, u - window]``:
    flag :math:`= \Delta\,\mathrm{proxy} > tol` and
    :math:`\Delta\,\mathrm{true} < -tol`.

    Args:
      true_reward, proxy_reward: ``[..., U]`` per-update means.

    Returns:
      ``[..., U]`` bool (False for the first ``2 window - 1`` updates).
    """
    true_reward = np.asarray(true_reward, np.float64)
    proxy_reward = np.asarray(proxy_reward, np.float64)
    chex.assert_equal_shape([true_reward, proxy_reward])
    if window < 1:
        raise ValueError(f"window={window} must be >= 1")

    def delta(x):
        c = np.cumsum(x, axis=-1)
        c = np.concatenate([np.zeros_like(c[..., :1]), c], axis=-1)
        u = x.shape[-1]
        out = np.full(x.shape, np.nan)
        if u >= 2 * window:
            recent = c[..., 2 * window :] - c[..., window:-window]
            before = c[..., window:-window] - c[..., : -2 * window]
            out[..., 2 * window - 1 :] = (recent - before) / window
        return out

    with np.errstate(invalid="ignore"):
        return (delta(proxy_reward) > tol) & (delta(true_reward) < -tol)
