r"""Action distributions as small pytrees: sample, log-prob, entropy, mode.

Each distribution is a ``NamedTuple`` of arrays with leading batch axes ``[...]``,
so it passes through ``jit``, ``vmap`` and ``scan`` unchanged. Methods are pure;
``sample`` takes the key first.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp

Array = jax.Array

_LOG_2PI = math.log(2.0 * math.pi)

# The logit an illegal action gets. Finite, so that no NaN can arise
# (``0 * -inf``); so negative that ``exp(MASKED_LOGIT - max legal logit)`` is
# exactly 0 in float32: an illegal action has probability 0 and is never
# sampled (a Gumbel perturbation cannot lift it).
MASKED_LOGIT = -1e30


def masked_logits(logits: Array, mask: Array) -> Array:
    r"""``[..., A]`` logits with the illegal actions (``mask`` False) set to
    :data:`MASKED_LOGIT`.

    The renormalised distribution over the legal actions:
    :math:`\pi(a) = e^{l_a} / \sum_{b\,\text{legal}} e^{l_b}` for legal ``a``,
    0 otherwise; an illegal logit gets zero gradient. A row with no legal
    action keeps its logits (the fallback: the unmasked policy over all ``A``
    actions, finite, differentiable), as masking it would leave nothing to
    sample.

    Args:
      logits: ``[..., A]`` float.
      mask: ``[..., A]`` bool, True where the action is legal.
    """
    if mask.shape != logits.shape:
        raise ValueError(
            f"mask has shape {mask.shape} but the logits have {logits.shape}; "
            "they must be equal ([..., A])"
        )
    mask = mask | ~jnp.any(mask, axis=-1, keepdims=True)
    return jnp.where(mask, logits, jnp.asarray(MASKED_LOGIT, logits.dtype))


class Categorical(NamedTuple):
    r"""Categorical distribution over ``A`` actions from unnormalised logits.

    Attributes:
      logits: ``[..., A]`` float.
    """

    logits: Array

    def log_probs(self) -> Array:
        """``[..., A]`` normalised log-probabilities."""
        return jax.nn.log_softmax(self.logits, axis=-1)

    def sample(self, key: Array) -> Array:
        """``[...]`` int32 actions."""
        return jax.random.categorical(key, self.logits, axis=-1).astype(jnp.int32)

    def log_prob(self, action: Array) -> Array:
        r"""``[...]`` :math:`\log \pi(a)` for int actions of shape ``[...]``."""
        logp = self.log_probs()
        return jnp.take_along_axis(
            logp, action[..., None].astype(jnp.int32), axis=-1
        ).squeeze(-1)

    def entropy(self) -> Array:
        r"""``[...]`` :math:`-\sum_a \pi(a) \log \pi(a)`."""
        logp = self.log_probs()
        return -jnp.sum(jnp.exp(logp) * logp, axis=-1)

    def mode(self) -> Array:
        """``[...]`` int32, the most likely action."""
        return jnp.argmax(self.logits, axis=-1).astype(jnp.int32)


class DiagGaussian(NamedTuple):
    r"""Gaussian with diagonal covariance over ``D``-dimensional actions.

    Attributes:
      mean: ``[..., D]`` float.
      log_std: ``[..., D]`` float (broadcast to ``mean``'s shape by the policy).
    """

    mean: Array
    log_std: Array

    def sample(self, key: Array) -> Array:
        """``[..., D]`` unclipped samples ``mean + std * ε``."""
        eps = jax.random.normal(key, self.mean.shape, self.mean.dtype)
        return self.mean + jnp.exp(self.log_std) * eps

    def log_prob(self, action: Array) -> Array:
        r"""``[...]`` :math:`\sum_d \log \mathcal N(a_d; \mu_d, \sigma_d)`."""
        z = (action - self.mean) * jnp.exp(-self.log_std)
        return jnp.sum(-0.5 * z**2 - self.log_std - 0.5 * _LOG_2PI, axis=-1)

    def entropy(self) -> Array:
        r"""``[...]`` :math:`\sum_d (\log \sigma_d + \tfrac12 \log 2\pi e)`."""
        return jnp.sum(self.log_std + 0.5 * (_LOG_2PI + 1.0), axis=-1)

    def mode(self) -> Array:
        """``[..., D]`` the mean."""
        return self.mean


class MultiCategorical(NamedTuple):
    r"""``K`` independent categoricals (a ``MultiDiscrete`` action space):
    :math:`\pi(a) = \prod_k \pi_k(a_k)`.

    Attributes:
      factors: ``K`` :class:`Categorical` with logits ``[..., n_k]``.
    """

    factors: tuple[Categorical, ...]

    @classmethod
    def from_logits(
        cls, logits: Array, nvec: tuple[int, ...], mask: Array | None = None
    ) -> MultiCategorical:
        """Split ``[..., sum(nvec)]`` logits (and an optional ``[..., sum(nvec)]``
        bool mask) into the factors, each masked on its own
        (:func:`masked_logits`: a factor with no legal action falls back to
        its unmasked logits)."""
        if mask is not None and mask.shape != logits.shape:
            masked_logits(logits, mask)  # raises, naming both shapes
        factors, lo = [], 0
        for n in nvec:
            part = logits[..., lo : lo + int(n)]
            if mask is not None:
                part = masked_logits(part, mask[..., lo : lo + int(n)])
            factors.append(Categorical(part))
            lo += int(n)
        return cls(tuple(factors))

    def sample(self, key: Array) -> Array:
        """``[..., K]`` int32 actions, one per factor."""
        keys = jax.random.split(key, len(self.factors))
        return jnp.stack(
            [f.sample(k) for f, k in zip(self.factors, keys, strict=True)], axis=-1
        )

    def log_prob(self, action: Array) -> Array:
        r"""``[...]`` :math:`\sum_k \log\pi_k(a_k)` for ``[..., K]`` actions."""
        return sum(f.log_prob(action[..., k]) for k, f in enumerate(self.factors))

    def entropy(self) -> Array:
        """``[...]`` the sum of the factors' entropies."""
        return sum(f.entropy() for f in self.factors)

    def mode(self) -> Array:
        """``[..., K]`` int32, every factor's most likely action."""
        return jnp.stack([f.mode() for f in self.factors], axis=-1)


Distribution = Categorical | DiagGaussian | MultiCategorical
