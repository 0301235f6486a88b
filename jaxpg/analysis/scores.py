r"""Reference scores per environment: random, solved, and normalisation.

``jaxpg compare`` normalises each environment's returns so that tasks of
different scales can be aggregated (Agarwal et al., 2021):

.. math:: \tilde s = \frac{s - s_\text{random}}{s_\text{solved} - s_\text{random}}

so 0 is a uniformly random policy and 1 is the solved threshold; the
optimality gap is then the average shortfall from *solving* the task.

========================  ==========  ========  ==========================
environment               random      solved    source of "solved"
========================  ==========  ========  ==========================
CartPole-v1               22.72       475       Gymnasium's reward threshold
Acrobot-v1                -498.62     -100      Gymnasium's reward threshold
Pendulum-v1               -1230.95    -200      tuned PPO (rl-baselines3-zoo
                                                reports about -170 to -200)
MountainCarContinuous-v0  -33.20      90        Gymnasium's reward threshold
========================  ==========  ========  ==========================

"random" is the mean return of 1000 episodes of uniformly random actions
(``benchmarks/random_scores.py``; standard errors 0.37, 0.42, 8.98, 0.11).
A seed *solves* its environment when its evaluated mean return is at least the
"solved" score.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import numpy as np

__all__ = ["ENV_SCORES", "EnvScores", "normalise", "solved_threshold"]


class EnvScores(NamedTuple):
    """Anchors of one environment's returns.

    Attributes:
      random: mean return of a uniformly random policy.
      solved: the return at or above which a seed counts as solving the env.
    """

    random: float
    solved: float


ENV_SCORES: dict[str, EnvScores] = {
    "CartPole-v1": EnvScores(random=22.72, solved=475.0),
    "Acrobot-v1": EnvScores(random=-498.62, solved=-100.0),
    "Pendulum-v1": EnvScores(random=-1230.95, solved=-200.0),
    "MountainCarContinuous-v0": EnvScores(random=-33.20, solved=90.0),
}


def solved_threshold(env: str) -> float | None:
    """The solved score of ``env``, or ``None`` when jaxpg has none."""
    scores = ENV_SCORES.get(env)
    return None if scores is None else scores.solved


def normalise(env: str, returns: Any) -> np.ndarray:
    """``(returns - random) / (solved - random)`` for ``env``.

    Raises:
      ValueError: no reference scores for ``env`` (the message lists those
        that have them).
    """
    if env not in ENV_SCORES:
        raise ValueError(
            f"env={env!r} has no reference scores to normalise with; known: "
            f"{', '.join(ENV_SCORES)} (compare raw returns of one env instead)"
        )
    ref = ENV_SCORES[env]
    return (np.asarray(returns, np.float64) - ref.random) / (ref.solved - ref.random)
