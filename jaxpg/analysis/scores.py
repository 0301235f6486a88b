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

For other environments (a user's own, ``module:make_env``) the user gives
the two anchors (:func:`parse_reference`, :func:`load_references`), passed as
``references`` to :func:`normalise` and :func:`solved_threshold`.

"random" is the mean return of 1000 episodes of uniformly random actions
(``benchmarks/random_scores.py``; standard errors 0.37, 0.42, 8.98, 0.11).
A seed *solves* its environment when its evaluated mean return is at least the
"solved" score.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

__all__ = [
    "ENV_SCORES",
    "EnvScores",
    "load_references",
    "normalise",
    "parse_reference",
    "solved_threshold",
]


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
    # +1 or -1 for the recalled cue at the last step: a random (or any
    # memoryless) policy averages 0 exactly, the optimum is 1;
    # benchmarks/memory.py counts a seed at 0.9 or above as solved.
    "MemoryChain-bsuite": EnvScores(random=0.0, solved=0.9),
}


def _scores(env: str, random: Any, solved: Any, where: str) -> EnvScores:
    try:
        r, v = float(random), float(solved)
    except (TypeError, ValueError):
        r = v = float("nan")
    if not (np.isfinite(r) and np.isfinite(v)) or v == r:
        raise ValueError(
            f"{where}: random={random!r}, solved={solved!r} for {env!r} are "
            "invalid: two finite numbers, solved != random"
        )
    return EnvScores(random=r, solved=v)


def parse_reference(text: str) -> tuple[str, EnvScores]:
    """``(env, scores)`` from ``"ENV=RANDOM,SOLVED"`` (``ENV`` may be an
    import path ``module:make_env``).

    Raises:
      ValueError: not of that form, or not two finite, different numbers.
    """
    env, sep, values = str(text).rpartition("=")
    parts = values.split(",")
    if not sep or not env or len(parts) != 2:
        raise ValueError(
            f"reference {text!r} is invalid: must be ENV=RANDOM,SOLVED, e.g. "
            "my_pkg.envs:make_env=0.5,9.5"
        )
    return env, _scores(env, parts[0], parts[1], f"reference {text!r}")


def load_references(path: str | os.PathLike) -> dict[str, EnvScores]:
    """``{env: scores}`` from a JSON file ``{"ENV": {"random": R, "solved":
    S}, ...}``.

    Raises:
      ValueError: unreadable, or not of that form (the message names the
        file and the entry).
    """
    try:
        record = json.loads(Path(path).read_text())
    except (OSError, ValueError) as e:
        raise ValueError(f"references file {path}: cannot read it ({e})") from None
    if not isinstance(record, dict):
        raise ValueError(
            f"references file {path}: must hold an object "
            '{"ENV": {"random": R, "solved": S}}'
        )
    out = {}
    for env, entry in record.items():
        if not isinstance(entry, dict) or set(entry) != {"random", "solved"}:
            raise ValueError(
                f"references file {path}: {env!r} must map to "
                '{"random": R, "solved": S}'
            )
        out[env] = _scores(env, entry["random"], entry["solved"], f"{path}")
    return out


def _lookup(env: str, references: dict[str, EnvScores] | None) -> EnvScores | None:
    if references and env in references:
        return references[env]
    return ENV_SCORES.get(env)


def solved_threshold(
    env: str, references: dict[str, EnvScores] | None = None
) -> float | None:
    """The solved score of ``env`` (the user's ``references`` first), or
    ``None`` when there is none."""
    scores = _lookup(env, references)
    return None if scores is None else scores.solved


def normalise(
    env: str, returns: Any, references: dict[str, EnvScores] | None = None
) -> np.ndarray:
    """``(returns - random) / (solved - random)`` for ``env``, with the
    user's ``references`` first, then jaxpg's.

    Raises:
      ValueError: no reference scores for ``env`` (the message lists those
        that have them and how to give them).
    """
    ref = _lookup(env, references)
    if ref is None:
        known = [*ENV_SCORES, *(references or {})]
        raise ValueError(
            f"env={env!r} has no reference scores to normalise with; known: "
            f"{', '.join(known)} (give them: jaxpg compare --reference "
            "ENV=RANDOM,SOLVED or --references FILE.json; or compare raw "
            "returns of one env with --raw)"
        )
    return (np.asarray(returns, np.float64) - ref.random) / (ref.solved - ref.random)
