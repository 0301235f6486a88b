r"""Sequence policy gradients against exact gradients by enumeration.

Tiny problem: vocabulary 3 (``PAD=0``, ``EOS=1``, token ``2``), ``P = 2`` fixed
prompts, responses of at most ``R = 3`` tokens: 15 possible responses per
prompt (EOS after 0, 1 or 2 other tokens, or 3 tokens without EOS). Every
quantity below is a finite sum over them, differentiated by ``jax.grad``:

* :math:`J(\theta) = \frac1P\sum_p\sum_y \pi_\theta(y|x_p)\, r(x_p, y)`;
* :math:`\mathrm{KL}(\theta) = \frac1P\sum_p\sum_y \pi(y)\log\frac{\pi(y)}
  {\pi_{ref}(y)}`, the sequence-level KL;
* :math:`T_2(\theta)`, :math:`T_3(\theta)`: the per-token forward and reverse
  KL summed over the positions of each response, weighted by
  :math:`\mathrm{sg}(\pi(y))` (prefix distribution held fixed).

Each estimator's gradient (``-grad loss_fn`` on a sampled batch, ``"constant"``
aggregation with ``C = 1`` unless stated) is averaged over ``M`` independent
batches of ``P x G`` samples drawn by jaxpg's own sampler.

Statistics: for a unit direction ``u`` the batch means ``u . g_m`` are i.i.d.,
so ``z = u . (mean - target) / (std(u . g_m) / sqrt(M))`` is ~N(0, 1) when the
estimator is unbiased for ``target``. Directions: the target itself, three fixed
random directions and a *data-split* direction (the mean's error on the first
half of the batches, tested on the second half: independent of it, so still
N(0, 1) under the null, and aligned with the bias when there is one). Unbiased:
every ``|z| < 4`` (two-sided p = 6e-5 each; the keys are fixed, so the test
is deterministic). Biased: the split direction's ``z > 8``, far outside
anything noise gives.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import token_models

from jaxpg.sequence import estimators as est
from jaxpg.sequence import model, rl, sampling
from jaxpg.sequence.tasks import EOS, PAD, Task

R = 3
P, G = 2, 4
M = 4096
BETA = 1.0
Z_OK = 4.0
Z_BIAS = 8.0
PROMPTS = jnp.array([[2, 2], [2, 0]], jnp.int32)
CFG = model.TransformerConfig(
    vocab_size=3, width=8, num_layers=1, num_heads=2, max_len=5, init_scale=1.0
)


def _responses() -> tuple[np.ndarray, np.ndarray]:
    """All 15 canonical responses ``[15, R]`` and their masks."""
    rows, masks = [], []
    for length in range(1, R + 1):
        for body in itertools.product([PAD, 2], repeat=length - 1):
            rows.append([*body, EOS] + [PAD] * (R - length))
            masks.append([1.0] * length + [0.0] * (R - length))
    for body in itertools.product([PAD, 2], repeat=R):
        rows.append(list(body))
        masks.append([1.0] * R)
    return np.array(rows, np.int32), np.array(masks, np.float32)


RESPONSES, MASKS = _responses()


def _reward(prompts, responses, mask):
    # Depends on length (the count of 2s) and on the prompt; the prompts' reward
    # scales differ 4x, so a per-group std reweights them (GRPO's direction bias).
    twos = jnp.sum((responses == 2) * mask, axis=1)
    first_pad = (responses[:, 0] == PAD).astype(jnp.float32)
    second = prompts[:, 1] == 2
    bonus = jnp.where(second, 1.0, -0.5) * first_pad
    return jnp.where(second, 1.0, 4.0) * (twos + bonus)


TASK = Task(
    name="tiny",
    prompt_len=2,
    answer_len=1,
    max_new_tokens=R,
    sample_prompts=lambda key, n: PROMPTS,
    answers=lambda prompts: jnp.full((prompts.shape[0], 1), EOS, jnp.int32),
    reward=_reward,
    true_reward=_reward,
    accuracy=_reward,
)


def _all_pairs():
    prompts = jnp.repeat(PROMPTS, len(RESPONSES), axis=0)
    responses = jnp.tile(jnp.asarray(RESPONSES), (P, 1))
    masks = jnp.tile(jnp.asarray(MASKS), (P, 1))
    return prompts, responses, masks


def _exact(params, ref_params, m=CFG):
    """Exact J, KL, T2, T3 (scalars) and sequence probabilities ``[P, 15]``
    under the model ``m``; ``J_len``: J of the reward ``r / |y|``;
    ``J_done``: J of the reward set to 0 on truncated responses (no EOS);
    ``J_long``: J of the reward with :data:`OVERLONG`'s soft penalty added."""
    prompts, responses, masks = _all_pairs()
    logits = sampling.response_logits(params, m, prompts, responses)
    ref_logits = sampling.response_logits(ref_params, m, prompts, responses)
    slp = jnp.sum(sampling.token_log_probs(logits, responses) * masks, axis=1)
    ref_slp = jnp.sum(sampling.token_log_probs(ref_logits, responses) * masks, axis=1)
    prob = jnp.exp(slp)
    prob_sg = jax.lax.stop_gradient(prob)
    reward = _reward(prompts, responses, masks)
    forward_t = jnp.sum(est.exact_kl(logits, ref_logits) * masks, axis=1)
    reverse_t = jnp.sum(est.exact_kl(ref_logits, logits) * masks, axis=1)
    done = jnp.any((responses == EOS) & (masks > 0), axis=1)
    length = jnp.sum(masks, axis=1)
    penalty = OVERLONG[1] * est.overlong_penalty(length, R, OVERLONG[0])
    return {
        "J": jnp.sum(prob * reward) / P,
        "J_len": jnp.sum(prob * reward / jnp.sum(masks, axis=1)) / P,
        "J_done": jnp.sum(prob * reward * done) / P,
        "J_long": jnp.sum(prob * (reward + penalty)) / P,
        "KL": jnp.sum(prob * (slp - ref_slp)) / P,
        "T2": jnp.sum(prob_sg * forward_t) / P,
        "T3": jnp.sum(prob_sg * reverse_t) / P,
        "prob": prob.reshape(P, len(RESPONSES)),
    }


def _flat(tree) -> jnp.ndarray:
    return jnp.concatenate([x.ravel() for x in jax.tree.leaves(tree)])


def _config(**kwargs) -> rl.RLConfig:
    base = dict(
        num_prompts=P, group_size=G, advantage="reinforce", aggregation="constant",
        loss_norm=1.0, kl_placement="none", beta=BETA, clip_eps=None,
    )  # fmt: skip
    base.update(kwargs)
    return rl.RLConfig(**base)


CONFIGS = {
    "reinforce": _config(advantage="reinforce"),
    "rloo": _config(advantage="rloo"),
    "dr_grpo": _config(advantage="dr_grpo"),
    "reinforce_mean": _config(advantage="reinforce_mean"),
    "rloo_constant_R": _config(advantage="rloo", loss_norm=float(R)),
    "grpo": _config(advantage="grpo"),
    "rloo_seq_mean": _config(advantage="rloo", aggregation="seq_mean"),
    "reinforce_pp": _config(advantage="reinforce_pp"),
    **{
        f"kl_{placement}_{k}": _config(
            advantage="rloo", kl_placement=placement, kl_estimator=k
        )
        for placement in ("reward", "loss")
        for k in ("k1", "k2", "k3")
    },
}


class Setup(NamedTuple):
    """:func:`setup`'s parameters, exact gradients ``{name: [D]}``, sampled
    estimates ``{config: [M, D]}`` and sequence probabilities ``[P, 15]``."""

    params: Any
    ref_params: Any
    grads: dict[str, np.ndarray]
    estimates: Any
    prob: Any


@pytest.fixture(scope="module")
def setup() -> Setup:
    """Parameters, exact gradients and every estimator's ``[M, D]`` samples.

    One compiled program: each key draws one rollout with jaxpg's sampler, and
    every configuration scores it (:func:`rl.score`) and differentiates its
    :func:`rl.loss_fn` (``-grad`` is the estimate). The exact gradients and
    the sequence probabilities ``[P, 15]`` are one other program."""
    init = jax.jit(model.init, static_argnums=1)  # one program, not eager ops
    params = init(jax.random.key(1), CFG)
    ref_params = init(jax.random.key(2), CFG)

    @jax.jit
    def exact_grads(p):
        grads = {
            name: _flat(jax.grad(lambda q, n=name: _exact(q, ref_params)[n])(p))
            for name in ("J", "KL", "T2", "T3")
        }
        return grads, _exact(p, ref_params)["prob"]

    grads, prob = exact_grads(params)
    grads = {k: np.asarray(v, np.float64) for k, v in grads.items()}

    def one(key):
        ro = rl.rollout(key, params, ref_params, TASK, CFG, CONFIGS["reinforce"])
        out = {}
        for name, cfg in CONFIGS.items():
            grad, _ = jax.grad(rl.loss_fn, has_aux=True)(
                params, rl.score(ro, cfg), CFG, cfg
            )
            out[name] = -_flat(grad)
        return out

    keys = jax.random.split(jax.random.key(3), M)
    estimates = jax.jit(jax.vmap(one))(keys)
    return Setup(params, ref_params, grads, estimates, prob)


def _estimates(setup, name: str) -> np.ndarray:
    return np.asarray(setup.estimates[name], np.float64)


def _z(samples: np.ndarray, target: np.ndarray, u: np.ndarray) -> float:
    proj = samples @ u
    se = proj.std(ddof=1) / np.sqrt(len(proj))
    return float((proj.mean() - target @ u) / se)


def _split_z(samples, target, orthogonal_to=None) -> float:
    half = len(samples) // 2
    d = samples[:half].mean(axis=0) - target
    if orthogonal_to is not None:
        v = orthogonal_to / np.linalg.norm(orthogonal_to)
        d = d - (d @ v) * v
    return _z(samples[half:], target, d / np.linalg.norm(d))


def _assert_unbiased(samples, target):
    rng = np.random.default_rng(0)
    directions = [target / np.linalg.norm(target)]
    for _ in range(3):
        u = rng.normal(size=target.shape)
        directions.append(u / np.linalg.norm(u))
    zs = [_z(samples, target, u) for u in directions]
    zs.append(_split_z(samples, target))
    assert max(abs(z) for z in zs) < Z_OK, zs


def test_enumeration_covers_every_response(setup):
    prob = setup.prob
    np.testing.assert_allclose(jnp.sum(prob, axis=1), 1.0, rtol=1e-5)


def test_sampler_response_frequencies_match_enumeration(setup):
    """Chi-square over the 15 responses of each prompt: 2 x 14 = 28 degrees of
    freedom; the 1e-4 upper quantile of chi2(28) is 66.6, the bound used (every
    expected count is > 20, well above the usual 5 for the approximation)."""
    params, prob = setup.params, setup.prob
    n = 8192
    prompts = jnp.repeat(PROMPTS, n, axis=0)
    samples = jax.jit(
        lambda k: sampling.sample(k, params, CFG, prompts, R, eos_id=EOS, pad_id=PAD)
    )(jax.random.key(4))
    got = np.asarray(samples.responses)
    index = (got[:, None, :] == RESPONSES[None]).all(axis=2)
    assert (index.sum(axis=1) == 1).all()  # every sample is a canonical response
    np.testing.assert_array_equal(np.asarray(samples.mask), MASKS[index.argmax(1)])
    counts = index.reshape(P, n, -1).sum(axis=1)
    expected = np.asarray(prob, np.float64) * n
    assert expected.min() > 20
    chi2 = float(np.sum((counts - expected) ** 2 / expected))
    assert chi2 < 66.6, chi2


@pytest.mark.parametrize(
    ("name", "scale"),
    [
        ("reinforce", 1.0),
        ("rloo", 1.0),
        # Self-included means shrink the estimator by exactly (n - 1) / n.
        ("dr_grpo", G / (G - 1)),
        ("reinforce_mean", P * G / (P * G - 1)),
        # Dr. GRPO's constant normaliser C: an unbiased estimate of grad J / C.
        ("rloo_constant_R", R),
    ],
)
def test_unbiased_estimators_match_exact_gradient(setup, name, scale):
    _assert_unbiased(_estimates(setup, name) * scale, setup.grads["J"])


@pytest.mark.parametrize("name", ["grpo", "rloo_seq_mean"])
def test_biased_estimators_are_biased_in_direction(setup, name):
    """Biased in *direction*, not only in scale: the error is measured
    orthogonally to grad J, so no constant step size could absorb it."""
    target = setup.grads["J"]
    z = _split_z(_estimates(setup, name), target, orthogonal_to=target)
    assert z > Z_BIAS, z


def test_reinforce_pp_is_biased(setup):
    """REINFORCE++'s batch std is a random step size correlated with the
    samples: biased, though mostly along grad J here (orthogonal z ~ 5)."""
    target = setup.grads["J"]
    z = _split_z(_estimates(setup, "reinforce_pp"), target)
    assert z > Z_BIAS, z


# (placement, estimator) -> which exact gradient the estimator follows:
# d/dtheta of (J - beta * X) with X one of the exact quantities ("0": none).
FOLLOWS = {
    ("reward", "k1"): "KL",
    ("loss", "k1"): "0",
    ("loss", "k2"): "T2",
    ("loss", "k3"): "T3",
}


@pytest.mark.parametrize(("placement", "estimator"), list(FOLLOWS))
def test_kl_placement_follows_its_stated_gradient(setup, placement, estimator):
    grads = setup.grads
    follows = FOLLOWS[(placement, estimator)]
    target = grads["J"] - BETA * (0.0 if follows == "0" else grads[follows])
    _assert_unbiased(_estimates(setup, f"kl_{placement}_{estimator}"), target)


@pytest.mark.parametrize(
    ("placement", "estimator"),
    [("reward", "k2"), ("reward", "k3"), ("loss", "k1"), ("loss", "k2"),
     ("loss", "k3")],
)  # fmt: skip
def test_kl_placements_that_miss_the_sequence_kl_gradient(setup, placement, estimator):
    """Only k1 in the reward estimates grad (J - beta KL) of the whole sequence."""
    target = setup.grads["J"] - BETA * setup.grads["KL"]
    z = _split_z(_estimates(setup, f"kl_{placement}_{estimator}"), target)
    assert z > Z_BIAS, z


# --- A user model (a bigram table given as plain functions) and the
# practitioners' options, by the same enumeration.

BIGRAM = token_models.bigram(3, CFG.max_len)
OVERLONG = (2, 1.0)  # (buffer L_b, penalty c)
USER_CONFIGS = {
    "reinforce": _config(advantage="reinforce"),
    "rloo": _config(advantage="rloo"),
    # Clip-higher and dual clip on the first (on-policy) epoch.
    "rloo_clip_higher_dual": _config(
        advantage="rloo", clip_eps=0.2, clip_eps_high=0.28, dual_clip=3.0
    ),
    "reinforce_seq_mean": _config(advantage="reinforce", aggregation="seq_mean"),
    "gspo": _config(
        advantage="reinforce",
        aggregation="seq_mean",
        importance_ratio="sequence",
        clip_eps=3e-4,
        clip_eps_high=4e-4,
    ),
    "mask_truncated": _config(advantage="reinforce", mask_truncated=True),
    # DAPO's soft overlong penalty: a reward change.
    "overlong": _config(
        advantage="reinforce", overlong_buffer=OVERLONG[0], overlong_penalty=OVERLONG[1]
    ),
    # Reward scaling by the batch std (TRL's scale_rewards="batch").
    "grpo_batch": _config(advantage="grpo_batch"),
}
# Dynamic sampling on one prompt (P = 1): K groups drawn, the first whose
# rewards are not all equal kept.
K, G_DS = 3, 2
ONE_PROMPT = dataclasses.replace(
    TASK, sample_prompts=lambda key, n: jnp.tile(PROMPTS[1:], (n, 1))
)
DYNAMIC = {
    "plain": _config(num_prompts=1, group_size=G_DS, advantage="rloo"),
    "dynamic": _config(
        num_prompts=1, group_size=G_DS, advantage="rloo", dynamic_sampling=K
    ),
}


@pytest.fixture(scope="module")
def user_setup():
    """As :func:`setup`, for the bigram model: exact gradients (the
    one-prompt J of prompt 1 too) and ``[M, D]`` samples of each option."""
    init = jax.jit(BIGRAM.init)  # one program, not eager ops
    params = init(jax.random.key(1))
    ref_params = init(jax.random.key(2))

    def exact(p):
        return _exact(p, ref_params, BIGRAM)

    def one_prompt_j(p):  # J of prompt 1 alone
        prob = exact(p)["prob"][1]
        prompts, responses, masks = _all_pairs()
        return jnp.sum(prob * _reward(prompts, responses, masks)[len(RESPONSES) :])

    @jax.jit
    def exact_grads(p):  # one program for every exact gradient, and prob1
        grads = {
            name: _flat(jax.grad(lambda q, n=name: exact(q)[n])(p))
            for name in ("J", "J_len", "J_done", "J_long")
        }
        grads["J1"] = jax.grad(one_prompt_j)(p)["table"].ravel()
        return grads, exact(p)["prob"][1]

    grads, prob1 = exact_grads(params)
    grads = {k: np.asarray(v, np.float64) for k, v in grads.items()}
    prob1 = np.asarray(prob1, np.float64)

    def one(key):
        ro = rl.rollout(key, params, ref_params, TASK, BIGRAM, USER_CONFIGS["rloo"])
        out = {}
        for name, cfg in USER_CONFIGS.items():
            grad, _ = jax.grad(rl.loss_fn, has_aux=True)(
                params, rl.score(ro, cfg), BIGRAM, cfg
            )
            out[name] = -_flat(grad)
        for name, cfg in DYNAMIC.items():
            ro = rl.rollout(key, params, ref_params, ONE_PROMPT, BIGRAM, cfg)
            grad, _ = jax.grad(rl.loss_fn, has_aux=True)(
                params, rl.score(ro, cfg), BIGRAM, cfg
            )
            out[name] = -_flat(grad)
        return out

    keys = jax.random.split(jax.random.key(5), M)
    estimates = jax.jit(jax.vmap(one))(keys)
    estimates = {k: np.asarray(v, np.float64) for k, v in estimates.items()}
    return grads, estimates, prob1


@pytest.mark.parametrize("name", ["reinforce", "rloo"])
def test_user_model_estimators_match_exact_gradient(user_setup, name):
    """The protocol's user model passes the unbiasedness test of jaxpg's own."""
    grads, estimates, _ = user_setup
    _assert_unbiased(estimates[name], grads["J"])


def test_clip_higher_and_dual_clip_leave_the_first_epoch_unchanged(user_setup):
    """At rho = 1 every clip range holds 1: sample for sample the gradient is
    RLOO's (float rounding), hence unbiased for grad J."""
    _, estimates, _ = user_setup
    np.testing.assert_allclose(
        estimates["rloo_clip_higher_dual"], estimates["rloo"], atol=1e-6
    )


def test_gspo_first_epoch_follows_the_length_normalised_reward(user_setup):
    """GSPO's sequence ratio at s = 1 weighs each token by ``A / |y|``: the
    token-ratio seq_mean gradient sample for sample, which with ``A = r``
    estimates grad E[r / |y|] (not grad J: z > 8 along the bias)."""
    grads, estimates, _ = user_setup
    np.testing.assert_allclose(
        estimates["gspo"], estimates["reinforce_seq_mean"], atol=1e-6
    )
    _assert_unbiased(estimates["gspo"], grads["J_len"])
    assert _split_z(estimates["gspo"], grads["J"]) > Z_BIAS


def test_truncation_mask_follows_the_reward_zeroed_on_truncation(user_setup):
    """Dropping responses without EOS from the loss (A = r) estimates the
    gradient of J with the truncated responses' reward set to 0."""
    grads, estimates, _ = user_setup
    _assert_unbiased(estimates["mask_truncated"], grads["J_done"])
    assert _split_z(estimates["mask_truncated"], grads["J"]) > Z_BIAS


def test_dynamic_sampling_scales_the_gradient_by_its_keep_rate(user_setup):
    """One prompt, RLOO: a group whose rewards are all equal (probability
    ``q = sum_v P(r = v)^G``, G = 2 here) gives exactly 0, so keeping the first of ``K``
    informative groups estimates ``(1 - q^K) / (1 - q) grad J``: the same
    direction, a larger step (no bias between prompts with one prompt)."""
    grads, estimates, prob1 = user_setup
    prompts, responses, masks = _all_pairs()
    reward = np.asarray(_reward(prompts, responses, masks))[len(RESPONSES) :]
    q = sum(prob1[reward == v].sum() ** G_DS for v in np.unique(reward))
    assert 0.05 < q < 0.95, q  # both kinds of group occur
    _assert_unbiased(estimates["plain"], grads["J1"])
    _assert_unbiased(estimates["dynamic"] * (1 - q) / (1 - q**K), grads["J1"])
    assert _split_z(estimates["dynamic"], grads["J1"]) > Z_BIAS


def test_overlong_penalty_follows_the_shaped_reward(user_setup):
    """The soft overlong penalty is added to the reward: the estimator (A = r)
    follows grad J of the shaped reward, not of the task's reward."""
    grads, estimates, _ = user_setup
    _assert_unbiased(estimates["overlong"], grads["J_long"])
    assert _split_z(estimates["overlong"], grads["J"]) > Z_BIAS


def test_batch_std_scaling_is_biased_mostly_in_scale(user_setup):
    """Dividing by the batch's reward std (a random step size correlated with
    the samples) is biased for grad J (z ~ 220 here), mostly in scale: the
    mean is about 0.34 grad J, and orthogonally to grad J the split z (~ 4.9)
    stays below the bias threshold (one std for all prompts: no per-prompt
    reweighting, unlike ``grpo``)."""
    grads, estimates, _ = user_setup
    target = grads["J"]
    assert _split_z(estimates["grpo_batch"], target) > Z_BIAS
    orthogonal = _split_z(estimates["grpo_batch"], target, orthogonal_to=target)
    assert orthogonal < Z_BIAS, orthogonal
    scale = estimates["grpo_batch"].mean(axis=0) @ target / (target @ target)
    assert 0.2 < scale < 0.5, scale
