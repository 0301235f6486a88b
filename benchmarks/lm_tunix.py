"""jaxpg.sequence against Tunix's GRPO learner (JAX, Flax NNX; CPU) on the same
tiny NNX model, task, batch and number of updates, in one process.

The model is written here as a Flax NNX module in Tunix's calling convention
(``logits, cache = model(tokens, positions, cache, attention_mask)``, a
``config`` with ``num_layers`` / ``num_kv_heads`` / ``head_dim``,
``init_cache(batch, size, dtype)``): a pre-LN decoder of width ``--width``,
``--layers`` layers, ``--heads`` heads, learned positions, GELU MLP, its own
KV cache (``{"layer_i": {"k", "v": [N, C, H, D/H]}}``, written at the query's
position). jaxpg takes the same module through its NNX adapter
(``jaxpg.sequence.from_nnx``).

Both learners start from the same parameters: a supervised warm start of
``--sft-steps`` Adam steps on the ground truth, run once by jaxpg
(``make_sft``) and loaded into Tunix's actor and reference modules (a check
first: both stacks give the same log-probs of the same tokens). Then
``--updates`` GRPO updates of ``P`` prompts x ``G`` samples of at most ``R``
tokens on ``sort`` (3 digits) with the task's ``--reward`` (partial credit by
default, as ``lm_trl.py`` describes; Tunix: the same jittable reward on the
decoded tokens, through a word-level tokenizer written here, nothing
downloaded), group std scaling (Bessel, + 1e-4, on both sides),
sequence-mean-token-mean loss (jaxpg ``seq_mean``), PPO clip 0.2, k3 KL to
the reference in the loss with ``--beta``, one gradient step per batch, Adam
``--lr`` after global-norm clipping at 1, sampling at T = 1.

Reported: RL training tokens/s (``updates * P * G * R`` response-token budget
over the RL wall time) and exact-match accuracy of each final policy on 512
fresh prompts, both policies scored by the same evaluator
(``jaxpg.sequence.evaluate``). jaxpg runs ``make_rl_train`` (all updates in
one compiled ``lax.scan``) under ``jax.jit``: its compile is timed apart
(``lower().compile()``), its first call is recorded apart, then the program
is called ``--repeats`` times (median). Tunix runs ``GRPOLearner.train``
(``rollout_engine="vanilla"``, a one-device mesh) and compiles inside its
first updates, so each update is timed (the reward function is called once
per update): the RL time is the median update time x ``--updates``, and the
rest of the wall time is reported as ``compile and first updates``.

Needs ``google-tunix`` (the ``tunix`` extra), best in its own virtual
environment (it pulls TensorFlow Datasets, Grain, Transformers, ...):

    python benchmarks/lm_tunix.py            # defaults below
    python benchmarks/lm_tunix.py --tiny     # a quick check that both run
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import tempfile
import time
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")

import jax
import jax.numpy as jnp
import lm_settings
import numpy as np
from flax import nnx
from record import RESULTS, write_record

from jaxpg.sequence import (
    RLConfig,
    evaluate,
    from_nnx,
    make_rl_train,
    make_sft,
    sampling,
    tasks,
)
from jaxpg.sequence.seeds import NO_YNN

WORDS = ["<pad>", "<eos>", *[str(d) for d in range(10)], "+", "="]


# ---------------------------------------------------------------- the model
@dataclasses.dataclass(frozen=True)
class TinyConfig:
    """What Tunix's rollout reads of a model's config."""

    num_layers: int
    num_kv_heads: int
    head_dim: int


class Block(nnx.Module):
    """Pre-LN causal self-attention and a GELU MLP."""

    def __init__(self, width: int, heads: int, rngs: nnx.Rngs):
        self.heads = heads
        self.ln1 = nnx.LayerNorm(width, rngs=rngs)
        self.qkv = nnx.Linear(width, 3 * width, rngs=rngs)
        self.proj = nnx.Linear(width, width, rngs=rngs)
        self.ln2 = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)

    def __call__(self, x, start, cache, attention_mask):
        n, length, width = x.shape
        h = self.heads
        q, k, v = jnp.split(self.qkv(self.ln1(x)), 3, axis=-1)
        q, k, v = (a.reshape(n, length, h, width // h) for a in (q, k, v))
        if cache is not None:  # write this call's keys/values at its positions
            k = jax.lax.dynamic_update_slice_in_dim(cache["k"], k, start, 1)
            v = jax.lax.dynamic_update_slice_in_dim(cache["v"], v, start, 1)
            cache = {"k": k, "v": v}
        scores = jnp.einsum("nqhd,nkhd->nhqk", q, k) / jnp.sqrt(width // h)
        scores = jnp.where(attention_mask[:, None], scores, -1e30)
        att = jnp.einsum("nhqk,nkhd->nqhd", jax.nn.softmax(scores, axis=-1), v)
        x = x + self.proj(att.reshape(n, length, width))
        return x + self.down(jax.nn.gelu(self.up(self.ln2(x)))), cache


class TinyLM(nnx.Module):
    """A decoder-only transformer in Tunix's calling convention."""

    def __init__(self, vocab: int, max_len: int, width: int, layers: int,
                 heads: int, rngs: nnx.Rngs):  # fmt: skip
        self.config = TinyConfig(layers, heads, width // heads)
        self.vocab = vocab
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.pos = nnx.Embed(max_len, width, rngs=rngs)
        self.blocks = nnx.List([Block(width, heads, rngs) for _ in range(layers)])
        self.ln = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, vocab, rngs=rngs)

    @property
    def num_embed(self) -> int:
        return self.vocab

    def init_cache(self, batch: int, size: int, dtype=jnp.float32) -> dict:
        c = self.config
        zeros = jnp.zeros((batch, size, c.num_kv_heads, c.head_dim), dtype)
        return {f"layer_{i}": {"k": zeros, "v": zeros} for i in range(c.num_layers)}

    def __call__(self, tokens, positions, cache=None, attention_mask=None):
        x = self.embed(tokens) + self.pos(positions)
        start = positions[0, 0]  # no padding here: a row's slot is its position
        new = {} if cache is not None else None
        for i, block in enumerate(self.blocks):
            layer = None if cache is None else cache[f"layer_{i}"]
            x, layer = block(x, start, layer, attention_mask)
            if cache is not None:
                new[f"layer_{i}"] = layer
        return self.head(self.ln(x)), new


def make_module(a, max_len: int) -> TinyLM:
    return TinyLM(len(WORDS), max_len, a.width, a.layers, a.heads, nnx.Rngs(a.seed))


def as_jaxpg(module: TinyLM, max_len: int):
    return from_nnx(
        module, vocab_size=len(WORDS), max_len=max_len,
        init_cache=lambda b, n: module.init_cache(b, n, jnp.float32),
    )  # fmt: skip


def load_params(module: TinyLM, params: dict) -> None:
    """Put the pure-dict ``params`` into ``module``'s ``nnx.Param`` state."""
    state = nnx.state(module, nnx.Param)
    nnx.replace_by_pure_dict(state, params)
    nnx.update(module, state)


# ------------------------------------------------------------------- jaxpg
def rl_config(a) -> RLConfig:
    return RLConfig(
        num_prompts=a.prompts, group_size=a.group, num_updates=a.updates,
        advantage="grpo", aggregation="seq_mean", kl_placement="loss",
        kl_estimator="k3", beta=a.beta, lr=a.lr, clip_eps=0.2,
    )  # fmt: skip


def run_jax(task, model, ref, a, options=None) -> dict:
    """``options``: XLA compiler options of the compiled program."""
    train = make_rl_train(task, model, rl_config(a))
    args = (jax.random.key(a.seed + 1), ref, ref)
    t0 = time.perf_counter()
    compiled = jax.jit(train, compiler_options=options).lower(*args).compile()
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    jax.block_until_ready(compiled(*args))  # one-time setup of the executable
    first_s = time.perf_counter() - t0
    runs = []
    for _ in range(a.repeats):
        t0 = time.perf_counter()
        out = jax.block_until_ready(compiled(*args))
        runs.append(time.perf_counter() - t0)
    return {"compile_s": compile_s, "first_call_s": first_s, "runs_s": runs,
            "rl_s": float(np.median(runs)), "params": out.params}  # fmt: skip


# ------------------------------------------------------------------- Tunix
class WordTokenizer:
    """Space-separated words of ``WORDS`` (Tunix's tokenizer interface)."""

    def encode(self, text: str, **kwargs) -> list[int]:
        return [WORDS.index(w) for w in text.split()]

    def decode(self, ids, **kwargs) -> str:
        return " ".join(WORDS[i] for i in ids)

    def bos_id(self) -> int:
        return 0  # falsy: Tunix prepends no BOS

    def eos_id(self) -> int:
        return tasks.EOS

    def pad_id(self) -> int:
        return tasks.PAD


def _text(tokens) -> str:
    return " ".join(WORDS[t] for t in tokens)


def same_model_check(task, model, ref, a, max_len: int) -> float:
    """Largest difference between the log-probs jaxpg's cached sampler gives
    its draws and Tunix's teacher-forced pass (``compute_per_token_logps``)
    over the same tokens with the module holding ``ref``: both stacks run one
    model. Raises if above 1e-4."""
    from tunix.rl import common

    prompts = task.sample_prompts(jax.random.key(a.seed + 3), 8)
    s = sampling.sample(
        jax.random.key(a.seed + 4), ref, model, prompts, task.max_new_tokens,
        eos_id=tasks.EOS, pad_id=tasks.PAD,
    )  # fmt: skip
    module = make_module(a, max_len)
    load_params(module, ref)
    theirs = common.compute_per_token_logps(
        module, prompts, s.responses, pad_id=tasks.PAD, eos_id=tasks.EOS
    )
    gap = float(jnp.max(jnp.abs(jnp.where(s.mask, theirs - s.log_probs, 0.0))))
    if not gap < 1e-4:
        raise AssertionError(f"the two stacks disagree on the model: {gap}")
    return gap


def tunix_reward(task, stamps: list):
    """Tunix's ``reward(prompts, completions)``: the task's reward of the
    decoded completions. Tunix cuts a completion before its EOS (its text
    and its loss mask end there), so a completion shorter than ``R`` stopped
    with EOS, which is put back. Appends the call's time to ``stamps``."""
    r, score = task.max_new_tokens, jax.jit(task.reward)

    def reward(prompts, completions, **kwargs):
        stamps.append(time.perf_counter())  # once per update, after sampling
        p = np.array([[WORDS.index(w) for w in t.split()] for t in prompts])
        y = np.full((len(completions), r), tasks.PAD, np.int32)
        mask = np.zeros((len(completions), r), bool)
        for i, text in enumerate(completions):
            ids = [WORDS.index(w) for w in text.split()]
            ids = [*ids, tasks.EOS] if len(ids) < r else ids[:r]
            y[i, : len(ids)], mask[i, : len(ids)] = ids, True
        rewards = score(jnp.asarray(p), jnp.asarray(y), jnp.asarray(mask))
        return [float(x) for x in rewards]

    return reward


def run_tunix(task, ref, a, max_len: int) -> dict:
    import optax
    from tunix.rl import rl_cluster as rl_cluster_lib
    from tunix.rl.grpo import grpo_learner
    from tunix.rl.rollout import base_rollout

    r = task.max_new_tokens
    actor, reference = make_module(a, max_len), make_module(a, max_len)
    load_params(actor, ref)
    load_params(reference, ref)
    stamps = []

    reward = tunix_reward(task, stamps)

    auto = (jax.sharding.AxisType.Auto,) * 2  # Tunix's models are unannotated
    mesh = jax.make_mesh((1, 1), ("fsdp", "tp"), auto, devices=jax.devices()[:1])
    prompts = np.asarray(task.sample_prompts(jax.random.key(a.seed + 2),
                                             a.updates * a.prompts))  # fmt: skip
    batches = [
        # an array: Tunix repeats every leaf G times (a list's strings would
        # each become an array)
        {"prompts": np.array([_text(row) for row in rows])}
        for rows in np.split(prompts, a.updates)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        from tunix.sft import metrics_logger

        cluster_config = rl_cluster_lib.ClusterConfig(
            role_to_mesh={role: mesh for role in (
                rl_cluster_lib.Role.ACTOR, rl_cluster_lib.Role.REFERENCE,
                rl_cluster_lib.Role.ROLLOUT)},
            rollout_engine="vanilla",
            offload_to_cpu=False,
            training_config=rl_cluster_lib.RLTrainingConfig(
                actor_optimizer=optax.chain(optax.clip_by_global_norm(1.0),
                                            optax.adam(a.lr)),
                eval_every_n_steps=10**9, max_steps=a.updates,
                metrics_logging_options=metrics_logger.MetricsLoggerOptions(
                    log_dir=f"{tmp}/metrics", flush_every_n_steps=10**9),
            ),
            rollout_config=base_rollout.RolloutConfig(
                max_tokens_to_generate=r, max_prompt_length=task.prompt_len,
                kv_cache_size=max_len, temperature=1.0, top_p=1.0, top_k=None,
            ),
        )  # fmt: skip
        cluster = rl_cluster_lib.RLCluster(
            actor=actor, reference=reference, tokenizer=WordTokenizer(),
            cluster_config=cluster_config,
        )  # fmt: skip
        config = grpo_learner.GRPOConfig(
            num_generations=a.group, num_iterations=1, beta=a.beta, epsilon=0.2,
            loss_agg_mode="sequence-mean-token-mean",
        )  # fmt: skip
        learner = grpo_learner.GRPOLearner(cluster, config, reward)
        t0 = time.perf_counter()
        with mesh:
            learner.train(batches)
        wall = time.perf_counter() - t0
        final = nnx.to_pure_dict(nnx.state(cluster.actor_trainer.model, nnx.Param))
        cluster.close()
    steps = np.diff(stamps)  # one update each (train step, then sampling)
    steady = float(np.median(steps[2:])) if len(steps) > 2 else float("nan")
    return {"wall_s": wall, "updates_seen": len(stamps),
            "update_s_median": steady, "rl_s": steady * a.updates,
            "compile_and_first_s": wall - steady * a.updates,
            "params": final}  # fmt: skip


# -------------------------------------------------------------------- main
def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    lm_settings.add_model_options(p)
    lm_settings.add_rl_options(p)
    p.add_argument("--reward", default="partial", choices=("partial", "exact"))
    p.add_argument("--repeats", type=int, default=5, help="timed jaxpg calls")
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.tiny:
        a.width, a.layers, a.prompts, a.group, a.updates, a.sft_steps = 8, 1, 2, 2, 4, 2
        a.repeats = 1
    task = tasks.sort_task(3, reward=a.reward)
    max_len = task.prompt_len + task.max_new_tokens
    model = as_jaxpg(make_module(a, max_len), max_len)
    sft = jax.jit(make_sft(task, model, num_steps=a.sft_steps, lr=a.sft_lr))
    ref = sft(jax.random.key(a.seed)).params
    ev = jax.jit(lambda prm: evaluate(jax.random.key(7), prm, task, model, 512))
    tokens = a.updates * a.prompts * a.group * task.max_new_tokens

    gap = same_model_check(task, model, ref, a, max_len)
    print(f"log-probs of one model, jaxpg's cached sampler vs Tunix: max gap {gap:.1e}")
    rows = {"jaxpg": run_jax(task, model, ref, a),
            "jaxpg, YNNPACK off": run_jax(task, model, ref, a, NO_YNN),
            "tunix": run_tunix(task, ref, a, max_len)}  # fmt: skip
    reference_accuracy = float(ev(ref)["accuracy"])
    for row in rows.values():
        row["accuracy"] = float(ev(row.pop("params"))["accuracy"])
        row["tokens_per_s"] = tokens / row["rl_s"]
    ratios = {name: rows[name]["tokens_per_s"] / rows["tunix"]["tokens_per_s"]
              for name in ("jaxpg", "jaxpg, YNNPACK off")}  # fmt: skip
    record = {"settings": vars(a), "rows": rows, "ratios": ratios,
              "logp_gap": gap, "reference_accuracy": reference_accuracy,
              "machine": platform.platform()}  # fmt: skip
    text = markdown(record, task.max_new_tokens)
    print(text, end="")
    write_record(record, "lm_tunix_cpu.json", a.tiny, a.out)
    if a.out or not a.tiny:
        path = Path(a.out) if a.out else RESULTS / "lm_tunix_cpu.json"
        path.with_suffix(".md").write_text(text)


def markdown(record: dict, r: int) -> str:
    a, rows = record["settings"], record["rows"]
    lines = [
        "# jaxpg against Tunix's GRPO learner (`benchmarks/lm_tunix.py`, CPU)",
        "",
        f"sort (3 digits, {a['reward']} reward), the same NNX module "
        f"(width {a['width']}, "
        f"{a['layers']} layers, {a['heads']} heads), {a['updates']} GRPO updates "
        f"of {a['prompts']} x {a['group']} samples, R = {r}, from one SFT "
        f"reference (accuracy {record['reference_accuracy']:.3f}); log-probs "
        f"of the two stacks agree within {record['logp_gap']:.1e}. "
        f"{record['machine']}.",
        "",
        "| learner | RL tokens/s | RL s | compile s | accuracy after RL |",
        "|---|---|---|---|---|",
    ]
    for name, ratio in record["ratios"].items():
        row = rows[name]
        lines.append(
            f"| {name} | {row['tokens_per_s']:,.0f} ({ratio:.1f}x Tunix) | "
            f"{row['rl_s']:.2f} (median of {len(row['runs_s'])} calls) | "
            f"{row['compile_s']:.1f} | {row['accuracy']:.3f} |"
        )
    tx = rows["tunix"]
    lines.append(
        f"| Tunix | {tx['tokens_per_s']:,.0f} | {tx['rl_s']:.2f} (median update "
        f"x {a['updates']}; wall {tx['wall_s']:.2f}) | "
        f"{tx['compile_and_first_s']:.1f} (compile and first updates) | "
        f"{tx['accuracy']:.3f} |"
    )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
