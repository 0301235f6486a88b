"""Episode loops that test their predicate every ``K`` steps (``Config.loop_chunk``).

A chunk is a ``lax.scan`` of ``K`` steps inside the while loop; the steps after
a member's predicate turned false are masked. The property protected: every
``K`` gives the ``K = 1`` batch, gradient, metrics, train state and evaluation
returns *bit for bit* (no tolerance: the masked steps must change nothing), for
each REINFORCE baseline, and under a plain ``vmap`` whose members finish at
different steps. Compiled as the rest of the suite (both sides of every
comparison lie in one program); a vmapped lane and an unbatched run agree only
up to float rounding (the README's promise), so the episodes collected under
``vmap`` are compared with ``K = 1`` under the same ``vmap``.

Tiny CartPole runs in one compiled program: 3 envs, a 5-step start budget, a
30-step time limit (the buffer holds ``L = 34`` rows; some episodes are
truncated), two members whose loops end at 19 and 26 steps. ``K = 5`` and
``K = 7`` end chunks past those steps and, for evaluation, past the horizon.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from trees import raw_leaves

import jaxpg
from jaxpg.algorithms.reinforce import BASELINE_FNS, buffer_length, make_reinforce
from jaxpg.drivers.train import make_parts
from jaxpg.rollout import LOOP_CHUNK, collect_episodes, default_loop_chunk

CFG = jaxpg.Config(
    num_envs=3,
    rollout_steps=5,
    total_steps=3 * 5 * 20,
    hidden=(8,),
    lr=1e-2,
    max_episode_steps=30,
)
KEYS = jax.random.split(jax.random.key(1), 2)


def _assert_identical(got, want) -> None:
    assert jax.tree.structure(got) == jax.tree.structure(want)
    for a, b in zip(raw_leaves(got), raw_leaves(want), strict=True):
        assert a.dtype == b.dtype and a.shape == b.shape
        np.testing.assert_array_equal(a, b)  # NaN == NaN here; bits otherwise


def _collect(chunk: int):
    parts = make_parts(CFG)
    spec, stepper = parts.spec, parts.stepper

    def one(key):
        key_reset, key_init, key_loop = jax.random.split(key, 3)
        params = parts.policy.init(key_init)
        obs, env_state = stepper.reset(key_reset)
        return collect_episodes(
            key_loop,
            stepper,
            parts.policy.apply,
            params,
            spec,
            env_state,
            obs,
            CFG.rollout_steps,
            buffer_length(CFG, spec),
            chunk,
        )

    return one


def _kernel_baselines(cfg: jaxpg.Config, key):
    """``(grads, metrics, state)`` of REINFORCE with each of
    :data:`BASELINE_FNS`, stacked in that order: one program with a
    ``lax.switch`` over the baselines vmapped over their index (the rollout,
    which does not depend on the index, runs once)."""
    parts = make_parts(cfg.replace(baseline="none"))
    fns = list(BASELINE_FNS.values())

    def one(index):
        def baseline(g, m, s):
            return jax.lax.switch(index, fns, g, m, s)

        algo = make_reinforce(cfg, parts, baseline)
        return algo.estimate(algo.init(key))

    return jax.vmap(one)(jnp.arange(len(fns)))


def _value_baseline(cfg: jaxpg.Config, key):
    """``(grads, metrics, state)`` of REINFORCE with a learned value baseline,
    reward scaling and observation normalisation on."""
    cfg = cfg.replace(baseline="value", scale_rewards=True, normalise_obs=True)
    algo = jaxpg.make_algorithm(cfg)
    return algo.estimate(algo.init(key))


def _evaluate(cfg: jaxpg.Config):
    return lambda params, key: jaxpg.evaluate(cfg, params, key, 7)


def _everything(keys):
    """Every quantity compared, in one program (one compile)."""
    at = lambda chunk: CFG.replace(loop_chunk=chunk)  # noqa: E731
    params = jax.vmap(jaxpg.make_algorithm(CFG).init)(keys).params["policy"]
    return {
        # K = 1 (the reference loop) and K = 5, both under vmap.
        "collect": {chunk: jax.vmap(_collect(chunk))(keys) for chunk in (1, 5)},
        "eval": {
            chunk: jax.vmap(_evaluate(at(chunk)))(params, keys) for chunk in (1, 7)
        },
        "kernel": {chunk: _kernel_baselines(at(chunk), keys[0]) for chunk in (1, 5)},
        "value": {chunk: _value_baseline(at(chunk), keys[1]) for chunk in (1, 5)},
    }


@pytest.fixture(scope="module")
def results():
    return jax.jit(_everything)(KEYS)


def test_collected_batch_is_the_same_for_every_chunk(results):
    """K = 5 under vmap: the loop runs on for the slower member, and the last
    chunk past both; those steps write nothing: each member's batch is its
    K = 1 one (whose loop ends at the member's own step)."""
    want = results["collect"][1]
    steps = [int(n) for n in want[0].num_steps]
    assert steps[0] != steps[1], steps
    assert max(steps) % 5 and max(steps) < buffer_length(CFG, make_parts(CFG).spec)
    _assert_identical(results["collect"][5], want)


@pytest.mark.parametrize("index", range(len(BASELINE_FNS)))
def test_gradient_metrics_and_state_are_the_same_for_every_chunk(results, index):
    """Each kernel baseline (none, mean, standardise, loo, group), K = 5."""
    got, want = (
        jax.tree.map(lambda x: x[index], results["kernel"][chunk]) for chunk in (5, 1)
    )
    _assert_identical(got, want)
    grads, metrics, _ = want
    assert set(metrics) >= {"episode_return", "utilisation", "loss", "env_steps"}
    assert float(metrics["num_episodes"]) > 0
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads))


def test_value_baseline_is_the_same_for_every_chunk(results):
    """The learned value baseline, with reward scaling and observation
    statistics (both in the returned state), K = 5."""
    _assert_identical(results["value"][5], results["value"][1])
    grads, metrics, _ = results["value"][1]
    assert float(metrics["value_loss"]) > 0
    assert any(np.any(np.asarray(g) != 0) for g in jax.tree.leaves(grads["critic"]))


def test_evaluation_is_the_same_for_every_chunk(results):
    """K = 7 divides neither the 30-step horizon nor the episodes' lengths."""
    want = results["eval"][1]
    assert len(set(np.asarray(want).ravel().tolist())) > 2
    _assert_identical(results["eval"][7], want)


def test_default_chunk_is_the_platform_constant(monkeypatch):
    """``loop_chunk=None`` takes :data:`LOOP_CHUNK` of the running platform:
    patched to 7, the episode loop holds a 7-step scan."""
    assert default_loop_chunk("gpu") == LOOP_CHUNK["gpu"]
    assert default_loop_chunk("no-such-platform") == 1
    platform = jax.default_backend()

    def scan_lengths(cfg):
        algo = jaxpg.make_algorithm(cfg)
        return str(jax.make_jaxpr(lambda k: algo.estimate(algo.init(k)))(KEYS[0]))

    monkeypatch.setitem(LOOP_CHUNK, platform, 7)
    assert default_loop_chunk() == 7
    assert "length=7" in scan_lengths(CFG)
    assert "length=7" not in scan_lengths(CFG.replace(loop_chunk=1))
    assert "length=9" in scan_lengths(CFG.replace(loop_chunk=9))
    # A chunk longer than the buffer (L = 34 rows) is cut to it.
    text = scan_lengths(CFG.replace(loop_chunk=1000))
    assert "length=34" in text and "length=1000" not in text
