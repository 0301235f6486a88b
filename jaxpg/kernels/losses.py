r"""Loss kernels. Each returns a scalar to *minimise* and takes a float ``mask``.

The masked mean is :math:`\sum m\,x / \max(\sum m, 1)`: padded steps never
enter a loss. Where an estimator needs another normaliser (REINFORCE divides
by a constant so that its estimate stays unbiased, and sums chunks of a batch),
``normaliser=N`` gives :math:`\sum m\,x / N` instead. Targets (advantages,
returns) are wrapped in ``stop_gradient`` so that only the intended path
carries gradient.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

Array = jax.Array


def masked_mean(
    x: Array, mask: Array, normaliser: Array | float | None = None
) -> Array:
    r""":math:`\sum m x / \max(\sum m, 1)` for same-shaped ``x`` and ``mask``;
    :math:`\sum m x / N` with ``normaliser=N``."""
    chex.assert_equal_shape([x, mask])
    if normaliser is None:
        normaliser = jnp.maximum(jnp.sum(mask), 1.0)
    return jnp.sum(x * mask) / normaliser


def policy_gradient_loss(
    log_probs: Array,
    advantages: Array,
    mask: Array,
    normaliser: Array | float | None = None,
) -> Array:
    r"""REINFORCE surrogate :math:`-\frac{1}{N}\sum m\, \log\pi(a|s)\, \mathrm{sg}(A)`.

    Its gradient is the score-function estimator of :math:`-\nabla_\theta J`.

    Args:
      log_probs: ``[...]`` :math:`\log \pi_\theta(a_t|s_t)`, differentiable.
      advantages: ``[...]`` weights :math:`A_t` (gradient stopped here).
      mask: ``[...]`` 1 for valid steps.
      normaliser: ``N``; default the number of valid steps (see
        :func:`masked_mean`).
    """
    chex.assert_equal_shape([log_probs, advantages, mask])
    weighted = log_probs * jax.lax.stop_gradient(advantages)
    return -masked_mean(weighted, mask, normaliser)


def entropy_loss(
    entropy: Array, mask: Array, normaliser: Array | float | None = None
) -> Array:
    r"""Negative mean entropy :math:`-\frac1N \sum m\, \mathcal H[\pi(\cdot|s)]`."""
    return -masked_mean(entropy, mask, normaliser)


def value_loss(
    values: Array,
    targets: Array,
    mask: Array,
    old_values: Array | None = None,
    clip_eps: Array | float | None = None,
    normaliser: Array | float | None = None,
) -> Array:
    r"""Half squared error :math:`\frac12 (V - \mathrm{sg}(y))^2`, optionally clipped.

    With ``old_values`` and ``clip_eps`` (PPO's value clipping) the loss is
    :math:`\frac12\max\big((V-y)^2, (V_{old} + \mathrm{clip}(V - V_{old}, \pm\epsilon)
    - y)^2\big)`.
    """
    chex.assert_equal_shape([values, targets, mask])
    targets = jax.lax.stop_gradient(targets)
    err = jnp.square(values - targets)
    if old_values is not None and clip_eps is not None:
        clipped = old_values + jnp.clip(values - old_values, -clip_eps, clip_eps)
        err = jnp.maximum(err, jnp.square(clipped - targets))
    return 0.5 * masked_mean(err, mask, normaliser)


def ppo_clip_loss(
    log_probs: Array,
    old_log_probs: Array,
    advantages: Array,
    mask: Array,
    clip_eps: Array | float,
) -> tuple[Array, dict[str, Array]]:
    r"""PPO-clip surrogate :math:`-\frac1N\sum m \min(\rho A, \mathrm{clip}(\rho,
    1\pm\epsilon) A)` with :math:`\rho = \exp(\log\pi - \log\pi_{old})`.

    Returns the loss and diagnostics: ``approx_kl`` (the :math:`k_3` estimator
    :math:`E[(\rho - 1) - \log\rho]`, non-negative) and ``clip_frac``.

    Reference: Schulman et al., "Proximal Policy Optimization Algorithms", 2017.
    """
    chex.assert_equal_shape([log_probs, old_log_probs, advantages, mask])
    advantages = jax.lax.stop_gradient(advantages)
    log_ratio = log_probs - jax.lax.stop_gradient(old_log_probs)
    ratio = jnp.exp(log_ratio)
    unclipped = ratio * advantages
    clipped = jnp.clip(ratio, 1.0 - clip_eps, 1.0 + clip_eps) * advantages
    loss = -masked_mean(jnp.minimum(unclipped, clipped), mask)
    ratio_sg = jax.lax.stop_gradient(ratio)
    log_ratio_sg = jax.lax.stop_gradient(log_ratio)
    diagnostics = {
        "approx_kl": masked_mean((ratio_sg - 1.0) - log_ratio_sg, mask),
        "clip_frac": masked_mean(
            (jnp.abs(ratio_sg - 1.0) > clip_eps).astype(log_probs.dtype), mask
        ),
    }
    return loss, diagnostics


def kl_estimate(log_probs: Array, ref_log_probs: Array, kind: str = "k3") -> Array:
    r"""Per-sample estimators of :math:`\mathrm{KL}(\pi \| \pi_{ref})` from samples
    :math:`a \sim \pi`, with :math:`r = \pi_{ref}(a)/\pi(a)`:

    * ``k1``: :math:`-\log r` (unbiased, can be negative),
    * ``k2``: :math:`\tfrac12 (\log r)^2` (biased, low variance),
    * ``k3``: :math:`(r - 1) - \log r` (unbiased, non-negative).

    Reference: J. Schulman, "Approximating KL Divergence", 2020.
    """
    chex.assert_equal_shape([log_probs, ref_log_probs])
    log_r = ref_log_probs - log_probs
    if kind == "k1":
        return -log_r
    if kind == "k2":
        return 0.5 * jnp.square(log_r)
    if kind == "k3":
        return jnp.expm1(log_r) - log_r
    raise ValueError(f"kind={kind!r} is not one of ('k1', 'k2', 'k3')")
