"""The RL driver: K updates in one compiled scan are K single updates."""

from __future__ import annotations

import jax
import numpy as np
import optax
import pytest
from tiny_sequence import task_and_model

from jaxpg.sequence import model, rl

K = 3


def _small_rl():
    """``(rl_cfg, algo, reference params)`` of :func:`task_and_model`."""
    task, cfg = task_and_model()
    rl_cfg = rl.RLConfig(num_prompts=2, group_size=3, lr=1e-2, beta=0.1)
    ref = jax.jit(model.init, static_argnums=1)(jax.random.key(0), cfg)
    return rl_cfg, rl.make_rl(task, cfg, rl_cfg), ref


def test_run_updates_equals_single_updates_in_a_loop():
    """``run_updates(algo, state, ref, K)`` (one ``lax.scan``, one call) against
    ``algo.update`` called K times from Python: the same keys and step count,
    the same draws (rewards and accuracies exactly), parameters and the other
    metrics equal up to float rounding (two separately compiled programs)."""
    _, algo, ref = _small_rl()
    state = jax.jit(algo.init)(jax.random.key(1), ref)

    scanned, stacked = jax.jit(rl.run_updates, static_argnums=(0, 3))(
        algo, state, ref, K
    )
    update = jax.jit(algo.update)
    looped, per_update = state, []
    for _ in range(K):
        looped, metrics = update(looped, ref)
        per_update.append(metrics)

    assert int(scanned.step) == int(looped.step) == K
    np.testing.assert_array_equal(
        jax.random.key_data(scanned.key), jax.random.key_data(looped.key)
    )
    for name, values in stacked.items():
        assert values.shape == (K,), name
        want = np.array([m[name] for m in per_update])
        if name in ("reward", "true_reward", "accuracy", "response_length"):
            np.testing.assert_array_equal(values, want, err_msg=name)
        else:
            np.testing.assert_allclose(values, want, rtol=1e-5, atol=1e-6, err_msg=name)
    for a, b in zip(
        jax.tree.leaves(scanned.params), jax.tree.leaves(looped.params), strict=True
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="num_updates=0"):
        rl.run_updates(algo, state, ref, 0)


def test_a_diverging_seed_is_rejected_by_the_guard_and_the_others_unaffected():
    """Two seeds in one vmapped program, the second with a NaN learning rate:
    its every step is rejected (``nonfinite`` = 1, parameters and optimizer
    state kept bit for bit), and the first seed ends bit for bit as in the same
    program with a finite second learning rate: nothing of the diverging seed
    reaches it.

    (Not compared with the seed's own unbatched program: where the true
    gradient is zero, as on a batch whose groups all score alike, Adam turns
    the rounding noise of either program into a full step of size ``lr``, so
    the two runs part by ``lr`` without anything being wrong.)"""
    rl_cfg, algo, ref = _small_rl()
    keys = jax.random.split(jax.random.key(1), 2)
    states = jax.vmap(algo.init, in_axes=(0, None))(keys, ref)
    good = rl_cfg.hyperparams()
    hyper = jax.tree.map(lambda x: np.stack([x, x]), good)

    def two(state, hp):
        for _ in range(2):
            state, m = algo.update(state, ref, hp)
        return state, m

    program = jax.jit(jax.vmap(two))
    lrs = {"nan": [rl_cfg.lr, np.nan], "finite": [rl_cfg.lr, 2 * rl_cfg.lr]}
    runs = {
        name: program(states, hyper._replace(lr=np.array(lr, np.float32)))
        for name, lr in lrs.items()
    }
    out, metrics = runs["nan"]
    assert metrics["nonfinite"].tolist() == [0.0, 1.0]
    assert runs["finite"][1]["nonfinite"].tolist() == [0.0, 0.0]
    diverged = jax.tree.map(lambda x: x[1], (out.params, out.opt_state))
    initial = jax.tree.map(lambda x: x[1], (states.params, states.opt_state))
    for a, b in zip(jax.tree.leaves(diverged), jax.tree.leaves(initial), strict=True):
        np.testing.assert_array_equal(a, b)
    first = [jax.tree.map(lambda x: x[0], run) for run in runs.values()]
    first = [jax.tree.leaves(run) for run in first]
    for a, b in zip(*first, strict=True):
        if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key):
            a, b = jax.random.key_data(a), jax.random.key_data(b)
        np.testing.assert_array_equal(a, b)


def test_injected_learning_rate_update_equals_the_former_manual_scaling():
    """The default optimizer is the gymnax side's injected-learning-rate Adam
    (``jaxpg.algorithms.base.injected_adam``). One update with it, at the
    config's rate and at a traced ``hyper.lr`` that differs from the one the
    state was initialised with, against the former formula written out:
    ``params - lr * adam(clip(grads))`` with optax's Adam (``eps=1e-8``) on the
    same batch. Both sides run in one compiled program; the rate enters as
    ``(-1 * lr) * u`` against ``-lr * u`` (the same float32 number), so the
    parameters agree bit for bit."""
    rl_cfg, algo, ref = _small_rl()
    state = jax.jit(algo.init)(jax.random.key(1), ref)
    task, cfg = task_and_model()
    former = optax.chain(
        optax.clip_by_global_norm(rl_cfg.max_grad_norm), optax.scale_by_adam()
    )

    def both(state, hyper):
        new, _ = algo.update(state, ref, hyper)
        _, batch_key = jax.random.split(state.key)
        ro = rl.rollout(batch_key, state.params, ref, task, cfg, rl_cfg)
        batch = rl.score(ro, rl_cfg, hyper.beta)
        grads = jax.grad(lambda p: rl.loss_fn(p, batch, cfg, rl_cfg, hyper.beta)[0])(
            state.params
        )
        u, _ = former.update(grads, former.init(state.params), state.params)
        want = jax.tree.map(lambda p, g: p + -hyper.lr * g, state.params, u)
        return new, want

    both = jax.jit(both)
    for lr in (rl_cfg.lr, 3e-3):
        hyper = rl_cfg.hyperparams()._replace(lr=np.float32(lr))
        new, want = both(state, hyper)
        assert float(new.opt_state.hyperparams["learning_rate"]) == np.float32(lr)
        for a, b in zip(
            jax.tree.leaves(new.params), jax.tree.leaves(want), strict=True
        ):
            np.testing.assert_array_equal(a, b)
