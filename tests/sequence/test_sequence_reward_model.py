"""The Bradley–Terry reward model: its loss against NumPy, learning a known
linear reward from noiseless pairs, pairs labelled by a task's gold reward,
and RL against the learned reward with the gold one tracked."""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.sequence import (
    PreferencePairs,
    RLConfig,
    SequenceModel,
    bradley_terry_loss,
    learned_reward_task,
    load_reward_model,
    make_reward_model_train,
    make_rl_train,
    make_sft,
    model,
    preference_accuracy,
    preference_pairs,
    reward_hacking_flag,
    reward_scores,
    save_reward_model,
)
from jaxpg.sequence.tasks import EOS, PAD, sort_task

V, LP, R = 8, 2, 4
BACKBONE = model.TransformerConfig(
    vocab_size=V, width=16, num_layers=1, num_heads=2, max_len=LP + R
)


def test_bradley_terry_loss_and_gradient_equal_numpy():
    """L = sum_b w_b log(1 + exp(r-_b - r+_b)) / sum_b w_b;
    dL/dr+_b = -w_b sigmoid(r-_b - r+_b) / sum w, dL/dr-_b = +the same."""
    rng = np.random.default_rng(0)
    c, r = rng.normal(size=7), rng.normal(size=7)
    w = rng.uniform(size=7)
    w[2] = 0.0
    d = r - c
    want = np.sum(w * np.log1p(np.exp(d))) / w.sum()
    sig = 1 / (1 + np.exp(-d))
    args = [jnp.asarray(x, jnp.float32) for x in (c, r, w)]
    np.testing.assert_allclose(bradley_terry_loss(*args), want, rtol=1e-6)
    gc, gr = jax.grad(bradley_terry_loss, argnums=(0, 1))(*args)
    np.testing.assert_allclose(gc, -w * sig / w.sum(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(gr, w * sig / w.sum(), rtol=1e-5, atol=1e-7)
    with pytest.raises(ValueError, match=r"chosen \(3,\) and rejected \(2,\)"):
        bradley_terry_loss(jnp.zeros(3), jnp.zeros(2))


def _random_responses(key, n):
    """Tokens 2..V-1, then EOS at a random length 1..R, then PAD."""
    tok_key, len_key = jax.random.split(key)
    body = jax.random.randint(tok_key, (n, R), 2, V)
    length = jax.random.randint(len_key, (n,), 1, R + 1)
    pos = jnp.arange(R)[None, :]
    tokens = jnp.where(pos < length[:, None] - 1, body, PAD)
    tokens = jnp.where(pos == length[:, None] - 1, EOS, tokens)
    return tokens, (pos < length[:, None]).astype(jnp.float32)


def _linear_pairs(key, n, weights):
    """Noiseless pairs of the linear gold reward sum_t m_t weights[y_t]."""
    ka, kb, kp = jax.random.split(key, 3)
    a, ma = _random_responses(ka, n)
    b, mb = _random_responses(kb, n)
    ga = jnp.sum(weights[a] * ma, axis=1)
    gb = jnp.sum(weights[b] * mb, axis=1)
    first = (ga > gb)[:, None]
    prompts = jax.random.randint(kp, (n, LP), 2, V)
    return PreferencePairs(
        prompts, jnp.where(first, a, b), jnp.where(first, ma, mb),
        jnp.where(first, b, a), jnp.where(first, mb, ma),
        (jnp.abs(ga - gb) > 1e-6).astype(jnp.float32),
    )  # fmt: skip


def test_learned_reward_ranks_held_out_pairs_of_a_linear_reward():
    """2048 noiseless training pairs, 1024 held out, gold reward linear in
    the token counts. Held-out accuracy >= 0.9 after 150 steps (measured
    0.976; its standard error at 0.9 is sqrt(0.9 * 0.1 / 1024) = 0.009, so
    the bound sits > 8 SE below the measurement)."""
    weights = jax.random.normal(jax.random.key(0), (V,)).at[:2].set(0.0)
    train_pairs = _linear_pairs(jax.random.key(1), 2048, weights)
    held_out = _linear_pairs(jax.random.key(2), 1024, weights)
    train = jax.jit(make_reward_model_train(BACKBONE, num_steps=150, lr=3e-3))
    out = train(jax.random.key(3), train_pairs)
    assert out.loss[-20:].mean() < 0.5 * out.loss[:5].mean()
    acc = float(jax.jit(preference_accuracy, static_argnums=1)(
        out.params, BACKBONE, held_out))  # fmt: skip
    assert acc >= 0.9, acc


@pytest.fixture(scope="module")
def sort_setup():
    """The sort task with a graded gold reward, its model, an SFT reference
    and 512 gold-labelled pairs of it, shared by the tests below (each of
    those programs compiles once)."""
    partial = sort_task(2, reward="partial")
    # Gold = partial credit (graded), so that most pairs are not ties.
    task = dataclasses.replace(partial, true_reward=partial.reward)
    cfg = model.TransformerConfig(
        vocab_size=14, width=16, num_layers=1, num_heads=2,
        max_len=task.prompt_len + task.max_new_tokens,
    )  # fmt: skip
    ref = jax.jit(make_sft(task, cfg, num_steps=100, lr=1e-2))(jax.random.key(0))
    pairs = jax.jit(
        lambda k: preference_pairs(k, task, ref.params, cfg, 512, temperature=1.5)
    )(jax.random.key(1))
    return task, cfg, ref.params, pairs


@pytest.mark.parametrize("noise", [0.0, 0.25])
def test_gold_labelled_pairs_flip_at_the_noise_rate(sort_setup, noise):
    """Without noise every weighted pair's chosen response has the higher gold
    reward; with noise 0.25 a fraction 0.25 +- 4 SE of them is reversed."""
    task, cfg, ref, _ = sort_setup
    pairs = jax.jit(
        lambda k: preference_pairs(
            k, task, ref, cfg, 2048, noise=noise, temperature=2.0
        )
    )(jax.random.key(1))
    gold_c = task.true_reward(pairs.prompts, pairs.chosen, pairs.chosen_mask)
    gold_r = task.true_reward(pairs.prompts, pairs.rejected, pairs.rejected_mask)
    w = np.asarray(pairs.weight) > 0
    assert w.sum() > 200  # enough informative pairs
    np.testing.assert_array_equal(np.asarray(gold_c != gold_r), w)
    reversed_ = np.asarray(gold_c < gold_r)[w].mean()
    se = np.sqrt(0.25 * 0.75 / w.sum())
    if noise == 0.0:
        assert reversed_ == 0.0
    else:
        assert abs(reversed_ - noise) < 4 * se, (reversed_, se)


def test_rl_against_learned_reward_tracks_gold_and_round_trips(sort_setup, tmp_path):
    """The learned reward is what RL reports as ``reward``; ``true_reward``
    is the gold one; the saved model reloads with its version."""
    task, cfg, ref, pairs = sort_setup
    rm = jax.jit(make_reward_model_train(cfg, num_steps=20))(jax.random.key(2), pairs)
    version = save_reward_model(tmp_path, rm.params, cfg, pairs="sort gold")
    params, got_cfg, info = load_reward_model(tmp_path)
    assert got_cfg == cfg and info["version"] == version
    proxy = learned_reward_task(task, cfg, params)
    assert proxy.has_proxy and proxy.true_reward is task.true_reward
    rl_cfg = RLConfig(num_prompts=4, group_size=2, num_updates=3)
    out = jax.jit(make_rl_train(proxy, cfg, rl_cfg))(jax.random.key(3), ref, ref)
    assert not np.allclose(out.metrics["reward"], out.metrics["true_reward"])
    # Jitted: one program, not one per operation (1.6 s of CPU eagerly).
    s = jax.jit(reward_scores, static_argnums=1)(
        params, cfg, pairs.prompts[:3], pairs.chosen[:3], pairs.chosen_mask[:3]
    )
    assert s.shape == (3,) and np.all(np.isfinite(s))


def test_overoptimising_a_learned_reward_at_beta_zero_fires_the_monitor(sort_setup):
    """A misspecified learned reward: a bag-of-tokens backbone (a user
    SequenceModel, counts of each token so far) with the Bradley–Terry head,
    fitted to 512 gold-labelled pairs of the SFT policy (gold: sort partial
    credit; the fixture's: 100 SFT steps at lr 1e-2, pairs at temperature
    1.5). RL at beta = 0 (60 updates) drives the proxy up (measured 3.0 ->
    5.0 by tens of updates) while the gold reward falls (0.73 -> 0.38), and
    reward_hacking_flag (window 10, tol 0.05) fires (measured at 19-24)."""
    task, cfg, ref, pairs = sort_setup
    bag = SequenceModel(
        "bag", 14, cfg.max_len, lambda key: {},
        lambda params, tokens, positions, mask: jnp.cumsum(
            jax.nn.one_hot(tokens, 14), axis=1
        ),
    )  # fmt: skip
    rm = jax.jit(make_reward_model_train(bag, num_steps=200, lr=5e-2))(
        jax.random.key(2), pairs
    )
    rl_cfg = RLConfig(num_prompts=8, group_size=4, num_updates=60, lr=1e-2,
                      kl_placement="none", beta=0.0)  # fmt: skip
    proxy_task = learned_reward_task(task, bag, rm.params)
    out = jax.jit(make_rl_train(proxy_task, cfg, rl_cfg))(jax.random.key(3), ref, ref)
    proxy = np.asarray(out.metrics["reward"])
    gold = np.asarray(out.metrics["true_reward"])
    assert proxy[-20:].mean() > proxy[:10].mean() + 1.0, proxy
    assert gold[-20:].mean() < gold[:10].mean() - 0.2, gold
    assert reward_hacking_flag(gold, proxy, window=10).any()
