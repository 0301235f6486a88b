"""Token-policy RL throughput: sampled tokens/s of a whole RL update against
the ceiling of KV-cached generation alone, learner tokens/s, compile apart.

All programs run in this process on the same model, prompts and batch
(``N = seeds * prompts * group`` responses of ``R`` tokens); timings alternate
between programs over ``--repeats`` rounds and report the median.

* ``generate``: the KV-cached sampler alone (the ceiling);
* ``generate_no_cache``: the same sampler recomputing the full prefix each step;
* ``rl_update``: full RL updates (sample, score, reference pass, advantages,
  ``epochs`` gradient steps), ``vmap`` over seeds, ``--iters`` of them in one
  compiled ``lax.scan`` per call (``rl.run_updates``, the path of
  ``rl.make_rl_train`` and ``jaxpg lm``);
* ``learner``: the gradient step alone on a fixed batch.

Tokens/s counts response tokens (``N * R`` per update; learner:
``N * R * epochs``). The other programs are called ``--iters`` times per timing.

    python benchmarks/lm_throughput.py                 # defaults below
    python benchmarks/lm_throughput.py --tiny          # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

import jax
import jax.numpy as jnp
import lm_settings
from record import write_record

import jaxpg.sequence
from jaxpg.sequence import tasks


def programs(sq: Any, a: argparse.Namespace) -> tuple[dict, int, int]:
    """``({name: (function, argument, tokens per call, calls per timing)}, N,
    R)``: the four timed programs of ``sq`` (a ``jaxpg.sequence`` package:
    today's, or an older one's for ``lm_protocol_speed.py``) at the options
    ``a`` (``--task``, ``--epochs``, the model, batch and ``--iters``)."""
    model, rl, sampling, tasks = sq.model, sq.rl, sq.sampling, sq.tasks
    task = tasks.make_task(a.task)
    r = task.max_new_tokens
    cfg = lm_settings.model_config(task, a, model)
    rl_cfg = rl.RLConfig(
        num_prompts=a.prompts, group_size=a.group, epochs=a.epochs,
        aggregation="token_mean",
    )  # fmt: skip
    params = model.init(jax.random.key(0), cfg)
    n = a.seeds * a.prompts * a.group
    prompts = jnp.repeat(
        task.sample_prompts(jax.random.key(1), n // a.group), a.group, 0
    )
    eos, pad = tasks.EOS, tasks.PAD

    def generate(key):
        return sampling.sample(key, params, cfg, prompts, r, eos_id=eos, pad_id=pad)

    def generate_no_cache(key):
        return sampling.sample_without_cache(
            key, params, cfg, prompts, r, eos_id=eos, pad_id=pad
        )

    algo = rl.make_rl(task, cfg, rl_cfg)
    keys = jax.vmap(jax.random.key)(jnp.arange(a.seeds))
    states = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(keys, params)

    def rl_update(states):
        return jax.vmap(lambda s: rl.run_updates(algo, s, params, a.iters))(states)

    batch = jax.jit(
        jax.vmap(lambda k: rl.make_batch(k, params, params, task, cfg, rl_cfg))
    )(keys)
    grad_fn = jax.grad(rl.loss_fn, has_aux=True)

    def learner(p):
        def one(b):
            def epoch(q, _):
                g, _ = grad_fn(q, b, cfg, rl_cfg)
                return jax.tree.map(lambda x, y: x - 1e-3 * y, q, g), None

            return jax.lax.scan(epoch, p, None, length=a.epochs)[0]

        return jax.vmap(one)(batch)

    progs = {  # name: (function, argument, tokens per call, calls per timing)
        "generate": (generate, jax.random.key(2), n * r, a.iters),
        "generate_no_cache": (generate_no_cache, jax.random.key(2), n * r, a.iters),
        "rl_update": (rl_update, states, n * r * a.iters, 1),
        "learner": (learner, params, n * r * a.epochs, a.iters),
    }
    return progs, n, r


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--task", default="sort", choices=tasks.TASKS)
    p.add_argument("--epochs", type=int, default=1)
    lm_settings.add_options(p, iters_help="calls per timing")
    a = lm_settings.parse(p)
    programs_, n, r = programs(jaxpg.sequence, a)
    compiled, compile_s = lm_settings.compile_programs(programs_)
    times = {name: [] for name in programs_}
    for _ in range(a.repeats):
        for name, (_, arg, _, calls) in programs_.items():
            jax.block_until_ready(compiled[name](arg))
            t0 = time.perf_counter()
            for _ in range(calls):
                out = compiled[name](arg)
            jax.block_until_ready(out)
            times[name].append((time.perf_counter() - t0) / calls)

    rows = {}
    for name, (_, _, tokens, _) in programs_.items():
        sec = statistics.median(times[name])
        rows[name] = {
            "tokens_per_s": tokens / sec,
            "seconds_per_call": sec,
            "compile_s": compile_s[name],
        }
    ceiling = rows["generate"]["tokens_per_s"]
    print(f"N = {n} responses x R = {r} tokens; device {jax.devices()[0]}")
    print("| program | tokens/s | / generation ceiling | s per call | compile s |")
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        print(
            f"| {name} | {row['tokens_per_s']:,.0f} | "
            f"{row['tokens_per_s'] / ceiling:.2f} | {row['seconds_per_call']:.4f} | "
            f"{row['compile_s']:.1f} |"
        )
    record = lm_settings.run_record(a, responses=n, response_len=r)
    record["rows"] = rows
    write_record(record, f"lm_throughput_{jax.default_backend()}.json", a.tiny, a.out)


if __name__ == "__main__":
    main()
