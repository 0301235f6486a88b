r"""Supervised warm start (SFT) and the frozen reference model with its version.

SFT minimises the teacher-forced cross-entropy of the task's ground-truth
answers, :math:`-\frac{1}{N L_a}\sum_{i,t}\log\pi_\theta(y^*_{it}\mid x_i,
y^*_{i,<t})`, on prompts drawn from the key at every step (Adam). As in
post-training, RL then starts from this policy, which sometimes succeeds, and
the frozen SFT model is the reference of the KL penalty.

Versions: :func:`params_hash` is a SHA-256 of the serialised parameters (16
hex digits). :func:`save_reference` writes ``reference.msgpack`` and
``reference.json`` (model config, task, SFT settings, hash) to a directory;
:func:`load_reference` reads them back and checks the hash. Every RL run
records the hash of its reference (``RLOutput``'s ``reference_hash`` in the
CLI's ``metrics.json``), so a result can be traced to the exact model it was
regularised towards.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
from flax import serialization

from jaxpg.algorithms.base import apply_gradients, injected_adam
from jaxpg.sequence import checks, sampling
from jaxpg.sequence.model import TransformerConfig
from jaxpg.sequence.protocol import SequenceModel, as_model
from jaxpg.sequence.sampling import ModelLike
from jaxpg.sequence.tasks import PAD, Task

Array = jax.Array


class SFTOutput(NamedTuple):
    params: Any  # the SFT policy
    loss: Array  # [num_steps] cross-entropy per step
    # [num_steps] 1 where the step was rejected as non-finite (parameters
    # and optimizer state kept: the guard of every jaxpg optimizer step)
    nonfinite: Array | None = None


def answer_batch(task: Task, prompts: Array, max_new_tokens: int):
    """Ground-truth responses padded to ``R``: ``(responses [N, R], mask [N, R])``."""
    answers = task.answers(prompts)
    n, la = answers.shape
    if max_new_tokens < la:
        raise ValueError(
            f"max_new_tokens={max_new_tokens} < the answer length {la} of {task.name}"
        )
    pad = jnp.full((n, max_new_tokens - la), PAD, jnp.int32)
    mask = jnp.concatenate(
        [jnp.ones((n, la), jnp.float32), jnp.zeros((n, max_new_tokens - la))], axis=1
    )
    return jnp.concatenate([answers, pad], axis=1), mask


def make_sft(
    task: Task,
    cfg: ModelLike,
    *,
    num_steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
) -> Any:
    """``train(key) -> SFTOutput``: init the policy and fit the ground truth.

    Pure and jittable; ``jax.vmap`` over keys gives several SFT seeds.
    ``cfg``: the model, a :class:`~jaxpg.sequence.protocol.SequenceModel` or a
    ``TransformerConfig``; the policy starts from its ``init(key)``.
    """
    model = as_model(cfg)
    num_steps = checks.positive_int("make_sft: num_steps", num_steps)
    batch_size = checks.positive_int("make_sft: batch_size", batch_size)
    lr = checks.learning_rate("make_sft: lr", lr)
    # optax.adam(lr) through the shared plumbing (the rate injected).
    optimizer = injected_adam(lr, None, eps=1e-8)
    r = task.max_new_tokens

    def loss_fn(params, prompts):
        responses, mask = answer_batch(task, prompts, r)
        logits = sampling.response_logits(params, cfg, prompts, responses)
        logp = sampling.token_log_probs(logits, responses)
        return -jnp.sum(logp * mask) / jnp.sum(mask)

    def step(carry, key):
        params, opt_state = carry
        prompts = task.sample_prompts(key, batch_size)
        loss, grads = jax.value_and_grad(loss_fn)(params, prompts)
        params, opt_state, info = apply_gradients(optimizer, params, opt_state, grads)
        return (params, opt_state), (loss, info["nonfinite"])

    def train(key: Array) -> SFTOutput:
        init_key, data_key = jax.random.split(key)
        params = model.init(init_key)
        (params, _), (losses, nonfinite) = jax.lax.scan(
            step,
            (params, optimizer.init(params)),
            jax.random.split(data_key, num_steps),
        )
        return SFTOutput(params, losses, nonfinite)

    return train


# The key of the reference a run fits (``jaxpg lm``): apart from every RL
# seed's, which are ``jax.random.key(i)`` for small ``i``.
REFERENCE_SEED = 10_000


def fit_reference(
    task: Task,
    cfg: ModelLike,
    directory: str | Path,
    *,
    num_steps: int = 300,
    batch_size: int = 64,
    lr: float = 3e-3,
    seed: int = REFERENCE_SEED,
) -> tuple[Any, str, int]:
    """Fit the reference by SFT (:func:`make_sft` from ``jax.random.key(seed)``)
    and save it in ``directory`` (:func:`save_reference`, with the task and
    the SFT settings): ``(params, version, rejected steps)``, the steps
    rejected as non-finite counted (their parameters were kept)."""
    train = make_sft(task, cfg, num_steps=num_steps, batch_size=batch_size, lr=lr)
    fitted = jax.jit(train)(jax.random.key(seed))
    rejected = int(jnp.sum(fitted.nonfinite > 0))
    version = save_reference(
        directory, fitted.params, cfg, task=task.name, sft_steps=num_steps,
        sft_lr=lr, sft_batch=batch_size, sft_rejected_steps=rejected,
    )  # fmt: skip
    return fitted.params, version, rejected


def params_hash(params: Any) -> str:
    """SHA-256 of the msgpack-serialised parameters, first 16 hex digits."""
    return hashlib.sha256(serialization.to_bytes(params)).hexdigest()[:16]


def save_reference(
    directory: str | Path, params: Any, cfg: ModelLike, **metadata: Any
) -> str:
    """Write the frozen reference and its metadata; return its version hash.

    ``cfg``: the model (its ``config`` is recorded: the transformer's
    configuration, or a user model's name, vocabulary and length)."""
    return _save(directory, "reference", params, as_model(cfg), metadata)


def load_reference(
    directory: str | Path, model: SequenceModel | None = None
) -> tuple[Any, Any, dict]:
    """Read :func:`save_reference`'s files: ``(params, cfg, metadata)``.

    ``model``: the user model the reference was saved from (its ``init`` gives
    the parameters' structure); ``None`` for jaxpg's transformer, whose
    ``TransformerConfig`` is rebuilt from the metadata and returned as ``cfg``
    (``model`` itself is returned otherwise).

    Raises:
      ValueError: the parameters' hash differs from the recorded version.
    """
    return _load(directory, "reference", model)


def _save(directory, stem: str, params, model: SequenceModel, metadata) -> str:
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    version = params_hash(params)
    (directory / f"{stem}.msgpack").write_bytes(serialization.to_bytes(params))
    info = {"version": version, "model": dict(model.config or {}), **metadata}
    if model.config is None:
        info["model"] = {"name": model.name}
    (directory / f"{stem}.json").write_text(json.dumps(info, indent=2) + "\n")
    return version


def _load(directory, stem: str, model: SequenceModel | None, init=None):
    """``init(key, model) -> params`` gives the structure (default
    ``model.init``)."""
    directory = Path(directory)
    info = json.loads((directory / f"{stem}.json").read_text())
    cfg: Any = model
    if model is None:
        cfg = TransformerConfig(**info["model"])
        model = as_model(cfg)
    init = init or (lambda key, m: m.init(key))
    template = jax.eval_shape(lambda key: init(key, model), jax.random.key(0))
    params = serialization.from_bytes(
        template, (directory / f"{stem}.msgpack").read_bytes()
    )
    if params_hash(params) != info["version"]:
        raise ValueError(
            f"{stem} in {directory} has hash {params_hash(params)}, "
            f"but {stem}.json records version {info['version']}"
        )
    return params, cfg, info
