"""Algorithms as pure ``(init, update)`` pairs composed from their parts.

Each factory takes a :class:`~jaxpg.config.Config` (sizes, budget) and the
:class:`Parts` it is built from (policy, critic, optimizer, envs); named
variants are compositions (:func:`a2c`, :func:`ppo` over
:func:`make_actor_critic`; REINFORCE with any baseline function).
:data:`ALGORITHMS` maps ``Config.algo`` to its factory.
"""

from __future__ import annotations

from collections.abc import Callable

from jaxpg.algorithms.actor_critic import (
    a2c,
    a2c_policy_loss,
    clipped_value_loss,
    make_actor_critic,
    ppo,
    ppo_policy_loss,
    squared_value_loss,
)
from jaxpg.algorithms.base import (
    Algorithm,
    Parts,
    TrainState,
    apply_gradients,
    keep_if_finite,
)
from jaxpg.algorithms.reinforce import BASELINE_FNS, ReinforceState, make_reinforce
from jaxpg.config import Config


def reinforce(cfg: Config, parts: Parts) -> Algorithm:
    """REINFORCE with ``cfg.baseline`` (``"value"``: the critic in ``parts``)."""
    if cfg.baseline == "value":
        if parts.critic is None:
            raise ValueError(
                "baseline='value' needs a critic: parts.critic is None (build "
                "the parts with make_parts(cfg), or give Parts a critic network)"
            )
        return make_reinforce(cfg, parts)
    return make_reinforce(cfg, parts._replace(critic=None), BASELINE_FNS[cfg.baseline])


ALGORITHMS: dict[str, Callable[[Config, Parts], Algorithm]] = {
    "reinforce": reinforce,
    "a2c": a2c,
    "ppo": ppo,
}


def needs_critic(cfg: Config) -> bool:
    """Whether ``cfg``'s algorithm trains a value network."""
    return cfg.algo != "reinforce" or cfg.baseline == "value"


__all__ = [
    "ALGORITHMS",
    "BASELINE_FNS",
    "Algorithm",
    "Parts",
    "ReinforceState",
    "TrainState",
    "a2c",
    "a2c_policy_loss",
    "apply_gradients",
    "clipped_value_loss",
    "keep_if_finite",
    "make_actor_critic",
    "make_reinforce",
    "needs_critic",
    "ppo",
    "ppo_policy_loss",
    "reinforce",
    "squared_value_loss",
]
