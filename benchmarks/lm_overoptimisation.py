"""Over-optimising a learned reward model (Gao et al. 2023, "Scaling Laws for
Reward Model Overoptimization"), reproduced at a CPU size.

1. SFT reference on ``sort`` (3 digits); the gold reward is partial credit.
2. Preference pairs: two responses per prompt from the reference at
   temperature ``--pair-temperature``, labelled by the gold reward with label
   noise ``--noise`` (:func:`jaxpg.sequence.preference_pairs`); a
   Bradley–Terry reward model (:mod:`jaxpg.sequence.reward_model`) trained on
   them, its held-out preference accuracy reported.
3. RL (GRPO, KL in the loss, k3) against the learned reward for every KL
   coefficient ``--betas`` (0 included) and ``--seeds`` seeds; per update the
   proxy reward, the gold reward (``true_reward``) and the exact KL to the
   reference are recorded.
4. Per KL coefficient: gold and proxy against ``d = sqrt(KL)``; Gao et al.'s RL
   form ``gold(d) = d (alpha - beta_fit log d)`` fitted by least squares to
   the gold reward's gain over the reference; where
   :func:`jaxpg.sequence.reward_hacking_flag` first fires; which KL
   coefficient, and which early stop (the monitor's first flag), keeps the
   most gold reward.

Written to ``benchmarks/results/lm_overoptimisation.json`` (and a plot next to
it when matplotlib is installed).

    python benchmarks/lm_overoptimisation.py           # the full sweep
    python benchmarks/lm_overoptimisation.py --tiny    # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg import sequence as sq
from jaxpg.sequence import tasks

RESULTS = Path(__file__).parent / "results"


def fit_gao(d: np.ndarray, gain: np.ndarray) -> dict[str, float]:
    """Least squares of ``gain ~ d (alpha - beta log d)`` over ``d > 0``:
    linear in ``(alpha, beta)`` with features ``d`` and ``-d log d``."""
    keep = d > 1e-6
    if keep.sum() < 2:
        return {"alpha": float("nan"), "beta": float("nan"), "r2": float("nan")}
    x = np.stack([d[keep], -d[keep] * np.log(d[keep])], axis=1)
    coef, *_ = np.linalg.lstsq(x, gain[keep], rcond=None)
    resid = gain[keep] - x @ coef
    total = np.sum((gain[keep] - gain[keep].mean()) ** 2)
    r2 = 1.0 - np.sum(resid**2) / total if total > 0 else float("nan")
    return {"alpha": float(coef[0]), "beta": float(coef[1]), "r2": float(r2)}


def _bag(cfg: sq.TransformerConfig) -> sq.SequenceModel:
    """Counts of each token so far as the backbone's output (no parameters):
    the Bradley-Terry head makes the reward linear in the token counts."""
    v = cfg.vocab_size

    def apply(params, tokens, positions, mask):
        return jnp.cumsum(jax.nn.one_hot(tokens, v), axis=1)

    return sq.SequenceModel("bag", v, cfg.max_len, lambda key: {}, apply)


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="seconds: checks it runs")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.01, 0.04, 0.1])
    ap.add_argument("--seeds", type=int, default=4)
    ap.add_argument("--updates", type=int, default=300)
    ap.add_argument("--pairs", type=int, default=1024)
    ap.add_argument("--noise", type=float, default=0.1)
    ap.add_argument("--pair-temperature", type=float, default=1.5)
    ap.add_argument("--rm-steps", type=int, default=300)
    ap.add_argument("--sft-steps", type=int, default=150)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument(
        "--reward-backbone",
        choices=("transformer", "bag"),
        default="transformer",
        help="the reward model's backbone: the policy's transformer, or a "
        "bag of tokens (counts so far; misspecified for sorting)",
    )
    ap.add_argument("--out", type=Path, default=RESULTS / "lm_overoptimisation.json")
    args = ap.parse_args(argv)
    if args.tiny:
        args.betas, args.seeds, args.updates = [0.0, 0.1], 2, 8
        args.pairs, args.rm_steps, args.sft_steps, args.window = 64, 5, 5, 2

    partial = tasks.sort_task(3, reward="partial")
    task = dataclasses.replace(partial, true_reward=partial.reward)  # gold
    cfg = sq.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=32, num_layers=2, num_heads=2,
        max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip
    ref = jax.jit(sq.make_sft(task, cfg, num_steps=args.sft_steps))(jax.random.key(0))
    ref = ref.params

    def pairs(key, n):
        return sq.preference_pairs(
            key, task, ref, cfg, n, noise=args.noise,
            temperature=args.pair_temperature,
        )  # fmt: skip

    train_pairs = jax.jit(pairs, static_argnums=1)(jax.random.key(1), args.pairs)
    held_out = jax.jit(pairs, static_argnums=1)(jax.random.key(2), args.pairs // 2)
    backbone = cfg if args.reward_backbone == "transformer" else _bag(cfg)
    rm = jax.jit(sq.make_reward_model_train(backbone, num_steps=args.rm_steps))(
        jax.random.key(3), train_pairs
    )
    accuracy = float(sq.preference_accuracy(rm.params, backbone, held_out))
    proxy_task = sq.learned_reward_task(task, backbone, rm.params)

    runs = {}
    for beta in args.betas:
        rl_cfg = sq.RLConfig(
            num_prompts=16, group_size=4, num_updates=args.updates, lr=2e-3,
            advantage="grpo", aggregation="token_mean", kl_placement="loss",
            kl_estimator="k3", beta=beta,
        )  # fmt: skip
        out = sq.train_seeds(proxy_task, cfg, rl_cfg, ref, ref, args.seeds)
        m = {k: np.asarray(out.metrics[k], np.float64) for k in
             ("reward", "true_reward", "kl_exact")}  # fmt: skip
        flags = sq.reward_hacking_flag(m["true_reward"], m["reward"], args.window)
        first = [int(np.argmax(f)) if f.any() else None for f in flags]
        d = np.sqrt(np.maximum(m["kl_exact"], 0.0))
        gain = m["true_reward"] - m["true_reward"][:, :1]
        stopped = [
            float(m["true_reward"][s, u]) if u is not None else None
            for s, u in enumerate(first)
        ]
        runs[str(beta)] = {
            "proxy": m["reward"].mean(axis=0).tolist(),
            "gold": m["true_reward"].mean(axis=0).tolist(),
            "sqrt_kl": d.mean(axis=0).tolist(),
            "final_gold": m["true_reward"][:, -10:].mean(axis=1).tolist(),
            "max_gold": m["true_reward"].max(axis=1).tolist(),
            "monitor_first_flag": first,
            "gold_at_first_flag": stopped,
            "gao_fit": fit_gao(d.ravel(), gain.ravel()),
        }
    best = max(runs, key=lambda b: np.mean(runs[b]["final_gold"]))
    result = {
        "settings": {k: str(v) for k, v in vars(args).items()},
        "reward_model": {
            "held_out_accuracy": accuracy,
            "version": sq.params_hash(rm.params),
            "final_loss": float(rm.loss[-1]),
        },
        "runs": runs,
        "best_beta_by_final_gold": float(best),
    }
    if not args.tiny:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        _plot(runs, args.out.with_suffix(".png"))
    print(json.dumps({"held_out_accuracy": accuracy, "best_beta": best,
                      "fits": {b: r["gao_fit"] for b, r in runs.items()}}))  # fmt: skip
    return result


def _plot(runs: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, ax = plt.subplots(figsize=(6, 4))
    for beta, r in runs.items():
        (line,) = ax.plot(r["sqrt_kl"], r["gold"], label=f"gold, beta={beta}")
        ax.plot(r["sqrt_kl"], r["proxy"], "--", color=line.get_color())
    ax.set_xlabel("sqrt(KL to reference)")
    ax.set_ylabel("reward (solid: gold, dashed: learned proxy)")
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


if __name__ == "__main__":
    main()
