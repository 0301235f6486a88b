"""Craftax through jaxpg: env-step throughput, the time limiter's cost, PPO return.

What is measured, in one process (``--env``, default
``Craftax-Classic-Symbolic-v1``; ``B = --num-envs``):

* **Rollout throughput** of four jitted ``lax.scan``\\ s of ``--scan-steps`` steps
  of ``B`` envs with uniformly random actions (no policy), all at the same batch:
  ``native``: Craftax's own five-value auto-reset ``step``, vmapped;
  ``adapter``: ``jaxpg.envs.make_stepper`` on the Craftax adapter, no time limit;
  ``limiter``: the same with ``time_limit = --time-limit`` (jaxpg's limiter: a
  spare reset per env, ``⌈B / limit⌉`` renewed per step);
  ``full-reset limiter``: the limiter as it was before, which reset all ``B``
  envs on every step (rebuilt here for the comparison).
  The calls alternate over ``--repeats`` rounds, so all see the same background
  load; reported: the median steps/s of each and its ratio to ``adapter``.
  Compile time is reported apart.
* **PPO**: ``jaxpg.make_train`` with the PPO config below for ``--train-steps``
  env steps per seed and ``--seeds`` seeds (``jaxpg.train_seeds``), compiled
  apart from the timed run; reported: training env-steps/s, the mean return of
  episodes that ended in the last 10% of updates, and, as a yardstick, the mean
  return of the episodes the random-action ``native`` rollouts finished.

On a CPU with few cores and other processes running, absolute numbers move from
run to run; compare the ratios from one run. Usage::

    python benchmarks/craftax.py                      # CPU-sized defaults
    python benchmarks/craftax.py --num-envs 2 --scan-steps 8 --train-steps 256 \\
        --repeats 1 --seeds 1 --out-dir smoke-craftax  # a smoke run

Writes ``<out-dir>/craftax_<platform>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

# Run as a script, this file's folder comes first on sys.path and its name would
# shadow the craftax package.
_HERE = str(Path(__file__).resolve().parent)
sys.path[:] = [p for p in sys.path if str(Path(p or ".").resolve()) != _HERE]

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jaxpg  # noqa: E402
from jaxpg import envs  # noqa: E402
from jaxpg.experiment.rundir import device_name  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results"


def full_reset_limiter(
    stepper: envs.EnvStepper, reset_one: Any, limit: int
) -> envs.EnvStepper:
    """The time limiter jaxpg had before: a batched reset of every env per step."""
    b = stepper.num_envs

    def reset(key):
        obs, state = stepper.reset(key)
        return obs, (state, jnp.zeros((b,), jnp.int32))

    def step(key, state, action):
        key_step, key_reset = jax.random.split(key)
        env_state, elapsed = state
        obs, env_state, reward, term, trunc, final = stepper.step(
            key_step, env_state, action
        )
        elapsed = jnp.where(term | trunc, 0, elapsed + 1)
        cut = elapsed >= limit
        reset_obs, reset_state = jax.vmap(reset_one)(jax.random.split(key_reset, b))
        obs = envs.select_envs(cut, reset_obs, obs)
        env_state = envs.select_envs(cut, reset_state, env_state)
        elapsed = jnp.where(cut, 0, elapsed)
        return obs, (env_state, elapsed), reward, term, trunc | cut, final

    return envs.EnvStepper(b, reset, step)


def rollout_fn(stepper: envs.EnvStepper, num_actions: int, length: int) -> Any:
    """``key -> (episode return sum, episodes ended)`` over ``length`` steps."""

    def run(key):
        key_reset, key_steps = jax.random.split(key)
        _, state = stepper.reset(key_reset)
        b = stepper.num_envs

        def body(carry, key_t):
            state, ret, total, count = carry
            key_act, key_env = jax.random.split(key_t)
            action = jax.random.randint(key_act, (b,), 0, num_actions)
            _, state, reward, term, trunc, _ = stepper.step(key_env, state, action)
            ret = ret + reward
            done = term | trunc
            total = total + jnp.sum(jnp.where(done, ret, 0.0))
            count = count + jnp.sum(done)
            return (state, jnp.where(done, 0.0, ret), total, count), None

        zeros = jnp.zeros((b,), jnp.float32)
        init = (state, zeros, jnp.float32(0), jnp.int32(0))
        keys = jax.random.split(key_steps, length)
        (_, _, total, count), _ = jax.lax.scan(body, init, keys)
        return total, count

    return run


def native_stepper(env: Any, params: Any, b: int) -> envs.EnvStepper:
    """Craftax's own auto-reset step, vmapped (``done`` as ``terminated``)."""
    raw = env.unwrapped

    def reset(key):
        return jax.vmap(raw.reset, (0, None))(jax.random.split(key, b), params)

    def step(key, state, action):
        obs, state, reward, done, _ = jax.vmap(raw.step, (0, 0, 0, None))(
            jax.random.split(key, b), state, action, params
        )
        return obs, state, reward, done, jnp.zeros_like(done), obs

    return envs.EnvStepper(b, reset, step)


def compile_timed(fn: Any, *args: Any) -> tuple[Any, float]:
    start = time.perf_counter()
    compiled = jax.jit(fn).lower(*args).compile()
    return compiled, time.perf_counter() - start


def measure_rollouts(args: argparse.Namespace) -> dict[str, Any]:
    env, params = envs.make_env(args.env)
    spec = envs.env_spec(env, params)
    b = args.num_envs
    steppers = {
        "native": native_stepper(env, params, b),
        "adapter": envs.make_stepper(env, params, spec, b),
        "limiter": envs.make_stepper(env, params, spec, b, args.time_limit),
        "full-reset limiter": full_reset_limiter(
            envs.make_stepper(env, params, spec, b),
            lambda key: env.reset(key, params),
            args.time_limit,
        ),
    }
    key = jax.random.key(0)
    compiled, compile_s = {}, {}
    for name, stepper in steppers.items():
        fn = rollout_fn(stepper, spec.num_actions, args.scan_steps)
        compiled[name], compile_s[name] = compile_timed(fn, key)
        jax.block_until_ready(compiled[name](key))  # warm-up
    times: dict[str, list[float]] = {name: [] for name in steppers}
    native_total, native_count = 0.0, 0
    for r in range(args.repeats):
        for name, fn in compiled.items():
            key_r = jax.random.key(r + 1)
            start = time.perf_counter()
            total, count = jax.block_until_ready(fn(key_r))
            times[name].append(time.perf_counter() - start)
            if name == "native":
                native_total += float(total)
                native_count += int(count)
    steps = b * args.scan_steps
    rate = {name: steps / statistics.median(t) for name, t in times.items()}
    return {
        "steps_per_s": rate,
        "ratio_to_adapter": {n: rate[n] / rate["adapter"] for n in rate},
        "compile_s": compile_s,
        "random_policy_return": (
            native_total / native_count if native_count else float("nan")
        ),
        "random_policy_episodes": native_count,
    }


def measure_ppo(args: argparse.Namespace) -> dict[str, Any]:
    cfg = jaxpg.Config(
        env=args.env,
        algo="ppo",
        num_envs=args.num_envs,
        rollout_steps=args.rollout_steps,
        total_steps=args.train_steps,
        lr=2e-4,
        gamma=0.99,
        gae_lambda=0.8,
        ent_coef=0.01,
        num_epochs=4,
        num_minibatches=min(8, args.num_envs * args.rollout_steps // 2) or 1,
        hidden=(256, 256),
        activation="tanh",
        max_grad_norm=1.0,
    )
    keys = jax.random.split(jax.random.key(0), args.seeds)
    train = jax.vmap(jaxpg.make_train(cfg))
    compiled, compile_s = compile_timed(train, keys)
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    run_s = time.perf_counter() - start
    returns = np.asarray(out.metrics["episode_return"])  # [S, U]
    tail = returns[:, -max(1, returns.shape[1] // 10) :]
    steps = int(np.asarray(out.metrics["env_steps"])[:, -1].sum())
    return {
        "config": {k: v for k, v in cfg.__dict__.items() if k != "hidden"}
        | {"hidden": list(cfg.hidden)},
        "seeds": args.seeds,
        "compile_s": compile_s,
        "run_s": run_s,
        "train_steps_per_s": steps / run_s,
        "final_return": float(np.nanmean(tail)) if np.isfinite(tail).any() else None,
    }


def markdown(result: dict[str, Any]) -> str:
    roll = result["rollouts"]
    lines = [
        f"# Craftax on {result['device']} ({result['env']}, "
        f"B = {result['num_envs']}, time limit {result['time_limit']})",
        "",
        "| rollout | steps/s | / adapter | compile s |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name, rate in roll["steps_per_s"].items():
        lines.append(
            f"| {name} | {rate:,.0f} | {roll['ratio_to_adapter'][name]:.2f} | "
            f"{roll['compile_s'][name]:.1f} |"
        )
    ppo = result.get("ppo")
    lines.append("")
    lines.append(
        f"Random actions: mean episode return {roll['random_policy_return']:.2f} "
        f"({roll['random_policy_episodes']} episodes)."
    )
    if ppo:
        final = ppo["final_return"]
        lines.append(
            f"PPO, {ppo['config']['total_steps']:,} steps x {ppo['seeds']} seeds: "
            f"{ppo['train_steps_per_s']:,.0f} training steps/s, compile "
            f"{ppo['compile_s']:.0f} s, return over the last 10% of updates "
            f"{'n/a' if final is None else f'{final:.2f}'}."
        )
    return "\n".join(lines) + "\n"


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark and write its JSON and Markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument(
        "--env", default=envs.CRAFTAX_ENVS[0], choices=envs.CRAFTAX_ENVS
    )
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--scan-steps", type=int, default=256)
    parser.add_argument("--time-limit", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rollout-steps", type=int, default=64)
    parser.add_argument("--train-steps", type=int, default=500_000)
    parser.add_argument("--seeds", type=int, default=1)
    parser.add_argument("--no-ppo", action="store_true")
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    device = jax.devices()[0]
    result: dict[str, Any] = {
        "env": args.env,
        "num_envs": args.num_envs,
        "time_limit": args.time_limit,
        "scan_steps": args.scan_steps,
        "device": device_name(),
        "machine": platform.machine(),
        "jax": jax.__version__,
        "rollouts": measure_rollouts(args),
    }
    if not args.no_ppo:
        result["ppo"] = measure_ppo(args)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    stem = args.out_dir / f"craftax_{device.platform}"
    stem.with_suffix(".json").write_text(json.dumps(result, indent=2) + "\n")
    stem.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    return result


if __name__ == "__main__":
    main()
