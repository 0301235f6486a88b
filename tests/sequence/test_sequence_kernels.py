"""Kernels of jaxpg.sequence: group advantages, aggregations, surrogate terms,
KL, tasks' ground truth and rewards, the reward-hacking flag, configs."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.sequence import estimators as est
from jaxpg.sequence import rl, tasks
from jaxpg.sequence.tasks import EOS, PAD, digit


def _np_advantages(r: np.ndarray, kind: str) -> np.ndarray:
    """Loop-based NumPy reference of every advantage formula."""
    p, g = r.shape
    out = np.zeros_like(r)
    for i in range(p):
        for j in range(g):
            others = [r[i, k] for k in range(g) if k != j]
            if kind == "reinforce":
                out[i, j] = r[i, j]
            elif kind == "reinforce_mean":
                out[i, j] = r[i, j] - r.mean()
            elif kind == "rloo":
                out[i, j] = r[i, j] - np.mean(others)
            elif kind == "dr_grpo":
                out[i, j] = r[i, j] - r[i].mean()
            elif kind == "grpo":
                out[i, j] = (r[i, j] - r[i].mean()) / (r[i].std(ddof=1) + 1e-4)
            elif kind == "reinforce_pp":
                out[i, j] = (r[i, j] - r.mean()) / (r.std() + 1e-4)
            elif kind == "grpo_batch":
                out[i, j] = (r[i, j] - r[i].mean()) / (r.std(ddof=1) + 1e-4)
    return out


def test_group_advantages_hand_worked():
    r = jnp.array([[1.0, 0.0, 0.0, 1.0]])
    # mean 0.5; sample std sqrt(4 * 0.25 / 3) = 0.57735; RLOO: 1 - 1/3, 0 - 2/3.
    np.testing.assert_allclose(
        est.group_advantages(r, "grpo"), [[0.866, -0.866, -0.866, 0.866]], atol=1e-3
    )
    np.testing.assert_allclose(
        est.group_advantages(r, "rloo"), [[2 / 3, -2 / 3, -2 / 3, 2 / 3]], rtol=1e-6
    )
    np.testing.assert_allclose(
        est.group_advantages(r, "dr_grpo"), [[0.5, -0.5, -0.5, 0.5]], rtol=1e-6
    )


@pytest.mark.parametrize("kind", est.ADVANTAGES)
@pytest.mark.parametrize("shape", [(1, 2), (3, 4), (5, 7)])
def test_group_advantages_match_numpy(kind, shape):
    r = np.random.default_rng(sum(shape)).normal(size=shape).astype(np.float32)
    np.testing.assert_allclose(
        est.group_advantages(jnp.asarray(r), kind),
        _np_advantages(r.astype(np.float64), kind),
        rtol=1e-4,
        atol=1e-5,
    )


@pytest.mark.parametrize("kind", est.ADVANTAGES)
def test_equal_rewards_give_exactly_zero_centred_advantages(kind):
    r = jnp.full((3, 4), 0.7)
    adv = est.group_advantages(r, kind)
    expected = r if kind == "reinforce" else jnp.zeros_like(r)
    np.testing.assert_array_equal(adv, expected)


def test_dr_grpo_is_rloo_scaled_by_g_minus_one_over_g():
    r = jax.random.normal(jax.random.key(0), (4, 5))
    np.testing.assert_allclose(
        est.group_advantages(r, "dr_grpo"),
        est.group_advantages(r, "rloo") * 4 / 5,
        rtol=1e-5,
        atol=1e-6,
    )


def test_group_advantages_reject_bad_input():
    with pytest.raises(ValueError, match=r"rloo.*G=1"):
        est.group_advantages(jnp.ones((2, 1)), "rloo")
    with pytest.raises(ValueError, match="advantage='nope'"):
        est.group_advantages(jnp.ones((2, 2)), "nope")


def test_aggregations_hand_worked_and_numpy():
    terms = jnp.array([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
    mask = jnp.array([[1.0, 1.0, 0.0], [1.0, 0.0, 0.0]])
    # seq_mean: ((1+2)/2 + 4/1) / 2 = 2.75; token_mean: 7/3; constant C=3: 7/6.
    np.testing.assert_allclose(est.aggregate(terms, mask, "seq_mean"), 2.75)
    np.testing.assert_allclose(est.aggregate(terms, mask, "token_mean"), 7 / 3)
    np.testing.assert_allclose(est.aggregate(terms, mask, "constant", 3.0), 7 / 6)
    rng = np.random.default_rng(1)
    x = rng.normal(size=(6, 5)).astype(np.float32)
    m = (rng.uniform(size=(6, 5)) < 0.6).astype(np.float32)
    m[:, 0] = 1.0
    seq = np.mean([(x[i] * m[i]).sum() / m[i].sum() for i in range(6)])
    np.testing.assert_allclose(est.aggregate(x, m, "seq_mean"), seq, rtol=1e-5)
    tok = (x * m).sum() / m.sum()
    np.testing.assert_allclose(est.aggregate(x, m, "token_mean"), tok, rtol=1e-5)
    with pytest.raises(ValueError, match="aggregation='x'"):
        est.aggregate(x, m, "x")


def test_surrogate_gradient_is_reinforce_at_ratio_one():
    logits = jax.random.normal(jax.random.key(0), (3, 4, 5))
    tokens = jnp.array([[0, 1, 2, 3], [4, 4, 0, 1], [2, 2, 2, 2]])
    adv = jnp.array([[1.0] * 4, [-2.0] * 4, [0.5] * 4])

    def logp(lg):
        return jnp.take_along_axis(jax.nn.log_softmax(lg), tokens[..., None], axis=-1)[
            ..., 0
        ]

    old = jax.lax.stop_gradient(logp(logits))
    for clip in (None, 0.2):
        got = jax.grad(
            lambda lg, c=clip: est.surrogate_terms(logp(lg), old, adv, c)[0].sum()
        )(logits)
        want = jax.grad(lambda lg: -(logp(lg) * adv).sum())(logits)
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_surrogate_clipping_hand_worked():
    # ratio e^{0.5} = 1.65 > 1.2 with A = 1: clipped, term -1.2, zero gradient.
    lp, old, a = jnp.array([[0.5]]), jnp.array([[0.0]]), jnp.array([[1.0]])
    terms, clipped = est.surrogate_terms(lp, old, a, 0.2)
    np.testing.assert_allclose(terms, [[-1.2]], rtol=1e-6)
    np.testing.assert_array_equal(clipped, [[1.0]])
    g = jax.grad(lambda x: est.surrogate_terms(x, old, a, 0.2)[0].sum())(lp)
    np.testing.assert_array_equal(g, [[0.0]])
    # Same ratio with A = -1: unclipped (the pessimistic min keeps rho A).
    terms, clipped = est.surrogate_terms(lp, old, -a, 0.2)
    np.testing.assert_allclose(terms, [[np.exp(0.5)]], rtol=1e-6)
    np.testing.assert_array_equal(clipped, [[0.0]])


def test_exact_kl_matches_numpy_and_is_zero_on_equal_policies():
    rng = np.random.default_rng(2)
    a = rng.normal(size=(2, 3, 4)).astype(np.float32)
    b = rng.normal(size=(2, 3, 4)).astype(np.float32)
    pa = np.exp(a) / np.exp(a).sum(-1, keepdims=True)
    pb = np.exp(b) / np.exp(b).sum(-1, keepdims=True)
    want = (pa * (np.log(pa) - np.log(pb))).sum(-1)
    np.testing.assert_allclose(est.exact_kl(a, b), want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(est.exact_kl(a, a), 0.0, atol=1e-6)
    ent = -(pa * np.log(pa)).sum(-1)
    np.testing.assert_allclose(est.entropy(a), ent, rtol=1e-5)


def test_kl_shaped_rewards_and_estimators():
    logp = jnp.log(jnp.array([[0.5, 0.25]]))
    ref = jnp.log(jnp.array([[0.25, 0.25]]))
    mask = jnp.array([[1.0, 1.0]])
    # k1 = log pi - log ref = [log 2, 0]; shaped = 1 - 0.5 log 2.
    k1 = est.kl_tokens(logp, ref, "k1")
    np.testing.assert_allclose(k1, [[np.log(2), 0.0]], rtol=1e-6)
    np.testing.assert_allclose(
        est.kl_shaped_rewards(jnp.array([1.0]), k1, mask, 0.5),
        [1 - 0.5 * np.log(2)],
        rtol=1e-6,
    )
    # k3 = (r - 1) - log r with r = ref / pi = 1/2: -0.5 + log 2.
    np.testing.assert_allclose(
        est.kl_tokens(logp, ref, "k3")[0, 0], np.log(2) - 0.5, rtol=1e-6
    )
    with pytest.raises(ValueError, match="kl_estimator='k4'"):
        est.kl_tokens(logp, ref, "k4")


def test_sort_task_ground_truth_and_rewards():
    task = tasks.sort_task(3, max_new_tokens=5, reward="partial")
    prompts = jnp.array([[digit(3), digit(1), digit(2), tasks.EQ]])
    np.testing.assert_array_equal(
        task.answers(prompts), [[digit(1), digit(2), digit(3), EOS]]
    )
    right = jnp.array([[digit(1), digit(2), digit(3), EOS, PAD]])
    half = jnp.array([[digit(1), digit(2), digit(9), digit(9), EOS]])
    mask = jnp.ones((1, 5))
    assert float(task.accuracy(prompts, right, mask)[0]) == 1.0
    assert float(task.accuracy(prompts, half, mask)[0]) == 0.0
    assert float(task.reward(prompts, half, mask)[0]) == 0.5  # 2 of 4 positions
    exact = tasks.sort_task(3, max_new_tokens=5)  # the default reward
    assert float(exact.reward(prompts, half, mask)[0]) == 0.0
    with pytest.raises(ValueError, match="reward='close'"):
        tasks.sort_task(reward="close")


def test_add_task_ground_truth():
    task = tasks.add_task(2)
    assert tasks.add_task().prompt_len == 4  # default: one-digit operands
    # 47 + 85 = 132.
    prompts = jnp.array(
        [[digit(4), digit(7), tasks.PLUS, digit(8), digit(5), tasks.EQ]]
    )
    np.testing.assert_array_equal(
        task.answers(prompts), [[digit(1), digit(3), digit(2), EOS]]
    )
    sampled = task.sample_prompts(jax.random.key(0), 64)
    assert sampled.shape == (64, 6)
    answers = np.asarray(task.answers(sampled)) - 2
    a = (np.asarray(sampled[:, 0]) - 2) * 10 + np.asarray(sampled[:, 1]) - 2
    b = (np.asarray(sampled[:, 3]) - 2) * 10 + np.asarray(sampled[:, 4]) - 2
    np.testing.assert_array_equal(answers[:, :3] @ np.array([100, 10, 1]), a + b)


def test_add_task_is_exact_past_the_int32_range():
    """12-digit operands: sums up to 2e12, beyond int32; checked against
    Python's integers."""
    n = 12
    task = tasks.add_task(n)
    sampled = np.asarray(task.sample_prompts(jax.random.key(1), 32))
    got = np.asarray(task.answers(jnp.asarray(sampled)))
    for row, answer in zip(sampled, got, strict=True):
        a = int("".join(str(d - 2) for d in row[:n]))
        b = int("".join(str(d - 2) for d in row[n + 1 : 2 * n + 1]))
        want = [int(c) + 2 for c in str(a + b).zfill(n + 1)] + [EOS]
        assert answer.tolist() == want, (a, b)


def test_proxy_task_pays_for_length_true_reward_does_not():
    task = tasks.sort_proxy_task(3, length_bonus=0.2)
    prompts = jnp.array([[digit(3), digit(1), digit(2), tasks.EQ]])
    honest = jnp.array([[digit(1), digit(2), digit(3), EOS] + [PAD] * 3])
    long = jnp.array([[digit(1), digit(2), digit(3)] + [digit(9)] * 4])
    m_honest = jnp.array([[1.0] * 4 + [0.0] * 3])
    m_long = jnp.ones((1, 7))
    assert float(task.reward(prompts, long, m_long)[0]) > float(
        task.reward(prompts, honest, m_honest)[0]
    )
    assert float(task.true_reward(prompts, long, m_long)[0]) == 0.0
    assert float(task.true_reward(prompts, honest, m_honest)[0]) == 1.0


def test_user_reward_fn_and_bad_task_names():
    def count_nines(prompts, responses, mask):
        return jnp.sum((responses == digit(9)) * mask, axis=1)

    task = tasks.with_reward(tasks.sort_task(), count_nines, proxy=True)
    assert task.has_proxy and task.reward is count_nines
    with pytest.raises(TypeError, match="not callable"):
        tasks.with_reward(task, 3)
    with pytest.raises(ValueError, match="task='nope'"):
        tasks.make_task("nope")


def test_reward_hacking_flag_hand_worked():
    true = np.array([1.0, 1.0, 1.0, 1.0, 0.5, 0.5])
    proxy = np.array([1.0, 1.0, 1.0, 1.0, 2.0, 2.0])
    # window 2: at u=5, recent (u=4,5) vs before (u=2,3): proxy +1, true -0.5.
    flag = rl.reward_hacking_flag(true, proxy, window=2)
    np.testing.assert_array_equal(flag, [False, False, False, False, True, True])
    assert not rl.reward_hacking_flag(proxy, proxy, window=2).any()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        (dict(advantage="ppo"), "advantage='ppo'"),
        (dict(aggregation="sum"), "aggregation='sum'"),
        (dict(kl_placement="both"), "kl_placement='both'"),
        (dict(advantage="rloo", group_size=1), "group_size >= 2"),
        (dict(epochs=2, clip_eps=None), "clip_eps"),
        (dict(num_prompts=0), "num_prompts=0"),
        (dict(beta=-1.0), "beta=-1.0"),
    ],
)
def test_rl_config_rejects_bad_settings(kwargs, match):
    with pytest.raises(ValueError, match=match):
        rl.RLConfig(**kwargs)
