"""Training throughput of jaxpg's REINFORCE against the rollout ceiling.

What is measured, for each seed count ``S`` (``--seeds``), in one process:

* **Training.** The plain ``jax.jit(jax.vmap(jaxpg.make_train(cfg)))`` that JAX
  RL users write, applied to ``jaxpg.drivers.train.seed_keys(S)``, with ``cfg`` the
  ``CartPole-v1`` REINFORCE preset (``--steps`` overrides ``total_steps`` per seed,
  ``--num-envs`` the envs per seed). The function is lowered and compiled
  explicitly (``.lower(...).compile()``), and compile time is reported apart from
  run time. Run time is the median of at least ``--repeats`` calls of the
  compiled executable (after ``--warmup`` untimed calls, the first one
  included), each ended by ``block_until_ready``. Throughput counts only env
  steps that fed the gradient: the sum over seeds of
  ``metrics["env_steps"][:, -1]``.
* **Ceiling.** A jitted ``lax.scan`` of ``T`` steps of: the same policy's forward
  pass (``jaxpg.networks.make_policy``) and action sampling, then one step of the
  same vmapped env (``jaxpg.rollout.make_stepper``), and nothing else; the one-seed
  scan is vmapped over the seeds, so it runs at the same batch
  ``S x num_envs``. Parameters and env states are made outside the timed
  call. ``T`` is calibrated so that a call takes about as long as a training
  run. Throughput is ``S * num_envs * T`` over the median run time.
* **Ratio** = training steps/s / ceiling steps/s, both taken in the same run:
  training and ceiling calls alternate, so both see the same background load;
  the JSON also gives the median and range of the per-pair ratios.
* **Rollout utilisation**, from the training metrics: the env steps that fed the
  gradient over the env slots the episode loop stepped, per seed (a seed's
  envs idle until its longest included episode ends) and for the whole batch
  (under ``vmap`` the loop also runs until the slowest seed is done).
* **Learner apart from the rollout.** From the training run's final state, one
  update (``algo.update``, vmapped over the seeds) and its collection alone
  (:func:`jaxpg.algorithms.reinforce.rollout`: the same episodes, the same
  key) are compiled and timed in turns; the learner (returns, baseline, the
  second forward pass, the backward pass, the optimizer step) takes the
  difference. The step budget is lifted for these calls (a spent budget
  collects nothing). It is the split at the trained policy, whose episodes
  are the longest of the run.
* **Episode-loop chunk** (``--loop-chunks``, default the platform's
  :data:`jaxpg.rollout.LOOP_CHUNK`): the episode loops test their predicate
  every ``K`` steps. Training, its compile time and the learner split are
  measured for each ``K`` against the one ceiling, all timed in turns; the
  first ``K`` fills the row's main columns.
* **Plain vmap vs ``train_seeds``**: one end-to-end call of each (compile and
  run together, as a user sees them), to show that the plain vmap is not a
  slower path. Both paths are warmed up once first (one update, one seed,
  untimed), so that the process's one-time costs fall on neither. On a GPU
  the first program compiled at a new batch shape also pays XLA's autotuning
  (about 2 s on an H200); that still falls on ``train_seeds``, which is called
  first (docs/benchmarks.md gives the order-swapped figures).
* With ``--torch-json`` pointing to an existing file written by
  ``benchmarks/torch_reinforce.py`` (its ``steps_per_second``: the textbook
  one-env PyTorch loop), the speed-up of jaxpg training over it.

On a CPU with few cores, and with other processes running, absolute numbers
move from run to run; the ratios from one run are what to compare. The
training workload depends on how far the policy has learned (longer episodes,
fewer idle env slots), so rows with different ``steps/seed`` are not
comparable with each other; the mean episode length is reported with each row.
The script makes no CPU-only assumption: on a GPU it measures the default
device.

Usage::

    python benchmarks/throughput.py --seeds 1,16,256 \\
        --torch-json benchmarks/results/torch_reinforce.json
    python benchmarks/throughput.py --seeds 1,16,256 --loop-chunks 1,4,16,64

Writes ``benchmarks/results/throughput_<platform>.json`` and ``.md``.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import jax
import jaxlib
import numpy as np

import jaxpg
from jaxpg.algorithms.reinforce import loop_chunk, rollout
from jaxpg.config import INT32_MAX, Config
from jaxpg.drivers.train import make_algorithm, make_parts, resolve_env, seed_keys
from jaxpg.networks import make_policy
from jaxpg.rollout import default_loop_chunk, make_stepper

Array = jax.Array

ENV = "CartPole-v1"
ALGO = "reinforce"
RESULTS = Path(__file__).resolve().parent / "results"
# Default total_steps per seed, by seed count: each training call takes a few
# seconds on a 2-core CPU, the whole script about two minutes.
DEFAULT_STEPS = {1: 100_000, 16: 50_000, 256: 5_000}
CALIBRATION_LENGTH = 64
MAX_REPEATS = 50


def default_steps(num_seeds: int) -> int:
    """Steps per seed when ``--steps`` is not given."""
    for seeds in sorted(DEFAULT_STEPS):
        if num_seeds <= seeds:
            return DEFAULT_STEPS[seeds]
    return DEFAULT_STEPS[max(DEFAULT_STEPS)]


def time_interleaved(
    calls: Sequence[Callable[[], Any]],
    repeats: int,
    warmup: int = 0,
    min_total_s: float = 0.0,
) -> list[list[float]]:
    """Wall times of each ``call()`` (blocked until ready), taken in turns.

    ``warmup`` untimed rounds, then rounds of one timed call each, at least
    ``repeats`` of them and more (up to ``MAX_REPEATS``) until every call's
    times add up to ``min_total_s``. Taking turns exposes every call to the
    same background load, so ratios between them hold on a busy machine.
    """
    for _ in range(warmup):
        for call in calls:
            jax.block_until_ready(call())
    times: list[list[float]] = [[] for _ in calls]
    while len(times[0]) < repeats or (
        min(sum(t) for t in times) < min_total_s and len(times[0]) < MAX_REPEATS
    ):
        for call, record in zip(calls, times, strict=True):
            start = time.perf_counter()
            jax.block_until_ready(call())
            record.append(time.perf_counter() - start)
    return times


def add_step_rates(rows: Sequence[dict[str, Any]], times: list[list[float]]) -> None:
    """Each arm's ``run_times_s``, median ``run_s`` and ``steps_per_s`` (its
    ``env_steps`` over the median call) from :func:`time_interleaved`'s times,
    written into its row."""
    for row, record in zip(rows, times, strict=True):
        row["run_times_s"] = [round(t, 4) for t in record]
        row["run_s"] = round(statistics.median(record), 4)
        row["steps_per_s"] = round(row["env_steps"] / row["run_s"], 1)


def compile_timed(jitted: Any, *args: Any) -> tuple[Any, float, float]:
    """``(executable, lower_s, compile_s)`` for ``jitted`` at ``args``."""
    start = time.perf_counter()
    lowered = jitted.lower(*args)
    lowered_at = time.perf_counter()
    compiled = lowered.compile()
    return compiled, lowered_at - start, time.perf_counter() - lowered_at


def rollout_utilisation(
    metrics: dict[str, np.ndarray], num_envs: int
) -> tuple[float | None, float | None]:
    """``(per seed, whole batch)`` fraction of stepped env slots that fed the
    gradient, from the ``[S, U]`` metrics ``env_steps`` and ``utilisation``
    (``None`` when the algorithm does not report ``utilisation``).

    A seed's loop length in an update is ``count / (utilisation * num_envs)``;
    under ``vmap`` the loop runs for the longest of them, for every seed.
    """
    if "utilisation" not in metrics:
        return None, None
    count = np.diff(metrics["env_steps"], axis=1, prepend=0).astype(np.float64)
    util = metrics["utilisation"].astype(np.float64)
    used = (count > 0) & (util > 0)
    own = np.where(used, count / np.where(used, util, 1.0) / num_envs, 0.0)
    total = count[used].sum()
    if total == 0:
        return None, None
    seed_slots = own.sum() * num_envs
    batch_slots = own.max(axis=0).sum() * own.shape[0] * num_envs
    return float(total / seed_slots), float(total / batch_slots)


def prepare_training(
    cfg: Config, num_seeds: int, end_to_end: bool = True
) -> tuple[Callable[[], Any], dict[str, Any], Any]:
    """Compile ``jit(vmap(make_train(cfg)))`` over ``num_seeds`` seeds, run it
    once, and read what the run did from its metrics (``end_to_end``: time a
    ``train_seeds`` call first).

    Returns ``(call, info, state)``: ``call()`` runs the compiled executable
    again; ``state`` is the run's final ``[S]`` train state.
    """
    keys = seed_keys(num_seeds)
    train_seeds_s = None
    if end_to_end:
        start = time.perf_counter()
        jax.block_until_ready(jaxpg.train_seeds(cfg, num_seeds))
        train_seeds_s = time.perf_counter() - start
    train = jax.jit(jax.vmap(jaxpg.make_train(cfg)))
    compiled, lower_s, compile_s = compile_timed(train, keys)
    start = time.perf_counter()
    out = jax.block_until_ready(compiled(keys))
    first_s = time.perf_counter() - start
    metrics = jax.tree.map(np.asarray, out.metrics)
    env_steps = int(metrics["env_steps"][:, -1].astype(np.int64).sum())
    # [S, U] update slots that ran an update (REINFORCE's later slots repeat
    # the metrics of its last update, which are what [:, -1] reads).
    active = np.diff(metrics["update"], axis=1, prepend=0) > 0
    final = metrics["episode_return"][:, -1]
    seed_util, batch_util = rollout_utilisation(metrics, cfg.num_envs)
    info = {
        "loop_chunk": loop_chunk(cfg),
        "lower_s": lower_s,
        "compile_s": compile_s,
        "first_run_s": first_s,
        "train_seeds_end_to_end_s": train_seeds_s,
        "plain_vmap_end_to_end_s": lower_s + compile_s + first_s,
        "env_steps": env_steps,
        "num_updates": cfg.num_updates,
        "updates_with_data_per_seed": float(active.sum(1).mean()),
        "mean_episode_length": float(np.nanmean(metrics["episode_length"])),
        "final_return_mean": float(np.nanmean(final)),
        "rollout_utilisation_seed": seed_util,
        "rollout_utilisation_batch": batch_util,
    }
    return lambda: compiled(keys), info, out.state


def prepare_learner_split(
    cfg: Config, state: Any
) -> tuple[Callable[[], Any], Callable[[], Any], dict[str, Any]]:
    """Compile one update and its rollout alone at the ``[S]`` train
    ``state`` (the budget lifted so that they collect).

    Returns ``(update_call, rollout_call, info)`` with the compile times.
    """
    probe = cfg.replace(total_steps=INT32_MAX)
    algo = make_algorithm(probe)
    parts = make_parts(probe)
    update = jax.jit(jax.vmap(algo.update))
    collect = jax.jit(jax.vmap(lambda s: rollout(probe, parts, s)))
    update_c, update_lower, update_compile = compile_timed(update, state)
    rollout_c, rollout_lower, rollout_compile = compile_timed(collect, state)
    info = {
        "update_compile_s": update_lower + update_compile,
        "rollout_compile_s": rollout_lower + rollout_compile,
    }
    return lambda: update_c(state), lambda: rollout_c(state), info


def time_learner_split(
    update_call: Callable[[], Any],
    rollout_call: Callable[[], Any],
    info: dict[str, Any],
    repeats: int,
    warmup: int,
    min_total_s: float,
) -> dict[str, Any]:
    """Median times of one update and of its rollout (in turns); the learner
    is their difference."""
    update_times, rollout_times = time_interleaved(
        [update_call, rollout_call], repeats, warmup=warmup, min_total_s=min_total_s
    )
    update_s = statistics.median(update_times)
    rollout_s = statistics.median(rollout_times)
    learner = [u - r for u, r in zip(update_times, rollout_times, strict=True)]
    return {
        **info,
        "update_s": update_s,
        "rollout_s": rollout_s,
        "learner_s": update_s - rollout_s,
        "learner_share": (update_s - rollout_s) / update_s,
        "learner_share_paired_min_max": [
            min(x / u for x, u in zip(learner, update_times, strict=True)),
            max(x / u for x, u in zip(learner, update_times, strict=True)),
        ],
        "update_times_s": update_times,
        "rollout_times_s": rollout_times,
    }


def warm_up(cfg: Config) -> None:
    """One untimed update of one seed through both paths (see the module
    docstring: the process's one-time costs stay out of the timed calls)."""
    small = cfg.replace(total_steps=cfg.num_envs * cfg.rollout_steps)
    jax.block_until_ready(jaxpg.train_seeds(small, 1))
    jax.block_until_ready(jax.jit(jax.vmap(jaxpg.make_train(small)))(seed_keys(1)))


def make_ceiling(
    cfg: Config, length: int
) -> tuple[Callable[[Array], Any], Callable[..., Any]]:
    """``(init, run)``: one seed's inputs, and ``length`` bare rollout steps.

    ``run(params, obs, env_state, key)`` scans policy forward + sample + vmapped
    env step over ``cfg.num_envs`` envs and returns the final carry.
    """
    env, env_params, spec = resolve_env(cfg)
    stepper = make_stepper(env, env_params, spec, cfg.num_envs, cfg.max_episode_steps)
    policy = make_policy(spec, cfg.hidden, cfg.activation, cfg.init_log_std)

    def init(key: Array) -> tuple[Any, Array, Any, Array]:
        key, key_policy, key_env = jax.random.split(key, 3)
        obs, env_state = stepper.reset(key_env)
        return policy.init(key_policy), obs, env_state, key

    def run(params: Any, obs: Array, env_state: Any, key: Array) -> Any:
        def body(carry: Any, _: None) -> tuple[Any, None]:
            key, obs, env_state = carry
            key, key_act, key_env = jax.random.split(key, 3)
            action = policy.apply(params, obs).sample(key_act)
            obs, env_state, *_ = stepper.step(key_env, env_state, action)
            return (key, obs, env_state), None

        carry, _ = jax.lax.scan(body, (key, obs, env_state), None, length=length)
        return carry

    return init, run


def prepare_ceiling(
    cfg: Config, num_seeds: int, target_s: float, max_length: int
) -> tuple[Callable[[], Any], dict[str, Any]]:
    """Compile the ceiling at ``S x num_envs``, its ``T`` sized so that a call
    takes about ``target_s`` (from a short probe scan).

    Returns ``(call, info)``; parameters and env states are made here, outside
    the timed call.
    """
    init, _ = make_ceiling(cfg, 1)
    inputs = jax.block_until_ready(jax.jit(jax.vmap(init))(seed_keys(num_seeds)))

    def build(length: int) -> tuple[Any, float, float]:
        _, run = make_ceiling(cfg, length)
        jitted = jax.jit(jax.vmap(run))
        return compile_timed(jitted, *inputs)

    probe, _, _ = build(CALIBRATION_LENGTH)
    (probe_times,) = time_interleaved([lambda: probe(*inputs)], 3, warmup=1)
    per_step = statistics.median(probe_times) / CALIBRATION_LENGTH
    length = int(min(max(target_s / per_step, CALIBRATION_LENGTH), max_length))
    compiled, lower_s, compile_s = build(length)
    info = {
        "length": length,
        "lower_s": lower_s,
        "compile_s": compile_s,
        "env_steps": num_seeds * cfg.num_envs * length,
    }
    return lambda: compiled(*inputs), info


def measure(
    cfg: Config,
    num_seeds: int,
    repeats: int,
    warmup: int,
    min_total_s: float,
    max_length: int,
    loop_chunks: Sequence[int],
) -> dict[str, Any]:
    """Training at each episode-loop chunk and the ceiling at one seed count,
    timed in turns; then the learner split of each chunk.

    The row's ``training`` and ratio are those of the first chunk; every
    chunk's are under ``chunks``.
    """
    calls, trainings, states = [], [], []
    for index, chunk in enumerate(loop_chunks):
        call, info, state = prepare_training(
            cfg.replace(loop_chunk=chunk), num_seeds, end_to_end=index == 0
        )
        calls.append(call)
        trainings.append(info)
        states.append(state)
    ceiling_call, ceiling = prepare_ceiling(
        cfg, num_seeds, trainings[0]["first_run_s"], max_length
    )
    # Warm-up: each training executable has run once already (its first call).
    for _ in range(max(warmup - 1, 0)):
        for call in calls:
            jax.block_until_ready(call())
    for _ in range(warmup):
        jax.block_until_ready(ceiling_call())
    *train_times, ceiling_times = time_interleaved(
        [*calls, ceiling_call], repeats, min_total_s=min_total_s
    )
    ceiling["run_s"] = statistics.median(ceiling_times)
    ceiling["run_times_s"] = ceiling_times
    ceiling["steps_per_second"] = ceiling["env_steps"] / ceiling["run_s"]
    chunks = []
    for chunk, training, times, state in zip(
        loop_chunks, trainings, train_times, states, strict=True
    ):
        training["run_s"] = statistics.median(times)
        training["run_times_s"] = times
        training["steps_per_second"] = training["env_steps"] / training["run_s"]
        paired = [
            (training["env_steps"] / t) / (ceiling["env_steps"] / c)
            for t, c in zip(times, ceiling_times, strict=True)
        ]
        split = time_learner_split(
            *prepare_learner_split(cfg.replace(loop_chunk=chunk), state),
            repeats,
            warmup,
            min_total_s,
        )
        chunks.append(
            {
                "loop_chunk": chunk,
                "training": training,
                "ratio": training["steps_per_second"] / ceiling["steps_per_second"],
                "ratio_paired_median": statistics.median(paired),
                "ratio_paired_min_max": [min(paired), max(paired)],
                "learner_split": split,
            }
        )
    first = chunks[0]
    return {
        "seeds": num_seeds,
        "num_envs": cfg.num_envs,
        "total_steps": cfg.total_steps,
        "training": first["training"],
        "ceiling": ceiling,
        "ratio": first["ratio"],
        "ratio_paired_median": first["ratio_paired_median"],
        "ratio_paired_min_max": first["ratio_paired_min_max"],
        "learner_split": first["learner_split"],
        "chunks": chunks,
    }


def cpu_model() -> str:
    """The first ``model name`` of ``/proc/cpuinfo`` (or ``platform``'s guess)."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Versions, device and host facts recorded with the results."""
    device = jax.devices()[0]
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(
            timespec="seconds"
        ),
        "jax_version": jax.__version__,
        "jaxlib_version": jaxlib.__version__,
        "jaxpg_version": jaxpg.__version__,
        "python_version": platform.python_version(),
        "platform": device.platform,
        "device_kind": device.device_kind,
        "device_count": jax.device_count(),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": len(os.sched_getaffinity(0))
        if hasattr(os, "sched_getaffinity")
        else None,
        "load_average": os.getloadavg() if hasattr(os, "getloadavg") else None,
        "xla_flags": os.environ.get("XLA_FLAGS", ""),
    }


def _relative(path: Path) -> str:
    """``path`` relative to the repository when inside it (no machine paths in
    the published results)."""
    try:
        return str(path.resolve().relative_to(RESULTS.resolve().parents[1]))
    except ValueError:
        return path.name


def read_torch(path: Path | None) -> dict[str, Any] | None:
    """The PyTorch baseline's record, if the file exists."""
    if path is None or not path.is_file():
        return None
    record = json.loads(path.read_text())
    if "steps_per_second" not in record:
        return None
    return {
        "path": _relative(path),
        "steps_per_second": float(record["steps_per_second"]),
        "cpu": record.get("cpu"),
        "threads": record.get("threads"),
        "torch_version": record.get("torch_version"),
    }


def _fraction(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def markdown(result: dict[str, Any]) -> str:
    """A markdown table of the rows, plus the setup it was measured on."""
    env = result["environment"]
    torch = result["torch"]
    head = [
        "seeds",
        "envs",
        "steps/seed",
        "train steps/s",
        "ceiling steps/s",
        "ratio",
        "pair range",
        "train compile s",
        "ceiling compile s",
        "train run s",
        "ceiling T",
        "mean ep. len",
        "util. seed / batch",
        "learner share",
        "train_seeds / plain vmap (end to end)",
    ]
    if torch is not None:
        head.append("x PyTorch")
    lines = [
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" for _ in head) + "|",
    ]
    for row in result["rows"]:
        train, ceiling = row["training"], row["ceiling"]
        cells = [
            str(row["seeds"]),
            str(row["num_envs"]),
            f"{row['total_steps']:,}",
            f"{train['steps_per_second']:,.0f}",
            f"{ceiling['steps_per_second']:,.0f}",
            f"{row['ratio']:.3f}",
            "{:.3f}-{:.3f}".format(*row["ratio_paired_min_max"]),
            f"{train['lower_s'] + train['compile_s']:.2f}",
            f"{ceiling['lower_s'] + ceiling['compile_s']:.2f}",
            f"{train['run_s']:.2f}",
            str(ceiling["length"]),
            f"{train['mean_episode_length']:.0f}",
            f"{_fraction(train['rollout_utilisation_seed'])} / "
            f"{_fraction(train['rollout_utilisation_batch'])}",
            f"{row['learner_split']['learner_share']:.2f}",
            f"{train['train_seeds_end_to_end_s']:.1f} s / "
            f"{train['plain_vmap_end_to_end_s']:.1f} s",
        ]
        if torch is not None:
            cells.append(f"{row['speedup_vs_torch']:.1f}")
        lines.append("| " + " | ".join(cells) + " |")
    lines += chunk_table(result["rows"])
    settings = result["settings"]
    notes = [
        "",
        f"{ENV}, {ALGO} preset; {env['platform']} ({env['device_kind']}), "
        f"{env['cpu_model']}, {env['cpu_count']} cores; jax {env['jax_version']}; "
        f"{env['date']}.",
        f"Run times: median of >= {settings['repeats']} calls "
        f"(>= {settings['min_time_s']} s in all), training and ceiling in turns; "
        "compile = lower + compile. XLA_FLAGS: "
        f"`{env['xla_flags'] or '(none)'}`.",
        "Ratio = training / ceiling (same process, same batch seeds x envs); "
        "pair range: min-max of the ratio over consecutive pairs of calls.",
        "Learner share: (one update - its rollout alone) / one update, at the "
        "final train state (the learner: returns, baseline, second forward "
        "pass, backward pass, optimizer step). K: steps the episode loops run "
        "between tests of their predicate (Config.loop_chunk).",
        "Util. = env steps that fed the gradient / env slots the episode loop "
        "stepped: per seed, and for the batch (the loop runs until every seed's "
        "longest episode ends). Rows with different steps/seed sit at different "
        "stages of learning (mean ep. len) and are not comparable.",
    ]
    if torch is not None:
        notes.append(
            f"PyTorch textbook loop: {torch['steps_per_second']:,.0f} steps/s "
            f"({torch['path']})."
        )
    return "\n".join(lines + notes) + "\n"


def chunk_table(rows: Sequence[dict[str, Any]]) -> list[str]:
    """Markdown lines of the per-chunk columns (empty with a single chunk)."""
    if all(len(row["chunks"]) == 1 for row in rows):
        return []
    head = [
        "seeds",
        "K",
        "train steps/s",
        "ratio",
        "pair range",
        "train compile s",
        "update ms",
        "rollout ms",
        "learner ms",
        "learner share",
    ]
    lines = [
        "",
        "| " + " | ".join(head) + " |",
        "|" + "|".join("---:" for _ in head) + "|",
    ]
    for row in rows:
        for chunk in row["chunks"]:
            train, split = chunk["training"], chunk["learner_split"]
            cells = [
                str(row["seeds"]),
                str(chunk["loop_chunk"]),
                f"{train['steps_per_second']:,.0f}",
                f"{chunk['ratio']:.3f}",
                "{:.3f}-{:.3f}".format(*chunk["ratio_paired_min_max"]),
                f"{train['lower_s'] + train['compile_s']:.2f}",
                f"{1e3 * split['update_s']:.2f}",
                f"{1e3 * split['rollout_s']:.2f}",
                f"{1e3 * split['learner_s']:.2f}",
                f"{split['learner_share']:.2f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
    return lines


def parse_ints(text: str) -> list[int]:
    """``"1,16,256"`` -> ``[1, 16, 256]``."""
    return [int(part) for part in text.split(",") if part.strip()]


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run the benchmark, print the table, write JSON and markdown."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--seeds", default="1,16,256", help="seed counts, e.g. 1,16")
    parser.add_argument(
        "--steps",
        default=None,
        help="total_steps per seed: one value, or one per seed count "
        f"(default {DEFAULT_STEPS})",
    )
    parser.add_argument("--num-envs", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument(
        "--min-time",
        type=float,
        default=1.0,
        help="repeat timed calls until they add up to this many seconds",
    )
    parser.add_argument(
        "--max-ceiling-length",
        type=int,
        default=100_000,
        help="upper bound on the ceiling's scan length T",
    )
    parser.add_argument(
        "--torch-json",
        type=Path,
        default=RESULTS / "torch_reinforce.json",
        help="PyTorch baseline record (ignored if missing)",
    )
    parser.add_argument(
        "--loop-chunks",
        default=None,
        help="episode-loop chunks K to compare, e.g. 1,4,16,64 (default: the "
        "platform's jaxpg.rollout.LOOP_CHUNK); the first fills the main table",
    )
    parser.add_argument("--out-dir", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    if args.loop_chunks is None:
        loop_chunks = [default_loop_chunk()]
    else:
        try:
            loop_chunks = parse_ints(args.loop_chunks)
        except ValueError:
            loop_chunks = []
        if not loop_chunks or min(loop_chunks) < 1:
            parser.error(
                f"--loop-chunks {args.loop_chunks!r}: give ints >= 1, e.g. 1,4,16,64"
            )

    seeds = parse_ints(args.seeds)
    if args.steps is None:
        steps = [default_steps(s) for s in seeds]
    else:
        steps = parse_ints(args.steps)
        steps = steps * len(seeds) if len(steps) == 1 else steps
        if len(steps) != len(seeds):
            parser.error("--steps needs one value or one per seed count")
    torch = read_torch(args.torch_json)
    base = jaxpg.presets.get(ENV, ALGO).replace(num_envs=args.num_envs)

    warm_up(base)
    rows = []
    for num_seeds, total_steps in zip(seeds, steps, strict=True):
        cfg = base.replace(total_steps=total_steps)
        print(f"seeds={num_seeds} total_steps={total_steps} ...", flush=True)
        row = measure(
            cfg,
            num_seeds,
            args.repeats,
            args.warmup,
            args.min_time,
            args.max_ceiling_length,
            loop_chunks,
        )
        training, ceiling = row["training"], row["ceiling"]
        if torch is not None:
            row["speedup_vs_torch"] = (
                training["steps_per_second"] / torch["steps_per_second"]
            )
        rows.append(row)
        print(
            f"  train {training['steps_per_second']:,.0f} steps/s "
            f"(compile {training['lower_s'] + training['compile_s']:.2f}s, "
            f"run {training['run_s']:.2f}s); ceiling "
            f"{ceiling['steps_per_second']:,.0f} steps/s "
            f"(T={ceiling['length']}); ratio {row['ratio']:.3f}",
            flush=True,
        )
        for chunk in row["chunks"]:
            split = chunk["learner_split"]
            print(
                f"  K={chunk['loop_chunk']}: ratio {chunk['ratio']:.3f}, compile "
                f"{chunk['training']['lower_s'] + chunk['training']['compile_s']:.2f}s"
                f", learner share {split['learner_share']:.2f}",
                flush=True,
            )

    result = {
        "benchmark": "throughput",
        "env": ENV,
        "algo": ALGO,
        "config": {
            k: v
            for k, v in base.__dict__.items()
            if k != "total_steps"  # per row
            and isinstance(v, int | float | str | tuple | type(None))
        },
        "settings": {
            "loop_chunks": loop_chunks,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "min_time_s": args.min_time,
        },
        "environment": environment(),
        "torch": torch,
        "rows": rows,
    }
    table = markdown(result)
    print()
    print(table)
    args.out_dir.mkdir(parents=True, exist_ok=True)
    name = f"throughput_{result['environment']['platform']}"
    (args.out_dir / f"{name}.json").write_text(json.dumps(result, indent=2) + "\n")
    (args.out_dir / f"{name}.md").write_text(table)
    return result


if __name__ == "__main__":
    main()
