"""Scores of run directories for a comparison: every seed's evaluated mean
return, grouped by method (a label) and environment (a task), and each
method's raw result per task. What ``jaxpg compare`` reads before it
normalises and aggregates (:mod:`jaxpg.analysis.compare`).

Shapes: ``N`` seeds.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from jaxpg.analysis.scores import solved_threshold
from jaxpg.analysis.stats import iqm
from jaxpg.experiment import rundir

__all__ = ["load_scores", "per_task"]


def load_scores(
    runs: Sequence[tuple[str | None, Path]], source: str = "summary"
) -> tuple[dict[str, dict[str, np.ndarray]], list[str], dict[str, list]]:
    """``({label: {env: [N] scores}}, envs, dropped)`` of run directories.

    Args:
      runs: ``(label, directory)`` pairs; a ``None`` label becomes the run's
        algorithm, or its folder's name where two runs would share a label
        and an environment.
      source: ``"summary"``: training's own evaluation (``summary.json``);
        ``"eval"``: ``jaxpg eval``'s (``eval.json``).

    Returns:
      The finite per-seed scores, the environments in order, and
      ``{"label/env": [seeds]}`` of the seeds left out as NaN or infinite.

    Raises:
      ValueError: a run without that evaluation (saying how to make it), or
        two runs with the same label and environment.
    """
    loaded = []
    for label, path in runs:
        cfg, _ = rundir.load_run(path)
        path = Path(path)
        name = "summary.json" if source == "summary" else "eval.json"
        try:
            record = rundir.read_json(path / name)
        except FileNotFoundError:
            hint = (
                "finish or resume the run"
                if name == "summary.json"
                else f"run jaxpg eval {path}"
            )
            raise ValueError(f"{path} has no {name}: {hint}") from None
        ev = record["eval"] if name == "summary.json" else record
        loaded.append((label, cfg, Path(path), ev))
    # Default label: the algorithm; the folder name where that is ambiguous.
    keys = [(label or cfg.algo, cfg.env) for label, cfg, _, _ in loaded]
    if len(set(keys)) < len(keys):
        keys = [(label or path.name, cfg.env) for label, cfg, path, _ in loaded]
    if len(set(keys)) < len(keys):
        raise ValueError(
            "two runs have the same label and environment; name them LABEL=DIR"
        )
    table: dict[str, dict[str, np.ndarray]] = {}
    dropped: dict[str, list] = {}
    for (label, env), (_, _, _, ev) in zip(keys, loaded, strict=True):
        mean = np.array(
            [np.nan if x is None else x for x in ev["mean_per_seed"]], np.float64
        )
        bad = [s for s, x in zip(ev["seeds"], mean, strict=True) if not np.isfinite(x)]
        if bad:
            dropped[f"{label}/{env}"] = bad
        table.setdefault(label, {})[env] = mean[np.isfinite(mean)]
    envs = sorted({env for _, env in keys})
    return table, envs, dropped


def per_task(
    table: dict, envs: list[str], references: dict | None = None
) -> dict[str, dict[str, dict]]:
    """``{label: {env: {"iqm", "seeds", "solved"}}}``: each method's raw IQM
    over its finite seeds per environment, their count, and how many reach
    the environment's solved score (``None`` without one; ``references``
    first)."""
    out: dict[str, dict[str, dict]] = {}
    for label, per_env in table.items():
        out[label] = {}
        for env in envs:
            x = per_env[env]
            threshold = solved_threshold(env, references)
            out[label][env] = {
                "iqm": iqm(x),
                "seeds": int(x.size),
                "solved": None if threshold is None else int(np.sum(x >= threshold)),
            }
    return out
