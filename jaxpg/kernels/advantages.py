r"""Baselines: turn Monte-Carlo returns into advantages, with a valid-step mask.

All functions take ``[T, B]`` arrays (time-major, B envs) and a float ``mask``
(1 for a step that feeds the gradient, 0 for padding) and return ``[T, B]``
advantages that are 0 wherever ``mask`` is 0. The REINFORCE estimator is

.. math:: \hat g = \frac{1}{N} \sum_{t,b} m_{t,b}\,
   \nabla_\theta \log \pi_\theta(a_{t,b} \mid s_{t,b})\, A_{t,b}.

Bias, stated exactly (``N`` = the number of independent streams that enter the
statistic; the gradient of a baseline is always stopped):

* ``none``: :math:`A = G`. Unbiased.
* ``mean``: :math:`A = G - \bar G`, :math:`\bar G` the mean over every valid step
  of the update, the step itself included. Biased: the steps of a step's own
  episode enter :math:`\bar G`, so the baseline correlates with the step's
  score. The bias shrinks as ``1/M`` for ``M`` valid steps per update; the
  exact-gradient test measures it.
* ``standardise``: :math:`A = (G - \bar G) / (\sigma_G + 10^{-8})`, the classic
  default. Biased as ``mean``, and each update is rescaled by :math:`1/\sigma_G`
  (a data-dependent step size).
* ``loo``: :math:`A_{t,b} = G_{t,b} - \bar G_{-b}`, the mean return over the valid
  steps of every *other* env. Envs are independent, so the baseline does not
  depend on env ``b``'s actions: unbiased. (Episodes of the same env are not
  left out one by one: how many of them an update holds depends on their
  lengths, so they are not independent of each other.)
* ``group``: GRPO-style outcome advantage. Every step of an episode gets
  :math:`(R - \mu_R)/\max(\sigma_R, \epsilon)`, with :math:`R` the episode's
  discounted return from its first step and :math:`\mu_R, \sigma_R` over the
  episodes of the update. The guard: when :math:`\sigma_R < \epsilon` (all
  returns equal) the advantage is :math:`R - \mu_R = 0`, not ``0/0``. Biased as
  ``mean`` (self-included mean) and rescaled by :math:`1/\sigma_R`.
"""

from __future__ import annotations

from collections.abc import Callable

import chex
import jax
import jax.numpy as jnp

Array = jax.Array

GROUP_STD_EPS = 1e-6


def _masked_mean_std(x: Array, mask: Array) -> tuple[Array, Array]:
    n = jnp.maximum(mask.sum(), 1.0)
    # Shift by a valid entry: equal entries then give exactly their value as the
    # mean and a std of exactly 0 (a float32 mean of equal values can be off by an
    # ulp, and the std guards would divide that noise by eps into ±1).
    shift = x.ravel()[jnp.argmax(mask.ravel() > 0)]
    mean = shift + jnp.sum((x - shift) * mask) / n
    var = jnp.sum(jnp.square(x - mean) * mask) / n
    return mean, jnp.sqrt(var)


def no_baseline(returns: Array, mask: Array) -> Array:
    """``A = G`` on valid steps. ``returns, mask: [T, B]``."""
    chex.assert_equal_shape([returns, mask])
    return returns * mask


def mean_baseline(returns: Array, mask: Array) -> Array:
    """``A = G - mean(G)`` over the valid steps of the update. ``[T, B]``."""
    chex.assert_equal_shape([returns, mask])
    mean, _ = _masked_mean_std(returns, mask)
    return (returns - mean) * mask


def standardise(returns: Array, mask: Array, eps: float = 1e-8) -> Array:
    """``A = (G - mean) / (std + eps)`` over the valid steps. ``[T, B]``."""
    chex.assert_equal_shape([returns, mask])
    mean, std = _masked_mean_std(returns, mask)
    return (returns - mean) / (std + eps) * mask


def leave_one_out(returns: Array, mask: Array) -> Array:
    r"""``A[t, b] = G[t, b] - mean of G over the valid steps of envs b' ≠ b``.

    With a single env (``B = 1``) there is nothing to leave out and the baseline
    is 0. ``returns, mask: [T, B]``.
    """
    chex.assert_equal_shape([returns, mask])
    chex.assert_rank(returns, 2)
    sums = jnp.sum(returns * mask, axis=0)  # [B]
    counts = jnp.sum(mask, axis=0)  # [B]
    other_sum = jnp.sum(sums) - sums
    other_count = jnp.sum(counts) - counts
    baseline = jnp.where(other_count > 0, other_sum / jnp.maximum(other_count, 1), 0)
    return (returns - baseline[None, :]) * mask


def group_normalised(
    returns: Array, mask: Array, episode_start: Array, eps: float = GROUP_STD_EPS
) -> Array:
    r"""GRPO-style: each step gets its episode's normalised return.

    Args:
      returns: ``[T, B]`` reward-to-go ``G_t``; at an episode's first step this is
        the episode's return ``R``.
      mask: ``[T, B]`` valid steps.
      episode_start: ``[T, B]`` 1 at the first step of each valid episode.
      eps: floor on the group standard deviation (see module docstring).

    Returns:
      ``[T, B]`` advantages, constant within an episode.
    """
    chex.assert_equal_shape([returns, mask, episode_start])
    start = episode_start * mask
    mean, std = _masked_mean_std(returns, start)
    normalised = (returns - mean) / jnp.maximum(std, eps)

    # Carry each episode's first-step value forward over its steps.
    def fill(carry, x):
        value, is_start = x
        carry = jnp.where(is_start > 0, value, carry)
        return carry, carry

    _, per_step = jax.lax.scan(fill, jnp.zeros_like(returns[0]), (normalised, start))
    return per_step * mask


# ``baseline(returns, mask, episode_start) -> advantages``, all ``[T, B]``.
BaselineFn = Callable[[Array, Array, Array], Array]

# Every baseline by its name (``Config.baseline``), with one signature.
BASELINE_FNS: dict[str, BaselineFn] = {
    "none": lambda g, m, _: no_baseline(g, m),
    "mean": lambda g, m, _: mean_baseline(g, m),
    "standardise": lambda g, m, _: standardise(g, m),
    "loo": lambda g, m, _: leave_one_out(g, m),
    "group": group_normalised,
}
# The baselines' names, in that table's order (Config.baseline's choices).
BASELINES: tuple[str, ...] = tuple(BASELINE_FNS)
