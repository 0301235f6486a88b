"""Kernel-level variants of the RL program of ``lm_trl.py``, each against the
unchanged program in the same process, by paired ratios.

Each variant is the same RL program (``rl.make_rl_train`` under a plain
``jax.jit``, the settings of ``lm_trl.py``) with one change, traced and
compiled in this process:

* ``jaxpg again``: no change (a control: its ratio shows the method's noise);
* ``YNNPACK off``: ``compiler_options={"xla_cpu_experimental_ynn_fusion_type": ""}``;
* ``rational-tanh GELU``: the same tanh-approximate GELU with ``tanh`` as one
  rational function (multiplies, adds, one divide) and a hand-written
  derivative that reuses it;
* ``weight gradients transposed``: Dense layers whose input is wider than
  their output multiply by ``optimization_barrier(W.T)``, so the backward pass
  computes the weight gradient as the wide ``dy^T x`` product;
* ``decode attention elementwise``: in single-token decode steps the two
  attention products (``q k^T`` over the cache and ``attn v``) are written as
  broadcast products and sums instead of matrix products;
* ``decode loop unrolled``: the sampler's ``lax.scan`` over its ``R - 1``
  decode steps unrolled (no while loop, no copies of its carry);
* ``Eigen single-threaded``: ``compiler_options={"xla_cpu_multi_thread_eigen":
  False}`` (the matrix products off XLA's intra-op thread pool);
* ``Adam on one flat vector``: the default optimizer (clipping, Adam, the
  injected learning rate) wrapped in ``optax.flatten``, so that its
  element-wise steps run on one vector instead of once per parameter leaf;
* ``flat Adam, norms of the raveled trees``: the same, and every
  ``optax.tree.norm`` (the reported gradient norm, the non-finite guard's
  parameter norm) taken on the raveled tree (one reduction, not one per leaf).

The patched pieces (``flax.linen.gelu``, ``flax.linen.Dense``, the model
module's ``jnp``, the sampling module's ``jax``) are swapped in only while a
variant is traced.

Timing: every program is compiled ``--copies`` times (separate traces and
executables: two compilations of one program can differ by several percent
on this VM, so one copy per variant is not enough). ``--repeats`` rounds each
call every compiled program once, the order rotated by one per round; a
variant's time in a round is the mean over its copies. Its figure is the
median over rounds of that time over the unchanged program's in the same
round (paired ratios cancel the slow drifts of a shared VM), with a 95%
bootstrap interval of that median. The changed pieces are also timed alone
at the learner's shapes, the same way. Written to
``benchmarks/results/lm_ablate_cpu.json``.

    python benchmarks/lm_ablate.py            # lm_trl.py's settings, 16 rounds
    python benchmarks/lm_ablate.py --tiny     # seconds, checks it runs
"""

from __future__ import annotations

import argparse
import contextlib
import math
import platform
import time

import flax.linen as nn
import jax
import jax.flatten_util
import jax.numpy as jnp
import numpy as np
import optax
from lm_trl import add_settings, compile_copies, jax_setup
from record import write_record

from jaxpg.algorithms.base import _adam_chain
from jaxpg.sequence import model, rl, sampling, tasks
from jaxpg.sequence.seeds import NO_YNN

_C, _A = math.sqrt(2.0 / math.pi), 0.044715
# tanh(x) ~ x P(x^2) / Q(x^2) on |x| <= 7.9053 (float32 rational minimax
# coefficients, x^0 first; Eigen's float32 tanh uses the same).
_P = (4.89352455891786e-03, 6.37261928875436e-04, 1.48572235717979e-05,
      5.12229709037114e-08, -8.60467152213735e-11, 2.00018790482477e-13,
      -2.76076847742355e-16)  # fmt: skip
_Q = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04,
      1.19825839466702e-06)  # fmt: skip


def _poly(coefficients, x):
    out = jnp.full_like(x, coefficients[-1])
    for c in coefficients[-2::-1]:
        out = out * x + c
    return out


def _tanh(x):
    x = jnp.clip(x, -7.90531110763549805, 7.90531110763549805)
    return x * _poly(_P, x * x) / _poly(_Q, x * x)


@jax.custom_jvp
def rational_gelu(x):
    return 0.5 * x * (1.0 + _tanh(_C * x * (1.0 + _A * x * x)))


@rational_gelu.defjvp
def _rational_gelu_jvp(primals, tangents):
    (x,), (dx,) = primals, tangents
    t = _tanh(_C * x * (1.0 + _A * x * x))
    slope = 0.5 * (1.0 + t) + 0.5 * _C * x * (1.0 - t * t) * (1.0 + 3 * _A * x * x)
    return 0.5 * x * (1.0 + t), slope * dx


class TransposedGradDense(nn.Module):
    """``nn.Dense``'s parameters and result on ``[M, D_in]`` rows."""

    features: int

    @nn.compact
    def __call__(self, x):
        kernel = self.param(
            "kernel", nn.initializers.lecun_normal(), (x.shape[-1], self.features)
        )
        bias = self.param("bias", nn.initializers.zeros_init(), (self.features,))
        if x.shape[-1] <= self.features:
            return x @ kernel + bias
        kernel_t = jax.lax.optimization_barrier(kernel.T)
        return jax.lax.dot_general(x, kernel_t, (((1,), (1,)), ((), ()))) + bias


class _ElementwiseDecodeJnp:
    """``jax.numpy`` whose two attention einsums, for one query, are broadcast
    products and sums."""

    def __getattr__(self, name):
        return getattr(jnp, name)

    @staticmethod
    def einsum(spec, a, b):
        if spec == "nqhd,nkhd->nhqk" and a.shape[1] == 1:  # [N,1,H,d], [N,C,H,d]
            return jnp.transpose(jnp.sum(a * b, axis=-1), (0, 2, 1))[:, :, None]
        if spec == "nhqk,nkhd->nqhd" and a.shape[2] == 1:  # [N,H,1,C], [N,C,H,d]
            w = jnp.transpose(a[:, :, 0], (0, 2, 1))[..., None]
            return jnp.sum(w * b, axis=1)[:, None]
        return jnp.einsum(spec, a, b)


class _UnrolledLax:
    """``jax.lax`` whose ``scan`` is unrolled whole."""

    def __getattr__(self, name):
        return getattr(jax.lax, name)

    @staticmethod
    def scan(f, init, xs=None, length=None, **kwargs):
        return jax.lax.scan(f, init, xs, length=length, unroll=True)


class _UnrolledJax:
    """``jax`` with :class:`_UnrolledLax` (the sampling module's loops)."""

    lax = _UnrolledLax()

    def __getattr__(self, name):
        return getattr(jax, name)


@contextlib.contextmanager
def patched(obj, name, value):
    old = getattr(obj, name)
    setattr(obj, name, value)
    try:
        yield
    finally:
        setattr(obj, name, old)


VARIANTS = {
    "jaxpg": lambda: contextlib.nullcontext(),
    "jaxpg again (control)": lambda: contextlib.nullcontext(),
    "YNNPACK off": lambda: contextlib.nullcontext(),
    "rational-tanh GELU": lambda: patched(nn, "gelu", rational_gelu),
    "weight gradients transposed": lambda: patched(nn, "Dense", TransposedGradDense),
    "decode attention elementwise": lambda: patched(
        model, "jnp", _ElementwiseDecodeJnp()
    ),
    "decode loop unrolled": lambda: patched(sampling, "jax", _UnrolledJax()),
    "Eigen single-threaded": lambda: contextlib.nullcontext(),
    "Adam on one flat vector": lambda: contextlib.nullcontext(),
    "flat Adam, norms of the raveled trees": lambda: patched(
        optax.tree, "norm", raveled_norm
    ),
}
# Variants that change how the program is built (held while it is made).
BUILD = {
    "Adam on one flat vector": lambda: patched(rl, "default_optimizer", flat_adam),
    "flat Adam, norms of the raveled trees": lambda: patched(
        rl, "default_optimizer", flat_adam
    ),
}


def raveled_norm(tree, ord=2, squared=False):
    """``optax.tree.norm`` (the 2-norm) of the tree raveled into one vector."""
    assert ord in (None, 2), ord
    flat = jax.flatten_util.ravel_pytree(tree)[0]
    sq = jnp.sum(flat * flat)
    return sq if squared else jnp.sqrt(sq)


def flat_adam(rl_cfg):
    """The token side's default optimizer on the raveled parameter vector."""
    return optax.inject_hyperparams(
        lambda learning_rate: optax.flatten(
            _adam_chain(learning_rate, rl_cfg.max_grad_norm, False, 1e-8)
        )
    )(learning_rate=rl_cfg.lr)


OPTIONS = {
    "YNNPACK off": NO_YNN,
    "Eigen single-threaded": {"xla_cpu_multi_thread_eigen": False},
}


def paired_rounds(programs: dict, repeats: int) -> dict[str, list[float]]:
    """Wall seconds of each zero-argument program over ``repeats`` rounds, each
    round calling every program once, the order rotated by one per round
    (after one untimed call of each: compile and setup apart)."""
    names, runs = list(programs), {name: [] for name in programs}
    for program in programs.values():
        jax.block_until_ready(program())
    for r in range(repeats):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            jax.block_until_ready(programs[name]())
            runs[name].append(time.perf_counter() - t0)
    return runs


def paired_ratio(runs, base, rng) -> tuple[float, list[float]]:
    """Median of the per-round ratios and its 95% bootstrap interval."""
    ratio = np.asarray(runs) / np.asarray(base)
    boot = np.median(rng.choice(ratio, (2000, len(ratio))), axis=1)
    return float(np.median(ratio)), [float(np.percentile(boot, q)) for q in (2.5, 97.5)]


def pieces(iters: int) -> dict[str, dict]:
    """The changed pieces alone at the learner's shapes (256 rows), ``iters``
    dependent calls in one compiled scan each: ``name -> {variant: fn}``."""
    x = jax.random.normal(jax.random.key(0), (256, 128))
    w = jax.random.normal(jax.random.key(1), (128, 32)) / math.sqrt(128)
    dy = jax.random.normal(jax.random.key(2), (256, 32))

    def looped(body, init):
        def run():
            return jax.lax.scan(lambda c, _: (body(c), None), init, None, iters)[0]

        return jax.jit(run)

    def gelu_fwd(f):
        return looped(lambda c: f(c) * 0.999 + 1e-3 * x, x)

    def gelu_grad(f):
        def body(c):
            return jax.grad(lambda v: jnp.sum(f(v) * x))(c) * 0.5 + 1e-3 * x

        return looped(body, x)

    def dense_grad(dense):
        def loss(w_, x_):
            return jnp.sum(jnp.tanh(dense(x_, w_)) * dy)

        def body(c):
            gw, gx = jax.grad(loss, argnums=(0, 1))(w + c, x + c)
            return c + 1e-9 * (jnp.sum(gw) + jnp.sum(gx))

        return looped(body, jnp.float32(0))

    def plain(x_, w_):
        return x_ @ w_

    def transposed(x_, w_):
        kernel_t = jax.lax.optimization_barrier(w_.T)
        return jax.lax.dot_general(x_, kernel_t, (((1,), (1,)), ((), ())))

    def gelu(v):
        return jax.nn.gelu(v, approximate=True)

    return {
        "GELU forward, [256, 128]": {
            "jax.nn.gelu": gelu_fwd(gelu),
            "rational tanh": gelu_fwd(rational_gelu),
        },
        "GELU gradient, [256, 128]": {
            "jax.nn.gelu": gelu_grad(gelu),
            "rational tanh": gelu_grad(rational_gelu),
        },
        "128 -> 32 projection, tanh, both gradients, 256 rows": {
            "x @ W": dense_grad(plain),
            "transposed": dense_grad(transposed),
        },
    }


def time_pieces(num_copies: int, repeats: int, rng) -> dict:
    """The changed pieces alone (:func:`pieces`), timed as the programs are:
    ``piece -> variant -> {us_per_call, paired_ratio, ratio_ci95}``."""
    alone = {}
    iters = 150
    print(f"\nPieces alone ({iters} calls per timing; rounds and copies as above)")
    print("| piece | variant | us per call (median) | / first, paired (95% CI) |")
    print("|---|---|---:|---:|")
    built = [pieces(iters) for _ in range(num_copies)]  # separate executables
    for piece, variants in built[0].items():
        copies = range(num_copies)
        times = paired_rounds(
            {(v, c): built[c][piece][v] for v in variants for c in copies}, repeats
        )
        per_round = {
            v: np.mean([times[v, c] for c in copies], axis=0) for v in variants
        }
        first = next(iter(per_round.values()))
        alone[piece] = {}
        for name, runs in per_round.items():
            ratio, ci = paired_ratio(runs, first, rng)
            us = float(np.median(runs)) / iters * 1e6
            alone[piece][name] = {"us_per_call": us, "paired_ratio": ratio,
                                  "ratio_ci95": ci}  # fmt: skip
            print(
                f"| {piece} | {name} | {us:.1f} | {ratio:.3f} "
                f"[{ci[0]:.3f}, {ci[1]:.3f}] |"
            )
    return alone


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add_settings(p)
    p.add_argument("--repeats", type=int, default=16, help="rounds of calls")
    p.add_argument(
        "--copies", type=int, default=3, help="compiled copies of each program"
    )
    p.add_argument(
        "--variants",
        nargs="+",
        choices=list(VARIANTS)[1:],
        default=list(VARIANTS)[1:],
        metavar="NAME",
        help="the variants to time beside the unchanged program (default: all)",
    )
    p.add_argument(
        "--no-pieces", action="store_true", help="skip the pieces-alone timings"
    )
    p.add_argument("--tiny", action="store_true")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    if a.tiny:
        a.width, a.layers, a.prompts, a.group, a.updates, a.sft_steps = 8, 1, 2, 2, 2, 2
        a.repeats, a.copies = 2, 2
    if a.repeats < 1 or a.copies < 1:
        p.error("--repeats and --copies must be >= 1")
    task = tasks.sort_task(3)
    cfg, ref, rl_cfg = jax_setup(task, a)
    key = jax.random.key(a.seed)
    ev = jax.jit(lambda q: rl.evaluate(jax.random.key(7), q, task, cfg, 512))
    args = (key, ref, ref)
    programs, rows, texts_of = {}, {}, {}
    for name in ["jaxpg", *a.variants]:
        patch = VARIANTS[name]
        with BUILD.get(name, contextlib.nullcontext)():
            copies, compile_s, text = compile_copies(
                task, cfg, rl_cfg, args, a.copies, OPTIONS.get(name), patch
            )
        if name not in OPTIONS and "again" not in name and text in texts_of.values():
            raise RuntimeError(f"variant {name!r} traced to an unchanged program")
        texts_of[name] = text
        programs.update({(name, c): compiled for c, compiled in enumerate(copies)})
        out = jax.block_until_ready(copies[-1](*args))
        rows[name] = {
            "compile_s": compile_s,
            "accuracy": float(ev(out.params)["accuracy"]),
        }
    times = paired_rounds(
        {k: (lambda c=c: c(*args)) for k, c in programs.items()}, a.repeats
    )
    # Per round, a variant's time is the mean over its compiled copies.
    per_round = {
        name: np.mean([times[name, c] for c in range(a.copies)], axis=0)
        for name in rows
    }
    rng = np.random.default_rng(0)
    print(
        f"sort, {a.updates} updates x {a.prompts}x{a.group}; {a.repeats} rounds, "
        f"{a.copies} compiled copies of each program"
    )
    print("| program | ms per update (median) | / unchanged, paired (95% CI) |"
          " accuracy after RL |")  # fmt: skip
    print("|---|---:|---:|---:|")
    for name, row in rows.items():
        ratio, ci = paired_ratio(per_round[name], per_round["jaxpg"], rng)
        row.update(
            runs_s={c: times[name, c] for c in range(a.copies)},
            ms_per_update=float(np.median(per_round[name])) / a.updates * 1e3,
            paired_ratio=ratio,
            ratio_ci95=ci,
        )
        print(
            f"| {name} | {row['ms_per_update']:.2f} | {ratio:.3f} "
            f"[{ci[0]:.3f}, {ci[1]:.3f}] | {row['accuracy']:.3f} |"
        )
    alone = {} if a.no_pieces else time_pieces(a.copies, a.repeats, rng)
    record = {"settings": vars(a), "rows": rows, "pieces_alone": alone,
              "machine": platform.platform()}  # fmt: skip
    write_record(record, "lm_ablate_cpu.json", a.tiny, a.out)


if __name__ == "__main__":
    main()
