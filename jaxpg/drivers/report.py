r"""The report of a finished run: every seed's final policy evaluated, and
``summary.json`` and ``learning_curve.png`` written to its run directory.

:func:`jaxpg.drivers.runner.run` writes it when given ``eval_episodes`` (as
``jaxpg train`` does), for a named environment and for a user's own
(``env=``) alike; ``jaxpg compare`` reads ``summary.json``.

Shapes: ``S`` seeds, ``E`` episodes, ``U`` updates.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxpg._version import __version__
from jaxpg.config import Config
from jaxpg.drivers.evaluation import EVAL_SEED, evaluate_seeds
from jaxpg.experiment import rundir
from jaxpg.experiment.rundir import device_name, strict_json

__all__ = [
    "CURVE",
    "device_name",
    "eval_summary",
    "rank_settings",
    "strict_json",
    "write_report",
]

# The learning curve's file name in a run directory.
CURVE = "learning_curve.png"


def eval_summary(
    returns: Any,
    first_seed: int,
    episodes: int,
    deterministic: bool,
    round_: int,
    threshold: float | None,
) -> dict[str, Any]:
    """A JSON-ready summary of ``[S, E]`` evaluation returns: per-seed mean
    and standard deviation (``null`` where not finite), the seeds whose mean
    is NaN or infinite, IQM and mean over the finite seeds with 95% bootstrap
    intervals (``null`` when none is finite), and the seeds at or above
    ``threshold``."""
    from jaxpg.analysis.stats import bootstrap_ci, iqm

    r = np.asarray(returns, np.float64)
    with np.errstate(invalid="ignore"):
        mean = r.mean(axis=1)
        std = r.std(axis=1)
    finite = np.isfinite(mean)
    good = mean[finite]
    return {
        "episodes": episodes,
        "deterministic": deterministic,
        "key": f"fold_in(fold_in(key({EVAL_SEED}), {round_}), seed)",
        "seeds": list(range(first_seed, first_seed + r.shape[0])),
        "mean_per_seed": strict_json(mean),
        "std_per_seed": strict_json(std),
        "nonfinite_seeds": {
            str(first_seed + i): str(mean[i]) for i in np.flatnonzero(~finite)
        },
        "confidence": 0.95,
        "iqm": bootstrap_ci(good, stat=iqm)._asdict() if good.size else None,
        "mean": bootstrap_ci(good)._asdict() if good.size else None,
        "solved_threshold": threshold,
        "seeds_solved": None if threshold is None else int(np.sum(good >= threshold)),
    }


def rank_settings(
    eval_returns: Any, episodes: int, solved_at: float | None
) -> tuple[list[dict[str, Any]], int | None]:
    """``(rows, best)`` of a sweep's ``[K, S, E]`` evaluation returns: each
    setting's :func:`eval_summary` (seeds ``0 .. S - 1``, key round 0, as
    ``jaxpg train`` summarises a run), and the index of the setting with the
    highest IQM (``None`` when no IQM is finite)."""
    rows = [eval_summary(r, 0, episodes, False, 0, solved_at) for r in eval_returns]
    scores = [np.nan if r["iqm"] is None else r["iqm"]["estimate"] for r in rows]
    best = int(np.nanargmax(scores)) if np.isfinite(scores).any() else None
    return rows, best


def _ran(out: Path) -> np.ndarray | bool:
    """``[S, U]`` the update slots that ran an update: REINFORCE's slots after
    its budget repeat its last update's metrics, and its ``update`` counter
    stops rising there. ``True`` for an algorithm without the counter."""
    try:
        update = rundir.read_metrics(out, ("update",))["update"]
    except rundir.RunDirError:
        return True
    return np.diff(update, axis=1, prepend=0) > 0


def _last_finite(x: np.ndarray) -> float:
    finite = x[np.isfinite(x)]
    return float(finite[-1]) if finite.size else math.nan


def write_report(
    out: Path,
    cfg: Config,
    params: Any,
    num_seeds: int,
    first_seed: int,
    episodes: int,
    timings: dict[str, float],
    source: str = "",
    parts: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Evaluate every seed's final policy (key round 0, ``episodes`` each)
    and write ``summary.json`` and ``learning_curve.png`` to the finished
    run in ``out``; returns the summary.

    Args:
      out: the run directory (its metrics are read).
      cfg: the run's configuration.
      params: ``[S]`` final policy parameters (as training returns them).
      num_seeds, first_seed: the run's seeds.
      episodes: evaluation episodes per seed, ``>= 1``.
      timings: ``compile_s``, ``run_s`` and ``steps_per_s`` of the training.
      source: what the config started from (recorded).
      parts: ``env``, ``env_params``, ``policy_network``, ``policy_obs`` and
        ``action_mask_fn`` when the run was given them (evaluation needs the
        same environment, torso, view and mask).
    """
    from jaxpg.analysis.plotting import plot_learning_curve
    from jaxpg.analysis.scores import solved_threshold

    t0 = time.perf_counter()
    returns = evaluate_seeds(
        cfg, params, num_seeds, first_seed, episodes, False, 0, parts=parts
    )
    eval_s = time.perf_counter() - t0
    metrics = rundir.read_metrics(
        out, ("episode_return", "env_steps", "nonfinite", "num_episodes")
    )
    env_steps = metrics["env_steps"][:, -1]
    rejected = np.sum((metrics["nonfinite"] > 0) & _ran(out), axis=1)
    train_last = [_last_finite(r) for r in metrics["episode_return"]]
    threshold = solved_threshold(cfg.env)
    summary = {
        "jaxpg_version": __version__,
        "env": cfg.env,
        "algo": cfg.algo,
        "config_source": source,
        "num_seeds": num_seeds,
        "first_seed": first_seed,
        "num_updates": cfg.num_updates,
        "eval": eval_summary(returns, first_seed, episodes, False, 0, threshold),
        "train": {
            "env_steps": env_steps.astype(np.int64).tolist(),
            "last_return": strict_json(np.asarray(train_last)),
            "rejected_updates": rejected.astype(np.int64).tolist(),
            "rejected_updates_meaning": "updates with at least one gradient step "
            "rejected as non-finite (PPO: any of its minibatch steps)",
        },
        "timings": {
            "compile_s": timings["compile_s"],
            "run_s": timings["run_s"],
            "eval_s": eval_s,
            "steps_per_s": timings["steps_per_s"],
            "total_env_steps": int(np.sum(env_steps, dtype=np.int64)),
        },
        "device": device_name(),
        "processes": jax.process_count(),
    }
    rundir.write_json(out / rundir.SUMMARY, summary)
    plot_learning_curve(
        metrics["env_steps"],
        metrics["episode_return"],
        out / CURVE,
        title=f"{cfg.env} {cfg.algo} ({num_seeds} seeds)",
        threshold=threshold,
    )
    return summary
