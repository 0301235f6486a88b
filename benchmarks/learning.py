"""Learning benchmark: jaxpg presets (reinforce, a2c, ppo) against rejax PPO.

For every preset ``(env, algo)`` this trains ``--seeds`` seeds in one compiled
program per chunk and records:

* **evaluated-return curves**: training runs in ``K`` chunks of updates (about
  ``--points`` chunks, a divisor of the update count); after each chunk the
  current policy of every seed is evaluated on ``--eval-episodes`` fresh
  episodes with *sampled* actions (:func:`jaxpg.evaluate`). rejax PPO is
  evaluated by its own ``eval_callback`` at the same env steps with the same
  number of episodes (also sampled actions), so both curves mean the same thing.
* the **training curve** of jaxpg (``metrics["episode_return"]``: mean return
  of the episodes that ended in each update) as well, stored as the means of at
  most 200 contiguous blocks of updates per seed (the JSON stays small);
* **final score**: the last evaluation, per seed; IQM over seeds with a 95%
  stratified bootstrap interval (:mod:`jaxpg.analysis.stats`, 2000 resamples);
* **time to threshold** (CartPole 475, Acrobot -100, Pendulum -200,
  MountainCarContinuous 90), in env steps per seed: first update whose
  training ``episode_return`` reaches it (``ttt_train``, jaxpg only, rejax does
  not expose its training returns) and first evaluation point that reaches it
  (``ttt_eval``, both libraries; resolution = one chunk). Reported as the
  median over the seeds that reach it, and the number that do;
* **time**: compile (lowering + XLA compile of init, chunk and evaluation
  programs), training run time (chunks only), evaluation time, and wall time =
  compile + train + evaluation.

**Throughput, equal batch and network** (``--no-rejax`` skips it): for each
env, jaxpg PPO (``jit(vmap(make_train(cfg)))``) and rejax PPO (``jit(vmap(
algo.train))`` with one evaluation of one episode at the end, i.e. next to no
evaluation cost) train the same seeds with the preset's PPO hyperparameters,
network (64, 64) tanh, at ``--throughput-steps`` env steps per seed. Env steps
per second of run time and compile time are reported for both, measured in the
same process one after the other (a 2-core shared CPU: read the ratios, not the
absolute numbers).

Outputs: ``benchmarks/results/learning_<device>.json``, ``.md`` (tables) and
``learning_<env>.png`` (mean evaluated return over seeds with a 95% bootstrap
band, one curve per algorithm).

    python benchmarks/learning.py                      # everything, 16 seeds
    python benchmarks/learning.py --envs CartPole-v1 --algos ppo --seeds 8
    python benchmarks/learning.py --quick              # smoke test
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import platform
import sys
import time
from typing import Any

import jax
import numpy as np

import jaxpg
from jaxpg.analysis.plotting import common_grid_curves
from jaxpg.analysis.scores import ENV_SCORES
from jaxpg.analysis.stats import bootstrap_ci, iqm, stratified_bootstrap_ci
from jaxpg.config import Config
from jaxpg.drivers.train import seed_keys
from jaxpg.experiment.rundir import device_name
from jaxpg.kernels.batching import SEED_AXIS

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

ENVS = ("CartPole-v1", "Acrobot-v1", "Pendulum-v1", "MountainCarContinuous-v0")
ALGOS = ("reinforce", "a2c", "ppo")
TRAIN_CURVE_POINTS = 200  # per seed, in the JSON (block means of updates)
THRESHOLDS = {env: ENV_SCORES[env].solved for env in ENVS}


def _quick(cfg: Config, frac: float) -> Config:
    """``cfg`` with ``total_steps`` scaled by ``frac`` (at least 4 updates)."""
    per_update = cfg.num_envs * cfg.rollout_steps
    updates = max(4, int(cfg.num_updates * frac))
    return cfg.replace(total_steps=updates * per_update)


def _first_reach(steps: np.ndarray, values: np.ndarray, threshold: float) -> list:
    """Per seed: env steps of the first value ``>= threshold`` (None: never)."""
    out = []
    for s_row, v_row in zip(steps, values, strict=True):
        hit = np.flatnonzero(np.nan_to_num(v_row, nan=-np.inf) >= threshold)
        out.append(float(s_row[hit[0]]) if hit.size else None)
    return out


def _ttt_summary(per_seed: list) -> dict[str, Any]:
    reached = [x for x in per_seed if x is not None]
    return {
        "median_steps": float(np.median(reached)) if reached else None,
        "reached": len(reached),
        "seeds": len(per_seed),
        "per_seed": per_seed,
    }


def _final_stats(final: np.ndarray) -> dict[str, Any]:
    ci = stratified_bootstrap_ci(final[:, None], stat=iqm, seed=0)
    return {
        "iqm": ci.estimate,
        "iqm_ci95": [ci.low, ci.high],
        "mean": float(final.mean()),
        "per_seed": final.tolist(),
    }


def divisor_chunk(num_updates: int, num_points: int) -> int:
    """The divisor of ``num_updates`` nearest ``num_updates / num_points``: the
    evaluation points split the run into equal chunks (no remainder)."""
    target = num_updates / num_points
    divisors = [d for d in range(1, num_updates + 1) if num_updates % d == 0]
    return min(divisors, key=lambda d: (abs(d - target), -d))


def run_jaxpg(
    cfg: Config, num_seeds: int, num_points: int, eval_episodes: int
) -> dict[str, Any]:
    """Train in chunks, evaluate after each; see the module docstring."""
    algo = jaxpg.make_algorithm(cfg)
    num_updates = cfg.num_updates
    chunk = divisor_chunk(num_updates, num_points)

    def run_chunk(state):
        def one(s):
            return jax.lax.scan(lambda c, _: algo.update(c), s, None, length=chunk)

        return jax.vmap(one, axis_name=SEED_AXIS)(state)

    def eval_all(params, obs_norm, keys):
        def one(p, o, k):
            o = o if cfg.normalise_obs else None
            return jaxpg.evaluate(cfg, p, k, eval_episodes, obs_norm=o)

        return jax.vmap(one, axis_name=SEED_AXIS)(params, obs_norm, keys)

    keys = seed_keys(num_seeds)
    t0 = time.perf_counter()
    init_exe = jax.jit(jax.vmap(lambda k: algo.init(k), axis_name=SEED_AXIS))
    init_exe = init_exe.lower(keys).compile()
    spec = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding),
        init_exe.out_info,
    )
    chunk_exe = jax.jit(run_chunk, donate_argnums=0).lower(spec).compile()
    eval_keys = jax.random.split(
        jax.random.key(12345), (num_updates // chunk, num_seeds)
    )
    eval_exe = jax.jit(eval_all)
    eval_exe = eval_exe.lower(spec.params["policy"], spec.obs_norm, eval_keys[0])
    eval_exe = eval_exe.compile()
    compile_s = time.perf_counter() - t0

    train_s = eval_s = 0.0
    t0 = time.perf_counter()
    state = jax.block_until_ready(init_exe(keys))
    train_s += time.perf_counter() - t0
    metrics, eval_steps, eval_returns = [], [], []
    for i in range(num_updates // chunk):
        t0 = time.perf_counter()
        state, m = chunk_exe(state)
        state = jax.block_until_ready(state)
        train_s += time.perf_counter() - t0
        metrics.append(jax.device_get(m))
        t0 = time.perf_counter()
        rets = eval_exe(state.params["policy"], state.obs_norm, eval_keys[i])
        rets = jax.device_get(rets)
        eval_s += time.perf_counter() - t0
        eval_returns.append(np.asarray(rets).mean(axis=-1))
        eval_steps.append(np.asarray(state.env_steps, dtype=np.float64))
    train_ret = np.concatenate([np.asarray(m["episode_return"]) for m in metrics], 1)
    train_steps = np.concatenate([np.asarray(m["env_steps"]) for m in metrics], 1)
    eval_steps = np.stack(eval_steps, 1)
    eval_returns = np.stack(eval_returns, 1)
    threshold = THRESHOLDS[cfg.env]
    total = float(np.asarray(state.env_steps, dtype=np.float64).sum())
    return {
        "library": "jaxpg",
        "algo": cfg.algo,
        "config": {
            k: (list(v) if isinstance(v, tuple) else v) for k, v in vars(cfg).items()
        },
        "seeds": num_seeds,
        "num_updates": num_updates,
        "chunk_updates": chunk,
        "final": _final_stats(eval_returns[:, -1]),
        "ttt_eval": _ttt_summary(_first_reach(eval_steps, eval_returns, threshold)),
        "ttt_train": _ttt_summary(_first_reach(train_steps, train_ret, threshold)),
        "compile_s": compile_s,
        "train_s": train_s,
        "eval_s": eval_s,
        "wall_s": compile_s + train_s + eval_s,
        "train_steps_per_s": total / train_s,
        "env_steps_per_seed": total / num_seeds,
        "curve_eval": {
            "env_steps": eval_steps.tolist(),
            "returns": eval_returns.tolist(),
        },
        "curve_train": _block_means(train_steps, train_ret, TRAIN_CURVE_POINTS),
    }


def _block_means(
    steps: np.ndarray, returns: np.ndarray, max_points: int
) -> dict[str, list]:
    """The per-update training curve ``[S, U]`` cut into at most ``max_points``
    contiguous blocks of updates: env steps at each block's end, mean of the
    block's finite returns (None when no episode ended in it), 2 decimals."""
    edges = np.linspace(0, steps.shape[1], min(max_points, steps.shape[1]) + 1)
    edges = np.unique(edges.astype(int))
    ends = steps[:, edges[1:] - 1]
    means = np.full(ends.shape, np.nan)
    for j, (lo, hi) in enumerate(itertools.pairwise(edges)):
        block = returns[:, lo:hi]
        seen = np.isfinite(block).any(axis=1)
        means[seen, j] = np.nanmean(block[seen], axis=1)
    return {
        "env_steps": ends.tolist(),
        "returns": np.where(np.isfinite(means), np.round(means, 2), None).tolist(),
    }


def _rejax_kwargs(cfg: Config) -> dict[str, Any]:
    """rejax PPO arguments that match a jaxpg PPO config."""
    return dict(
        num_envs=cfg.num_envs,
        num_steps=cfg.rollout_steps,
        num_epochs=cfg.num_epochs,
        num_minibatches=cfg.num_minibatches,
        hidden=cfg.hidden,
        activation=cfg.activation,
        lr=cfg.lr,
        gamma=cfg.gamma,
        gae_lambda=cfg.gae_lambda,
        clip_eps=cfg.clip_eps,
        ent_coef=cfg.ent_coef,
        vf_coef=cfg.vf_coef,
        # rejax clips element-wise (optax.clip); None has no equivalent.
        max_grad_norm=cfg.max_grad_norm if cfg.max_grad_norm else 1e6,
        # rejax's own running normalisers where the preset uses jaxpg's; it
        # has no learning-rate annealing (anneal_lr is jaxpg's alone).
        normalize_observations=cfg.normalise_obs,
        normalize_rewards=cfg.scale_rewards,
    )


def run_rejax(
    cfg: Config, num_seeds: int, num_points: int, eval_episodes: int
) -> dict[str, Any]:
    """rejax PPO at the jaxpg config's budget, evaluated at the same steps."""
    from rejax_adapter import make_rejax_ppo, train_seeds

    iteration = cfg.num_envs * cfg.rollout_steps
    chunk = divisor_chunk(cfg.num_updates, num_points)
    total = cfg.num_updates * iteration
    algo, train_fn = make_rejax_ppo(
        cfg.env,
        total_timesteps=total,
        eval_freq=chunk * iteration,
        num_eval_episodes=eval_episodes,
        **_rejax_kwargs(cfg),
    )
    res = train_seeds(algo, train_fn, num_seeds, seed=0)
    eval_returns = res.eval_returns.mean(axis=-1)  # [S, K]
    k = eval_returns.shape[1]
    steps = np.tile(
        np.arange(1, k + 1, dtype=np.float64) * chunk * iteration, (num_seeds, 1)
    )
    threshold = THRESHOLDS[cfg.env]
    return {
        "library": "rejax",
        "algo": "ppo",
        "config": {**_rejax_kwargs(cfg), "hidden": list(cfg.hidden)},
        "seeds": num_seeds,
        "final": _final_stats(eval_returns[:, -1]),
        "ttt_eval": _ttt_summary(_first_reach(steps, eval_returns, threshold)),
        "compile_s": res.compile_s,
        "train_s": None,
        "eval_s": None,
        "run_s_incl_eval": res.run_s,
        "wall_s": res.compile_s + res.run_s,
        "env_steps_per_seed": float(total),
        "curve_eval": {"env_steps": steps.tolist(), "returns": eval_returns.tolist()},
    }


def throughput(cfg: Config, num_seeds: int, steps: int) -> dict[str, Any]:
    """Env steps/s and compile time of jaxpg PPO and rejax PPO, equal batch/net."""
    from rejax_adapter import make_rejax_ppo, train_seeds

    iteration = cfg.num_envs * cfg.rollout_steps
    steps = max(1, steps // iteration) * iteration
    cfg = cfg.replace(total_steps=steps)
    keys = seed_keys(num_seeds)
    program = jax.jit(jax.vmap(jaxpg.make_train(cfg), axis_name=SEED_AXIS))
    t0 = time.perf_counter()
    exe = program.lower(keys).compile()
    j_compile = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(exe(keys))
    j_run = time.perf_counter() - t0

    algo, train_fn = make_rejax_ppo(
        cfg.env,
        total_timesteps=steps,
        eval_freq=steps,
        num_eval_episodes=1,
        **_rejax_kwargs(cfg),
    )
    res = train_seeds(algo, train_fn, num_seeds, seed=0)
    j_sps = steps * num_seeds / j_run
    return {
        "env_steps_per_seed": steps,
        "seeds": num_seeds,
        "batch": {"num_envs": cfg.num_envs, "rollout_steps": cfg.rollout_steps},
        "jaxpg": {"compile_s": j_compile, "run_s": j_run, "steps_per_s": j_sps},
        "rejax": {
            "compile_s": res.compile_s,
            "run_s": res.run_s,
            "steps_per_s": res.steps_per_s,
        },
        "speedup": j_sps / res.steps_per_s,
        "compile_ratio": j_compile / res.compile_s,
    }


def _can_plot() -> bool:
    """Whether matplotlib is installed (a machine without it keeps the
    records and skips the figures)."""
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        print("matplotlib is not installed: no figures", flush=True)
        return False
    return True


def plot_env(env: str, runs: list[dict[str, Any]], path: str) -> None:
    """Mean evaluated return over seeds with a 95% bootstrap band, per run."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(6.4, 4.0), layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for run in runs:
        grid, curves = common_grid_curves(
            run["curve_eval"]["env_steps"], run["curve_eval"]["returns"], 100
        )
        if not curves.shape[0]:
            continue
        band = bootstrap_ci(curves, stat=lambda c: c.mean(axis=0), num_resamples=1000)
        label = f"{run['library']} {run['algo']} ({curves.shape[0]} seeds)"
        (line,) = ax.plot(grid, band.estimate, label=label)
        ax.fill_between(
            grid, band.low, band.high, alpha=0.25, linewidth=0, color=line.get_color()
        )
    ax.axhline(THRESHOLDS[env], color="grey", linestyle=":", linewidth=1)
    ax.set_xlabel("env steps (per seed)")
    ax.set_ylabel("evaluated return (sampled actions)")
    ax.set_title(f"{env}: mean over seeds, 95% bootstrap band")
    ax.grid(alpha=0.3)
    ax.legend(loc="lower right", fontsize=8)
    fig.savefig(path, dpi=120)


def _fmt_steps(x: float | None) -> str:
    if x is None:
        return "-"
    return f"{x / 1e3:.0f}k"


def _fmt(x: float | None, digits: int = 1) -> str:
    return (
        "-"
        if x is None or (isinstance(x, float) and math.isnan(x))
        else (f"{x:.{digits}f}")
    )


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Learning benchmark",
        "",
        f"Device: {result['device']}; {result['seeds']} seeds; jax "
        f"{result['jax_version']}. Final = mean evaluated return (sampled "
        f"actions, {result['eval_episodes']} episodes) of the last checkpoint, "
        "IQM over seeds with a 95% stratified bootstrap CI. TTT = env steps "
        "(per seed) to reach the threshold: median over the seeds that reach "
        "it (reached/seeds); *eval*: first evaluation point, *train*: first "
        "update whose training episode_return reaches it. Times in seconds, "
        "all seeds together; steps/s = training env steps of all seeds per "
        "second of training run time (jaxpg: chunks only; rejax: includes its "
        "evaluations, see the throughput table for an equal comparison).",
        "",
        "| env | library | algo | steps/seed | final IQM [95% CI] | mean "
        "| seeds solved (final) | TTT eval | TTT train | compile s | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for env, runs in result["envs"].items():
        threshold = result["thresholds"][env]
        for r in runs["runs"]:
            f = r["final"]
            final = np.asarray(f["per_seed"], np.float64)
            solved = f"{int(np.sum(final >= threshold))}/{final.size}"
            te = r["ttt_eval"]
            tt = r.get("ttt_train")
            lines.append(
                f"| {env} | {r['library']} | {r['algo']} "
                f"| {_fmt_steps(r['env_steps_per_seed'])} "
                f"| {f['iqm']:.1f} [{f['iqm_ci95'][0]:.1f}, {f['iqm_ci95'][1]:.1f}] "
                f"| {f['mean']:.1f} | {solved} "
                f"| {_fmt_steps(te['median_steps'])} ({te['reached']}/{te['seeds']}) "
                + (
                    f"| {_fmt_steps(tt['median_steps'])} ({tt['reached']}/"
                    f"{tt['seeds']}) "
                    if tt
                    else "| - "
                )
                + f"| {_fmt(r['compile_s'])} | {_fmt(r['wall_s'])} |"
            )
    tps = {e: r["throughput"] for e, r in result["envs"].items() if r.get("throughput")}
    if tps:
        lines += [
            "",
            "## PPO throughput at equal batch and network (64, 64) tanh",
            "",
            "| env | seeds × steps | batch (envs × T) | jaxpg steps/s | rejax steps/s "
            "| speedup | jaxpg compile s | rejax compile s |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for env, t in tps.items():
            b = t["batch"]
            lines.append(
                f"| {env} | {t['seeds']} × {_fmt_steps(t['env_steps_per_seed'])} "
                f"| {b['num_envs']} × {b['rollout_steps']} "
                f"| {t['jaxpg']['steps_per_s']:,.0f} "
                f"| {t['rejax']['steps_per_s']:,.0f} "
                f"| {t['speedup']:.2f}x | {t['jaxpg']['compile_s']:.1f} "
                f"| {t['rejax']['compile_s']:.1f} |"
            )
    if result.get("targets"):
        lines += ["", "## Targets", ""]
        lines += [f"- {k}: {v}" for k, v in result["targets"].items()]
    return "\n".join(lines) + "\n"


def targets(result: dict[str, Any]) -> dict[str, str]:
    out = {}
    for env, runs in result["envs"].items():
        by = {(r["library"], r["algo"]): r for r in runs["runs"]}
        if ("jaxpg", "ppo") in by and ("rejax", "ppo") in by:
            j = by[("jaxpg", "ppo")]["final"]["iqm"]
            r = by[("rejax", "ppo")]["final"]["iqm"]
            out[f"{env}: jaxpg PPO final IQM >= rejax PPO"] = (
                f"{'MET' if j >= r else 'NOT MET'} ({j:.1f} vs {r:.1f})"
            )
        t = runs.get("throughput")
        if t:
            out[f"{env}: jaxpg PPO steps/s >= 1.5x rejax"] = (
                f"{'MET' if t['speedup'] >= 1.5 else 'NOT MET'} ({t['speedup']:.2f}x)"
            )
            out[f"{env}: jaxpg compile < rejax compile"] = (
                f"{'MET' if t['compile_ratio'] < 1 else 'NOT MET'} "
                f"({t['jaxpg']['compile_s']:.1f}s vs {t['rejax']['compile_s']:.1f}s)"
            )
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--envs", nargs="+", default=list(ENVS), choices=ENVS)
    p.add_argument("--algos", nargs="+", default=list(ALGOS), choices=ALGOS)
    p.add_argument("--seeds", type=int, default=16)
    p.add_argument("--points", type=int, default=20, help="evaluation points")
    p.add_argument("--eval-episodes", type=int, default=32)
    p.add_argument("--throughput-steps", type=int, default=100_000)
    p.add_argument("--no-rejax", action="store_true")
    p.add_argument(
        "--no-throughput", action="store_true", help="skip the throughput runs"
    )
    p.add_argument("--quick", action="store_true", help="4 seeds, 10%% budget")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--tag", default=None, help="file tag (default: the backend)")
    args = p.parse_args(argv)
    if args.quick:
        args.seeds, args.points, args.eval_episodes = 4, 5, 8
        args.throughput_steps = 20_000
    tag = args.tag or jax.default_backend()
    os.makedirs(args.out, exist_ok=True)
    json_path = os.path.join(args.out, f"learning_{tag}.json")
    result = {
        "device": f"{device_name()}, {os.cpu_count()} CPU cores, {platform.machine()}",
        "jax_version": jax.__version__,
        "seeds": args.seeds,
        "eval_episodes": args.eval_episodes,
        "quick": args.quick,
        "thresholds": THRESHOLDS,
        "envs": {},
    }
    # Merge with earlier results for envs not run now (runs go env by env).
    if os.path.exists(json_path) and not args.quick:
        with open(json_path) as f:
            old = json.load(f)
        if old.get("seeds") == args.seeds and not old.get("quick"):
            result["envs"].update(
                {e: v for e, v in old["envs"].items() if e not in args.envs}
            )
    for env in args.envs:
        runs: list[dict[str, Any]] = []
        entry: dict[str, Any] = {"runs": runs}
        result["envs"][env] = entry
        for algo in args.algos:
            if (env, algo) not in jaxpg.presets.names():
                continue
            cfg = jaxpg.presets.get(env, algo)
            if args.quick:
                cfg = _quick(cfg, 0.1)
            print(f"[{env}] jaxpg {algo}: {cfg.total_steps:,} steps", flush=True)
            r = run_jaxpg(cfg, args.seeds, args.points, args.eval_episodes)
            runs.append(r)
            print(_line(r), flush=True)
            _save(result, json_path, args.out, tag)
            if algo == "ppo" and not args.no_rejax:
                print(f"[{env}] rejax ppo", flush=True)
                r = run_rejax(cfg, args.seeds, args.points, args.eval_episodes)
                runs.append(r)
                print(_line(r), flush=True)
                _save(result, json_path, args.out, tag)
                if args.no_throughput:
                    continue
                t = throughput(cfg, args.seeds, args.throughput_steps)
                entry["throughput"] = t
                print(
                    f"  throughput jaxpg {t['jaxpg']['steps_per_s']:,.0f}/s "
                    f"rejax {t['rejax']['steps_per_s']:,.0f}/s "
                    f"({t['speedup']:.2f}x); compile {t['jaxpg']['compile_s']:.1f}s "
                    f"vs {t['rejax']['compile_s']:.1f}s",
                    flush=True,
                )
        if runs and _can_plot():
            plot_env(env, runs, os.path.join(args.out, f"learning_{env}.png"))
        _save(result, json_path, args.out, tag)
    print(markdown(result))


def _save(result: dict[str, Any], json_path: str, out: str, tag: str) -> None:
    """Write the JSON and the markdown table (after every run: a crash or a
    hang later keeps what is done)."""
    result["targets"] = targets(result)
    with open(json_path, "w") as f:
        json.dump(result, f, separators=(",", ":"))
    with open(os.path.join(out, f"learning_{tag}.md"), "w") as f:
        f.write(markdown(result))


def _line(r: dict[str, Any]) -> str:
    f = r["final"]
    return (
        f"  {r['library']} {r['algo']}: final IQM {f['iqm']:.1f} "
        f"[{f['iqm_ci95'][0]:.1f}, {f['iqm_ci95'][1]:.1f}] mean {f['mean']:.1f}; "
        f"compile {r['compile_s']:.1f}s wall {r['wall_s']:.1f}s"
    )


if __name__ == "__main__":
    main()
