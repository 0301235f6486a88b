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


Distribution = Categorical | DiagGaussian
