"""jaxpg PPO against brax's own PPO trainer on the same brax env, one process.

Both train ``--env`` (an unwrapped ``brax.envs`` env, default
``inverted_pendulum``, episodes of 1000 steps) with the same settings
(:data:`SETTINGS`, mapped onto each side by :func:`jaxpg_config` and
:func:`brax_kwargs`): ``N`` envs × an unroll of ``T`` steps per update, the
batch split into the same minibatches (``N·T / M`` transitions each, for brax
``batch_size = N / M`` sequences of ``T``), the same epochs, learning rate,
discount, GAE λ, clip ε, entropy and value coefficients, observation
normalisation, and a policy and a critic of the same hidden sizes and
activation. What stays each side's own: jaxpg's Gaussian policy (actions
clipped to ``[-1, 1]``) against brax's tanh-squashed Gaussian; jaxpg's
auto-reset from a fresh reset with truncation bootstrapped from the real final
observation, against brax's training wrapper (a cached first state; by default
brax's PPO leaves truncated steps out of GAE, ``bootstrap_on_timeout=False``).

How the steps are counted (env steps; one env step = one agent step here,
``action_repeat = 1``):

* **jaxpg**: ``jit(make_train(cfg))``, compiled apart (``lower``/``compile``,
  timed as its compile seconds), then called once per seed (``key(i)``); a
  call's steps/s is ``total_steps / run seconds``; the table gives the median
  over the seeds' calls. With ``--vmapped`` also one call of all seeds as one
  program (``jit(vmap(make_train))``), counted as ``seeds × total_steps``.
* **brax**: ``brax.training.agents.ppo.train``, one call per seed (brax trains
  one seed per call), its budget split into ``--epochs`` training epochs (one
  ``num_evals`` slot each, brax's evaluations off: ``run_evals=False``). brax
  times each epoch itself (``training/sps`` = the epoch's env steps over its
  wall time). The first two epochs of every call compile (brax compiles again
  on every call, and its pmapped epoch is traced again on its second call,
  whose inputs are the first's outputs), so a call's steps/s is the steps of
  the later epochs over their time, and its compile seconds are the first two
  epochs' time less two of the fastest later epoch. To keep the run short,
  brax's calls share JAX's persistent compilation cache (a fresh temporary
  folder, set only around brax's calls): the first call compiles, the later
  ones load; the compile seconds reported are the first call's.

The final return of every seed of both sides is evaluated the same way:
``--episodes`` fresh episodes through jaxpg's brax adapter (1000-step limit,
episodes run to their end), actions sampled from the trained policy. Reported
per side: each seed's mean return, their IQM with a 95% percentile-bootstrap
interval (:mod:`jaxpg.analysis.stats`), and the steps/s ratio jaxpg / brax.

Usage::

    python benchmarks/brax_trainer.py                 # the CPU-sized run
    python benchmarks/brax_trainer.py --tiny          # a smoke run, nothing written

Writes ``results/brax_trainer_<platform>.json`` (:func:`record.write_record`)
and ``.md`` beside it (with ``--tiny`` only when ``--out`` is given).
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

import jaxpg
from jaxpg import envs
from jaxpg.analysis.stats import bootstrap_ci, iqm

sys.path.insert(0, str(Path(__file__).resolve().parent))
from record import write_record

# The shared settings, in jaxpg's names (``unroll`` is jaxpg's rollout_steps).
SETTINGS = dict(
    num_envs=32,
    unroll=32,
    num_minibatches=4,
    num_epochs=4,
    lr=3e-4,
    gamma=0.99,
    gae_lambda=0.95,
    clip_eps=0.2,
    ent_coef=0.01,
    vf_coef=0.5,
    hidden=(64, 64),
    activation="tanh",
    normalise_obs=True,
    episode_length=1000,
)
STEPS_PER_SEED = 196_608  # 192 updates of 32 × 32 steps
BRAX_EPOCHS = 6  # brax's budget in epochs; the first WARM_EPOCHS compile
WARM_EPOCHS = 2
TINY = dict(
    SETTINGS, num_envs=4, unroll=4, num_minibatches=2, num_epochs=1, episode_length=8
)


def jaxpg_config(settings: dict[str, Any], total_steps: int, env: str) -> Any:
    """jaxpg's ``Config`` for ``settings`` (:data:`SETTINGS`' keys)."""
    s = settings
    return jaxpg.Config(
        env=env,
        algo="ppo",
        num_envs=s["num_envs"],
        rollout_steps=s["unroll"],
        num_minibatches=s["num_minibatches"],
        num_epochs=s["num_epochs"],
        lr=s["lr"],
        gamma=s["gamma"],
        gae_lambda=s["gae_lambda"],
        clip_eps=s["clip_eps"],
        ent_coef=s["ent_coef"],
        vf_coef=s["vf_coef"],
        hidden=tuple(s["hidden"]),
        activation=s["activation"],
        normalise_obs=s["normalise_obs"],
        total_steps=total_steps,
    )


def brax_kwargs(settings: dict[str, Any], total_steps: int, epochs: int) -> dict:
    """Keywords of ``brax.training.agents.ppo.train`` for ``settings``: one
    unroll of all ``num_envs`` per update (``batch_size · num_minibatches =
    num_envs``), ``epochs + 1`` eval slots (brax trains ``epochs`` epochs,
    evaluations off). The ``network_factory`` is added by :func:`train_brax`.

    Raises:
      ValueError: ``num_envs`` not a multiple of ``num_minibatches``, or the
        budget not a multiple of ``epochs`` updates.
    """
    s = settings
    per_update = s["num_envs"] * s["unroll"]
    if s["num_envs"] % s["num_minibatches"]:
        raise ValueError(
            f"num_envs={s['num_envs']} is invalid: a multiple of "
            f"num_minibatches={s['num_minibatches']}"
        )
    if total_steps % (per_update * epochs):
        raise ValueError(
            f"total_steps={total_steps} is invalid: a multiple of "
            f"{per_update * epochs} (num_envs × unroll × epochs)"
        )
    return dict(
        num_timesteps=total_steps,
        num_envs=s["num_envs"],
        unroll_length=s["unroll"],
        batch_size=s["num_envs"] // s["num_minibatches"],
        num_minibatches=s["num_minibatches"],
        num_updates_per_batch=s["num_epochs"],
        learning_rate=s["lr"],
        discounting=s["gamma"],
        gae_lambda=s["gae_lambda"],
        clipping_epsilon=s["clip_eps"],
        entropy_cost=s["ent_coef"],
        vf_loss_coefficient=s["vf_coef"],
        normalize_observations=s["normalise_obs"],
        episode_length=s["episode_length"],
        action_repeat=1,
        num_evals=epochs + 1,
        run_evals=False,
    )


def returns_of(
    env: Any, params: Any, act: Any, key: jax.Array, episodes: int
) -> np.ndarray:
    """``[episodes]`` undiscounted returns of ``act(obs [E, O], key) ->
    actions [E, D]`` on fresh episodes through jaxpg's adapter, each run to its
    end (termination or the adapter's time limit)."""
    reset = jax.vmap(env.reset, in_axes=(0, None))
    step = jax.vmap(env.step, in_axes=(0, 0, 0, None))

    def run(key):
        key_reset, key_run = jax.random.split(key)
        obs, state = reset(jax.random.split(key_reset, episodes), params)
        zeros = jnp.zeros((episodes,), jnp.float32)
        carry = (obs, state, zeros, jnp.ones((episodes,), bool), key_run)

        def body(c):
            obs, state, total, alive, key = c
            key, key_act, key_step = jax.random.split(key, 3)
            action = jnp.clip(act(obs, key_act), -1.0, 1.0)
            obs, state, reward, term, trunc, _ = step(
                jax.random.split(key_step, episodes), state, action, params
            )
            total = total + jnp.where(alive, reward, 0.0)
            return obs, state, total, alive & ~(term | trunc), key

        return jax.lax.while_loop(lambda c: c[3].any(), body, carry)[2]

    return np.asarray(jax.jit(run)(key))


def train_jaxpg(
    cfg: Any, env: Any, params: Any, seeds: int, episodes: int, vmapped: bool
) -> dict:
    """jaxpg's side: compile, one call per seed, evaluation (see the module docs)."""
    train = jax.jit(jaxpg.make_train(cfg, env=env, env_params=params))
    t0 = time.perf_counter()
    compiled = train.lower(jax.random.key(0)).compile()
    compile_s = time.perf_counter() - t0
    evaluate = jax.jit(
        lambda p, k: jaxpg.evaluate(cfg, p, k, episodes, env=env, env_params=params)
    )
    rates, means = [], []
    for seed in range(seeds):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(jax.random.key(seed)))
        rates.append(cfg.total_steps / (time.perf_counter() - t0))
        ret = evaluate(out.params, jax.random.fold_in(jax.random.key(1), seed))
        means.append(float(np.mean(ret)))
        print(f"jaxpg seed {seed}: {rates[-1]:,.0f} steps/s, return {means[-1]:.1f}")
    row = dict(
        compile_s=compile_s,
        steps_per_s_per_call=rates,
        steps_per_s=statistics.median(rates),
        seed_returns=means,
    )
    if vmapped:
        many = jax.jit(jax.vmap(jaxpg.make_train(cfg, env=env, env_params=params)))
        keys = jax.random.split(jax.random.key(0), seeds)
        t0 = time.perf_counter()
        compiled = many.lower(keys).compile()
        row["vmapped_compile_s"] = time.perf_counter() - t0
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(keys))
        row["vmapped_steps_per_s"] = (
            seeds * cfg.total_steps / (time.perf_counter() - t0)
        )
    return row


def _restore_device_put_replicated() -> None:
    """brax 0.14's trainer calls ``jax.device_put_replicated``, which jax 0.10
    removed from its public namespace (the function itself is still in
    ``jax._src.api``): put it back for this process, for brax's calls only."""
    if "device_put_replicated" not in vars(jax):
        from jax._src import api

        jax.device_put_replicated = api.device_put_replicated


def train_brax(
    raw: Any,
    env: Any,
    params: Any,
    settings: dict,
    total_steps: int,
    epochs: int,
    seeds: int,
    episodes: int,
) -> dict:
    """brax's side: one ``ppo.train`` call per seed, its epochs timed by
    brax, evaluation (see the module docs)."""
    _restore_device_put_replicated()
    from brax.training.agents.ppo import networks as ppo_networks
    from brax.training.agents.ppo import train as ppo
    from flax import linen

    factory = functools.partial(
        ppo_networks.make_ppo_networks,
        policy_hidden_layer_sizes=tuple(settings["hidden"]),
        value_hidden_layer_sizes=tuple(settings["hidden"]),
        activation=getattr(linen, settings["activation"]),
    )
    kwargs = brax_kwargs(settings, total_steps, epochs)
    per_epoch = total_steps // epochs
    rates, compiles, means = [], [], []
    with tempfile.TemporaryDirectory() as cache, _compilation_cache(cache):
        for seed in range(seeds):
            _one_brax_call(
                ppo,
                raw,
                kwargs,
                factory,
                seed,
                per_epoch,
                env,
                params,
                episodes,
                (rates, compiles, means),
            )
    return dict(
        compile_s_per_call=compiles,
        compile_s=compiles[0],
        steps_per_s_per_call=rates,
        steps_per_s=statistics.median(rates),
        seed_returns=means,
    )


@contextlib.contextmanager
def _compilation_cache(folder: str):
    """JAX's persistent compilation cache in ``folder``, every program kept."""
    names = (
        "jax_compilation_cache_dir",
        "jax_persistent_cache_min_compile_time_secs",
        "jax_persistent_cache_min_entry_size_bytes",
    )
    before = [getattr(jax.config, n) for n in names]
    for name, value in zip(names, (folder, 0.0, 0), strict=True):
        jax.config.update(name, value)
    try:
        yield
    finally:
        for name, value in zip(names, before, strict=True):
            jax.config.update(name, value)


def _one_brax_call(
    ppo, raw, kwargs, factory, seed, per_epoch, env, params, episodes, out
) -> None:
    """One seed of brax's side; appends its steps/s, compile s and return."""
    rates, compiles, means = out
    sps = []

    def progress(_, metrics, sps=sps):
        sps.append(float(metrics["training/sps"]))

    make_policy, brax_params, _ = ppo.train(
        raw, **kwargs, seed=seed, network_factory=factory, progress_fn=progress
    )
    times = [per_epoch / r for r in sps]  # each epoch's seconds
    # The first two epochs compile: the second call of brax's pmapped
    # epoch gets the first's outputs, of another sharding, and retraces.
    later = times[WARM_EPOCHS:]
    rates.append(per_epoch * len(later) / sum(later))
    compiles.append(sum(times[:WARM_EPOCHS]) - WARM_EPOCHS * min(later))
    policy = make_policy(brax_params, deterministic=False)

    def act(obs, key, policy=policy):  # brax's policies take raw uint32 keys
        return policy(obs, jax.random.key_data(key))[0]

    ret = returns_of(
        env, params, act, jax.random.fold_in(jax.random.key(1), seed), episodes
    )
    means.append(float(np.mean(ret)))
    print(
        f"brax seed {seed}: {rates[-1]:,.0f} steps/s, return {means[-1]:.1f}, "
        f"epoch seconds {', '.join(f'{t:.2f}' for t in times)}"
    )


def summary(returns: list[float]) -> dict:
    """IQM of the seeds' returns with its 95% bootstrap interval."""
    ci = bootstrap_ci(np.asarray(returns), stat=iqm)
    return dict(iqm=ci.estimate, ci95=[float(ci.low), float(ci.high)])


def markdown(record: dict) -> str:
    s, j, b = record["settings"], record["jaxpg"], record["brax"]
    rows = []
    for name, side in (("jaxpg", j), ("brax", b)):
        q = side["summary"]
        rows.append(
            f"| {name} | {side['steps_per_s']:,.0f} | {side['compile_s']:.1f} | "
            f"{q['iqm']:.1f} [{q['ci95'][0]:.1f}, {q['ci95'][1]:.1f}] | "
            + ", ".join(f"{x:.1f}" for x in side["seed_returns"])
            + " |"
        )
    lines = [
        f"# jaxpg PPO against brax's PPO trainer ({record['machine']})",
        "",
        f"`{record['env']}`, {record['steps_per_seed']:,} env steps per seed, "
        f"{record['seeds']} seeds each; {s['num_envs']} envs × {s['unroll']} "
        f"steps per update, {s['num_minibatches']} minibatches, "
        f"{s['num_epochs']} epochs, lr {s['lr']}, γ {s['gamma']}, "
        f"λ {s['gae_lambda']}, clip {s['clip_eps']}, hidden {tuple(s['hidden'])} "
        f"{s['activation']}, observations normalised. Steps/s: median over the "
        "seeds' calls, compile apart (see `benchmarks/brax_trainer.py`); return: "
        f"each seed's mean over {record['episodes']} sampled episodes, IQM "
        "[95% bootstrap interval] over seeds.",
        "",
        "| trainer | steps/s (one seed per call) | compile s | return IQM [95%] "
        "| per seed |",
        "| --- | --- | --- | --- | --- |",
        *rows,
        "",
        f"jaxpg / brax steps/s: **{record['ratio']:.2f}**.",
    ]
    if "vmapped_steps_per_s" in j:
        lines.append(
            f"jaxpg, all {record['seeds']} seeds in one program: "
            f"{j['vmapped_steps_per_s']:,.0f} steps/s (all seeds' steps), "
            f"compile {j['vmapped_compile_s']:.1f} s."
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="inverted_pendulum")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--steps", type=int, default=STEPS_PER_SEED)
    parser.add_argument(
        "--epochs", type=int, default=BRAX_EPOCHS, help="brax epochs per call"
    )
    parser.add_argument("--episodes", type=int, default=16)
    parser.add_argument("--vmapped", action="store_true")
    parser.add_argument("--machine", default=None, help="names the machine")
    parser.add_argument("--tiny", action="store_true", help="a smoke run")
    parser.add_argument("--out", default=None, help="the JSON's path")
    a = parser.parse_args(argv)
    settings = dict(SETTINGS)
    if a.tiny:
        settings, a.seeds, a.episodes, a.epochs = dict(TINY), 2, 2, WARM_EPOCHS + 1
        a.steps = settings["num_envs"] * settings["unroll"] * a.epochs
    name = f"brax/{a.env}"
    env, params = envs.from_brax(
        envs.make_env(name)[0].unwrapped,
        episode_length=settings["episode_length"],
        name=name,
    )
    if a.epochs <= WARM_EPOCHS:
        parser.error(f"--epochs={a.epochs} is invalid: > {WARM_EPOCHS}")
    cfg = jaxpg_config(settings, a.steps, name)
    brax_kwargs(settings, a.steps, a.epochs)  # the budget's checks, before any work
    jaxpg_row = train_jaxpg(cfg, env, params, a.seeds, a.episodes, a.vmapped)
    brax_row = train_brax(
        env.unwrapped, env, params, settings, a.steps, a.epochs, a.seeds, a.episodes
    )
    for side in (jaxpg_row, brax_row):
        side["summary"] = summary(side["seed_returns"])
    device = jax.devices()[0]
    record = dict(
        machine=a.machine
        or f"{device.platform} {device.device_kind}, {platform.node()}",
        jaxpg_version=jaxpg.__version__,
        env=name,
        settings=settings,
        steps_per_seed=a.steps,
        brax_epochs=a.epochs,
        seeds=a.seeds,
        episodes=a.episodes,
        command="brax_trainer.py " + " ".join(argv or sys.argv[1:]),
        jaxpg=jaxpg_row,
        brax=brax_row,
        ratio=jaxpg_row["steps_per_s"] / brax_row["steps_per_s"],
    )
    text = markdown(record)
    print(text)
    out = f"brax_trainer_{jax.default_backend()}.json"
    write_record(record, out, a.tiny, a.out)
    if a.out or not a.tiny:
        path = Path(a.out) if a.out else Path(__file__).parent / "results" / out
        path.with_suffix(".md").write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
