"""Token policy, KV-cached sampler, teacher-forced log-probs, reference saving."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.sequence import model, sampling, sft, tasks
from jaxpg.sequence.tasks import EOS, PAD

R = 6


def _init(key, cfg):
    return jax.jit(model.init, static_argnums=1)(key, cfg)


@pytest.fixture(scope="module", params=["learned", "rotary"])
def policy(request):
    cfg = model.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=16, num_layers=2, num_heads=2,
        max_len=12, positions=request.param, init_scale=0.5,
    )  # fmt: skip
    params = _init(jax.random.key(0), cfg)
    prompts = tasks.sort_task(4).sample_prompts(jax.random.key(1), 64)
    return cfg, params, prompts


def test_kv_cache_sampling_equals_full_recompute(policy):
    """Same keys, same tokens, same log-probs, with and without the cache (at
    T = 1 and at T = 0.7 with top-k 3; one compiled program)."""
    cfg, params, prompts = policy

    @jax.jit
    def both(key):
        out = []
        for temperature, top_k in ((1.0, None), (0.7, 3)):
            kw = dict(eos_id=EOS, pad_id=PAD, temperature=temperature, top_k=top_k)
            out.append(sampling.sample(key, params, cfg, prompts, R, **kw))
            out.append(
                sampling.sample_without_cache(key, params, cfg, prompts, R, **kw)
            )
        return out

    results = both(jax.random.key(2))
    for cached, full in (results[:2], results[2:]):
        np.testing.assert_array_equal(cached.responses, full.responses)
        np.testing.assert_array_equal(cached.mask, full.mask)
        np.testing.assert_allclose(cached.log_probs, full.log_probs, atol=1e-5)


def test_cached_logits_equal_one_full_pass(policy):
    cfg, params, prompts = policy
    tokens = jnp.concatenate([prompts, prompts[:, :3]], axis=1)  # [N, 8]

    @jax.jit
    def logits_both_ways(tokens):
        full, _ = model.apply(params, cfg, tokens)
        cache = model.init_cache(cfg, tokens.shape[0])
        first, cache = model.apply(params, cfg, tokens[:, :5], 0, cache)
        rest = []
        for t in range(5, tokens.shape[1]):
            logits, cache = model.apply(params, cfg, tokens[:, t : t + 1], t, cache)
            rest.append(logits)
        return jnp.concatenate([first, *rest], axis=1), full

    stepped, full = logits_both_ways(tokens)
    np.testing.assert_allclose(stepped, full, atol=1e-5)


def test_sampling_is_deterministic_given_the_key_and_masks_after_eos(policy):
    cfg, params, prompts = policy
    if cfg.positions == "rotary":
        pytest.skip("position-independent property: checked once")
    fn = jax.jit(
        lambda k: sampling.sample(k, params, cfg, prompts, R, eos_id=EOS, pad_id=PAD)
    )
    a, b = fn(jax.random.key(3)), fn(jax.random.key(3))
    np.testing.assert_array_equal(a.responses, b.responses)
    # Step t draws as jax.random.categorical with key split(key, R)[t].
    logits = jax.jit(model.apply, static_argnums=1)(params, cfg, prompts)[0]
    last = sampling.sampling_log_probs(logits[:, -1])
    first = jax.random.categorical(jax.random.split(jax.random.key(3), R)[0], last)
    np.testing.assert_array_equal(a.responses[:, 0], first)
    assert not np.array_equal(a.responses, fn(jax.random.key(4)).responses)
    resp, mask = np.asarray(a.responses), np.asarray(a.mask)
    for row, m in zip(resp, mask, strict=True):
        eos = np.flatnonzero(row == EOS)
        length = eos[0] + 1 if len(eos) else R
        np.testing.assert_array_equal(m, [1.0] * length + [0.0] * (R - length))
        assert (row[length:] == PAD).all()
    # Teacher forcing gives the sampler's log-probs back (T = 1).
    logits = jax.jit(sampling.response_logits, static_argnums=1)(
        params, cfg, prompts, a.responses
    )
    np.testing.assert_allclose(
        sampling.token_log_probs(logits, a.responses) * a.mask,
        a.log_probs,
        atol=1e-5,
    )


def test_grouped_prompts_run_once_and_change_nothing(policy):
    """``group_size=G`` against ``group_size=1``: teacher-forced logits (one
    packed row per group: the prompt, then its G responses) equal up to float
    rounding; with learned positions also the sampler (the prompt's prefill
    once per group, position-independent: checked once), same responses and
    masks. Gradients through the packed rows: the estimators of
    test_sequence_exact.py use them."""
    cfg, params, prompts = policy
    g, sampler = 4, cfg.positions == "learned"
    grouped = jnp.repeat(prompts[:16], g, axis=0)  # [64, Lp], rows share a prompt

    @jax.jit
    def run(key):
        out = []
        for size in (1, g):
            if sampler:
                s = sampling.sample(
                    key, params, cfg, grouped, R, eos_id=EOS, pad_id=PAD,
                    temperature=0.8, group_size=size,
                )  # fmt: skip
                responses = s.responses
            else:
                s, responses = None, jax.random.randint(key, (64, R), 0, 14)
            logits = sampling.response_logits(params, cfg, grouped, responses, size)
            out.append((s, logits))
        return out

    (s1, logits1), (sg, logitsg) = run(jax.random.key(8))
    np.testing.assert_allclose(logits1, logitsg, atol=1e-5)
    if sampler:
        np.testing.assert_array_equal(s1.responses, sg.responses)
        np.testing.assert_array_equal(s1.mask, sg.mask)
        np.testing.assert_allclose(s1.log_probs, sg.log_probs, atol=1e-5)
        assert s1.mask.sum() > 2 * grouped.shape[0]  # several tokens per response


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.5, 4)])
def test_first_token_frequencies_chi_square(temperature, top_k):
    """Chi-square of 20,000 first tokens of one prompt against softmax(l / T)
    restricted to the top k. Degrees of freedom: (support - 1) <= 13; the
    1e-4 upper quantile of chi2(13) is 40.7 (bound used; cells with expected
    count < 5 are pooled into one). Tokens outside the top k never appear."""
    cfg = model.TransformerConfig(
        vocab_size=tasks.VOCAB_SIZE, width=16, num_layers=1, num_heads=2,
        max_len=8, init_scale=1.0,
    )  # fmt: skip
    params = _init(jax.random.key(5), cfg)
    n = 20_000
    prompts = jnp.tile(jnp.array([[5, 3, 7, tasks.EQ]], jnp.int32), (n, 1))
    kw = dict(eos_id=EOS, pad_id=PAD, temperature=temperature, top_k=top_k)
    s = jax.jit(lambda k: sampling.sample(k, params, cfg, prompts, 1, **kw))(
        jax.random.key(6)
    )
    logits, _ = jax.jit(model.apply, static_argnums=1)(params, cfg, prompts[:1])
    probs = np.exp(
        np.asarray(sampling.sampling_log_probs(logits[0, -1], temperature, top_k))
    ).astype(np.float64)
    counts = np.bincount(np.asarray(s.responses[:, 0]), minlength=cfg.vocab_size)
    assert counts[probs == 0].sum() == 0
    expected = probs * n
    big = expected >= 5
    obs = np.append(counts[big], counts[~big].sum())
    exp = np.append(expected[big], expected[~big].sum())
    keep = exp > 0
    chi2 = float(np.sum((obs[keep] - exp[keep]) ** 2 / exp[keep]))
    assert chi2 < 40.7, chi2


def test_model_and_sampler_reject_bad_input():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        model.TransformerConfig(width=10, num_heads=4)
    with pytest.raises(ValueError, match="positions='alibi'"):
        model.TransformerConfig(positions="alibi")
    cfg = model.TransformerConfig(vocab_size=14, width=8, num_heads=2, max_len=6)
    params = None  # the shapes are checked before the parameters are used
    prompts = jnp.zeros((2, 4), jnp.int32)
    with pytest.raises(ValueError, match="exceeds the model's max_len=6"):
        sampling.sample(jax.random.key(0), params, cfg, prompts, 3, eos_id=1, pad_id=0)
    with pytest.raises(ValueError, match="top_k=20"):
        sampling.sample(
            jax.random.key(0), params, cfg, prompts, 2, eos_id=1, pad_id=0, top_k=20
        )
    with pytest.raises(ValueError, match="group_size=3 must be an int >= 1 dividing"):
        sampling.sample(
            jax.random.key(0), params, cfg, prompts, 2, eos_id=1, pad_id=0,
            group_size=3,
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"cache length=7 must be in \[1, 6\]"):
        model.init_cache(cfg, 2, 7)
    with pytest.raises(ValueError, match="do not fit a cache of 4 positions"):
        model.apply(params, cfg, prompts, 2, model.init_cache(cfg, 2, 4))
    positions, mask = sampling.packed_layout(4, 3, 2)  # a 10-token packed row
    np.testing.assert_array_equal(positions, [0, 1, 2, 3, 4, 5, 6, 4, 5, 6])
    assert mask[8].tolist() == [1, 1, 1, 1, 0, 0, 0, 1, 1, 0]  # prompt + own
    with pytest.raises(ValueError, match="positions and mask go together"):
        model.apply(params, cfg, jnp.zeros((2, 10), jnp.int32), positions=positions)
    with pytest.raises(ValueError, match=r"positions must be in \[0, max_len=6\)"):
        model.apply(
            params, cfg, jnp.zeros((2, 10), jnp.int32), positions=positions + 1,
            mask=mask,
        )  # fmt: skip


def test_reference_round_trip_and_version_hash(tmp_path):
    cfg = model.TransformerConfig(vocab_size=14, width=8, num_heads=2, max_len=8)
    params = _init(jax.random.key(0), cfg)
    version = sft.save_reference(tmp_path, params, cfg, task="sort")
    loaded, cfg2, info = sft.load_reference(tmp_path)
    assert cfg2 == cfg and info["version"] == version == sft.params_hash(loaded)
    assert info["task"] == "sort"
    other = _init(jax.random.key(1), cfg)
    assert sft.params_hash(other) != version
    info["version"] = "0" * 16
    (tmp_path / "reference.json").write_text(json.dumps(info))
    with pytest.raises(ValueError, match="records version 0000"):
        sft.load_reference(tmp_path)


def test_top_k_keeps_exactly_k_tokens_when_logits_tie():
    """Five equal logits: top_k = 2 keeps two tokens (the lower ids), each
    at 1/2; top_k = 1 is deterministic."""
    logits = jnp.zeros((1, 5))
    p2 = np.exp(np.asarray(sampling.sampling_log_probs(logits, 1.0, 2)))
    np.testing.assert_allclose(p2, [[0.5, 0.5, 0.0, 0.0, 0.0]])
    p1 = np.exp(np.asarray(sampling.sampling_log_probs(logits, 1.0, 1)))
    np.testing.assert_allclose(p1, [[1.0, 0.0, 0.0, 0.0, 0.0]])
    # Without ties, the k largest.
    logits = jnp.array([[0.1, 2.0, -1.0, 1.5]])
    kept = np.isfinite(np.asarray(sampling.sampling_log_probs(logits, 0.5, 2)))
    np.testing.assert_array_equal(kept, [[False, True, False, True]])


def test_vmapped_sampling_batches_its_step_once():
    """The sampler's finished-flags and buffers start batched like the draws
    (jaxpg.kernels.batching.batched_like), so under vmap over keys the
    step's body is batched once, not again for a carry that turned batched."""
    from vmap_probe import VmapProbe

    from jaxpg.sequence import SequenceModel

    probe = VmapProbe()

    def apply(params, tokens, positions, mask):
        return probe(params["table"][tokens])

    probed = SequenceModel(
        "probed", 4, 8, lambda k: {"table": jnp.zeros((4, 4))}, apply
    )
    keys = jax.vmap(jax.random.key)(jnp.arange(3))
    params = jax.vmap(probed.init)(keys)  # per member: the probe sees a batch
    prompts = jnp.ones((2, 3), jnp.int32)

    def draw(key, params):
        return sampling.sample(key, params, probed, prompts, 4, eos_id=1, pad_id=0)

    jax.make_jaxpr(jax.vmap(draw))(keys, params)
    assert probe.calls == 1
