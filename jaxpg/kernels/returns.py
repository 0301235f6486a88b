r"""Return and advantage kernels: pure array functions, time-major.

Conventions (used by every module of jaxpg):

* Arrays are time-major, ``[T, ...]``: index ``t`` is the transition
  ``(s_t, a_t, r_t, s_{t+1})``. Trailing axes (envs ``B``, seeds ``S``) are
  carried through unchanged, so a kernel handles one stream or many.
* ``discounts[t]`` is the discount applied to what follows step ``t``: ``γ`` when
  ``s_{t+1}`` continues the episode, ``0`` when it is terminal.
* A *cut* (``truncated``, or the end of a rollout window) ends the chain of a
  return without saying the next state is terminal: where a critic exists the
  value of the real next state (``info["final_observation"]``) is bootstrapped,
  never the value of the observation after the automatic reset.
"""

from __future__ import annotations

import chex
import jax
import jax.numpy as jnp

from jaxpg.checks import positive_int
from jaxpg.kernels.batching import chunked_while_loop

Array = jax.Array


def discounted_returns(rewards: Array, discounts: Array, bootstrap: Array) -> Array:
    r"""Discounted returns by a reverse scan.

    .. math:: G_t = r_t + d_t G_{t+1}, \qquad G_T = \text{bootstrap}.

    Args:
      rewards: ``[T, ...]`` float, ``r_t``.
      discounts: ``[T, ...]`` float, ``d_t`` (``γ``, or ``0`` at a terminal step or a
        cut without bootstrap).
      bootstrap: ``[...]`` float, the value that stands for ``G_T``.

    Returns:
      ``[T, ...]`` the returns ``G_t``, in the dtype of ``rewards``.
    """
    chex.assert_equal_shape([rewards, discounts])
    chex.assert_equal_shape([rewards[0], bootstrap])

    def step(g_next, rd):
        r, d = rd
        g = r + d * g_next
        return g, g

    _, g = jax.lax.scan(
        step, bootstrap.astype(rewards.dtype), (rewards, discounts), reverse=True
    )
    return g


def generalized_advantage_estimation(
    rewards: Array,
    discounts: Array,
    values: Array,
    next_values: Array,
    lambda_: Array | float,
    truncated: Array | None = None,
) -> tuple[Array, Array]:
    r"""GAE(λ) with terminated and truncated kept apart.

    .. math::
        \delta_t = r_t + d_t V(s'_{t+1}) - V(s_t), \qquad
        A_t = \delta_t + d_t \lambda (1 - c_t) A_{t+1}, \qquad A_T = 0,

    where ``s'_{t+1}`` is the real next state (the final observation when the
    episode ended), ``d_t = γ (1 - terminated_t)`` and ``c_t`` is the cut flag
    (truncation or an automatic reset). A terminated step bootstraps nothing; a
    truncated step bootstraps ``V(s'_{t+1})`` and stops the λ-chain, so the
    advantage never leaks into the next episode. ``λ = 1`` gives Monte-Carlo
    returns minus ``V``; ``λ = 0`` the one-step TD error.

    Args:
      rewards: ``[T, ...]`` float.
      discounts: ``[T, ...]`` float, ``γ (1 - terminated_t)``.
      values: ``[T, ...]`` float, ``V(s_t)``.
      next_values: ``[T, ...]`` float, ``V(s'_{t+1})`` of the real next state.
      lambda_: scalar or ``[T, ...]``, the GAE mixing parameter.
      truncated: ``[T, ...]`` bool/float, cut flags ``c_t``; ``None`` means no cuts.

    Returns:
      ``(advantages, targets)``, both ``[T, ...]``; ``targets = advantages + values``
      are the λ-returns that a critic regresses on.

    Reference: Schulman et al., "High-Dimensional Continuous Control Using
    Generalized Advantage Estimation", 2016.
    """
    chex.assert_equal_shape([rewards, discounts, values, next_values])
    if truncated is None:
        truncated = jnp.zeros_like(rewards)
    chex.assert_equal_shape([rewards, truncated])
    deltas = rewards + discounts * next_values - values
    chain = discounts * lambda_ * (1.0 - truncated.astype(rewards.dtype))
    advantages = discounted_returns(deltas, chain, jnp.zeros_like(rewards[0]))
    return advantages, advantages + values


def discounted_returns_prefix(
    rewards: Array, discounts: Array, length: Array | int, chunk: int = 1
) -> Array:
    r""":func:`discounted_returns` over the first ``length`` steps only.

    For a buffer whose steps ``t >= length`` are padding: the reverse loop runs
    ``length`` iterations (a while loop with a traced bound), so a long,
    mostly empty buffer costs only what it holds. ``G_{length} = 0``; entries
    at and past ``length`` are 0.

    Args:
      rewards: ``[L, ...]`` float.
      discounts: ``[L, ...]`` float.
      length: ``[]`` int, ``0 <= length <= L``.
      chunk: test the loop's bound every ``chunk`` iterations
        (:func:`~jaxpg.kernels.batching.chunked_while_loop`; at most ``L``
        used); the result is the same for every ``chunk``.

    Returns:
      ``[L, ...]`` returns.
    """
    chex.assert_equal_shape([rewards, discounts])
    num = rewards.shape[0]
    length = jnp.minimum(length, num)

    def cond(carry):
        return carry[0] < length

    def body(carry):
        i, g_next, out = carry
        t = length - 1 - i
        inside = t >= 0  # False for a batch member with a shorter buffer
        t = jnp.maximum(t, 0)
        g = jnp.where(inside, rewards[t] + discounts[t] * g_next, g_next)
        return i + 1, g, out.at[t].set(jnp.where(inside, g, out[t]))

    init = (jnp.int32(0), jnp.zeros_like(rewards[0]), jnp.zeros_like(rewards))
    chunk = max(min(positive_int("chunk", chunk), num), 1)
    _, _, out = chunked_while_loop(cond, body, init, chunk)
    return out
