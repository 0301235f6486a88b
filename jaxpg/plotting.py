r"""Learning curves: the mean over seeds with a bootstrap band, against env steps.

Needs matplotlib (the ``cli`` extra); it is imported when a plot is drawn, and
drawn with the Agg canvas (no display, no change to pyplot's backend).

Shapes: ``S`` seeds, ``U`` updates, ``G`` points of the common step grid.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jaxpg.stats import bootstrap_ci

__all__ = ["common_grid_curves", "plot_learning_curve"]


def common_grid_curves(
    env_steps: Any, returns: Any, num_points: int = 200
) -> tuple[np.ndarray, np.ndarray]:
    r"""Put every seed's curve on one env-step grid.

    Seeds reach different step counts at each update (episode lengths vary),
    so each seed's curve is linearly interpolated onto a shared grid spanning
    the steps where any seed has a finite return. Updates with a NaN return
    (no episode ended) are skipped; before a seed's first finite point its
    first value is held, after its last point its last value (forward fill).

    Args:
      env_steps: ``[S, U]`` cumulative env steps per seed.
      returns: ``[S, U]`` mean episode return per update, NaN where none ended.
      num_points: ``G``, points of the grid.

    Returns:
      ``(grid [G], curves [S', G])`` with ``S'`` the seeds that have at least
      one finite return (``S' = 0``: both are empty).

    Raises:
      ValueError: the two arrays are not both ``[S, U]`` of the same shape.
    """
    steps = np.asarray(env_steps, dtype=np.float64)
    rets = np.asarray(returns, dtype=np.float64)
    if steps.ndim != 2 or steps.shape != rets.shape:
        raise ValueError(
            "env_steps and returns must both be [S, U] of one shape, got "
            f"{steps.shape} and {rets.shape}"
        )
    valid = np.isfinite(rets) & np.isfinite(steps)
    seeds = [s for s in range(steps.shape[0]) if valid[s].any()]
    if not seeds:
        return np.zeros((0,)), np.zeros((0, 0))
    lo = min(steps[s][valid[s]].min() for s in seeds)
    hi = max(steps[s][valid[s]].max() for s in seeds)
    grid = np.linspace(lo, hi, num_points)
    curves = np.stack(
        [np.interp(grid, steps[s][valid[s]], rets[s][valid[s]]) for s in seeds]
    )
    return grid, curves


def plot_learning_curve(
    env_steps: Any,
    returns: Any,
    path: str | os.PathLike,
    title: str = "",
    confidence: float = 0.95,
) -> None:
    r"""Save a PNG of the mean return over seeds with a bootstrap CI band.

    The line is the mean over seeds of the curves of
    :func:`common_grid_curves`; the band, a percentile bootstrap interval over
    seeds at each grid point (:func:`jaxpg.stats.bootstrap_ci`).

    Args:
      env_steps: ``[S, U]`` cumulative env steps per seed (x axis).
      returns: ``[S, U]`` mean episode return per update, NaN where none ended.
      path: where to write the PNG.
      title: the plot's title.
      confidence: level of the band.

    Raises:
      ValueError: the arrays do not have one ``[S, U]`` shape.
    """
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    grid, curves = common_grid_curves(env_steps, returns)
    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    if curves.shape[0]:
        band = bootstrap_ci(
            curves,
            stat=lambda c: c.mean(axis=0),
            num_resamples=1000,
            confidence=confidence,
        )
        num = curves.shape[0]
        ax.fill_between(
            grid,
            band.low,
            band.high,
            alpha=0.3,
            linewidth=0,
            label=f"{confidence:.0%} bootstrap CI",
        )
        ax.plot(grid, band.estimate, label=f"mean of {num} seed{'s' * (num > 1)}")
        ax.legend(loc="lower right")
    else:
        ax.text(
            0.5,
            0.5,
            "no episode ended",
            ha="center",
            va="center",
            transform=ax.transAxes,
        )
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("episode return")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    fig.savefig(os.fspath(path), dpi=120)
