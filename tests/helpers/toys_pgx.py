"""A toy pgx game for tests/envs/test_pgx.py (imported lazily there, with pgx)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import pgx.core as core
from pgx._src.struct import dataclass
from suite_checks import LIMIT

LEGAL = jnp.array([True, False, True])


@dataclass
class ToyState(core.State):
    current_player: jax.Array = jnp.int32(0)
    observation: jax.Array = jnp.zeros(2, jnp.float32)
    rewards: jax.Array = jnp.float32([0.0])
    terminated: jax.Array = jnp.bool_(False)
    truncated: jax.Array = jnp.bool_(False)
    legal_action_mask: jax.Array = LEGAL
    _step_count: jax.Array = jnp.int32(0)

    @property
    def env_id(self):
        return "toy"


class Toy(core.Env):
    """Pays 1 per step through pgx's own ``step``; action 1 is illegal. With
    ``goal`` the observation is the step count and the game terminates there;
    else it is constant and, with ``cut``, pgx's ``truncated`` is set at
    ``LIMIT`` (else nothing ends: the adapter's limit must cut)."""

    def __init__(self, goal=None, cut=False):
        super().__init__()
        self.goal, self.cut = goal, cut

    def _init(self, key):
        return ToyState()

    def _step(self, state, action, key):
        count = state._step_count
        done = jnp.asarray(self.goal is not None) & (count >= (self.goal or 0))
        cut = jnp.asarray(self.cut) & (count >= LIMIT)
        return state.replace(rewards=jnp.float32([1.0]), terminated=done, truncated=cut)

    def _observe(self, state, player_id):
        if self.goal is None:
            return jnp.ones((2,), jnp.float32)
        return jnp.stack([state._step_count, 0.5]).astype(jnp.float32)

    @property
    def id(self):
        return "toy"

    @property
    def version(self):
        return "v0"

    @property
    def num_players(self):
        return 1
