"""jaxpg.sequence against Hugging Face TRL's GRPOTrainer (PyTorch, CPU) on the
same tiny transformer configuration, task and batch, in one process.

Both sides: a decoder-only transformer of width ``--width``, ``--layers``
layers, ``--heads`` heads, learned positions, GELU MLP (TRL: ``GPT2LMHeadModel``
built from a ``GPT2Config``, which ties input and output embeddings; jaxpg's
head is untied), the same 14-token vocabulary (TRL: a local word-level
tokenizer, nothing downloaded: ``HF_HUB_OFFLINE=1``), a supervised warm start
of ``--sft-steps`` Adam steps on the ground truth, then ``--updates`` GRPO
updates of ``P`` prompts x ``G`` samples of at most ``R`` tokens, the task's
partial-credit reward, group std scaling, token-mean (DAPO) loss, KL ``k3`` in
the loss with ``--beta``, one gradient step per batch, Adam ``--lr``,
grad-norm clip 1.

Reported: RL training tokens/s (``updates * P * G * R`` response-token budget
over the RL wall time) and exact-match accuracy of each final policy on 512
fresh prompts (sampling at T = 1). jaxpg runs the path a user takes:
``rl.make_rl_train``, all updates in one compiled ``lax.scan``
(``rl.run_updates``), under a plain ``jax.jit``; its compile is timed apart.
The wall time of one run varies by up to 1.5x between calls on a shared 2-core
VM, so each side is run several times, in turns (``--repeats`` calls of the
compiled jaxpg program between ``--trl-repeats`` TRL trainings, each from the
same SFT model and seed), and the medians are compared; the first jaxpg call
(one-time setup of a fresh executable included) is reported beside them.
Two compilations of one program can also differ by several percent here
(``lm_ablate.py``), so each jaxpg row is compiled ``--copies`` times and each
of its runs is the mean of one call of every copy.

A second jaxpg row compiles the same program with XLA's YNNPACK fusions off
(``jax.jit(..., compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""})``,
or ``XLA_FLAGS=--xla_cpu_experimental_ynn_fusion_type=`` for a whole process):
at this model size XLA's own CPU kernels are faster than YNNPACK's.

Two more rows lay each update's prompts over ``--cpu-devices`` CPU devices
(``batch_sharding=rl.data_parallel()``: data parallel, XLA combines the
gradients), with and without YNNPACK. The process is started with that many
CPU devices (``jax_num_cpu_devices``); the one-device rows use the first. On
one device XLA's CPU runtime runs this program on about one core (pinning the
process to one core cost 14%), while PyTorch's intra-op threads use both; the
devices give XLA a thread each. Needs the ``bench`` extra (torch,
transformers, trl).

    python benchmarks/lm_trl.py                # defaults below
    python benchmarks/lm_trl.py --tiny         # a quick check that both run
    python benchmarks/lm_trl.py --jax-only     # jaxpg's side alone, nothing written
"""

from __future__ import annotations

import argparse
import contextlib
import os
import platform
import tempfile
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
if __name__ == "__main__":
    # The CPU device count is fixed when JAX's backend starts, which importing
    # jaxpg already does: it is set here, from the command line, first.
    _early = argparse.ArgumentParser(add_help=False)
    _early.add_argument("--cpu-devices", type=int, default=2)
    _n = _early.parse_known_args()[0].cpu_devices
    os.environ["JAX_NUM_CPU_DEVICES"] = str(max(_n, 1))

import jax
import jax.numpy as jnp
import lm_settings
import numpy as np
from record import write_record

from jaxpg.sequence import rl, sft, tasks
from jaxpg.sequence.seeds import NO_YNN

# jaxpg rows: (compiler options of the compiled RL program, prompts laid
# over all CPU devices).
JAX_VARIANTS = {
    "jaxpg": (None, False),
    "jaxpg, YNNPACK off": (NO_YNN, False),
    "jaxpg, CPU devices": (None, True),
    "jaxpg, CPU devices, YNNPACK off": (NO_YNN, True),
}
WORDS = ["<pad>", "<eos>", *[str(d) for d in range(10)], "+", "="]


def _text(tokens) -> str:
    return " ".join(WORDS[t] for t in tokens)


def jax_setup(task, a):
    """``(model config, SFT reference params, RL config)`` of the settings."""
    cfg = lm_settings.model_config(task, a)
    ref = jax.jit(sft.make_sft(task, cfg, num_steps=a.sft_steps, lr=a.sft_lr))(
        jax.random.key(a.seed)
    ).params
    rl_cfg = rl.RLConfig(
        num_prompts=a.prompts, group_size=a.group, num_updates=a.updates,
        advantage="grpo", aggregation="token_mean", kl_placement="loss",
        kl_estimator="k3", beta=a.beta, lr=a.lr, clip_eps=0.2,
    )  # fmt: skip
    return cfg, ref, rl_cfg


def compile_copies(
    task, cfg, rl_cfg, args, copies, options=None, trace=None, batch_sharding=None
):
    """``copies`` separately traced and compiled ``jax.jit(rl.make_rl_train(...))``
    programs for ``args``: ``(compiled list, compile seconds list, HLO text of
    the last)``. ``trace``: makes a context manager to hold while tracing."""
    compiled, compile_s = [], []
    for _ in range(copies):
        t0 = time.perf_counter()
        # A fresh trace each time.
        train = rl.make_rl_train(task, cfg, rl_cfg, batch_sharding=batch_sharding)
        with (trace or contextlib.nullcontext)():
            lowered = jax.jit(train, compiler_options=options).lower(*args)
        compiled.append(lowered.compile())
        compile_s.append(time.perf_counter() - t0)
    return compiled, compile_s, lowered.as_text()


def run_jax(task, a):
    cfg, ref, rl_cfg = jax_setup(task, a)
    args = (jax.random.key(a.seed), ref, ref)
    ev = jax.jit(lambda p: rl.evaluate(jax.random.key(7), p, task, cfg, 512))
    reference_accuracy = float(ev(ref)["accuracy"])
    out = {}
    for name, (options, devices) in JAX_VARIANTS.items():
        sharding = rl.data_parallel() if devices else None
        copies, compile_s, _ = compile_copies(
            task, cfg, rl_cfg, args, a.copies, options, batch_sharding=sharding
        )
        first_s = []
        for compiled in copies:
            t0 = time.perf_counter()
            result = jax.block_until_ready(compiled(*args))
            first_s.append(time.perf_counter() - t0)
        out[name] = {
            "copies": copies,
            "compile_s": compile_s[0],
            "first_call_s": first_s[0],
            "reference_accuracy": reference_accuracy,
            "accuracy": float(ev(result.params)["accuracy"]),
            "runs_s": [],
            "copy_runs_s": [],
        }
    return out, args


def time_jax(rows, args) -> None:
    """One more timed call of every compiled copy of every jaxpg variant (the
    same inputs and result); a variant's run is the mean over its copies."""
    for row in rows.values():
        times = []
        for compiled in row["copies"]:
            t0 = time.perf_counter()
            jax.block_until_ready(compiled(*args))
            times.append(time.perf_counter() - t0)
        row["copy_runs_s"].append(times)
        row["runs_s"].append(float(np.mean(times)))


def run_trl(task, a):
    import torch
    from datasets import Dataset
    from tokenizers import Tokenizer
    from tokenizers.models import WordLevel
    from tokenizers.pre_tokenizers import WhitespaceSplit
    from transformers import GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast
    from trl import GRPOConfig, GRPOTrainer

    torch.manual_seed(a.seed)
    tok = Tokenizer(WordLevel({w: i for i, w in enumerate(WORDS)}, unk_token="<pad>"))
    tok.pre_tokenizer = WhitespaceSplit()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token="<pad>", eos_token="<eos>"
    )
    tokenizer.padding_side = "left"
    r = task.max_new_tokens
    config = GPT2Config(
        vocab_size=len(WORDS), n_embd=a.width, n_layer=a.layers, n_head=a.heads,
        n_positions=task.prompt_len + r, bos_token_id=1, eos_token_id=1,
        pad_token_id=0, resid_pdrop=0.0, embd_pdrop=0.0, attn_pdrop=0.0,
    )  # fmt: skip
    net = GPT2LMHeadModel(config)

    def prompts_np(key, n):
        return np.asarray(task.sample_prompts(key, n))

    # Supervised warm start: same steps, batch and lr as jaxpg's SFT.
    opt = torch.optim.Adam(net.parameters(), lr=a.sft_lr)
    for step in range(a.sft_steps):
        p = prompts_np(jax.random.fold_in(jax.random.key(a.seed), step), 64)
        ans = np.asarray(task.answers(jnp.asarray(p)))
        ids = torch.tensor(np.concatenate([p, ans], axis=1), dtype=torch.long)
        labels = ids.clone()
        labels[:, : p.shape[1]] = -100
        loss = net(input_ids=ids, labels=labels).loss
        opt.zero_grad()
        loss.backward()
        opt.step()

    def score(prompt_texts, completion_texts):
        p = np.array([[WORDS.index(w) for w in t.split()] for t in prompt_texts])
        ans = np.asarray(task.answers(jnp.asarray(p)))
        out = []
        for row, text in zip(ans, completion_texts, strict=True):
            got = [WORDS.index(w) if w in WORDS else -1 for w in text.split()]
            if len(got) < r:  # it stopped: EOS, a special token, was stripped
                got.append(tasks.EOS)
            got = (got + [-1] * len(row))[: len(row)]
            hits = np.equal(got, row)
            out.append((float(hits.mean()), float(hits.all())))
        return out

    def reward(prompts, completions, **kwargs):
        return [s[0] for s in score(prompts, completions)]

    n_prompts = a.updates * a.prompts
    data = prompts_np(jax.random.key(a.seed + 1), n_prompts)
    dataset = Dataset.from_dict({"prompt": [_text(row) for row in data]})

    def accuracy(m):
        p = prompts_np(jax.random.key(7), 512)
        with torch.no_grad():
            out = m.generate(
                torch.tensor(p, dtype=torch.long), attention_mask=torch.ones(p.shape),
                do_sample=True, max_new_tokens=r, pad_token_id=0, eos_token_id=1,
                top_k=0,
            )  # fmt: skip
        texts = tokenizer.batch_decode(out[:, p.shape[1] :], skip_special_tokens=True)
        return float(np.mean([s[1] for s in score([_text(x) for x in p], texts)]))

    with tempfile.TemporaryDirectory() as tmp:
        # The SFT model goes through a local directory: TRL builds its frozen
        # reference from the model's path (nothing is downloaded).
        net.save_pretrained(f"{tmp}/sft")
        tokenizer.save_pretrained(f"{tmp}/sft")
        args = GRPOConfig(
            output_dir=tmp, model_init_kwargs={"dtype": torch.float32},
            per_device_train_batch_size=a.prompts * a.group,
            num_generations=a.group, max_completion_length=r, beta=a.beta,
            loss_type="dapo", scale_rewards="group", epsilon=0.2,
            learning_rate=a.lr, lr_scheduler_type="constant", warmup_steps=0,
            max_grad_norm=1.0, max_steps=a.updates, num_iterations=1,
            use_cpu=True, report_to="none", logging_steps=max(1, a.updates),
            save_strategy="no", temperature=1.0, disable_dropout=True,
            gradient_checkpointing=False, bf16=False, seed=a.seed,
            shuffle_dataset=False,
        )  # fmt: skip
        trainer = GRPOTrainer(
            model=f"{tmp}/sft", reward_funcs=reward, args=args, train_dataset=dataset,
            processing_class=tokenizer,
        )  # fmt: skip
        t0 = time.perf_counter()
        trainer.train()
        rl_s = time.perf_counter() - t0
        acc = accuracy(trainer.model)

    return {"rl_s": rl_s, "accuracy": acc}


def run_trl_repeats(task, a, between) -> dict:
    """``a.trl_repeats`` TRL trainings (same SFT model and seed), ``between()``
    before each and after the last."""
    runs = []
    for _ in range(a.trl_repeats):
        between()
        runs.append(run_trl(task, a))
    between()
    return {
        "runs_s": [r["rl_s"] for r in runs],
        "rl_s": float(np.median([r["rl_s"] for r in runs])),
        "accuracy": runs[0]["accuracy"],
        "accuracies": [r["accuracy"] for r in runs],
    }


def add_settings(p: argparse.ArgumentParser) -> None:
    """The model, task, batch and RL settings (shared with ``lm_ablate.py``)."""
    p.add_argument("--task", default="sort", choices=("sort",))
    lm_settings.add_model_options(p)
    lm_settings.add_rl_options(p)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_settings(p)
    p.add_argument("--repeats", type=int, default=9, help="timed jaxpg calls")
    p.add_argument(
        "--copies", type=int, default=3, help="compiled copies of each jaxpg row"
    )
    p.add_argument("--trl-repeats", type=int, default=3, help="timed TRL trainings")
    p.add_argument(
        "--cpu-devices", type=int, default=2, help="CPU devices of the sharded rows"
    )
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--jax-only", action="store_true", help="skip TRL; no file")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.cpu_devices < 1:
        p.error(f"--cpu-devices={a.cpu_devices} must be >= 1")
    if jax.default_backend() == "cpu" and jax.device_count() != a.cpu_devices:
        p.error(f"--cpu-devices={a.cpu_devices}: JAX started with {jax.devices()}")
    if a.tiny:
        a.width, a.layers, a.prompts, a.group, a.updates, a.sft_steps = 8, 1, 2, 2, 2, 2
        a.repeats, a.trl_repeats, a.copies = 1, 1, 1
    if a.repeats < 1 or a.trl_repeats < 1 or a.copies < 1:
        p.error("--repeats, --trl-repeats and --copies must be >= 1")
    # TRL's reward function is the same partial credit (see run_trl).
    task = tasks.sort_task(3, reward="partial")
    jx, call_args = run_jax(task, a)
    tokens = a.updates * a.prompts * a.group * task.max_new_tokens

    # The --repeats jaxpg calls, spread evenly before, between and after the
    # TRL runs.
    gaps = a.trl_repeats + 1
    calls = iter([a.repeats // gaps + (i < a.repeats % gaps) for i in range(gaps)])

    def between():
        for _ in range(next(calls)):
            time_jax(jx, call_args)

    if a.jax_only:
        for _ in range(a.repeats):
            time_jax(jx, call_args)
    else:
        th = run_trl_repeats(task, a, between)
    rows = {}
    for name, row in jx.items():
        row.pop("copies")
        row["rl_s"] = float(np.median(row["runs_s"]))
        rows[name] = row
    if not a.jax_only:
        rows["trl"] = th
    for row in rows.values():
        row["tokens_per_s"] = tokens / row["rl_s"]
    print(f"sort, {a.updates} updates x {a.prompts}x{a.group}, R={task.max_new_tokens}")
    print("| learner | RL tokens/s (median) | RL s: median [min, max] (runs) |"
          " compile s | accuracy after RL |")  # fmt: skip
    print("|---|---|---|---|---|")
    for name, row in rows.items():
        runs = row["runs_s"]
        print(
            f"| {name} | {row['tokens_per_s']:,.0f} | {row['rl_s']:.2f} "
            f"[{min(runs):.2f}, {max(runs):.2f}] ({len(runs)}) | "
            f"{row.get('compile_s', float('nan')):.1f} | {row['accuracy']:.3f} |"
        )
    for name, row in jx.items():
        print(f"{name}: first call {row['first_call_s']:.2f} s")
    if a.jax_only:
        return
    ratios = {
        name: rows[name]["tokens_per_s"] / rows["trl"]["tokens_per_s"] for name in jx
    }
    for name, ratio in ratios.items():
        print(f"{name} / TRL training tokens/s (medians): {ratio:.1f}x")
    record = {"settings": vars(a), "rows": rows, "ratios": ratios,
              "machine": platform.platform()}  # fmt: skip
    write_record(record, "lm_trl_cpu.json", a.tiny, a.out)


if __name__ == "__main__":
    main()
