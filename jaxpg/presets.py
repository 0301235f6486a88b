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
    ("CartPole-v1", "a2c"): dict(
        num_envs=16,
        total_steps=200_000,
        rollout_steps=16,
        lr=3e-3,
        max_grad_norm=0.5,
        ent_coef=0.01,
    ),
    ("CartPole-v1", "ppo"): dict(
        num_envs=16,
        total_steps=200_000,
        rollout_steps=128,
        num_epochs=4,
        num_minibatches=4,
        lr=2.5e-3,
        max_grad_norm=0.5,
        ent_coef=0.01,
    ),
    ("Acrobot-v1", "a2c"): dict(
        num_envs=16,
        total_steps=200_000,
        rollout_steps=16,
        lr=3e-3,
        max_grad_norm=0.5,
        ent_coef=0.01,
    ),
    ("Acrobot-v1", "ppo"): dict(
        num_envs=16,
        total_steps=200_000,
        rollout_steps=128,
        num_epochs=4,
        num_minibatches=4,
        lr=2.5e-3,
        max_grad_norm=0.5,
        ent_coef=0.01,
    ),
    ("Pendulum-v1", "a2c"): dict(
        # Best found in a short search, but it does NOT solve Pendulum (mean
        # evaluated return about -1070 on 8 seeds at 1M steps): plain A2C
        # without advantage normalisation struggles here. Use "ppo".
        num_envs=16,
        total_steps=1_000_000,
        rollout_steps=32,
        gamma=0.95,
        gae_lambda=0.95,
        lr=3e-3,
        init_log_std=-0.5,
    ),
    ("Pendulum-v1", "ppo"): dict(
        num_envs=16,
        total_steps=600_000,
        rollout_steps=64,
        num_epochs=10,
        num_minibatches=8,
        gamma=0.95,
        gae_lambda=0.9,
        lr=1e-3,
        max_grad_norm=0.5,
        init_log_std=-0.5,
        clip_value=True,
    ),
    # MountainCarContinuous: best settings found in a short search; most seeds
    # stay in the "do not move" local optimum (see benchmarks/results/
    # learning_cpu.md), so these presets do not reliably solve it.
    ("MountainCarContinuous-v0", "a2c"): dict(
        num_envs=16,
        total_steps=400_000,
        rollout_steps=32,
        lr=1e-3,
        max_grad_norm=0.5,
        init_log_std=0.5,
    ),
    ("MountainCarContinuous-v0", "ppo"): dict(
        num_envs=16,
        total_steps=400_000,
        rollout_steps=128,
        num_epochs=4,
        num_minibatches=4,
        lr=1e-3,
        max_grad_norm=0.5,
        ent_coef=0.01,
        init_log_std=0.5,
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
