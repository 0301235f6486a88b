"""Tuned configurations, known to solve their environment.

``presets.get(env_name, algo)`` returns a :class:`~jaxpg.config.Config`.
"""

from __future__ import annotations

from jaxpg.config import Config

_PRESETS: dict[tuple[str, str], dict] = {
    ("CartPole-v1", "reinforce"): dict(
        num_envs=16,
        total_steps=300_000,
        rollout_steps=32,
        gamma=0.99,
        lr=1e-2,
        baseline="standardise",
    ),
    ("Acrobot-v1", "reinforce"): dict(
        # Early episodes last the full 500 steps: one episode per env per
        # update keeps the number of updates up.
        num_envs=8,
        total_steps=300_000,
        rollout_steps=1,
        gamma=0.99,
        lr=1e-2,
        baseline="standardise",
    ),
}


def names() -> tuple[tuple[str, str], ...]:
    """All ``(env, algo)`` pairs that have a preset."""
    return tuple(_PRESETS)


def get(env: str, algo: str = "reinforce") -> Config:
    """The tuned config for ``(env, algo)``.

    Raises:
      ValueError: no preset for that pair; the message lists the pairs.
    """
    try:
        fields = _PRESETS[(env, algo)]
    except KeyError:
        known = ", ".join(f"({e!r}, {a!r})" for e, a in _PRESETS)
        raise ValueError(
            f"no preset for env={env!r}, algo={algo!r}; presets exist for: {known}"
        ) from None
    return Config(env=env, algo=algo, **fields)
