"""A user's algorithms, imported by path in the command-line tests:
``jaxpg train --algorithm my_algorithms:half_step_a2c``."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from jaxpg.algorithms import (
    Algorithm,
    a2c,
    a2c_policy_loss,
    keep_if_finite,
    make_actor_critic,
)

SIGN_STEP = 1e-3


def half_a2c_loss(log_probs, mb, hp):
    """A2C's surrogate at half weight: the same direction, half the step."""
    loss, metrics = a2c_policy_loss(log_probs, mb, hp)
    return 0.5 * loss, metrics


def half_step_a2c(cfg, parts):
    """A2C with :func:`half_a2c_loss`, composed from jaxpg's actor-critic."""
    return make_actor_critic(cfg, parts, policy_loss=half_a2c_loss)


def sign_step_a2c(cfg, parts):
    """An update written by hand: A2C's gradient, every parameter stepped by
    ``SIGN_STEP`` times its sign, behind jaxpg's non-finite guard."""
    base = a2c(cfg, parts)

    def update(state):
        grads, metrics, state = base.estimate(state)
        stepped = jax.tree.map(
            lambda p, g: p - SIGN_STEP * jnp.sign(g), state.params, grads
        )
        (params,), nonfinite = keep_if_finite(
            optax.tree.norm(grads), (stepped,), (state.params,)
        )
        state = state.replace(params=params, update_idx=state.update_idx + 1)
        return state, {**metrics, "nonfinite": nonfinite}

    return Algorithm(base.init, update, base.estimate)
