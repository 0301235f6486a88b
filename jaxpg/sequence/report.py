r"""What a token-policy run reports (``jaxpg lm``'s ``metrics.json`` summary and
``curves.png``). Shapes: ``S`` seeds, ``U`` updates.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "EVAL_PROMPTS",
    "EVAL_PROMPTS_SEED",
    "PLOTTED",
    "evaluate_run",
    "plot_curves",
    "summary",
]

PLOTTED = ("reward", "true_reward", "kl_exact", "response_length")
# The evaluation of a run's reference and final policies: the key and the
# number of fresh prompts.
EVAL_PROMPTS_SEED = 2_024_998  # not jaxpg.drivers.evaluation.EVAL_SEED: other draws
EVAL_PROMPTS = 512


def evaluate_run(
    task: Any, model_cfg: Any, ref_params: Any, final_params: Any
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """The reference and every seed's final policy on the same
    :data:`EVAL_PROMPTS` fresh prompts (key :data:`EVAL_PROMPTS_SEED`), in one
    compiled program in which the reference is member 0.

    Args:
      task, model_cfg: the run's task and model.
      ref_params: the reference's parameters.
      final_params: ``[S]`` the seeds' final parameters.

    Returns:
      ``(reference's {name: value}, {name: [S]} of the seeds)``, the fields of
      :func:`jaxpg.sequence.rl.evaluate`.
    """
    import jax
    import jax.numpy as jnp

    from jaxpg.sequence import rl as rlm

    key = jax.random.key(EVAL_PROMPTS_SEED)

    @jax.jit
    def run(ref, finals):
        stacked = jax.tree.map(lambda r, f: jnp.concatenate([r[None], f]), ref, finals)
        return jax.vmap(lambda p: rlm.evaluate(key, p, task, model_cfg, EVAL_PROMPTS))(
            stacked
        )

    evals = {k: np.asarray(v) for k, v in run(ref_params, final_params).items()}
    return {k: float(v[0]) for k, v in evals.items()}, {
        k: v[1:] for k, v in evals.items()
    }


def summary(
    metrics: dict[str, np.ndarray],
    finals: dict[str, np.ndarray],
    ref_eval: dict[str, float],
    flags: np.ndarray,
    window: int,
) -> dict[str, Any]:
    """Each seed's result, as lists (JSON-able).

    Args:
      metrics: ``{name: [S, U]}`` per-update metrics of the run.
      finals: ``{name: [S]}`` evaluation of each seed's final policy.
      ref_eval: the reference's evaluation.
      flags: ``[S, U]`` bool, the reward-hacking flag
        (:func:`jaxpg.sequence.rl.reward_hacking_flag`).
      window: the updates over which hacking was judged.

    Returns:
      Final accuracy and rewards, the KL and length over the last tenth of
      the updates, the largest KL, the first flagged update (``-1``: none).
    """
    tail = max(1, metrics["reward"].shape[1] // 10)
    first = np.where(flags.any(axis=1), flags.argmax(axis=1), -1)
    return {
        "final_accuracy": finals["accuracy"].tolist(),
        "final_true_reward": finals["true_reward"].tolist(),
        "final_reward": finals["reward"].tolist(),
        "last_kl_exact": metrics["kl_exact"][:, -tail:].mean(axis=1).tolist(),
        "max_kl_exact": metrics["kl_exact"].max(axis=1).tolist(),
        "last_length": metrics["response_length"][:, -tail:].mean(axis=1).tolist(),
        "hack_first_update": first.tolist(),
        "hack_window": window,
        "reference_accuracy": ref_eval["accuracy"],
    }


def plot_curves(
    metrics: dict[str, np.ndarray],
    flags: np.ndarray,
    path: str | Path,
    task: Any,
    rl_cfg: Any,
    version: str,
) -> None:
    """Write ``path`` (a PNG): the reward, true reward, exact KL and response
    length over updates, mean and range over seeds, and the first update
    flagged as reward hacking. ``metrics``: ``{name: [S, U]}``; ``flags``:
    ``[S, U]``; ``task``, ``rl_cfg``, ``version``: for the titles. Needs
    matplotlib (the ``cli`` extra)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    learned = task.name.endswith("+rm")
    titles = {
        "reward": "learned reward (reward model)"
        if learned
        else "optimised reward" + (" (proxy)" if task.has_proxy else ""),
        "true_reward": "true reward (exact match)",
        "kl_exact": "KL(pi || ref), exact, per response",
        "response_length": "response length",
    }
    fig, axes = plt.subplots(1, len(PLOTTED), figsize=(4 * len(PLOTTED), 3.2))
    x = np.arange(1, metrics["reward"].shape[1] + 1)
    for ax, name in zip(axes, PLOTTED, strict=True):
        v = metrics[name]
        ax.plot(x, v.mean(axis=0), color="C0", label=f"mean of {v.shape[0]} seeds")
        ax.fill_between(x, v.min(axis=0), v.max(axis=0), color="C0", alpha=0.2)
        if flags.any():
            first = int(np.min(np.where(flags.any(axis=1), flags.argmax(axis=1), 1e9)))
            ax.axvline(x[first], color="C3", ls="--", label="hacking flagged")
        ax.set_title(titles[name], fontsize=9)
        ax.set_xlabel("update")
    axes[0].legend(fontsize=7)
    fig.suptitle(
        f"{task.name}: {rl_cfg.advantage}, KL {rl_cfg.kl_estimator} in "
        f"{rl_cfg.kl_placement}, beta={rl_cfg.beta}; reference {version}",
        fontsize=9,
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
