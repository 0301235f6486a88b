"""PPO against the uniformly random policy on one small task per env suite.

For each task (``--suites``; table ``TASKS``): ``--seeds`` seeds of jaxpg PPO
trained in one program (``jit(vmap(make_train(cfg)))``) for the task's CPU
budget of env steps per seed, then each seed's policy evaluated on
``--episodes`` fresh episodes with sampled actions (:func:`jaxpg.evaluate`);
the random policy (uniform over the legal actions, uniform in a ``Box``) plays
``--seeds × --episodes`` episodes through the same adapter and time limit.

Reported per task: PPO's mean return over all its episodes with the standard
error over the seeds' means (the seeds are the independent units), each
seed's mean, the random policy's mean with its standard error over episodes,
the gap in combined standard errors, and ``beats = gap > 3``. Also the
compile and run seconds and PPO's training steps/s (env steps of all seeds
over run time): on a loaded machine those are not figures; only the returns
are (they do not depend on load).

Usage::

    python benchmarks/env_suites.py                  # every suite, CPU budgets
    python benchmarks/env_suites.py --suites navix,pgx --machine "2-core CPU VM"
    python benchmarks/env_suites.py --quiet --machine "2-core CPU VM"  # alone on it
    python benchmarks/env_suites.py --tiny           # a smoke run, nothing written

Writes ``<out-dir>/env_suites_<platform>.json`` and ``.md`` (not with
``--tiny``, unless ``--out-dir`` is given), after every task.
"""

from __future__ import annotations

import argparse
import json
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg import envs
from jaxpg.envs.suite_base import import_suite

RESULTS = Path(__file__).resolve().parent / "results"

PPO = dict(
    algo="ppo",
    num_envs=16,
    rollout_steps=64,
    num_minibatches=4,
    num_epochs=4,
    lr=1e-3,
    hidden=(64, 64),
    gamma=0.99,
    gae_lambda=0.95,
    ent_coef=0.01,
)


def _snake() -> tuple[Any, Any]:
    jumanji = import_suite("jumanji", "jumanji", "the Snake task")
    snake = jumanji.make("Snake-v1", num_rows=6, num_cols=6, time_limit=200)
    return envs.from_jumanji(snake, name="jumanji/Snake-v1 6x6")


# suite -> (task label, env name or builder, env steps per seed, Config overrides)
TASKS: dict[str, tuple[str, Any, int, dict]] = {
    "brax": ("brax/inverted_pendulum", "brax/inverted_pendulum", 65_536, {"lr": 3e-4}),
    # 65,536 steps with the brax settings left PPO below random (302 ± 17
    # against 361 ± 5): a larger batch, observation normalisation, 1M steps.
    "playground": (
        "playground/CartpoleBalance",
        "playground/CartpoleBalance",
        1_048_576,
        {"lr": 1e-3, "num_envs": 64, "rollout_steps": 32, "normalise_obs": True},
    ),
    "jumanji": ("jumanji/Snake-v1 6x6, time limit 200", _snake, 131_072, {}),
    "navix": ("navix/Navix-Empty-5x5-v0", "navix/Navix-Empty-5x5-v0", 32_768, {}),
    "xminigrid": (
        "xminigrid/MiniGrid-Empty-5x5",
        "xminigrid/MiniGrid-Empty-5x5",
        32_768,
        {},
    ),
    "pgx": ("pgx/minatar-breakout", "pgx/minatar-breakout", 131_072, {}),
}


def build(source: Any) -> tuple[Any, Any, str]:
    """``(env, env_params, Config.env)`` of a task."""
    if callable(source):
        env, params = source()
        return env, params, "custom"
    env, params = envs.make_env(source)
    return env, params, source


def random_returns(
    env: Any, params: Any, key: jax.Array, episodes: int, horizon: int
) -> np.ndarray:
    """``[episodes]`` undiscounted returns of the uniformly random (legal)
    policy, one episode per env, each cut at ``horizon`` steps at most."""
    space = env.action_space(params)
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def act(key, obs):
        mask = obs.get("action_mask") if isinstance(obs, dict) else None
        if mask is not None:
            return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf))
        return space.sample(key)

    def run(key):
        key_reset, key_run = jax.random.split(key)
        obs, state = reset(jax.random.split(key_reset, episodes), params)
        zeros = jnp.zeros((episodes,), jnp.float32)
        carry = (obs, state, zeros, jnp.ones((episodes,), bool), jnp.int32(0), key_run)

        def cond(c):
            return c[3].any() & (c[4] < horizon)

        def body(c):
            obs, state, total, alive, t, key = c
            key, key_act, key_step = jax.random.split(key, 3)
            action = jax.vmap(act)(jax.random.split(key_act, episodes), obs)
            obs, state, reward, term, trunc, _ = step(
                jax.random.split(key_step, episodes), state, action, params
            )
            total = total + jnp.where(alive, reward, 0.0)
            return obs, state, total, alive & ~(term | trunc), t + 1, key

        return jax.lax.while_loop(cond, body, carry)[2]

    return np.asarray(jax.jit(run)(key))


def run_task(suite: str, seeds: int, episodes: int, tiny: bool) -> dict:
    label, source, budget, overrides = TASKS[suite]
    env, params, name = build(source)
    cfg = jaxpg.Config(env=name, **{**PPO, **overrides})
    if tiny:
        cfg = cfg.replace(num_envs=2, rollout_steps=4, num_minibatches=1)
        budget = 2 * 4 * 2
    cfg = cfg.replace(total_steps=budget)
    horizon = cfg.max_episode_steps or envs.env_spec(env, params).max_episode_steps
    train = jax.jit(jax.vmap(jaxpg.make_train(cfg, env=env, env_params=params)))
    keys = jax.random.split(jax.random.key(0), seeds)
    t0 = time.perf_counter()
    compiled = train.lower(keys).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - t0

    def evaluate(p, k):
        return jaxpg.evaluate(cfg, p, k, episodes, env=env, env_params=params)

    eval_keys = jax.random.split(jax.random.key(1), seeds)
    ppo = np.asarray(jax.jit(jax.vmap(evaluate))(out.params, eval_keys))  # [S, E]
    rand = random_returns(env, params, jax.random.key(2), seeds * episodes, horizon)
    seed_means = ppo.mean(axis=1)
    ppo_se = float(seed_means.std(ddof=1) / math.sqrt(seeds)) if seeds > 1 else 0.0
    rand_se = float(rand.std(ddof=1) / math.sqrt(rand.size))
    gap = (ppo.mean() - rand.mean()) / max(math.hypot(ppo_se, rand_se), 1e-12)
    steps = seeds * budget
    return dict(
        suite=suite,
        task=label,
        env_steps_per_seed=budget,
        seeds=seeds,
        episodes_per_seed=episodes,
        config={k: getattr(cfg, k) for k in sorted({**PPO, **overrides})},
        time_limit=int(horizon),
        ppo_mean=float(ppo.mean()),
        ppo_se_over_seeds=ppo_se,
        ppo_seed_means=[float(x) for x in seed_means],
        random_mean=float(rand.mean()),
        random_se=rand_se,
        random_episodes=int(rand.size),
        gap_in_se=float(gap),
        beats=bool(gap > 3),
        compile_s=compile_s,
        run_s=run_s,
        train_steps_per_s=steps / run_s,
    )


def markdown(rows: list[dict], machine: str, quiet: bool = False) -> str:
    """The table; steps/s in parentheses unless ``quiet`` (the run had the
    machine to itself)."""
    lines = [
        f"# PPO against the random policy, one small task per suite ({machine})",
        "",
        "jaxpg PPO, seeds trained in one `jit(vmap(make_train))`; each seed's",
        "policy evaluated with sampled actions; the random policy uniform over",
        "the legal actions (uniform in the Box), same adapter and time limit.",
        "Returns: mean over all episodes ± standard error over the seeds' means",
        "(PPO) or over episodes (random); gap in combined standard errors.",
        "The steps/s column is PPO's training env steps per second of run time",
        "(all seeds, compile apart); "
        + (
            "this run had the machine to itself."
            if quiet
            else "it must come from a quiet run: these ran on a shared,\n"
            "loaded machine, so read the returns, not the times."
        ),
        "",
        "| task | env steps / seed | seeds × episodes | PPO return | per seed | "
        "random return | gap (s.e.) | beats | compile s | "
        + ("steps/s |" if quiet else "steps/s (quiet run only) |"),
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        per_seed = ", ".join(f"{x:.2f}" for x in r["ppo_seed_means"])
        lines.append(
            f"| {r['task']} | {r['env_steps_per_seed']:,} | {r['seeds']} × "
            f"{r['episodes_per_seed']} | {r['ppo_mean']:.2f} ± "
            f"{r['ppo_se_over_seeds']:.2f} | {per_seed} | {r['random_mean']:.2f} ± "
            f"{r['random_se']:.2f} | {r['gap_in_se']:.1f} | "
            f"{'yes' if r['beats'] else 'no'} | {r['compile_s']:.0f} | "
            + (
                f"{r['train_steps_per_s']:,.0f} |"
                if quiet
                else f"({r['train_steps_per_s']:,.0f}) |"
            )
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suites", default=",".join(TASKS))
    parser.add_argument("--seeds", type=int, default=4)
    parser.add_argument("--episodes", type=int, default=32)
    parser.add_argument("--machine", default=platform.processor() or "CPU")
    parser.add_argument("--tiny", action="store_true", help="a smoke run")
    parser.add_argument(
        "--quiet",
        action="store_true",
        help="the machine runs nothing else: steps/s are reported as figures",
    )
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    suites = [s for s in args.suites.split(",") if s]
    unknown = sorted(set(suites) - set(TASKS))
    if unknown:
        parser.error(f"--suites: unknown {unknown}; known: {', '.join(TASKS)}")
    seeds, episodes = (2, 2) if args.tiny else (args.seeds, args.episodes)
    out_dir = args.out_dir or (None if args.tiny else RESULTS)
    rows = []
    for suite in suites:
        try:
            row = run_task(suite, seeds, episodes, args.tiny)
        except ImportError as err:
            print(f"{suite}: skipped ({err})", file=sys.stderr)
            continue
        rows.append(row)
        print(json.dumps(row), flush=True)
        if out_dir is not None:
            out_dir.mkdir(parents=True, exist_ok=True)
            stem = out_dir / f"env_suites_{jax.default_backend()}"
            meta = dict(
                machine=args.machine, jax=jax.__version__, quiet=args.quiet, rows=rows
            )
            stem.with_suffix(".json").write_text(json.dumps(meta, indent=1) + "\n")
            stem.with_suffix(".md").write_text(markdown(rows, args.machine, args.quiet))


if __name__ == "__main__":
    main()
