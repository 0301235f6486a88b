"""A user's algorithm, imported by path in the command-line tests:
``jaxpg train --algorithm my_algorithms:half_step_a2c``."""

from __future__ import annotations

from jaxpg.algorithms import a2c_policy_loss, make_actor_critic


def half_a2c_loss(log_probs, mb, hp):
    """A2C's surrogate at half weight: the same direction, half the step."""
    loss, metrics = a2c_policy_loss(log_probs, mb, hp)
    return 0.5 * loss, metrics


def half_step_a2c(cfg, parts):
    """A2C with :func:`half_a2c_loss`, composed from jaxpg's actor-critic."""
    return make_actor_critic(cfg, parts, policy_loss=half_a2c_loss)
