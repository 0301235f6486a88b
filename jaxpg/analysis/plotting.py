r"""Plots: learning curves (every seed, and the mean over seeds with a bootstrap
band, against env steps) and the comparison figures of ``jaxpg compare``
(aggregate intervals, performance profiles, probability of improvement).

Needs matplotlib (the ``cli`` extra); it is imported when a plot is drawn, and
drawn with the Agg canvas (no display, no change to pyplot's backend).

Shapes: ``S`` seeds, ``U`` updates, ``G`` points of the common step grid.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from jaxpg.analysis.stats import bootstrap_ci

__all__ = [
    "common_grid_curves",
    "plot_aggregates",
    "plot_improvement",
    "plot_learning_curve",
    "plot_profiles",
    "plot_sweep",
    "sweep_curves",
]


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
    threshold: float | None = None,
) -> Any:
    r"""Save a PNG of every seed's curve, and their mean with a bootstrap band.

    Each seed is a thin line (a failing seed stands out); the thick line is
    the mean over seeds of the curves of :func:`common_grid_curves`, the band
    a percentile bootstrap interval over seeds at each grid point
    (:func:`jaxpg.analysis.stats.bootstrap_ci`); ``threshold`` adds a dashed "solved"
    line.

    Args:
      env_steps: ``[S, U]`` cumulative env steps per seed (x axis).
      returns: ``[S, U]`` mean episode return per update, NaN where none ended.
      path: where to write the PNG.
      title: the plot's title.
      confidence: level of the band.
      threshold: the environment's solved score, or ``None``.

    Returns:
      The matplotlib ``Figure``.

    Raises:
      ValueError: the arrays do not have one ``[S, U]`` shape.
    """
    grid, curves = common_grid_curves(env_steps, returns)
    fig, ax = _figure()
    if curves.shape[0]:
        for i, curve in enumerate(curves):
            ax.plot(
                grid,
                curve,
                color="0.55",
                linewidth=0.6,
                alpha=0.6,
                label="each seed" if i == 0 else None,
            )
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
        ax.plot(
            grid,
            band.estimate,
            linewidth=2.0,
            label=f"mean of {num} seed{'s' * (num > 1)}",
        )
        if threshold is not None:
            ax.axhline(threshold, color="k", linestyle="--", linewidth=0.8,
                       label=f"solved ({threshold:g})")  # fmt: skip
        ax.legend(loc="best", fontsize="small")
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
    return fig


def _figure(width: float = 6.4, height: float = 4.0, ncols: int = 1):
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(1, ncols)
    return fig, axes


def plot_aggregates(result: dict, path: str | os.PathLike, title: str = "") -> Any:
    """Save the aggregate metrics of :func:`jaxpg.analysis.compare.compare` as a PNG:
    one panel per metric it holds (IQM, mean, median, optimality gap when
    the scores are normalised), one bar per method spanning its interval, a
    tick at the estimate."""
    from jaxpg.analysis.compare import AGGREGATES

    methods = list(result["aggregates"])
    held = [m for m in AGGREGATES if m in result["aggregates"][methods[0]]]
    fig, axes = _figure(3.0 * len(held), 0.6 * len(methods) + 1.4,
                        ncols=len(held))  # fmt: skip
    unit = "normalised score" if result.get("normalised", True) else "return"
    for ax, metric in zip(axes, held, strict=True):
        for i, name in enumerate(methods):
            est = result["aggregates"][name][metric]
            ax.barh(i, est["high"] - est["low"], left=est["low"], height=0.6,
                    alpha=0.6, color=f"C{i}")  # fmt: skip
            ax.vlines(est["estimate"], i - 0.3, i + 0.3, color="k")
        ax.set_yticks(range(len(methods)))
        ax.set_yticklabels(methods if ax is axes[0] else [""] * len(methods))
        ax.set_title(metric.replace("_", " "))
        ax.grid(axis="x", alpha=0.3)
        ax.set_xlabel(unit)
    fig.suptitle(title or f"{result['confidence']:.0%} stratified bootstrap CIs")
    fig.savefig(os.fspath(path), dpi=120)
    return fig


def plot_profiles(result: dict, path: str | os.PathLike, title: str = "") -> Any:
    """Save the performance profiles of :func:`jaxpg.analysis.compare.compare`: the
    fraction of runs above each normalised score, with bootstrap bands."""
    taus = np.asarray(result["profiles"]["taus"])
    fig, ax = _figure()
    for i, (name, prof) in enumerate(result["profiles"]["methods"].items()):
        ax.fill_between(taus, prof["low"], prof["high"], alpha=0.2, color=f"C{i}",
                        linewidth=0)  # fmt: skip
        ax.plot(taus, prof["fraction"], color=f"C{i}", label=name)
    normalised = result.get("normalised", True)
    ax.set_xlabel(
        "normalised score τ (0 random, 1 solved)" if normalised else "return τ"
    )
    ax.set_ylabel("fraction of runs with score > τ")
    ax.set_ylim(-0.02, 1.02)
    ax.grid(alpha=0.3)
    ax.legend()
    ax.set_title(title or "performance profiles")
    fig.savefig(os.fspath(path), dpi=120)
    return fig


def plot_improvement(result: dict, path: str | os.PathLike, title: str = "") -> Any:
    """Save ``P(X > Y)`` of every ordered pair with its interval (0.5: no
    difference)."""
    pairs = list(result["probability_of_improvement"])
    fig, ax = _figure(6.4, 0.45 * max(len(pairs), 1) + 1.4)
    for i, pair in enumerate(pairs):
        est = result["probability_of_improvement"][pair]
        ax.barh(i, est["high"] - est["low"], left=est["low"], height=0.6,
                alpha=0.6, color="C0")  # fmt: skip
        ax.vlines(est["estimate"], i - 0.3, i + 0.3, color="k")
    ax.axvline(0.5, color="k", linestyle="--", linewidth=0.8)
    ax.set_yticks(range(len(pairs)), pairs)
    ax.set_xlim(0.0, 1.0)
    ax.set_xlabel("P(X > Y)")
    ax.grid(axis="x", alpha=0.3)
    ax.set_title(title or "probability of improvement")
    fig.savefig(os.fspath(path), dpi=120)
    return fig


def sweep_curves(env_steps: Any, returns: Any, num_points: int = 100) -> list[dict]:
    """Per setting, the mean training curve over its seeds on a common step
    grid (:func:`common_grid_curves`).

    Args:
      env_steps, returns: ``[K, S, U]``.
      num_points: ``G``.

    Returns:
      ``K`` dicts ``{"env_steps": [G], "mean_return": [G]}`` (lists; empty
      for a setting without a finite return).
    """
    curves = []
    for steps, rets in zip(env_steps, returns, strict=True):
        grid, c = common_grid_curves(steps, rets, num_points)
        mean = c.mean(axis=0) if c.shape[0] else np.zeros((0,))
        curves.append({"env_steps": grid.tolist(), "mean_return": mean.tolist()})
    return curves


def plot_sweep(
    settings: list[dict[str, float]],
    iqms: list[dict | None],
    best: int | None,
    curves: list[dict],
    path: str | os.PathLike,
    title: str = "",
) -> Any:
    """``jaxpg sweep``'s figure: each setting's final score (IQM over seeds
    with its 95% interval; the best in red) and its mean training curve.

    Args:
      settings: ``K`` settings ``{field: value}``.
      iqms: per setting ``{"estimate", "low", "high"}`` or ``None`` (no
        finite seed).
      best: index of the best setting, or ``None``.
      curves: :func:`sweep_curves`.
      path: where to write the PNG.
      title: the curves' title.
    """
    fig, (left, right) = _figure(11, 4.2, ncols=2)
    names = list(dict.fromkeys(n for st in settings for n in st))
    labels = ["\n".join(f"{n}={st[n]:.3g}" for n in names) for st in settings]
    x = np.arange(len(settings))
    nan = {"estimate": np.nan, "low": np.nan, "high": np.nan}
    est, low, high = (
        np.array([(c or nan)[f] for c in iqms], float)
        for f in ("estimate", "low", "high")
    )
    left.bar(x, est, color=["C3" if i == best else "C0" for i in x], alpha=0.35)
    left.errorbar(x, est, yerr=[est - low, high - est], fmt="none", ecolor="k")
    left.set_xticks(x, labels, fontsize=7)
    left.set_ylabel("evaluated return: IQM over seeds, 95% CI")
    left.set_title("final score (best in red)")
    for i, c in enumerate(curves):
        if c["env_steps"]:
            right.plot(
                c["env_steps"],
                c["mean_return"],
                color="C3" if i == best else None,
                lw=2 if i == best else 1,
                label=labels[i].replace("\n", " "),
            )
    right.set_xlabel("env steps (per seed)")
    right.set_ylabel("training return (mean over seeds)")
    right.set_title(title)
    if len(curves) <= 12:
        right.legend(fontsize=7)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.savefig(str(path), dpi=110)
    return fig
