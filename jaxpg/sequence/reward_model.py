r"""A reward model learned from preference pairs (Bradley–Terry), and RL
against it with the gold reward tracked beside it.

Model: any sequence model of :mod:`.protocol` (the backbone) with a scalar
head on its output at the last response token (EOS included):
:math:`r_\phi(x, y) = w^\top \ell_\phi(x, y)_{|x| + |y| - 1} + b`, with
:math:`\ell` the backbone's ``[V]`` output there (a linear function of its
last hidden state, so the head is linear in that state too).

Loss (Bradley & Terry 1952; as in Christiano et al. 2017 and InstructGPT,
Ouyang et al. 2022): for pairs with the chosen response :math:`y^+` preferred
to :math:`y^-`, :math:`P(y^+ \succ y^-) = \sigma(r(x, y^+) - r(x, y^-))` and

.. math:: L = -\frac{1}{\sum_b w_b}\sum_b w_b \log\sigma\big(r(x_b, y^+_b) -
   r(x_b, y^-_b)\big),

with pair weights :math:`w_b` (0 drops a pair, e.g. a tie).

Pairs come from the user (:class:`PreferencePairs`) or from a task's gold
reward (:func:`preference_pairs`): two responses sampled per prompt from a
policy, the one with the higher ``true_reward`` chosen, the label flipped with
probability ``noise``, ties weighted 0.

:func:`learned_reward_task` makes a :class:`.tasks.Task` whose optimised
``reward`` is the learned model and whose ``true_reward`` stays the gold one
(``has_proxy=True``): RL on it reports both, and
:func:`.rl.reward_hacking_flag` watches them. Versions: :func:`params_hash`
of the parameters, written by :func:`save_reward_model` beside the
reference's.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from jaxpg.algorithms.base import apply_gradients, injected_adam
from jaxpg.sequence import checks, sampling, sft
from jaxpg.sequence.protocol import SequenceModel, as_model, causal
from jaxpg.sequence.sampling import ModelLike
from jaxpg.sequence.tasks import EOS, PAD, Task, draw_columns

Array = jax.Array

__all__ = [
    "PreferencePairs",
    "RewardModelOutput",
    "bradley_terry_loss",
    "fit_from_reference",
    "init_reward_model",
    "learned_reward_task",
    "load_reward_model",
    "make_reward_model_train",
    "preference_accuracy",
    "preference_pairs",
    "reward_scores",
    "save_reward_model",
]


class PreferencePairs(NamedTuple):
    """``B`` preference pairs: ``chosen`` preferred to ``rejected``."""

    prompts: Array  # [B, Lp] int32
    chosen: Array  # [B, R] int32
    chosen_mask: Array  # [B, R] float32, 1 up to and including EOS
    rejected: Array  # [B, R] int32
    rejected_mask: Array  # [B, R] float32
    weight: Array  # [B] float32, 0 drops a pair


class RewardModelOutput(NamedTuple):
    params: Any  # {"backbone": ..., "head": {"w": [V], "b": []}}
    loss: Array  # [num_steps] Bradley-Terry loss per step
    # [num_steps] 1 where the step was rejected as non-finite (parameters
    # and optimizer state kept)
    nonfinite: Array | None = None


def bradley_terry_loss(
    chosen: Array, rejected: Array, weight: Array | None = None
) -> Array:
    r"""The module docstring's :math:`L` from scores.

    Args:
      chosen, rejected: ``[B]`` scores :math:`r(x, y^+)`, :math:`r(x, y^-)`.
      weight: ``[B]`` non-negative pair weights (default 1).

    Returns:
      ``[]``: :math:`\sum_b w_b\,\mathrm{softplus}(r^-_b - r^+_b) / \sum_b w_b`
      (0 when every weight is 0).
    """
    if chosen.shape != rejected.shape or chosen.ndim != 1:
        raise ValueError(
            f"chosen {chosen.shape} and rejected {rejected.shape} must be equal [B]"
        )
    weight = jnp.ones_like(chosen) if weight is None else weight
    losses = jax.nn.softplus(rejected - chosen)
    return jnp.sum(weight * losses) / jnp.maximum(jnp.sum(weight), 1e-12)


def init_reward_model(key: Array, backbone: ModelLike) -> dict:
    """Backbone parameters from ``backbone.init`` and a zero scalar head."""
    m = as_model(backbone)
    return {
        "backbone": m.init(key),
        "head": {"w": jnp.zeros((m.vocab_size,), jnp.float32), "b": jnp.zeros(())},
    }


def reward_scores(
    params: dict, backbone: ModelLike, prompts: Array, responses: Array, mask: Array
) -> Array:
    """:math:`r_\\phi(x, y)` of ``N`` responses: ``[N]`` float32.

    ``prompts [N, Lp]``, ``responses [N, R]`` int32, ``mask [N, R]``: the head
    reads the position of the last masked token (the first token when the
    mask is empty)."""
    m = as_model(backbone)
    tokens = jnp.concatenate([prompts, responses], axis=1)
    if tokens.shape[1] > m.max_len:
        raise ValueError(
            f"prompt length {prompts.shape[1]} + response length "
            f"{responses.shape[1]} exceeds the reward model's max_len={m.max_len}"
        )
    logits = m.apply(params["backbone"], tokens, *causal(tokens.shape[1]))
    last = prompts.shape[1] + jnp.maximum(jnp.sum(mask, axis=1), 1) - 1  # [N]
    at = jnp.arange(tokens.shape[1])[None, :] == last[:, None].astype(jnp.int32)
    features = jnp.sum(jnp.where(at[:, :, None], logits, 0.0), axis=1)  # [N, V]
    return features @ params["head"]["w"] + params["head"]["b"]


def _pair_scores(params, backbone, pairs: PreferencePairs) -> tuple[Array, Array]:
    b = pairs.prompts.shape[0]
    both = reward_scores(
        params,
        backbone,
        jnp.concatenate([pairs.prompts, pairs.prompts]),
        jnp.concatenate([pairs.chosen, pairs.rejected]),
        jnp.concatenate([pairs.chosen_mask, pairs.rejected_mask]),
    )
    return both[:b], both[b:]


def preference_accuracy(
    params: dict, backbone: ModelLike, pairs: PreferencePairs
) -> Array:
    """Weighted fraction of pairs ranked as labelled (:math:`r^+ > r^-`): ``[]``."""
    chosen, rejected = _pair_scores(params, backbone, pairs)
    right = (chosen > rejected).astype(jnp.float32)
    return jnp.sum(pairs.weight * right) / jnp.maximum(jnp.sum(pairs.weight), 1e-12)


def make_reward_model_train(
    backbone: ModelLike,
    *,
    num_steps: int = 300,
    batch_size: int = 64,
    lr: float = 1e-3,
) -> Any:
    """``train(key, pairs) -> RewardModelOutput``: Adam on the Bradley–Terry
    loss over minibatches of ``batch_size`` pairs drawn (with replacement)
    from ``pairs`` at every step. Pure and jittable."""
    num_steps = checks.positive_int("make_reward_model_train: num_steps", num_steps)
    batch_size = checks.positive_int("make_reward_model_train: batch_size", batch_size)
    lr = checks.learning_rate("make_reward_model_train: lr", lr)
    optimizer = injected_adam(lr, None, eps=1e-8)

    def loss_fn(params, batch: PreferencePairs):
        chosen, rejected = _pair_scores(params, backbone, batch)
        return bradley_terry_loss(chosen, rejected, batch.weight)

    def train(key: Array, pairs: PreferencePairs) -> RewardModelOutput:
        init_key, data_key = jax.random.split(key)
        params = init_reward_model(init_key, backbone)
        n = pairs.prompts.shape[0]

        def step(carry, k):
            params, opt_state = carry
            index = jax.random.randint(k, (batch_size,), 0, n)
            batch = jax.tree.map(lambda x: x[index], pairs)
            loss, grads = jax.value_and_grad(loss_fn)(params, batch)
            params, opt_state, info = apply_gradients(
                optimizer, params, opt_state, grads
            )
            return (params, opt_state), (loss, info["nonfinite"])

        (params, _), (losses, nonfinite) = jax.lax.scan(
            step,
            (params, optimizer.init(params)),
            jax.random.split(data_key, num_steps),
        )
        return RewardModelOutput(params, losses, nonfinite)

    return train


def preference_pairs(
    key: Array,
    task: Task,
    policy_params: Any,
    policy: ModelLike,
    num_pairs: int,
    *,
    noise: float = 0.0,
    temperature: float = 1.0,
    max_new_tokens: int | None = None,
) -> PreferencePairs:
    r"""Pairs labelled by the task's gold ``true_reward``: two responses per
    prompt sampled from ``policy``, the higher-reward one chosen, the label
    flipped with probability ``noise`` in ``[0, 0.5]``, ties weighted 0.

    Args:
      key: PRNG key (prompts, samples, flips).
      task: prompts and the gold reward.
      policy_params, policy: the sampling policy (e.g. the SFT reference).
      num_pairs: ``B``.
      noise: label-flip probability.
      temperature: sampling temperature (higher: more varied pairs).
      max_new_tokens: ``R``; default the task's.
    """
    num_pairs = checks.positive_int("preference_pairs: num_pairs", num_pairs)
    noise = checks.number("preference_pairs: noise", noise, 0.0, 0.5)
    r = task.max_new_tokens if max_new_tokens is None else max_new_tokens
    prompt_key, sample_key, flip_key = jax.random.split(key, 3)
    prompts = jnp.repeat(task.sample_prompts(prompt_key, num_pairs), 2, axis=0)
    columns = draw_columns(task, prompt_key, num_pairs, 2)
    s = sampling.sample(
        sample_key, policy_params, policy, prompts, r, eos_id=EOS, pad_id=PAD,
        temperature=temperature, group_size=2,
    )  # fmt: skip
    gold = task.true_reward(prompts, s.responses, s.mask, **columns)
    gold = gold.reshape(num_pairs, 2)
    first_wins = gold[:, 0] > gold[:, 1]
    flip = jax.random.bernoulli(flip_key, noise, (num_pairs,))
    first_chosen = first_wins != flip
    responses = s.responses.reshape(num_pairs, 2, r)
    mask = s.mask.reshape(num_pairs, 2, r)
    pick = jnp.where(first_chosen, 0, 1)
    rows = jnp.arange(num_pairs)
    return PreferencePairs(
        prompts[::2], responses[rows, pick], mask[rows, pick],
        responses[rows, 1 - pick], mask[rows, 1 - pick],
        (gold[:, 0] != gold[:, 1]).astype(jnp.float32),
    )  # fmt: skip


def learned_reward_task(task: Task, backbone: ModelLike, params: dict) -> Task:
    """``task`` optimising the learned reward (the proxy) with its gold
    ``true_reward`` and ``accuracy`` kept: RL reports both."""

    def learned(prompts, responses, mask, **columns):
        del columns  # the reward model reads the prompt and the response
        return reward_scores(params, backbone, prompts, responses, mask)

    return dataclasses.replace(
        task, name=f"{task.name}+rm", reward=learned, has_proxy=True
    )


# Keys of the pairs, the held-out pairs and the training of
# :func:`fit_from_reference` (``jaxpg lm --reward-model``'s).
PAIRS_SEED, HELDOUT_SEED, TRAIN_SEED = 20_000, 20_001, 20_002


def fit_from_reference(
    task: Task,
    backbone: ModelLike,
    ref_params: Any,
    *,
    num_pairs: int,
    noise: float,
    num_steps: int,
    lr: float,
    batch_size: int,
    num_heldout: int,
) -> tuple[dict, dict[str, Any]]:
    """A reward model fitted to ``num_pairs`` pairs sampled from the
    reference and labelled by ``task``'s gold reward (flipped with
    probability ``noise``, ties dropped), and its accuracy on
    ``num_heldout`` fresh pairs with noiseless labels; one compiled program.

    Returns:
      ``(params, metadata)``: the metadata holds the settings, the ties
      dropped, the train and held-out accuracies (held-out ``None`` when every
      held-out pair ties), the final loss and the steps rejected as non-finite.

    Raises:
      ValueError: every training pair ties (nothing to learn).
    """
    train = make_reward_model_train(
        backbone, num_steps=num_steps, batch_size=batch_size, lr=lr
    )

    def fit(ref_params):
        pairs, heldout = (
            preference_pairs(
                jax.random.key(seed), task, ref_params, backbone, n, noise=eps
            )
            for seed, n, eps in (
                (PAIRS_SEED, num_pairs, noise),
                (HELDOUT_SEED, num_heldout, 0.0),
            )
        )
        fitted = train(jax.random.key(TRAIN_SEED), pairs)
        return fitted, {
            name: (
                jnp.sum(p.weight == 0),
                preference_accuracy(fitted.params, backbone, p),
            )
            for name, p in (("train", pairs), ("heldout", heldout))
        }

    fitted, stats = jax.jit(fit)(ref_params)
    ties = {k: int(v[0]) for k, v in stats.items()}
    if ties["train"] == num_pairs:
        raise ValueError(
            f"--reward-model: all {num_pairs} preference pairs tie under the "
            f"gold reward of {task.name!r} (the reference's two responses to "
            "each prompt score the same), so there is nothing to learn: train "
            "a better reference (--sft-steps, --sft-lr)"
        )
    heldout_accuracy = (
        float(stats["heldout"][1]) if ties["heldout"] < num_heldout else None
    )
    return fitted.params, {
        "task": task.name,
        "pairs": num_pairs,
        "noise": noise,
        "steps": num_steps,
        "lr": lr,
        "batch": batch_size,
        "ties_dropped": ties["train"],
        "train_accuracy": float(stats["train"][1]),
        "heldout_pairs": num_heldout,
        "heldout_ties": ties["heldout"],
        "heldout_accuracy": heldout_accuracy,
        "final_loss": float(fitted.loss[-1]),
        "rejected_steps": int(jnp.sum(fitted.nonfinite > 0)),
    }


def save_reward_model(
    directory: str | Path, params: dict, backbone: ModelLike, **metadata: Any
) -> str:
    """Write ``reward_model.msgpack`` and ``reward_model.json`` (the backbone's
    config, the version hash, ``metadata`` such as the pairs' source and the
    held-out accuracy); return the version."""
    return sft._save(directory, "reward_model", params, as_model(backbone), metadata)


def load_reward_model(
    directory: str | Path, backbone: SequenceModel | None = None
) -> tuple[dict, Any, dict]:
    """Read :func:`save_reward_model`'s files: ``(params, backbone, metadata)``
    (``backbone=None``: jaxpg's transformer, its config from the metadata).

    Raises:
      ValueError: the parameters' hash differs from the recorded version.
    """
    return sft._load(directory, "reward_model", backbone, init_reward_model)
