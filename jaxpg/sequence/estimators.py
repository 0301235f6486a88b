r"""Kernels for sequence-level policy gradients: group advantages, loss
aggregations, per-token surrogate terms, KL to a reference.

Pure array functions (no state, no randomness). Notation: ``P`` prompts,
``G`` samples per prompt, ``N = P * G`` responses, ``R`` response length,
:math:`r_{pg}` the (possibly KL-shaped) reward of sample ``g`` of prompt ``p``,
:math:`m_{it}` the response mask, :math:`|y_i| = \sum_t m_{it}`.

Group advantages (:func:`group_advantages`, one scalar per response, given to
every token of it). "Unbiased" means :math:`E[\hat g] = \nabla_\theta J` with
:math:`J = E_p E_{y\sim\pi}[r]`, the gradient estimated with the ``"sum"``
aggregation (``"constant"`` with ``norm=1``); ``tests/test_sequence_exact.py``
checks each claim against the exact gradient by enumeration.

* ``reinforce``: :math:`A = r_{pg}`. Unbiased (Williams 1992).
* ``reinforce_mean``: :math:`A = r_{pg} - \bar r`, the mean over all ``N``
  (self included). The self term shrinks it: :math:`E[\hat g] = \frac{N-1}{N}
  \nabla J` (unbiased up to that factor; other samples are independent).
* ``rloo``: :math:`A = r_{pg} - \frac{1}{G-1}\sum_{g' \ne g} r_{pg'}`.
  Unbiased (Kool et al. 2019; Ahmadian et al. 2024).
* ``grpo``: :math:`A = (r_{pg} - \bar r_p) / (\sigma_p + \epsilon)`. Biased
  (Shao et al. 2024, DeepSeekMath).
* ``dr_grpo``: :math:`A = r_{pg} - \bar r_p`. Unbiased up to the factor
  :math:`\frac{G-1}{G}` (Liu et al. 2025, "Understanding R1-Zero-Like Training").
* ``reinforce_pp``: :math:`A = (r_{pg} - \bar r) / (\sigma + \epsilon)` over all
  ``N``. Biased (Hu 2025, REINFORCE++).
* ``grpo_batch``: :math:`A = (r_{pg} - \bar r_p) / (\sigma_B + \epsilon)`, the
  group mean removed, scaled by the *sample* std of all ``N`` rewards of the
  batch (TRL's ``scale_rewards="batch"``). Biased (the scale is random and
  depends on the sample's own reward), but it does not reweight prompts.

Reward scaling per group / batch / none (TRL's ``scale_rewards``) is
``grpo`` / ``grpo_batch`` / ``dr_grpo``.

GRPO's std convention: :math:`\sigma_p` is the *sample* standard deviation of
the group (Bessel's ``G - 1`` divisor, as ``torch.std`` in TRL's
GRPOTrainer), :math:`\epsilon = 10^{-4}` added to it. A group whose rewards are
all equal gets advantage exactly 0. ``reinforce_pp`` uses the population std
(divisor ``N``) of the batch. ``dr_grpo`` equals ``(G - 1) / G`` times ``rloo``
exactly, hence unbiased up to that constant. GRPO is biased twice: dividing by
:math:`\sigma_p` reweights prompts by the inverse spread of their rewards, and
:math:`\sigma_p` depends on the sample's own reward.

Loss aggregation (:func:`aggregate`) of per-token terms :math:`x_{it}`:

* ``seq_mean`` (GRPO): :math:`\frac1N\sum_i \frac{1}{|y_i|}\sum_t m_{it} x_{it}`.
  Length-normalised: biased when the reward correlates with length (short
  correct answers get larger per-token steps).
* ``token_mean`` (DAPO, Yu et al. 2025):
  :math:`\sum_{it} m_{it} x_{it} / \sum_{it} m_{it}`; the divisor is random,
  so slightly biased; every token weighs the same.
* ``constant`` (Dr. GRPO): :math:`\frac{1}{N\,C}\sum_{it} m_{it} x_{it}` with a
  constant ``C`` (default ``R``): an unbiased estimate of :math:`\nabla J / C`.

KL to the reference (per token, :math:`\log\rho_t = \log\pi_{ref} - \log\pi`,
estimators from :func:`jaxpg.kernels.losses.kl_estimate`). What each placement's
gradient follows, in expectation over on-policy samples (derived, then checked
by enumeration in the tests):

* in the reward: :math:`r \leftarrow r - \beta\sum_t m_t k_t` (stop-gradient),
  then the score-function estimator. ``k1`` follows
  :math:`-\beta\nabla\,\mathrm{KL}(\pi\|\pi_{ref})` of the whole sequence
  (unbiased); ``k2`` and ``k3`` do not (their expectation has the right value
  for ``k3`` but the score function misses their own dependence on
  :math:`\theta`).
* in the loss: :math:`+\beta\sum_t m_t k_t` differentiated through
  :math:`\log\pi`. ``k1``: zero mean gradient (:math:`E[\nabla\log\pi] = 0`).
  ``k2``: :math:`\beta\sum_t E_{y_{<t}}\nabla\mathrm{KL}(\pi\|\pi_{ref})(\cdot|y_{<t})`
  with the prefix distribution held fixed (the per-token forward KL; it misses
  the effect of a token on later tokens' KL). ``k3``: the same with the
  *reverse* KL :math:`\mathrm{KL}(\pi_{ref}\|\pi)` per token.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxpg.kernels.losses import kl_estimate, masked_mean

Array = jax.Array

ADVANTAGES = (
    "reinforce",
    "reinforce_mean",
    "rloo",
    "grpo",
    "dr_grpo",
    "reinforce_pp",
    "grpo_batch",
)
AGGREGATIONS = ("seq_mean", "token_mean", "constant")
KL_ESTIMATORS = ("k1", "k2", "k3")
GRPO_STD_EPS = 1e-4


def _shifted_mean(x: Array, axis) -> Array:
    # Shift by the first entry: a group of equal rewards gets exactly their value
    # as the mean, so its advantages are exactly 0 (no ulp noise / eps).
    if axis is None:
        first = x.ravel()[0]
        return first + jnp.mean(x - first)
    first = jax.lax.slice_in_dim(x, 0, 1, axis=axis)
    return first + jnp.mean(x - first, axis=axis, keepdims=True)


def group_advantages(rewards: Array, kind: str, eps: float = GRPO_STD_EPS) -> Array:
    r"""One advantage per response from rewards grouped by prompt.

    Args:
      rewards: ``[P, G]`` float rewards (already KL-shaped if so placed).
      kind: one of :data:`ADVANTAGES` (formulas in the module docstring).
      eps: added to the standard deviation of ``grpo`` and ``reinforce_pp``.

    Returns:
      ``[P, G]`` advantages.

    Raises:
      ValueError: unknown ``kind``; ``rloo`` with ``G < 2``.
    """
    chex.assert_rank(rewards, 2)
    g = rewards.shape[1]
    if kind == "reinforce":
        return rewards
    if kind == "reinforce_mean":
        return rewards - _shifted_mean(rewards, None)
    if kind == "rloo":
        if g < 2:
            raise ValueError(f"advantage='rloo' needs group_size >= 2, got G={g}")
        # r - mean of the others = G/(G-1) (r - group mean): equal rewards give 0.
        return (rewards - _shifted_mean(rewards, 1)) * (g / (g - 1))
    if kind == "dr_grpo":
        return rewards - _shifted_mean(rewards, 1)
    if kind == "grpo":
        if g < 2:
            raise ValueError(f"advantage='grpo' needs group_size >= 2, got G={g}")
        centred = rewards - _shifted_mean(rewards, 1)
        std = jnp.sqrt(jnp.sum(jnp.square(centred), axis=1, keepdims=True) / (g - 1))
        return centred / (std + eps)
    if kind == "reinforce_pp":
        centred = rewards - _shifted_mean(rewards, None)
        std = jnp.sqrt(jnp.mean(jnp.square(centred)))
        return centred / (std + eps)
    if kind == "grpo_batch":
        n = rewards.size
        if n < 2:
            raise ValueError(f"advantage='grpo_batch' needs N >= 2 rewards, got {n}")
        spread = rewards - _shifted_mean(rewards, None)
        std = jnp.sqrt(jnp.sum(jnp.square(spread)) / (n - 1))
        return (rewards - _shifted_mean(rewards, 1)) / (std + eps)
    raise ValueError(f"advantage={kind!r} is not one of {ADVANTAGES}")


def aggregate(terms: Array, mask: Array, kind: str, norm: float = 1.0) -> Array:
    r"""Reduce per-token loss terms to a scalar (module docstring formulas).

    Args:
      terms: ``[N, R]`` per-token terms :math:`x_{it}`.
      mask: ``[N, R]`` float response mask.
      kind: one of :data:`AGGREGATIONS`.
      norm: the constant ``C`` of ``constant``.
    """
    chex.assert_equal_shape([terms, mask])
    chex.assert_rank(terms, 2)
    if kind == "token_mean":
        return masked_mean(terms, mask)
    if kind == "seq_mean":
        per_seq = jnp.sum(terms * mask, axis=1) / jnp.maximum(jnp.sum(mask, axis=1), 1)
        return jnp.mean(per_seq)
    if kind == "constant":
        return jnp.sum(terms * mask) / (terms.shape[0] * norm)
    raise ValueError(f"aggregation={kind!r} is not one of {AGGREGATIONS}")


def _clipped_objective(ratio, advantages, low, high, dual_clip):
    """``(objective, clipped)``: PPO's ``min(rho A, clip(rho, low, high) A)``,
    with dual clipping ``max(., c A)`` where ``A < 0``; ``clipped`` is 1 where
    the objective does not move with ``rho`` (its gradient is 0)."""
    clipped_ratio = jnp.clip(ratio, low, high)
    objective = jnp.minimum(ratio * advantages, clipped_ratio * advantages)
    clipped = ratio * advantages > clipped_ratio * advantages
    if dual_clip is not None:
        floor = dual_clip * advantages
        dual = (advantages < 0) & (objective < floor)
        objective = jnp.where(dual, floor, objective)
        clipped = clipped | dual
    return objective, jax.lax.stop_gradient(clipped.astype(ratio.dtype))


def surrogate_terms(
    log_probs: Array,
    behaviour_log_probs: Array,
    advantages: Array,
    clip_eps: Array | float | None = None,
    *,
    clip_eps_high: Array | float | None = None,
    dual_clip: Array | float | None = None,
) -> tuple[Array, Array]:
    r"""Per-token policy-gradient terms to minimise, and where they are clipped.

    :math:`x_t = -\rho_t A` with :math:`\rho_t = \exp(\log\pi_\theta -
    \mathrm{sg}(\log\mu))`; with ``clip_eps`` PPO's
    :math:`x_t = -\min(\rho_t A, \mathrm{clip}(\rho_t, 1-\epsilon_{low},
    1+\epsilon_{high}) A)` (Schulman et al. 2017; ``clip_eps_high`` sets
    :math:`\epsilon_{high} > \epsilon_{low}` = ``clip_eps``: DAPO's
    clip-higher, Yu et al. 2025); with ``dual_clip`` :math:`c > 1`, where
    :math:`A < 0` the term is :math:`-\max(\cdot, cA)` (Ye et al. 2020,
    dual-clip PPO: a bounded step however large the ratio).
    On the first epoch over fresh samples :math:`\rho = 1`, inside every clip
    range, and :math:`\nabla x_t = -A\,\nabla\log\pi_\theta(y_t)`: REINFORCE,
    whatever the clip settings.

    Args:
      log_probs: ``[N, R]`` :math:`\log\pi_\theta(y_t)`, differentiable.
      behaviour_log_probs: ``[N, R]`` log-probs under the sampling policy.
      advantages: ``[N, R]`` (gradient stopped).
      clip_eps: PPO's :math:`\epsilon` (:math:`\epsilon_{low}`), or ``None``
        for no clipping.
      clip_eps_high: :math:`\epsilon_{high}`; ``None``: ``clip_eps``.
      dual_clip: :math:`c > 1`, or ``None``.

    Returns:
      ``(terms [N, R], clipped [N, R] float 0/1)``.
    """
    chex.assert_equal_shape([log_probs, behaviour_log_probs, advantages])
    advantages = jax.lax.stop_gradient(advantages)
    ratio = jnp.exp(log_probs - jax.lax.stop_gradient(behaviour_log_probs))
    if clip_eps is None:
        if clip_eps_high is not None or dual_clip is not None:
            raise ValueError("clip_eps_high and dual_clip need clip_eps")
        return -ratio * advantages, jnp.zeros_like(ratio)
    high = clip_eps if clip_eps_high is None else clip_eps_high
    objective, clipped = _clipped_objective(
        ratio, advantages, 1.0 - clip_eps, 1.0 + high, dual_clip
    )
    return -objective, clipped


def sequence_surrogate_terms(
    log_probs: Array,
    behaviour_log_probs: Array,
    advantages: Array,
    mask: Array,
    clip_eps: Array | float | None = None,
    *,
    clip_eps_high: Array | float | None = None,
    dual_clip: Array | float | None = None,
) -> tuple[Array, Array]:
    r"""GSPO's sequence-level terms (Zheng et al. 2025, "Group Sequence Policy
    Optimization"), laid on every token of the sequence.

    :math:`s_i = \exp\big(\frac{1}{|y_i|}\sum_t m_{it}(\log\pi_\theta(y_{it})
    - \mathrm{sg}\log\mu(y_{it}))\big)`, the length-normalised sequence
    ratio; :math:`x_i = -\min(s_i A_i, \mathrm{clip}(s_i, 1-\epsilon_{low},
    1+\epsilon_{high}) A_i)` (and the dual clip as :func:`surrogate_terms`).
    With ``aggregation="seq_mean"`` the loss is :math:`\frac1N\sum_i x_i`,
    GSPO's objective. At :math:`s = 1` (first epoch):
    :math:`\nabla x_i = -\frac{A_i}{|y_i|}\sum_t m_{it}\nabla\log\pi(y_{it})`,
    the token-ratio ``seq_mean`` gradient: GSPO changes only how off-policy
    epochs are clipped and weighted (the whole sequence at once).

    Args:
      log_probs, behaviour_log_probs, advantages, mask: ``[N, R]``
        (``advantages`` constant along ``R``).
      clip_eps, clip_eps_high, dual_clip: as :func:`surrogate_terms`.

    Returns:
      ``(terms [N, R], clipped [N, R] float 0/1)``, constant along ``R``.
    """
    chex.assert_equal_shape([log_probs, behaviour_log_probs, advantages, mask])
    advantages = jax.lax.stop_gradient(advantages[:, 0])
    log_ratio = (log_probs - jax.lax.stop_gradient(behaviour_log_probs)) * mask
    length = jnp.maximum(jnp.sum(mask, axis=1), 1.0)
    ratio = jnp.exp(jnp.sum(log_ratio, axis=1) / length)  # [N]
    if clip_eps is None:
        if clip_eps_high is not None or dual_clip is not None:
            raise ValueError("clip_eps_high and dual_clip need clip_eps")
        objective, clipped = ratio * advantages, jnp.zeros_like(ratio)
    else:
        high = clip_eps if clip_eps_high is None else clip_eps_high
        objective, clipped = _clipped_objective(
            ratio, advantages, 1.0 - clip_eps, 1.0 + high, dual_clip
        )
    shape = log_probs.shape
    return (
        jnp.broadcast_to(-objective[:, None], shape),
        jnp.broadcast_to(clipped[:, None], shape),
    )


def overlong_penalty(length: Array, max_len: int, buffer: int) -> Array:
    r"""DAPO's soft overlong punishment (Yu et al. 2025): ``0`` while
    :math:`|y| \le L - L_b`, then :math:`(L - L_b - |y|) / L_b`, reaching
    :math:`-1` at the budget :math:`|y| = L` (a truncated response).

    Args:
      length: ``[N]`` response lengths :math:`|y|` (EOS included).
      max_len: the response budget :math:`L` (``R``).
      buffer: :math:`L_b`, ``1 <= buffer <= max_len``.

    Returns:
      ``[N]`` float32 penalties in ``[-1, 0]``.
    """
    if not 1 <= buffer <= max_len:
        raise ValueError(f"overlong buffer={buffer} must be in [1, R={max_len}]")
    excess = length.astype(jnp.float32) - (max_len - buffer)
    return -jnp.clip(excess / buffer, 0.0, 1.0)


def truncated(responses: Array, mask: Array, eos_id: int) -> Array:
    """``[N]`` float 0/1: 1 where the response has no ``eos_id`` (it ran to the
    budget). ``responses [N, R]`` int, ``mask [N, R]``."""
    has_eos = jnp.any((responses == eos_id) & (mask > 0), axis=1)
    return 1.0 - has_eos.astype(jnp.float32)


def dynamic_groups(rewards: Array, keep: int) -> tuple[Array, Array]:
    r"""DAPO's dynamic sampling (Yu et al. 2025) in a fixed shape: which
    ``keep`` of ``K`` groups to train on.

    A group is informative when its rewards are not all equal (equal rewards
    give every group baseline an advantage of 0). The informative groups come
    first, in the order drawn, then the others (only when fewer than ``keep``
    are informative).

    Args:
      rewards: ``[K, G]``.
      keep: ``P <= K``, static.

    Returns:
      ``(index [P] int32 of the kept groups, informative [K] bool)``.
    """
    chex.assert_rank(rewards, 2)
    if not 1 <= keep <= rewards.shape[0]:
        raise ValueError(f"keep={keep} must be in [1, {rewards.shape[0]}]")
    informative = jnp.any(rewards != rewards[:, :1], axis=1)
    order = jnp.argsort(~informative, stable=True)
    return order[:keep].astype(jnp.int32), informative


def kl_tokens(log_probs: Array, ref_log_probs: Array, kind: str) -> Array:
    """Per-token KL estimate ``[N, R]`` (:func:`jaxpg.kernels.losses.kl_estimate`)."""
    if kind not in KL_ESTIMATORS:
        raise ValueError(f"kl_estimator={kind!r} is not one of {KL_ESTIMATORS}")
    return kl_estimate(log_probs, ref_log_probs, kind)


def kl_shaped_rewards(
    rewards: Array, kl: Array, mask: Array, beta: Array | float
) -> Array:
    r""":math:`r_i - \beta \sum_t m_{it} k_{it}` with the KL term's gradient stopped.

    Args:
      rewards: ``[N]``; kl, mask: ``[N, R]``.
    """
    chex.assert_equal_shape([kl, mask])
    penalty = jnp.sum(jax.lax.stop_gradient(kl) * mask, axis=1)
    chex.assert_equal_shape([rewards, penalty])
    return rewards - beta * penalty


def exact_kl(logits: Array, ref_logits: Array) -> Array:
    r"""Full-vocabulary :math:`\mathrm{KL}(\pi\|\pi_{ref})` at each position.

    Args:
      logits, ref_logits: ``[N, R, V]``.

    Returns:
      ``[N, R]``: :math:`\sum_a \pi(a)(\log\pi(a) - \log\pi_{ref}(a))`.
    """
    chex.assert_equal_shape([logits, ref_logits])
    logp = jax.nn.log_softmax(logits, axis=-1)
    ref = jax.nn.log_softmax(ref_logits, axis=-1)
    return jnp.sum(jnp.exp(logp) * (logp - ref), axis=-1)


def entropy(logits: Array) -> Array:
    r"""Per-position entropy :math:`-\sum_a \pi(a)\log\pi(a)`.

    ``logits [N, R, V] -> [N, R]``.
    """
    logp = jax.nn.log_softmax(logits, axis=-1)
    return -jnp.sum(jnp.exp(logp) * logp, axis=-1)
