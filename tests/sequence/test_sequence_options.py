"""The practitioners' estimator options, each on a case worked by hand:
clip-higher, dual clipping, GSPO's sequence ratio, the overlong penalty,
truncation masking, dynamic sampling and batch reward scaling."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.sequence import estimators as est
from jaxpg.sequence import rl
from jaxpg.sequence.tasks import EOS, PAD

RATIOS = jnp.array([[0.5, 1.1, 1.3, 1.5]])


def _terms(ratios, adv, **kwargs):
    logp = jnp.log(ratios)
    return est.surrogate_terms(
        logp, jnp.zeros_like(logp), jnp.full_like(logp, adv), **kwargs
    )


def test_clip_higher_by_hand():
    """eps_low 0.2, eps_high 0.28: clip(rho) = [0.8, 1.1, 1.28, 1.28].
    A = +1: min(rho, clip) = [0.5, 1.1, 1.28, 1.28], clipped where rho > 1.28.
    A = -1: min(-rho, -clip) = [-0.8, -1.1, -1.3, -1.5], clipped where rho < 0.8."""
    terms, clipped = _terms(RATIOS, 1.0, clip_eps=0.2, clip_eps_high=0.28)
    np.testing.assert_allclose(terms, -np.array([[0.5, 1.1, 1.28, 1.28]]), 1e-6)
    np.testing.assert_array_equal(clipped, [[0, 0, 1, 1]])
    terms, clipped = _terms(RATIOS, -1.0, clip_eps=0.2, clip_eps_high=0.28)
    np.testing.assert_allclose(terms, [[0.8, 1.1, 1.3, 1.5]], 1e-6)
    np.testing.assert_array_equal(clipped, [[1, 0, 0, 0]])
    # Symmetric PPO clips 1.3 and 1.5 at 1.2 for A > 0.
    terms, _ = _terms(RATIOS, 1.0, clip_eps=0.2)
    np.testing.assert_allclose(terms, -np.array([[0.5, 1.1, 1.2, 1.2]]), 1e-6)


def test_dual_clip_by_hand():
    """c = 3, A = -1, rho = [0.5, 2, 4]: PPO's min(-rho, -clip(rho)) =
    [-0.8, -2, -4]; the dual clip max(., -3) = [-0.8, -2, -3]. The gradient
    in log pi: -A rho = 2 where the ratio term is active, 0 where clipped."""
    ratios = jnp.array([[0.5, 2.0, 4.0]])
    terms, clipped = _terms(ratios, -1.0, clip_eps=0.2, dual_clip=3.0)
    np.testing.assert_allclose(terms, [[0.8, 2.0, 3.0]], 1e-6)
    np.testing.assert_array_equal(clipped, [[1, 0, 1]])
    grad = jax.grad(
        lambda lp: jnp.sum(
            est.surrogate_terms(
                lp, jnp.zeros_like(lp), -jnp.ones_like(lp), 0.2, dual_clip=3.0
            )[0]
        )
    )(jnp.log(ratios))
    np.testing.assert_allclose(grad, [[0.0, 2.0, 0.0]], atol=1e-6)
    # Positive advantages are untouched by the dual clip.
    plain, _ = _terms(ratios, 1.0, clip_eps=0.2)
    dual, _ = _terms(ratios, 1.0, clip_eps=0.2, dual_clip=3.0)
    np.testing.assert_array_equal(plain, dual)


def test_gspo_sequence_ratio_by_hand():
    """Row 0: log-ratios 0.2, 0.4 (third token masked): s = e^0.3 = 1.350,
    clipped at 1.2 (A = 1): term -1.2 on each token. Row 1: one token, log
    ratio -0.1: s = e^-0.1 = 0.905 inside the clip: term -0.905."""
    log_ratio = jnp.array([[0.2, 0.4, 5.0], [-0.1, 3.0, 3.0]])
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    adv = jnp.ones_like(mask)
    terms, clipped = est.sequence_surrogate_terms(
        log_ratio, jnp.zeros_like(mask), adv, mask, 0.2
    )
    np.testing.assert_allclose(terms[0], -1.2, rtol=1e-6)
    np.testing.assert_allclose(terms[1], -np.exp(-0.1), rtol=1e-6)
    np.testing.assert_array_equal(clipped[:, 0], [1.0, 0.0])
    loss = est.aggregate(terms, mask, "seq_mean")
    np.testing.assert_allclose(loss, -(1.2 + np.exp(-0.1)) / 2, rtol=1e-6)


def test_gspo_first_epoch_gradient_is_the_length_normalised_one():
    """At s = 1: d x_i / d log pi_t = -A_i m_t / |y_i|, the token-ratio
    seq_mean gradient, for any clip setting."""
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 1.0, 1.0]])
    adv = jnp.array([[2.0] * 3, [-1.0] * 3])
    lp = jnp.log(jnp.array([[0.3, 0.5, 0.2], [0.1, 0.7, 0.4]]))

    def loss(lp, terms_fn):
        terms, _ = terms_fn(lp, lp, adv, mask)
        return est.aggregate(terms, mask, "seq_mean")

    def seq(lp, b, a, m):
        return est.sequence_surrogate_terms(lp, b, a, m, 0.2, dual_clip=3.0)

    def tok(lp, b, a, m):
        return est.surrogate_terms(lp, b, a)

    g_seq, g_tok = jax.grad(loss)(lp, seq), jax.grad(loss)(lp, tok)
    want = -adv * mask / jnp.sum(mask, axis=1, keepdims=True) / 2
    np.testing.assert_allclose(g_seq, want, rtol=1e-6)
    np.testing.assert_allclose(g_tok, want, rtol=1e-6)


def test_overlong_penalty_by_hand():
    """R = 10, buffer 4: free up to 6 tokens, then -(|y| - 6) / 4."""
    got = est.overlong_penalty(jnp.array([5, 6, 7, 8, 10]), 10, 4)
    np.testing.assert_allclose(got, [0.0, 0.0, -0.25, -0.5, -1.0])
    with pytest.raises(ValueError, match=r"overlong buffer=11 must be in \[1, R=10\]"):
        est.overlong_penalty(jnp.array([5]), 10, 11)


def test_dynamic_groups_by_hand():
    rewards = jnp.array([[1.0, 1.0], [0.0, 1.0], [2.0, 2.0], [3.0, 0.0]])
    index, informative = est.dynamic_groups(rewards, 2)
    np.testing.assert_array_equal(index, [1, 3])
    np.testing.assert_array_equal(informative, [False, True, False, True])
    index, _ = est.dynamic_groups(rewards, 3)  # too few: an equal group refills
    np.testing.assert_array_equal(index, [1, 3, 0])


def test_grpo_batch_scaling_by_hand():
    """Rewards [[0, 1], [2, 4]]: group-centred [-0.5, 0.5, -1, 1]; the batch's
    sample std: mean 1.75, squares 3.0625 + 0.5625 + 0.0625 + 5.0625 = 8.75,
    / 3 -> std 1.7078."""
    adv = est.group_advantages(jnp.array([[0.0, 1.0], [2.0, 4.0]]), "grpo_batch")
    want = np.array([[-0.5, 0.5], [-1.0, 1.0]]) / (np.sqrt(8.75 / 3) + 1e-4)
    np.testing.assert_allclose(adv, want, rtol=1e-5)


def _rollout(responses, mask, reward):
    n, r = responses.shape
    zeros = jnp.zeros((n, r))
    return rl.Rollout(
        jnp.zeros((n, 1), jnp.int32), responses, mask, zeros, zeros,
        jnp.zeros((n, r, 3)), reward, reward, reward, jnp.float32(1.0),
    )  # fmt: skip


@pytest.mark.parametrize("kl_placement", ["none", "loss", "reward"])
def test_score_overlong_penalty_and_truncation_mask_by_hand(kl_placement):
    """R = 4, buffer 2, penalty 0.5, every reward 1. Lengths 2, 3, 4 (no EOS:
    truncated), 1 -> penalties 0, -0.5 * 0.5, -1 * 0.5, 0 -> shaped rewards
    1, 0.75, 0.5, 1. Group 0 (rows 0-1): Dr. GRPO advantages +0.125, -0.125;
    group 1 (rows 2-3): -0.25, +0.25. The truncated row's loss mask is 0, its
    reward still in its group's baseline. With beta 0 the KL's placement
    changes nothing: the penalty is kept when the KL shapes the reward too."""
    e, p, t = EOS, PAD, 2
    responses = jnp.array(
        [[t, e, p, p], [t, t, e, p], [t, t, t, t], [e, p, p, p]], jnp.int32
    )
    mask = jnp.array(
        [[1, 1, 0, 0], [1, 1, 1, 0], [1, 1, 1, 1], [1, 0, 0, 0]], jnp.float32
    )
    cfg = rl.RLConfig(num_prompts=2, group_size=2, advantage="dr_grpo",
                      kl_placement=kl_placement, beta=0.0, overlong_buffer=2,
                      overlong_penalty=0.5, mask_truncated=True)  # fmt: skip
    batch = rl.score(_rollout(responses, mask, jnp.ones(4)), cfg)
    np.testing.assert_allclose(batch.advantages, [0.125, -0.125, -0.25, 0.25])
    np.testing.assert_array_equal(batch.truncated, [0, 0, 1, 0])
    np.testing.assert_array_equal(batch.mask[2], 0.0)
    np.testing.assert_array_equal(
        batch.mask[np.array([0, 1, 3])], mask[np.array([0, 1, 3])]
    )
    np.testing.assert_array_equal(batch.reward, 1.0)  # the task's, unshaped


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(clip_eps=None, clip_eps_high=0.3), "clip_eps_high=0.3 needs clip_eps"),
        (dict(dual_clip=1.0), r"RLConfig.dual_clip=1.0 is invalid"),
        (dict(importance_ratio="seq"), "importance_ratio='seq' is not one of"),
        (dict(importance_ratio="sequence", aggregation="token_mean"),
         "needs aggregation='seq_mean'"),
        (dict(dynamic_sampling=8), "dynamic_sampling=8 is invalid: must be >= "),
        (dict(overlong_penalty=-1.0), "RLConfig.overlong_penalty=-1.0 is invalid"),
        (dict(mask_truncated=1), "mask_truncated=1 must be a bool"),
        # Settings whose every advantage would be 0.
        (dict(advantage="dr_grpo", group_size=1),
         "advantage='dr_grpo' needs group_size >= 2, got 1"),
        (dict(advantage="grpo_batch", group_size=1),
         "advantage='grpo_batch' needs group_size >= 2, got 1"),
        (dict(advantage="reinforce_pp", num_prompts=1, group_size=1),
         r"needs num_prompts \* group_size >= 2, got 1 \* 1"),
        (dict(advantage="reinforce", group_size=1, dynamic_sampling=32),
         "dynamic_sampling=32 needs group_size >= 2, got 1"),
        (dict(clip_eps=1.0), "clip_eps=1.0 is invalid: must be < 1"),
        (dict(clip_eps=0.2, clip_eps_high=0.1),
         "clip_eps_high=0.1 is invalid: must be >= clip_eps=0.2"),
    ],
)  # fmt: skip
def test_option_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rl.RLConfig(**{"num_prompts": 16, **kwargs})


def _bigram():
    """A bigram-table model (``logits = table[previous token]``), V = 4."""
    from jaxpg.sequence import SequenceModel

    def apply(params, tokens, positions, mask):
        return params["table"][tokens]

    return SequenceModel("bigram", 4, 8, lambda k: {"table": jnp.zeros((4, 4))}, apply)


def _bigram_rollout(model, policy, ref, responses, mask):
    from jaxpg.sequence import sampling

    prompts = jnp.full((responses.shape[0], 2), 3, jnp.int32)
    logits = sampling.response_logits(policy, model, prompts, responses, 2)
    logp = sampling.token_log_probs(logits, responses) * mask
    ref_logits = sampling.response_logits(ref, model, prompts, responses, 2)
    reward = jnp.array([1.0, 0.0])
    return rl.Rollout(
        prompts, responses, mask, logp, logp, ref_logits, reward, reward, reward,
        jnp.float32(1.0),
    )  # fmt: skip


def test_truncation_mask_leaves_the_kl_and_entropy_metrics_over_every_token():
    """``kl_exact`` and ``entropy`` are the policy's over every sampled token,
    as ``kl_estimate`` is: masking the truncated response out of the loss
    leaves them unchanged (row 1 has no EOS)."""
    model = _bigram()
    policy = {"table": jax.random.normal(jax.random.key(0), (4, 4))}
    ref = {"table": jax.random.normal(jax.random.key(1), (4, 4))}
    responses = jnp.array([[2, 1, 0], [2, 2, 2]], jnp.int32)
    mask = jnp.array([[1, 1, 0], [1, 1, 1]], jnp.float32)
    assert EOS == 1 and PAD == 0
    ro = _bigram_rollout(model, policy, ref, responses, mask)
    aux = {}
    for masked in (False, True):
        cfg = rl.RLConfig(num_prompts=1, group_size=2, advantage="rloo",
                          mask_truncated=masked)  # fmt: skip
        batch = rl.score(ro, cfg)
        _, aux[masked] = rl.loss_fn(policy, batch, model, cfg)
    assert float(aux[False]["kl_exact"]) > 0.1  # a KL worth comparing
    for name in ("kl_exact", "entropy"):
        np.testing.assert_allclose(aux[True][name], aux[False][name], rtol=1e-6)


@pytest.mark.parametrize("kl_placement", ["loss", "reward"])
def test_an_overflow_at_a_padding_position_leaves_loss_and_gradient_finite(
    kl_placement,
):
    """After row 0's EOS the policy puts -200 nats on PAD and the reference
    +200: k3 there is exp(400), inf in float32. Masked positions enter no sum
    (the token after EOS is not part of the response), so the loss, the
    shaped reward and the gradient stay finite (with the KL in the loss they
    were NaN before: ``0 * inf``)."""
    model = _bigram()
    policy = {"table": jnp.zeros((4, 4)).at[EOS, PAD].set(-200.0)}
    ref = {"table": jnp.zeros((4, 4)).at[EOS, PAD].set(200.0)}
    responses = jnp.array([[2, 1, 0], [2, 2, 1]], jnp.int32)
    mask = jnp.array([[1, 1, 0], [1, 1, 1]], jnp.float32)
    ro = _bigram_rollout(model, policy, ref, responses, mask)
    cfg = rl.RLConfig(num_prompts=1, group_size=2, advantage="rloo",
                      kl_placement=kl_placement, kl_estimator="k3",
                      beta=0.1)  # fmt: skip
    batch = rl.score(ro, cfg)
    assert np.all(np.isfinite(batch.kl_estimate))
    assert np.all(np.isfinite(batch.advantages))
    (loss, _), grads = jax.value_and_grad(rl.loss_fn, has_aux=True)(
        policy, batch, model, cfg
    )
    assert np.isfinite(float(loss))
    assert np.all(np.isfinite(grads["table"]))


def test_every_option_together_runs_through_make_rl_train():
    """Two updates with all options on (two epochs, so the clips act): finite
    metrics, the kept groups' informative fraction and truncation reported."""
    from tiny_sequence import task_and_model

    from jaxpg.sequence import make_rl_train, model

    task, cfg = task_and_model()
    params = model.init(jax.random.key(0), cfg)
    rl_cfg = rl.RLConfig(
        num_prompts=2, group_size=2, num_updates=2, epochs=2, clip_eps=0.2,
        clip_eps_high=0.28, dual_clip=3.0, importance_ratio="sequence",
        dynamic_sampling=4, overlong_buffer=1, overlong_penalty=0.5,
        mask_truncated=True, advantage="grpo_batch",
    )  # fmt: skip
    out = jax.jit(make_rl_train(task, cfg, rl_cfg))(jax.random.key(1), params, params)
    for name in ("loss", "truncated", "informative", "clip_frac", "grad_norm"):
        assert out.metrics[name].shape == (2,)
        assert np.all(np.isfinite(out.metrics[name])), name
    assert np.all((out.metrics["informative"] >= 0) & (out.metrics["informative"] <= 1))
