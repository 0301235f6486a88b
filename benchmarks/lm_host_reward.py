"""What a host Python reward costs: RL updates with the same reward written in
``jax.numpy`` and as a host function through ``jax.pure_callback``.

All programs run in this process on the same model, task (``sort``), prompts
and batch (``N = seeds * prompts * group`` responses); timings alternate
between programs over ``--repeats`` rounds and report the median.

* ``jittable``: ``sort``'s own exact-match reward, compiled into the update;
* ``host_ids``: the same reward as a TRL-shaped host function
  ``f(prompts, completions)`` on token-id arrays
  (:func:`jaxpg.sequence.host_reward.host_reward`);
* ``host_strings``: the same on strings decoded by the built-in
  ``CharTokenizer`` (the task's digits, ``+`` and ``=`` are its alphabet).

For each: seconds per RL update (``--iters`` updates in one compiled scan,
``vmap`` over seeds: the host function is called once per seed per update),
and the reward call alone on one batch (seconds, and microseconds per
response). The three reward the same responses equally (checked on one
batch), so the updates are the same computation but for where the reward
runs; the ``host_ids`` run equals the ``jittable`` one (checked). Decoding to
strings skips a PAD id that the policy sampled inside a completion, so a
``host_strings`` run can part from the others where that happens (the record
counts the seeds that did).

    python benchmarks/lm_host_reward.py                 # defaults below
    python benchmarks/lm_host_reward.py --tiny          # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import statistics
import time

import jax
import jax.numpy as jnp
import lm_settings
import numpy as np
from record import write_record

from jaxpg.sequence import model, rl, tasks
from jaxpg.sequence.data import CharTokenizer
from jaxpg.sequence.host_reward import host_reward


def exact_ids(prompts, completions):
    """Exact match of the sorted prompt digits, on token ids."""
    return [
        float(c.tolist() == sorted(p[:-1].tolist()))
        for p, c in zip(prompts, completions, strict=True)
    ]


def exact_strings(prompts, completions):
    """The same on strings (``"312="`` -> ``"123"``)."""
    return [
        float(c == "".join(sorted(p[:-1])))
        for p, c in zip(prompts, completions, strict=True)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--digits", type=int, default=3)
    lm_settings.add_options(p, iters_help="updates per timing")
    a = lm_settings.parse(p)

    task = tasks.sort_task(a.digits)
    tok = CharTokenizer("0123456789+=")  # ids 2.. are the task's digits, +, =
    rewards = {
        "jittable": task.reward,
        "host_ids": host_reward(exact_ids),
        "host_strings": host_reward(exact_strings, tokenizer=tok),
    }
    r = task.max_new_tokens
    cfg = lm_settings.model_config(task, a)
    rl_cfg = rl.RLConfig(num_prompts=a.prompts, group_size=a.group)
    params = model.init(jax.random.key(0), cfg)
    keys = jax.vmap(jax.random.key)(jnp.arange(a.seeds))
    n = a.prompts * a.group
    prompts = jnp.repeat(task.sample_prompts(jax.random.key(1), a.prompts), a.group, 0)
    answers = task.answers(prompts)
    # Half right, half wrong responses to score.
    responses = jnp.where(
        jnp.arange(n)[:, None] % 2 == 0, answers, jnp.roll(answers, 1, axis=1)
    )
    mask = jnp.ones(responses.shape, jnp.float32)

    programs = {}
    for name, fn in rewards.items():
        algo = rl.make_rl(tasks.with_reward(task, fn), cfg, rl_cfg)
        states = jax.jit(jax.vmap(algo.init, in_axes=(0, None)))(keys, params)

        def update(s, algo=algo):
            return jax.vmap(lambda x: rl.run_updates(algo, x, params, a.iters))(s)

        programs[f"update/{name}"] = (update, states, a.iters)
        programs[f"reward/{name}"] = (
            lambda b, fn=fn: fn(b[0], b[1], b[2]),
            (prompts, responses, mask),
            1,
        )
    compiled, compile_s = lm_settings.compile_programs(programs)
    outputs = {
        name: jax.block_until_ready(compiled[name](arg))
        for name, (_, arg, _) in programs.items()
    }
    for name in rewards:  # the same computation but for where the reward runs
        np.testing.assert_array_equal(
            outputs[f"reward/{name}"], outputs["reward/jittable"]
        )
    # On ids the host reward is the jittable one: equal runs. Decoding skips a
    # sampled PAD id, so "1 <pad> 2 3" reads "123" on strings: those runs may
    # part where a policy samples PAD (counted, not asserted).
    want = outputs["update/jittable"][1]
    for k in ("reward", "accuracy", "loss"):
        got = outputs["update/host_ids"][1][k]
        np.testing.assert_allclose(got, want[k], rtol=1e-5, atol=1e-6)
    strings = np.asarray(outputs["update/host_strings"][1]["reward"])
    parted = int(np.sum(np.any(strings != np.asarray(want["reward"]), axis=-1)))
    times = {name: [] for name in programs}
    for _ in range(a.repeats):
        for name, (_, arg, calls) in programs.items():
            t0 = time.perf_counter()
            jax.block_until_ready(compiled[name](arg))
            times[name].append((time.perf_counter() - t0) / calls)

    rows = {}
    for name in programs:
        sec = statistics.median(times[name])
        per = a.seeds * n if name.startswith("update") else n
        rows[name] = {
            "seconds_per_call": sec,
            "us_per_response": 1e6 * sec / per,
            "compile_s": compile_s[name],
        }
    print(f"N = {n} responses per seed x {a.seeds} seeds, R = {r}; {jax.devices()[0]}")
    print("| program | s per update (or call) | / jittable | us per response |")
    print("|---|---|---|---|")
    for name, row in rows.items():
        base = rows[name.split("/")[0] + "/jittable"]["seconds_per_call"]
        print(
            f"| {name} | {row['seconds_per_call']:.5f} | "
            f"{row['seconds_per_call'] / base:.2f} | {row['us_per_response']:.2f} |"
        )
    print(f"host_strings runs that parted from the jittable reward's: {parted}")
    record = lm_settings.run_record(a, responses_per_seed=n, response_len=r)
    record["rows"] = rows
    record["host_strings_seeds_parted"] = parted
    write_record(record, f"lm_host_reward_{jax.default_backend()}.json", a.tiny, a.out)


if __name__ == "__main__":
    main()
