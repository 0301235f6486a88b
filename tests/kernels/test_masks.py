r"""Action masks and the factorised categorical
(:func:`jaxpg.kernels.distributions.masked_logits`,
:class:`~jaxpg.kernels.distributions.MultiCategorical`).

A masked categorical is the renormalised distribution over the legal actions:
log-probabilities and entropy against NumPy, sampling never illegal, the
gradient flowing only through legal logits (and equal to that of the legal
logits alone), and a state with no legal action finite (the unmasked
distribution, the documented fallback).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg.kernels.distributions import (
    MASKED_LOGIT,
    Categorical,
    MultiCategorical,
    masked_logits,
)

TOL = {"rtol": 1e-5, "atol": 1e-6}


def _case(seed=0, n=64, a=6):
    rng = np.random.default_rng(seed)
    logits = rng.normal(0.0, 3.0, (n, a)).astype(np.float32)
    mask = rng.random((n, a)) < 0.5
    mask[np.arange(n), rng.integers(0, a, n)] = True  # one legal action at least
    return logits, mask


def np_masked(logits, mask):
    """log π over the legal actions (renormalised), -inf elsewhere."""
    z = np.where(mask, logits, -np.inf).astype(np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def test_log_prob_and_entropy_are_the_renormalised_legal_distribution():
    logits, mask = _case()
    dist = Categorical(masked_logits(jnp.asarray(logits), jnp.asarray(mask)))
    want = np_masked(logits, mask)
    for a in range(logits.shape[1]):
        legal = mask[:, a]
        got = dist.log_prob(jnp.full((len(logits),), a))
        np.testing.assert_allclose(np.asarray(got)[legal], want[legal, a], **TOL)
        assert (np.exp(np.asarray(got)[~legal]) == 0.0).all()
    safe = np.where(mask, want, 0.0)  # -inf only where p = 0
    ent = -np.sum(np.exp(safe) * safe * mask, -1)
    np.testing.assert_allclose(dist.entropy(), ent, **TOL)
    # The mode is the most likely *legal* action.
    np.testing.assert_array_equal(dist.mode(), np.argmax(want, -1))


def test_sampling_never_takes_an_illegal_action():
    # Illegal actions get strongly *preferred* logits: a mask that leaked
    # anything would show at once over 64 x 2000 draws.
    logits, mask = _case(seed=1)
    logits = np.where(mask, logits, logits + 20.0)
    dist = Categorical(masked_logits(jnp.asarray(logits), jnp.asarray(mask)))
    keys = jax.random.split(jax.random.key(0), 2000)
    draws = np.asarray(jax.vmap(dist.sample)(keys))  # [2000, 64]
    assert mask[np.arange(64)[None], draws].all()


def test_the_gradient_flows_only_through_legal_logits():
    logits, mask = _case(seed=2, n=16)
    actions = np.array([np.flatnonzero(m)[0] for m in mask])

    def loss(x):
        d = Categorical(masked_logits(x, jnp.asarray(mask)))
        return jnp.sum(d.log_prob(jnp.asarray(actions)) + 0.3 * d.entropy())

    g = np.asarray(jax.grad(loss)(jnp.asarray(logits)))
    assert (g[~mask] == 0.0).all() and np.isfinite(g).all()
    # On the legal logits it is the analytic gradient of the renormalised
    # distribution: d log p_a = e_a - p, dH = -p (log p + H).
    logp = np_masked(logits, mask)
    p = np.exp(logp)
    safe = np.where(mask, logp, 0.0)
    ent = -np.sum(p * safe, -1, keepdims=True)
    onehot = np.eye(logits.shape[1])[actions]
    want = onehot - p - 0.3 * p * (safe + ent)
    np.testing.assert_allclose(g[mask], want[mask], **TOL)


def test_no_legal_action_falls_back_to_the_unmasked_distribution():
    logits = jnp.asarray([[0.3, -1.0, 2.0], [1.0, 2.0, 3.0]])
    mask = jnp.asarray([[False, False, False], [True, False, True]])
    dist = Categorical(masked_logits(logits, mask))
    np.testing.assert_array_equal(dist.logits[0], logits[0])
    assert dist.logits[1, 1] == jnp.float32(MASKED_LOGIT)
    values = [dist.entropy(), dist.log_prob(jnp.asarray([1, 0]))]
    g = jax.grad(lambda x: Categorical(masked_logits(x, mask)).entropy().sum())(logits)
    assert all(np.isfinite(v).all() for v in [*values, g])
    np.testing.assert_allclose(dist.entropy()[0], Categorical(logits[0]).entropy())


def test_a_mask_of_another_shape_is_refused():
    with pytest.raises(ValueError, match=r"mask has shape \(3,\).*\(2, 3\)"):
        masked_logits(jnp.zeros((2, 3)), jnp.ones((3,), bool))


def test_multicategorical_is_the_product_of_its_masked_factors():
    rng = np.random.default_rng(3)
    nvec = (2, 3, 4)
    logits = rng.normal(size=(32, 9)).astype(np.float32)
    mask = rng.random((32, 9)) < 0.6
    mask[:, [0, 2, 5]] = True  # a legal action in every factor ...
    mask[:4, 2:5] = False  # ... but the second of rows 0-3, which falls back
    bounds = [(0, 2), (2, 5), (5, 9)]
    # A factor with no legal action: its unmasked policy, on its own.
    refs = [
        np_masked(logits[:, lo:hi], mask[:, lo:hi] | ~mask[:, lo:hi].any(-1)[:, None])
        for lo, hi in bounds
    ]
    action = np.stack([np.argmax(r, -1) for r in refs], -1)
    want = sum(r[np.arange(32), a] for r, a in zip(refs, action.T, strict=True))

    @jax.jit
    def stats(logits, mask, action):
        dist = MultiCategorical.from_logits(logits, nvec, mask)
        keys = jax.random.split(jax.random.key(1), 500)
        draws = jax.vmap(dist.sample)(keys)
        return dist.log_prob(action), dist.entropy(), dist.mode(), draws

    logp, entropy, mode, draws = stats(logits, mask, action)
    np.testing.assert_allclose(logp, want, **TOL)
    ent = sum(
        -np.sum(
            np.exp(np.nan_to_num(r, neginf=0.0))
            * np.nan_to_num(r, neginf=0.0)
            * np.isfinite(r),
            -1,
        )
        for r in refs
    )
    np.testing.assert_allclose(entropy, ent, **TOL)
    np.testing.assert_array_equal(mode, action)
    draws = np.asarray(draws)
    assert draws.shape == (500, 32, 3) and draws.dtype == np.int32
    offsets = np.asarray([0, 2, 5])
    # Draws are legal, and where a factor has no legal action they spread
    # over all of its actions (its unmasked policy; all three drawn here).
    fallback = mask.copy()
    fallback[:4, 2:5] = True
    assert fallback[np.arange(32)[None, :, None], draws + offsets].all()
    assert mask[np.arange(4, 32)[None, :, None], draws[:, 4:] + offsets].all()
    assert set(np.unique(draws[:, :4, 1])) == {0, 1, 2}
