"""Over-optimising a learned reward model (Gao et al. 2023, "Scaling Laws for
Reward Model Overoptimization"), reproduced at a CPU size, with DPO on the
same pairs beside it.

1. SFT reference on ``sort`` (3 digits), deliberately short (``--sft-steps``)
   so that the gold reward (partial credit) has room to rise.
2. Preference pairs: two responses per prompt from the reference at
   temperature ``--pair-temperature``, labelled by the gold reward with label
   noise ``--noise`` (:func:`jaxpg.sequence.preference_pairs`); a
   Bradley–Terry reward model (:mod:`jaxpg.sequence.reward_model`) trained on
   them, its held-out preference accuracy reported.
3. RL (GRPO, KL in the loss, k3) against the learned reward for every KL
   coefficient ``--betas`` (0 included) and ``--seeds`` seeds, all in one
   compiled program (the KL coefficient traced); per update the proxy reward,
   the gold reward (``true_reward``) and the exact KL to the reference.
4. DPO (:mod:`jaxpg.sequence.dpo`) on the same pairs from the same reference
   for every ``--dpo-betas`` and seed; every ``--dpo-eval-every`` steps the
   policy samples ``--eval-prompts`` responses: gold, proxy and exact KL.
5. Per setting: gold and proxy against ``d = sqrt(KL)``; Gao et al.'s RL form
   ``gold(d) - gold(0) = d (alpha - beta_fit log d)`` fitted by least squares
   (per setting and pooled over the RL settings); where
   :func:`jaxpg.sequence.reward_hacking_flag` first fires; the gold reward
   kept by each stopping rule: none (final), the monitor's first flag, a KL
   budget at the pooled fit's peak ``d* = exp(alpha / beta_fit - 1)``, and
   the best point (an oracle bound).

Written to ``benchmarks/results/lm_overoptimisation_cpu.{json,md,png}``
(``--out``; the plot when matplotlib is installed). Returns are not timings.

    python benchmarks/lm_overoptimisation.py           # the recorded sweep
    python benchmarks/lm_overoptimisation.py --tiny    # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg import sequence as sq
from jaxpg.sequence import dpo, estimators, sampling, tasks

RESULTS = Path(__file__).parent / "results"


def fit_gao(d: np.ndarray, gain: np.ndarray) -> dict[str, float]:
    """Least squares of ``gain ~ d (alpha - beta log d)`` over ``d > 0``:
    linear in ``(alpha, beta)`` with features ``d`` and ``-d log d``; R² of
    the fit over those points (no intercept: ``gain(0) = 0``)."""
    d, gain = np.ravel(d), np.ravel(gain)
    keep = (d > 1e-6) & np.isfinite(gain)
    nan = float("nan")
    if keep.sum() < 3:
        return {"alpha": nan, "beta": nan, "r2": nan, "n": int(keep.sum())}
    x = np.stack([d[keep], -d[keep] * np.log(d[keep])], axis=1)
    coef, *_ = np.linalg.lstsq(x, gain[keep], rcond=None)
    resid = gain[keep] - x @ coef
    total = np.sum((gain[keep] - gain[keep].mean()) ** 2)
    r2 = 1.0 - np.sum(resid**2) / total if total > 0 else nan
    return {
        "alpha": float(coef[0]),
        "beta": float(coef[1]),
        "r2": float(r2),
        "n": int(keep.sum()),
    }


def gao_peak(fit: dict[str, float]) -> float | None:
    """``d*`` maximising ``d (alpha - beta log d)``: ``exp(alpha / beta - 1)``
    (None when ``beta <= 0``: no interior maximum)."""
    if not fit["beta"] > 0:
        return None
    return float(np.exp(fit["alpha"] / fit["beta"] - 1.0))


def _bag(cfg: sq.TransformerConfig) -> sq.SequenceModel:
    """Counts of each token so far as the backbone's output (no parameters):
    the Bradley-Terry head makes the reward linear in the token counts."""
    v = cfg.vocab_size

    def apply(params, tokens, positions, mask):
        return jnp.cumsum(jax.nn.one_hot(tokens, v), axis=1)

    return sq.SequenceModel("bag", v, cfg.max_len, lambda key: {}, apply)


def _smooth(x: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` entries of the last axis (shorter at
    the start)."""
    c = np.cumsum(x, axis=-1)
    out = c.copy()
    out[..., window:] = c[..., window:] - c[..., :-window]
    n = np.minimum(np.arange(1, x.shape[-1] + 1), window)
    return out / n


def summarise(
    gold: np.ndarray,
    proxy: np.ndarray,
    kl: np.ndarray,
    steps: np.ndarray,
    window: int,
    budget_d: float | None = None,
) -> dict:
    """One setting's ``[S, T]`` curves (``T`` points at ``steps``) -> curves
    (means over seeds), Gao fit, monitor flags and the gold kept by each
    stopping rule (gold smoothed over ``window`` points, per seed, then the
    mean over seeds)."""
    d = np.sqrt(np.maximum(kl, 0.0))
    sm = _smooth(gold, window)
    flags = sq.reward_hacking_flag(gold, proxy, window)
    first = [int(np.argmax(f)) if f.any() else None for f in flags]
    at_flag = [sm[s, u] if u is not None else sm[s, -1] for s, u in enumerate(first)]
    out = {
        "steps": steps.tolist(),
        "gold": gold.mean(axis=0).tolist(),
        "proxy": proxy.mean(axis=0).tolist(),
        "sqrt_kl": d.mean(axis=0).tolist(),
        "gold_start": float(gold[:, 0].mean()),
        "gold_final": float(sm[:, -1].mean()),
        "gold_final_per_seed": sm[:, -1].tolist(),
        "proxy_final": float(_smooth(proxy, window)[:, -1].mean()),
        "sqrt_kl_final": float(d[:, -window:].mean()),
        "gold_best": float(sm.max(axis=1).mean()),
        "sqrt_kl_at_best": float(
            np.mean([d[s, np.argmax(sm[s])] for s in range(len(sm))])
        ),
        "monitor_first_flag": [int(steps[u]) if u is not None else None for u in first],
        "gold_at_first_flag": float(np.mean(at_flag)),
        "gao_fit": fit_gao(d, gold - gold[:, :1]),
    }
    if budget_d is not None:
        # Stop at the first point whose sqrt(KL) (smoothed) passes the budget.
        ds = _smooth(d, window)
        stop = [
            int(np.argmax(row > budget_d)) if (row > budget_d).any() else -1
            for row in ds
        ]
        out["gold_at_kl_budget"] = float(
            np.mean([sm[s, u] for s, u in enumerate(stop)])
        )
    return out


def setup(args) -> dict:
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
    if args.reward_init == "reference" and args.reward_backbone == "transformer":
        # As in InstructGPT: the reward model starts from the SFT policy.
        backbone = dataclasses.replace(sq.as_model(cfg), init=lambda key: ref)
    rm = jax.jit(
        sq.make_reward_model_train(backbone, num_steps=args.rm_steps, lr=args.rm_lr)
    )(jax.random.key(3), train_pairs)
    accuracy = float(sq.preference_accuracy(rm.params, backbone, held_out))
    proxy_task = sq.learned_reward_task(task, backbone, rm.params)
    ref_eval = sq.evaluate(jax.random.key(4), ref, proxy_task, cfg, 512)
    return {
        "task": task, "cfg": cfg, "ref": ref, "pairs": train_pairs,
        "proxy_task": proxy_task,
        "reward_model": {
            "backbone": args.reward_backbone,
            "init": args.reward_init,
            "held_out_accuracy": accuracy,
            "held_out_pairs": int(held_out.weight.sum()),
            "train_pairs": int(train_pairs.weight.sum()),
            "version": sq.params_hash(rm.params),
            "final_loss": float(rm.loss[-10:].mean()),
        },
        "reference": {k: float(v) for k, v in ref_eval.items()},
    }  # fmt: skip


def rl_sweep(s: dict, args) -> dict[str, np.ndarray]:
    """``{reward, true_reward, kl_exact}``, each ``[B, S, U]``: every KL
    coefficient and seed in one compiled program."""
    rl_cfg = sq.RLConfig(
        num_prompts=args.prompts, group_size=args.group_size,
        num_updates=args.updates, lr=args.lr, advantage="grpo",
        aggregation="token_mean", kl_placement="loss", kl_estimator="k3",
    )  # fmt: skip
    train = sq.make_rl_train(s["proxy_task"], s["cfg"], rl_cfg)

    def one(beta, key):
        hyper = sq.Hyperparams(beta, jnp.float32(args.lr))
        m = train(key, s["ref"], s["ref"], hyper).metrics
        return {k: m[k] for k in ("reward", "true_reward", "kl_exact")}

    keys = jax.vmap(jax.random.key)(jnp.arange(args.seeds))
    run = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    out = run(jnp.asarray(args.betas, jnp.float32), keys)
    return {k: np.asarray(v, np.float64) for k, v in out.items()}


def policy_stats(key, params, s: dict, n: int) -> dict[str, jax.Array]:
    """Gold, proxy and exact KL to the reference (summed over tokens) of ``n``
    responses sampled from ``params`` at temperature 1: means, ``[]`` each."""
    task, cfg = s["proxy_task"], s["cfg"]
    prompt_key, sample_key = jax.random.split(key)
    prompts = task.sample_prompts(prompt_key, n)
    smp = sampling.sample(
        sample_key, params, cfg, prompts, task.max_new_tokens,
        eos_id=tasks.EOS, pad_id=tasks.PAD,
    )  # fmt: skip
    logits = sampling.response_logits(params, cfg, prompts, smp.responses)
    ref_logits = sampling.response_logits(s["ref"], cfg, prompts, smp.responses)
    kl = jnp.sum(estimators.exact_kl(logits, ref_logits) * smp.mask, axis=1)
    return {
        "reward": jnp.mean(task.reward(prompts, smp.responses, smp.mask)),
        "true_reward": jnp.mean(task.true_reward(prompts, smp.responses, smp.mask)),
        "kl_exact": jnp.mean(kl),
    }


def dpo_sweep(s: dict, args) -> dict[str, np.ndarray]:
    """``{reward, true_reward, kl_exact}``, each ``[B, S, T + 1]`` at DPO steps
    ``0, k, 2k, ..`` (``k = --dpo-eval-every``): every DPO beta and seed in
    one compiled program."""
    k = args.dpo_eval_every
    checkpoints = args.dpo_steps // k
    algo = dpo.make_dpo(s["cfg"], batch_size=args.dpo_batch, lr=args.dpo_lr)

    def one(beta, key):
        data = dpo.dpo_data(s["ref"], s["cfg"], s["pairs"])
        train_key, eval_key = jax.random.split(key)
        eval_keys = jax.random.split(eval_key, checkpoints + 1)

        def chunk(state, eval_key):
            state, _ = jax.lax.scan(
                lambda st, _: algo.update(st, data, beta), state, None, length=k
            )
            return state, policy_stats(eval_key, state.params, s, args.eval_prompts)

        state = algo.init(train_key, s["ref"])
        first = policy_stats(eval_keys[0], s["ref"], s, args.eval_prompts)
        _, stats = jax.lax.scan(chunk, state, eval_keys[1:])
        return jax.tree.map(lambda a, b: jnp.concatenate([a[None], b]), first, stats)

    keys = jax.vmap(jax.random.key)(jnp.arange(100, 100 + args.seeds))
    run = jax.jit(jax.vmap(jax.vmap(one, (None, 0)), (0, None)))
    out = run(jnp.asarray(args.dpo_betas, jnp.float32), keys)
    return {key: np.asarray(v, np.float64) for key, v in out.items()}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--tiny", action="store_true", help="seconds: checks it runs")
    ap.add_argument("--betas", type=float, nargs="+", default=[0.0, 0.01, 0.05, 0.2])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--updates", type=int, default=400)
    ap.add_argument("--prompts", type=int, default=16)
    ap.add_argument("--group-size", type=int, default=4)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--pairs", type=int, default=2048)
    ap.add_argument("--noise", type=float, default=0.05)
    ap.add_argument("--pair-temperature", type=float, default=1.0)
    ap.add_argument("--rm-steps", type=int, default=800)
    ap.add_argument("--rm-lr", type=float, default=1e-3)
    ap.add_argument("--sft-steps", type=int, default=25)
    ap.add_argument("--window", type=int, default=20)
    ap.add_argument("--dpo-betas", type=float, nargs="+", default=[0.05, 0.1, 0.3])
    ap.add_argument("--dpo-steps", type=int, default=400)
    ap.add_argument("--dpo-eval-every", type=int, default=20)
    ap.add_argument("--dpo-window", type=int, default=3, help="evaluations")
    ap.add_argument("--dpo-batch", type=int, default=64)
    ap.add_argument("--dpo-lr", type=float, default=1e-3)
    ap.add_argument("--eval-prompts", type=int, default=128)
    ap.add_argument(
        "--reward-backbone",
        choices=("transformer", "bag"),
        default="transformer",
        help="the reward model's backbone: the policy's transformer, or a "
        "bag of tokens (counts so far; misspecified for sorting)",
    )
    ap.add_argument(
        "--reward-init",
        choices=("reference", "scratch"),
        default="reference",
        help="the transformer reward model's backbone starts from the SFT "
        "reference's parameters (as in InstructGPT) or from a fresh init",
    )
    ap.add_argument("--machine", default="2-core CPU VM")
    ap.add_argument(
        "--out",
        type=Path,
        default=None,
        help="path stem of the .json/.md/.png (default: "
        "benchmarks/results/lm_overoptimisation_cpu; --tiny writes only with --out)",
    )
    args = ap.parse_args(argv)
    if args.tiny:
        args.betas, args.seeds, args.updates = [0.0, 0.1], 2, 8
        args.pairs, args.rm_steps, args.sft_steps, args.window = 64, 5, 5, 2
        args.dpo_betas, args.dpo_steps, args.dpo_eval_every = [0.1], 4, 2
        args.dpo_window = 1
        args.eval_prompts = 8
    start = time.time()
    s = setup(args)
    rl = rl_sweep(s, args)
    d_all = np.sqrt(np.maximum(rl["kl_exact"], 0.0))
    pooled = fit_gao(d_all, rl["true_reward"] - rl["true_reward"][..., :1])
    budget = gao_peak(pooled)
    steps = np.arange(args.updates)
    runs = {}
    for i, beta in enumerate(args.betas):
        runs[f"rl beta={beta:g}"] = summarise(
            rl["true_reward"][i], rl["reward"][i], rl["kl_exact"][i], steps,
            args.window, budget,
        )  # fmt: skip
    dp = dpo_sweep(s, args)
    dpo_steps = np.arange(dp["true_reward"].shape[-1]) * args.dpo_eval_every
    for i, beta in enumerate(args.dpo_betas):
        runs[f"dpo beta={beta:g}"] = summarise(
            dp["true_reward"][i], dp["reward"][i], dp["kl_exact"][i], dpo_steps,
            args.dpo_window, budget,
        )  # fmt: skip
    fits = {name: r["gao_fit"] for name, r in runs.items()}
    best = {}
    for kind in ("rl", "dpo"):
        names = [n for n in runs if n.startswith(kind)]
        best[kind] = {
            rule: max(names, key=lambda n, k=key: runs[n][k])
            for rule, key in _RULE_KEYS.items()
            if key in runs[names[0]]
        }
    result = {
        "machine": args.machine,
        "settings": {
            k: v if isinstance(v, int | float | list) else str(v)
            for k, v in vars(args).items()
            if k != "out"
        },
        "reference": s["reference"],
        "reward_model": s["reward_model"],
        "gao_fit_pooled_rl": pooled,
        "kl_budget_sqrt": budget,
        "dpo_smoothing_points": args.dpo_window,
        "runs": runs,
        "best_by_rule": best,
        "total_s": round(time.time() - start, 1),
    }
    print(json.dumps({"reward_model": s["reward_model"], "reference": s["reference"],
                      "pooled": pooled, "fits": fits, "best": best}))  # fmt: skip
    if args.out is not None or not args.tiny:
        args.out = args.out or RESULTS / "lm_overoptimisation_cpu"
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
        args.out.with_suffix(".md").write_text(markdown(result))
        plot(result, args.out.with_suffix(".png"))
    return result


_RULE_KEYS = {
    "none (final)": "gold_final",
    "monitor's first flag": "gold_at_first_flag",
    "KL budget d*": "gold_at_kl_budget",
    "oracle (best point)": "gold_best",
}


def _se(x: list[float]) -> float | None:
    """Standard error of the mean over seeds (None for one seed)."""
    return float(np.std(x, ddof=1) / np.sqrt(len(x))) if len(x) > 1 else None


def _f(x, digits=3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def markdown(result: dict) -> str:
    """The record as a Markdown page."""
    st, rm, ref = result["settings"], result["reward_model"], result["reference"]
    pooled = result["gao_fit_pooled_rl"]
    lines = [
        "# Over-optimising a learned reward model, and DPO on the same pairs",
        "",
        f"Machine: {result['machine']} (returns, not timings; "
        f"{result['total_s']:.0f} s in all). Written by "
        "`benchmarks/lm_overoptimisation.py`; plot: "
        "[lm_overoptimisation_cpu.png](lm_overoptimisation_cpu.png).",
        "",
        f"Task: sort (3 digits), gold reward = partial credit. Policy: the "
        f"transformer (width 32, 2 layers), SFT reference after "
        f"{st['sft_steps']} steps: gold {ref['true_reward']:.3f}, exact match "
        f"{ref['accuracy']:.3f}, proxy {ref['reward']:.3f} (512 prompts).",
        f"Reward model: Bradley–Terry, {rm['backbone']} backbone (init: "
        f"{rm['init']}), on "
        f"{rm['train_pairs']} untied pairs of the reference (temperature "
        f"{st['pair_temperature']}, label noise {st['noise']}): held-out "
        f"accuracy {rm['held_out_accuracy']:.3f} on {rm['held_out_pairs']} "
        f"pairs (version {rm['version']}).",
        f"RL: GRPO, {st['prompts']} prompts x {st['group_size']} samples, "
        f"lr {st['lr']}, k3 KL in the loss, {st['updates']} updates, "
        f"{st['seeds']} seeds per KL coefficient. DPO: {st['dpo_steps']} steps "
        f"of {st['dpo_batch']} pairs, lr {st['dpo_lr']}, evaluated every "
        f"{st['dpo_eval_every']} steps on {st['eval_prompts']} sampled "
        f"responses; {st['seeds']} seeds per beta.",
        "",
        "Gold = mean gold reward of the sampled responses, smoothed over the "
        f"last {st['window']} updates (RL) or {result['dpo_smoothing_points']} "
        "evaluations (DPO), mean over seeds. d = sqrt(exact KL to the "
        "reference, summed over tokens). Gao fit: gold(d) - gold(0) = "
        "d (alpha - beta log d), least squares over every seed's points. "
        "Monitor: `reward_hacking_flag(gold, proxy, window)` (tol 0.05) per "
        "seed; gold at flag = the smoothed gold there (the final gold for a "
        "seed it never flags). KL budget: stop where the smoothed d first "
        "passes d* (below).",
        "",
        "| setting | gold start | gold final ± s.e. (seeds) | best gold (oracle) "
        "| d at best | "
        "d final | proxy final | monitor's first flag (per seed) | gold at flag "
        "| gold at KL budget | Gao alpha | Gao beta | R² |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in result["runs"].items():
        g = r["gao_fit"]
        flags = ", ".join("-" if u is None else str(u) for u in r["monitor_first_flag"])
        lines.append(
            f"| {name} | {_f(r['gold_start'])} | {_f(r['gold_final'])} "
            f"± {_f(_se(r['gold_final_per_seed']))} | "
            f"{_f(r['gold_best'])} | {_f(r['sqrt_kl_at_best'], 2)} | "
            f"{_f(r['sqrt_kl_final'], 2)} | {_f(r['proxy_final'], 2)} | {flags} | "
            f"{_f(r['gold_at_first_flag'])} | {_f(r.get('gold_at_kl_budget'))} | "
            f"{_f(g['alpha'])} | {_f(g['beta'])} | {_f(g['r2'], 2)} |"
        )
    budget = result["kl_budget_sqrt"]
    lines += [
        "",
        f"Pooled Gao fit over the RL runs: alpha {_f(pooled['alpha'])}, beta "
        f"{_f(pooled['beta'])}, R² {_f(pooled['r2'], 2)} ({pooled['n']} points); "
        f"its peak d* = exp(alpha / beta - 1) = {_f(budget, 2)} is the KL budget "
        "rule's stop (in-sample: fitted on these runs).",
        "",
        "Best setting by stopping rule (gold kept):",
        "",
    ]
    for kind, by_rule in result["best_by_rule"].items():
        lines.append(
            f"- {kind.upper()}: "
            + "; ".join(
                f"{rule}: {name} ({_f(result['runs'][name][_RULE_KEYS[rule]])})"
                for rule, name in by_rule.items()
            )
        )
    lines.append("")
    return "\n".join(lines)


def plot(result: dict, path: Path) -> None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    fig, (ax_g, ax_p) = plt.subplots(1, 2, figsize=(11, 4.2))
    window = int(result["settings"]["window"])
    for name, r in result["runs"].items():
        dpo_run = name.startswith("dpo")
        w = result["dpo_smoothing_points"] if dpo_run else window
        d = _smooth(np.asarray(r["sqrt_kl"]), w)
        style = ":o" if dpo_run else "-"
        kw = {"markersize": 3} if dpo_run else {}
        (line,) = ax_g.plot(
            d, _smooth(np.asarray(r["gold"]), w), style, label=name, **kw
        )
        ax_p.plot(d, _smooth(np.asarray(r["proxy"]), w), style,
                  color=line.get_color(), label=name, **kw)  # fmt: skip
        for u in r["monitor_first_flag"]:
            if u is not None:
                i = r["steps"].index(u)
                ax_g.plot(d[i], _smooth(np.asarray(r["gold"]), w)[i], "x",
                          color=line.get_color(), markersize=8)  # fmt: skip
    pooled = result["gao_fit_pooled_rl"]
    if np.isfinite(pooled["alpha"]):
        top = max(max(r["sqrt_kl"]) for r in result["runs"].values())
        dd = np.linspace(1e-3, top, 200)
        g0 = np.mean([r["gold_start"] for n, r in result["runs"].items()
                      if n.startswith("rl")])  # fmt: skip
        ax_g.plot(dd, g0 + dd * (pooled["alpha"] - pooled["beta"] * np.log(dd)),
                  "k--", linewidth=1, label="Gao fit (RL, pooled)")  # fmt: skip
    ax_g.set_xlabel("sqrt(KL to reference)")
    ax_g.set_ylabel("gold reward (x: monitor's first flag)")
    ax_p.set_xlabel("sqrt(KL to reference)")
    ax_p.set_ylabel("learned proxy reward")
    ax_g.legend(fontsize=7)
    fig.suptitle(
        "RL against a learned reward model vs DPO (sort, gold = partial credit)"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=110)


if __name__ == "__main__":
    main()
