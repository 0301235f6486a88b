r"""Direct preference optimisation (DPO; Rafailov et al. 2023) on preference
pairs: the offline baseline beside RL against a learned reward model.

With the frozen reference :math:`\pi_{\mathrm{ref}}`, the implicit reward of a
response is :math:`\beta \log \pi_\theta(y \mid x) / \pi_{\mathrm{ref}}(y \mid
x)` (:math:`\log\pi(y\mid x) = \sum_t m_t \log\pi(y_t \mid x, y_{<t})` over the
response's tokens, EOS included). For pairs with :math:`y^+` preferred to
:math:`y^-` and weights :math:`w_b` (0 drops a pair, e.g. a tie):

.. math:: h_b = \beta\big[(\log\pi_\theta(y^+_b) - \log\pi_{\mathrm{ref}}(y^+_b))
   - (\log\pi_\theta(y^-_b) - \log\pi_{\mathrm{ref}}(y^-_b))\big],\qquad
   L = -\frac{1}{\sum_b w_b}\sum_b w_b \log\sigma(h_b),

the Bradley–Terry loss of :mod:`.reward_model` with the implicit reward in
place of a learned one, so the same :class:`.reward_model.PreferencePairs`
(the user's, or :func:`.reward_model.preference_pairs` from a gold reward)
train either. Its gradient: :math:`\partial L / \partial \log\pi_\theta(y^\pm_b)
= \mp\beta\, w_b\, \sigma(-h_b) / \sum_b w_b`.

:func:`make_dpo` is a pure ``(init, update)`` pair (Adam on minibatches of
pairs drawn with replacement); :func:`make_dpo_train` runs ``num_steps`` of it
in one ``lax.scan``. The reference's log-probs of the pairs are computed once
(:func:`dpo_data`). ``beta`` may be traced (``vmap`` over it for a sweep).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import flax
import jax
import jax.numpy as jnp
import optax

from jaxpg.algorithms.base import injected_adam, keep_if_finite
from jaxpg.sequence import checks, sampling
from jaxpg.sequence.reward_model import PreferencePairs
from jaxpg.sequence.sampling import ModelLike

Array = jax.Array

__all__ = [
    "DPO",
    "DPOData",
    "DPOOutput",
    "DPOState",
    "dpo_data",
    "dpo_loss",
    "make_dpo",
    "make_dpo_train",
    "pair_log_probs",
    "sequence_log_probs",
]


def sequence_log_probs(
    params: Any, model: ModelLike, prompts: Array, responses: Array, mask: Array
) -> Array:
    r""":math:`\log\pi(y \mid x) = \sum_t m_t \log\pi(y_t \mid x, y_{<t})`.

    ``prompts [N, Lp]``, ``responses [N, R]`` int32, ``mask [N, R]`` -> ``[N]``.
    """
    if mask.shape != responses.shape:
        raise ValueError(f"mask {mask.shape} must equal responses {responses.shape}")
    logits = sampling.response_logits(params, model, prompts, responses)
    return jnp.sum(sampling.token_log_probs(logits, responses) * mask, axis=1)


def pair_log_probs(
    params: Any, model: ModelLike, pairs: PreferencePairs
) -> tuple[Array, Array]:
    """``(log pi(y+ | x), log pi(y- | x))``, each ``[B]``: one teacher-forced
    pass, each prompt run once for its two responses."""
    b, r = pairs.chosen.shape
    prompts = jnp.repeat(pairs.prompts, 2, axis=0)
    responses = jnp.stack([pairs.chosen, pairs.rejected], axis=1).reshape(2 * b, r)
    mask = jnp.stack([pairs.chosen_mask, pairs.rejected_mask], axis=1)
    logits = sampling.response_logits(params, model, prompts, responses, 2)
    logp = sampling.token_log_probs(logits, responses).reshape(b, 2, r)
    both = jnp.sum(logp * mask, axis=2)
    return both[:, 0], both[:, 1]


def dpo_loss(
    policy_chosen: Array,
    policy_rejected: Array,
    ref_chosen: Array,
    ref_rejected: Array,
    beta: Array | float,
    weight: Array | None = None,
) -> tuple[Array, Array]:
    r"""The module docstring's :math:`L` and the margins :math:`h`.

    Args:
      policy_chosen, policy_rejected: ``[B]`` :math:`\log\pi_\theta(y^\pm)`.
      ref_chosen, ref_rejected: ``[B]`` :math:`\log\pi_{\mathrm{ref}}(y^\pm)`.
      beta: ``[]`` the KL coefficient :math:`\beta > 0` (may be traced).
      weight: ``[B]`` non-negative pair weights (default 1).

    Returns:
      ``(loss [], margins [B])``; the loss is 0 when every weight is 0.
    """
    shapes = {
        a.shape for a in (policy_chosen, policy_rejected, ref_chosen, ref_rejected)
    }
    if len(shapes) != 1 or policy_chosen.ndim != 1:
        raise ValueError(
            "policy_chosen, policy_rejected, ref_chosen and ref_rejected must "
            f"all be [B], got shapes {sorted(shapes)}"
        )
    if isinstance(beta, int | float):
        checks.number("dpo_loss: beta", beta, 0.0, low_open=True)
    weight = jnp.ones_like(policy_chosen) if weight is None else weight
    margins = beta * ((policy_chosen - ref_chosen) - (policy_rejected - ref_rejected))
    loss = jnp.sum(weight * jax.nn.softplus(-margins))
    return loss / jnp.maximum(jnp.sum(weight), 1e-12), margins


class DPOData(NamedTuple):
    """Pairs with the frozen reference's log-probs of their responses."""

    pairs: PreferencePairs
    ref_chosen: Array  # [B] log pi_ref(y+ | x)
    ref_rejected: Array  # [B] log pi_ref(y- | x)


def dpo_data(ref_params: Any, model: ModelLike, pairs: PreferencePairs) -> DPOData:
    """The reference's log-probs of every pair, computed once (no gradient)."""
    ref_c, ref_r = pair_log_probs(ref_params, model, pairs)
    return DPOData(pairs, *jax.lax.stop_gradient((ref_c, ref_r)))


@flax.struct.dataclass
class DPOState:
    """Train state of one seed (treat as an opaque pytree)."""

    params: Any
    opt_state: Any
    key: Array
    step: Array  # [] int32


class DPO(NamedTuple):
    init: Callable[[Array, Any], DPOState]
    update: Callable[..., tuple[DPOState, dict[str, Array]]]


def make_dpo(
    model: ModelLike,
    *,
    beta: float = 0.1,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_grad_norm: float | None = 1.0,
) -> DPO:
    """``init(key, params) -> DPOState``; ``update(state, data, beta=None) ->
    (state, metrics)``: one Adam step on :func:`dpo_loss` over ``batch_size``
    pairs of ``data`` (:func:`dpo_data`) drawn with replacement. ``beta`` (may
    be traced) overrides the default. A non-finite step is rejected (state
    kept) and reported, as in :func:`.rl.make_rl`.

    Metrics (scalars, weighted means over the minibatch): ``loss``,
    ``accuracy`` (fraction with margin > 0), ``margin``, ``chosen_log_ratio``
    and ``rejected_log_ratio`` (:math:`\\log\\pi_\\theta/\\pi_{ref}` of
    :math:`y^\\pm`), ``grad_norm``, ``nonfinite``.
    """
    beta = checks.number("make_dpo: beta", beta, 0.0, low_open=True)
    batch_size = checks.positive_int("make_dpo: batch_size", batch_size)
    lr = checks.learning_rate("make_dpo: lr", lr)
    if max_grad_norm is not None:
        checks.number("make_dpo: max_grad_norm", max_grad_norm, 0.0, low_open=True)
    optimizer = injected_adam(lr, max_grad_norm, eps=1e-8)
    default_beta = beta

    def loss_fn(params, batch: DPOData, beta):
        pc, pr = pair_log_probs(params, model, batch.pairs)
        loss, margins = dpo_loss(
            pc, pr, batch.ref_chosen, batch.ref_rejected, beta, batch.pairs.weight
        )
        return loss, (margins, pc - batch.ref_chosen, pr - batch.ref_rejected)

    def init(key: Array, params: Any) -> DPOState:
        return DPOState(params, optimizer.init(params), key, jnp.zeros((), jnp.int32))

    def update(
        state: DPOState, data: DPOData, beta: Array | float | None = None
    ) -> tuple[DPOState, dict[str, Array]]:
        beta = default_beta if beta is None else beta
        key, draw = jax.random.split(state.key)
        n = data.pairs.prompts.shape[0]
        index = jax.random.randint(draw, (batch_size,), 0, n)
        batch = jax.tree.map(lambda x: x[index], data)
        (loss, (margins, lr_c, lr_r)), grads = jax.value_and_grad(
            loss_fn, has_aux=True
        )(state.params, batch, beta)
        updates, opt_state = optimizer.update(grads, state.opt_state, state.params)
        grad_norm = optax.tree.norm(grads)
        (params, opt_state), nonfinite = keep_if_finite(
            grad_norm,
            (optax.apply_updates(state.params, updates), opt_state),
            (state.params, state.opt_state),
        )
        w = batch.pairs.weight
        total = jnp.maximum(jnp.sum(w), 1e-12)

        def mean(x):
            return jnp.sum(w * x) / total

        metrics = {
            "loss": loss,
            "accuracy": mean((margins > 0).astype(jnp.float32)),
            "margin": mean(margins),
            "chosen_log_ratio": mean(lr_c),
            "rejected_log_ratio": mean(lr_r),
            "grad_norm": grad_norm,
            "nonfinite": nonfinite,
        }
        return DPOState(params, opt_state, key, state.step + 1), metrics

    return DPO(init, update)


class DPOOutput(NamedTuple):
    params: Any  # final policy
    metrics: dict[str, Array]  # name -> [num_steps]


def make_dpo_train(
    model: ModelLike,
    *,
    beta: float = 0.1,
    num_steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
    max_grad_norm: float | None = 1.0,
) -> Callable[..., DPOOutput]:
    """``train(key, params, ref_params, pairs, beta=None) -> DPOOutput``:
    :func:`dpo_data` once, then ``num_steps`` :func:`make_dpo` updates in one
    ``lax.scan``, starting from ``params`` (usually the reference itself).
    Pure and jittable; ``vmap`` over keys (seeds) or ``beta``."""
    num_steps = checks.positive_int("make_dpo_train: num_steps", num_steps)
    algo = make_dpo(
        model, beta=beta, batch_size=batch_size, lr=lr, max_grad_norm=max_grad_norm
    )

    def train(
        key: Array,
        params: Any,
        ref_params: Any,
        pairs: PreferencePairs,
        beta: Array | float | None = None,
    ) -> DPOOutput:
        data = dpo_data(ref_params, model, pairs)
        state, metrics = jax.lax.scan(
            lambda s, _: algo.update(s, data, beta),
            algo.init(key, params),
            None,
            length=num_steps,
        )
        return DPOOutput(state.params, metrics)

    return train
