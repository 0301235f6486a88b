"""Adapter overhead: jaxpg's batched stepper against each suite's own vmapped
step with its own auto-reset, same batch, same process.

For each installed suite (``--suites``; one small env each, below), two
jitted ``lax.scan``\\ s of ``--scan-steps`` steps of ``B = --num-envs`` envs,
uniformly random (legal, where the suite has a mask) actions, no policy:

* ``jaxpg``: ``jaxpg.envs.make_stepper`` on the adapter (``make_env(name)``)
  with no extra time limit; where the stepper does not take the suite's
  observation yet (a dict with an action mask), the adapter's own
  ``reset``/``step`` vmapped, marked ``(vmapped adapter)``;
* ``own``: the suite's own batched step with its own auto-reset:
  brax ``envs.wrappers.training.wrap``; Playground ``wrap_for_brax_training``;
  Jumanji ``VmapAutoResetWrapper``; navix's ``step`` (it resets on the next
  call), vmapped; xland-minigrid ``GymAutoResetWrapper``, vmapped; pgx
  ``experimental.auto_reset``, vmapped.

The two are compiled apart (compile seconds reported), then called in turn
for ``--repeats`` rounds so that both see the same background load; reported:
the median steps/s of each and ``ratio = jaxpg / own`` (the target is ≥ 0.95).
The own variants differ in work: brax's wrapper restarts from a cached first
state where jaxpg's adapter resets only the envs that ended, and navix's
spends the call after an episode's end on the reset instead of a step. Both
runs return a checksum of their final state beside the reward sum, so that
XLA keeps every state update (a constant reward would let it drop them).

With ``--split``, brax and Playground get two more arms, to split the
adapter's cost: its auto-reset replaced by one cached first state (brax's way)
and by no reset at all (:func:`split_arms`).

Usage::

    python benchmarks/env_adapters.py                 # CPU-sized defaults
    python benchmarks/env_adapters.py --suites brax,playground --split
    python benchmarks/env_adapters.py --tiny          # a smoke run: B=2, 4 steps

Writes ``<out-dir>/env_adapters_<platform>.json`` and ``.md`` (not with
``--tiny``, unless ``--out-dir`` is given).
"""

from __future__ import annotations

import argparse
import importlib
import json
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp

import jaxpg
from jaxpg import envs

RESULTS = Path(__file__).resolve().parent / "results"

ENVS = {  # suite -> the env measured
    "brax": "brax/inverted_pendulum",
    "playground": "playground/CartpoleBalance",
    "jumanji": "jumanji/Snake-v1",
    "navix": "navix/Navix-Empty-5x5-v0",
    "xminigrid": "xminigrid/MiniGrid-Empty-5x5",
    "pgx": "pgx/2048",
}


def _masked(key: jax.Array, mask: jax.Array) -> jax.Array:
    """``[B]`` uniformly random legal actions for a ``[B, A]`` mask."""
    return jax.random.categorical(key, jnp.where(mask, 0.0, -jnp.inf))


def _uniform(key: jax.Array, num_envs: int, space: Any) -> jax.Array:
    if hasattr(space, "n"):
        return jax.random.randint(key, (num_envs,), 0, int(space.n))
    low, high = jnp.asarray(space.low), jnp.asarray(space.high)
    return jax.random.uniform(key, (num_envs, *space.shape), minval=low, maxval=high)


def jaxpg_rollout(env: Any, params: Any, num_envs: int) -> tuple[Callable, str]:
    """``(run(key, steps) -> (reward sum, final-state checksum), label)``
    through jaxpg's stepper."""
    space = env.action_space(params)
    try:
        stepper = envs.make_stepper(env, params, envs.env_spec(env, params), num_envs)
        label = "stepper"

        def reset(key):
            return stepper.reset(key)

        def step(key, obs, state, action):
            obs, state, reward, *_ = stepper.step(key, state, action)
            return obs, state, reward

    except TypeError:  # a dict observation: the stepper's structured support
        label = "vmapped adapter"
        v_reset = jax.vmap(env.reset, in_axes=(0, None))
        v_step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

        def reset(key):
            return v_reset(jax.random.split(key, num_envs), params)

        def step(key, obs, state, action):
            obs, state, reward, *_ = v_step(
                jax.random.split(key, num_envs), state, action, params
            )
            return obs, state, reward

    def act(key, obs):
        if isinstance(obs, dict) and "action_mask" in obs:
            return _masked(key, obs["action_mask"])
        action = _uniform(key, num_envs, space)
        return action.reshape(num_envs, -1) if action.ndim > 1 else action

    def run(key, steps):
        key_reset, key_run = jax.random.split(key)
        obs, state = reset(key_reset)

        def body(carry, key):
            obs, state, total = carry
            key_act, key_step = jax.random.split(key)
            obs, state, reward = step(key_step, obs, state, act(key_act, obs))
            return (obs, state, total + reward.sum()), None

        init = (obs, state, jnp.float32(0.0))
        obs, state, total = jax.lax.scan(body, init, jax.random.split(key_run, steps))[
            0
        ]
        return total, _checksum(state)

    return run, label


def _checksum(state: Any) -> jax.Array:
    """The sum of the final state's float leaves: returned beside the reward
    sum so that XLA cannot drop the state's updates (with a constant reward,
    as inverted_pendulum's, nothing else would use them)."""
    leaves = [
        x for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)
    ]
    return sum(jnp.sum(x) for x in leaves)


def own_rollout(suite: str, env: Any, params: Any, num_envs: int) -> Callable:
    """``run(key, steps) -> (reward sum, final-state checksum)`` through the
    suite's own batched, auto-resetting step."""
    raw = env.unwrapped
    space = env.action_space(params)
    keys = lambda key: jax.random.split(key, num_envs)  # noqa: E731

    if suite in ("brax", "playground"):
        if suite == "brax":
            wrap = importlib.import_module("brax.envs.wrappers.training").wrap
        else:
            wrap = importlib.import_module("mujoco_playground").wrapper
            wrap = wrap.wrap_for_brax_training
        wrapped = wrap(
            raw,
            episode_length=params.episode_length,
            action_repeat=params.action_repeat,
        )

        def reset(key):  # brax's wrappers count on raw uint32 [B, 2] keys
            return wrapped.reset(jax.random.key_data(keys(key)))

        def step(key, state):
            state = wrapped.step(state, _uniform(key, num_envs, space))
            return state, state.reward

    elif suite == "jumanji":
        wrapped = importlib.import_module("jumanji.wrappers").VmapAutoResetWrapper(raw)

        def reset(key):
            return wrapped.reset(keys(key))

        def step(key, carry):
            state, ts = carry
            state, ts = wrapped.step(state, _masked(key, ts.observation.action_mask))
            return (state, ts), ts.reward

    elif suite == "navix":

        def reset(key):
            return jax.vmap(raw.reset)(keys(key))

        def step(key, ts):
            ts = jax.vmap(raw.step)(ts, _uniform(key, num_envs, space))
            return ts, ts.reward

    elif suite == "xminigrid":
        wrapped = importlib.import_module("xminigrid.wrappers").GymAutoResetWrapper(raw)

        def reset(key):
            return jax.vmap(wrapped.reset, in_axes=(None, 0))(params.inner, keys(key))

        def step(key, ts):
            action = _uniform(key, num_envs, space)
            ts = jax.vmap(wrapped.step, in_axes=(None, 0, 0))(params.inner, ts, action)
            return ts, ts.reward

    elif suite == "pgx":
        auto_reset = importlib.import_module("pgx.experimental").auto_reset
        own_step = jax.vmap(auto_reset(raw.step, raw.init))

        def reset(key):
            return jax.vmap(raw.init)(keys(key))

        def step(key, state):
            key_act, key_step = jax.random.split(key)
            action = _masked(key_act, state.legal_action_mask)
            state = own_step(state, action, keys(key_step))
            return state, state.rewards[:, 0]

    else:
        raise ValueError(f"suite={suite!r} is unknown; known: {', '.join(ENVS)}")

    def run(key, steps):
        key_reset, key_run = jax.random.split(key)
        state = reset(key_reset)

        def body(carry, key):
            state, total = carry
            with jax.numpy_rank_promotion("allow"):
                state, reward = step(key, state)
            return (state, total + reward.sum()), None

        init = (state, jnp.float32(0.0))
        state, total = jax.lax.scan(body, init, jax.random.split(key_run, steps))[0]
        return total, _checksum(state)

    return run


SPLIT_SUITES = ("brax", "playground")


def split_arms(env: Any) -> dict[str, Any]:
    """The brax adapter with its auto-reset replaced, to split its cost:
    ``cached`` restores one first state drawn once (brax's way, the same for
    every env and episode: not jaxpg's semantics), ``no_reset`` never resets
    (the floor: the adapter's step alone)."""
    from jaxpg.envs.brax import BraxAdapter

    class Cached(BraxAdapter):
        def _auto_reset(self, over, key, carry, params):
            return envs.select_envs(over, self.reset(jax.random.key(0), params), carry)

    class NoReset(BraxAdapter):
        def _auto_reset(self, over, key, carry, params):
            return carry

    args = (env.unwrapped, env.name, env.default_params, env._low, env._high)
    return {"cached": Cached(*args), "no_reset": NoReset(*args)}


def measure(
    suite: str, num_envs: int, steps: int, repeats: int, split: bool = False
) -> dict[str, Any]:
    """One suite's row: steps/s of both, their ratio, compile seconds; with
    ``split`` (brax, Playground) also the adapter's :func:`split_arms`."""
    env, params = envs.make_env(ENVS[suite])
    mine, label = jaxpg_rollout(env, params, num_envs)
    theirs = own_rollout(suite, env, params, num_envs)
    arms = [("jaxpg", mine), ("own", theirs)]
    if split and suite in SPLIT_SUITES:
        for name, variant in split_arms(env).items():
            arms.append((name, jaxpg_rollout(variant, params, num_envs)[0]))
    fns, compile_s = {}, {}
    for name, run in arms:
        t0 = time.perf_counter()
        fns[name] = jax.jit(run, static_argnums=1).lower(jax.random.key(0), steps)
        fns[name] = fns[name].compile()
        compile_s[name] = time.perf_counter() - t0
    times = {name: [] for name in fns}
    for r in range(repeats):
        for name, fn in fns.items():
            t0 = time.perf_counter()
            jax.block_until_ready(fn(jax.random.key(r)))
            times[name].append(time.perf_counter() - t0)
    rate = {k: num_envs * steps / statistics.median(v) for k, v in times.items()}
    extra = {}
    if len(rate) > 2:
        extra["split_ratio_to_own"] = {
            k: rate[k] / rate["own"] for k in rate if k not in ("jaxpg", "own")
        }
    return {
        **extra,
        "suite": suite,
        "env": ENVS[suite],
        "jaxpg_path": label,
        "jaxpg_steps_per_s": rate["jaxpg"],
        "own_steps_per_s": rate["own"],
        "ratio": rate["jaxpg"] / rate["own"],
        "compile_s": compile_s,
    }


def _markdown(record: dict[str, Any]) -> str:
    lines = [
        f"# Adapter overhead ({record['machine']})",
        "",
        f"B = {record['num_envs']}, {record['scan_steps']} steps, median of "
        f"{record['repeats']}; ratio = jaxpg / own (target ≥ 0.95).",
        "",
        "| suite | env | jaxpg steps/s | own steps/s | ratio "
        "| compile s (jaxpg / own) |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for row in record["rows"]:
        if "error" in row:
            lines.append(f"| {row['suite']} | {row['env']} | failed: {row['error']} |")
            continue
        c = row["compile_s"]
        lines.append(
            f"| {row['suite']} | {row['env']} ({row['jaxpg_path']}) | "
            f"{row['jaxpg_steps_per_s']:,.0f} | {row['own_steps_per_s']:,.0f} | "
            f"{row['ratio']:.2f} | {c['jaxpg']:.1f} / {c['own']:.1f} |"
        )
    split = [r for r in record["rows"] if "split_ratio_to_own" in r]
    if split:
        lines += [
            "",
            "The brax adapter's cost split (steps/s over the suite's own): "
            "`cached` restores one first state drawn once, as brax's wrapper "
            "does; `no_reset` never resets.",
            "",
            "| suite | jaxpg | cached | no_reset |",
            "| --- | --- | --- | --- |",
        ]
        for row in split:
            r = row["split_ratio_to_own"]
            lines.append(
                f"| {row['suite']} | {row['ratio']:.2f} | {r['cached']:.2f} "
                f"| {r['no_reset']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--suites", default=",".join(ENVS))
    parser.add_argument("--num-envs", type=int, default=256)
    parser.add_argument("--scan-steps", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--tiny", action="store_true", help="B=2, 4 steps, 1 round")
    parser.add_argument(
        "--split",
        action="store_true",
        help="brax, Playground: also the adapter with a cached first state and "
        "with no reset (see split_arms)",
    )
    parser.add_argument("--out-dir", type=Path, default=None)
    args = parser.parse_args(argv)
    if args.tiny:
        args.num_envs, args.scan_steps, args.repeats = 2, 4, 1
    out_dir = args.out_dir or (None if args.tiny else RESULTS)
    suites = [s for s in args.suites.split(",") if s]
    unknown = [s for s in suites if s not in ENVS]
    if unknown:
        parser.error(f"--suites: unknown {unknown}; known: {', '.join(ENVS)}")
    rows = []
    for suite in suites:
        try:
            row = measure(
                suite, args.num_envs, args.scan_steps, args.repeats, args.split
            )
        except ImportError as err:  # the suite's extra is not installed
            row = {"suite": suite, "env": ENVS[suite], "error": str(err)}
        rows.append(row)
        print(json.dumps(row), flush=True)
    device = jax.devices()[0]
    record = {
        "machine": f"{device.platform} {device.device_kind}, {platform.node()}",
        "jaxpg": jaxpg.__version__,
        "num_envs": args.num_envs,
        "scan_steps": args.scan_steps,
        "repeats": args.repeats,
        "rows": rows,
    }
    text = _markdown(record)
    print(text)
    if out_dir is not None:
        out_dir.mkdir(parents=True, exist_ok=True)
        stem = out_dir / f"env_adapters_{device.platform}"
        stem.with_suffix(".json").write_text(json.dumps(record, indent=2) + "\n")
        stem.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
