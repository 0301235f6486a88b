"""Hostile settings of the token side are refused by name; a user reward
function of the wrong shape names the expected one; the SFT optimizer is the
shared injected-learning-rate Adam. Nothing here compiles a training run."""

from __future__ import annotations

import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from tiny_sequence import task_and_model

from jaxpg.algorithms.base import injected_adam
from jaxpg.sequence import model, rl, sampling, sft, tasks

NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize(
    ("field", "value", "allowed"),
    [
        ("lr", NAN, "a finite number > 0 and <= 1"),
        ("lr", -1e-3, "a finite number > 0 and <= 1"),
        ("lr", 0.0, "a finite number > 0 and <= 1"),
        ("lr", 1e-50, "a finite number > 0 and <= 1"),  # 0 in float32
        ("lr", 1e30, "a finite number > 0 and <= 1"),
        ("lr", "3e-3", "a finite number > 0 and <= 1, got str"),
        ("beta", INF, "a finite number >= 0"),
        ("beta", NAN, "a finite number >= 0"),
        ("beta", -0.1, "a finite number >= 0"),
        ("temperature", INF, "a finite number > 0"),
        ("temperature", 0.0, "a finite number > 0"),
        ("temperature", -1.0, "a finite number > 0"),
        ("max_grad_norm", NAN, "a finite number > 0"),
        ("clip_eps", NAN, "a finite number > 0"),
        ("loss_norm", INF, "a finite number > 0"),
        ("max_new_tokens", 0, "an int >= 1"),
        ("num_prompts", 0, "an int >= 1"),
        ("num_updates", True, "an int >= 1, got bool"),
        ("epochs", 1.5, "an int >= 1, got float"),
        ("top_k", 0, "an int >= 1"),
    ],
)
def test_rl_config_refuses_hostile_values_naming_the_field(field, value, allowed):
    with pytest.raises(ValueError) as info:
        rl.RLConfig(**{field: value})
    message = str(info.value)
    assert f"RLConfig.{field}={value!r} is invalid" in message
    assert allowed in message


def test_rl_config_keeps_valid_values_as_python_numbers():
    cfg = rl.RLConfig(lr=np.float32(0.5), num_prompts=np.int64(3), beta=0)
    assert type(cfg.lr) is float and type(cfg.num_prompts) is int
    assert cfg.beta == 0.0
    assert hash(cfg) == hash(rl.RLConfig(lr=0.5, num_prompts=3, beta=0.0))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"num_steps": 0}, "make_sft: num_steps=0 is invalid"),
        ({"batch_size": -1}, "make_sft: batch_size=-1 is invalid"),
        ({"lr": NAN}, "make_sft: lr=nan is invalid"),
        ({"lr": 1e30}, "make_sft: lr=1e+30 is invalid"),
    ],
)
def test_sft_refuses_hostile_values(kwargs, message):
    task, cfg = task_and_model()
    with pytest.raises(ValueError, match=re.escape(message)):
        sft.make_sft(task, cfg, **kwargs)


def test_a_task_budget_below_the_answer_is_refused_not_ignored():
    # max_new_tokens=0 used to fall back silently to the task's default.
    for make in (tasks.sort_task, tasks.add_task, tasks.sort_proxy_task):
        with pytest.raises(ValueError, match="max_new_tokens=0 is invalid"):
            make(max_new_tokens=0)
    with pytest.raises(ValueError, match="answer length 4"):
        tasks.sort_task(3, max_new_tokens=3)
    assert tasks.sort_task(3, max_new_tokens=4).max_new_tokens == 4


def test_sampling_refuses_a_temperature_that_is_not_finite_and_positive():
    task, cfg = task_and_model()
    params = jax.eval_shape(lambda k: model.init(k, cfg), jax.random.key(0))
    prompts = jnp.zeros((2, task.prompt_len), jnp.int32)
    for t in (INF, 0.0, NAN):
        with pytest.raises(ValueError, match=f"temperature={t!r} is invalid"):
            jax.eval_shape(
                lambda p, t=t: sampling.sample(
                    jax.random.key(0),
                    p,
                    cfg,
                    prompts,
                    3,
                    eos_id=1,
                    pad_id=0,
                    temperature=t,
                ),
                params,
            )


@pytest.mark.parametrize("shape", [(6, 1), (), (3,)])
def test_a_reward_fn_of_the_wrong_shape_names_the_expected_one(shape):
    """Checked when the update is traced (``jax.eval_shape``: no compile)."""
    task, cfg = task_and_model()
    bad = tasks.with_reward(task, lambda p, r, m: jnp.zeros(shape))
    rl_cfg = rl.RLConfig(num_prompts=2, group_size=3)
    algo = rl.make_rl(bad, cfg, rl_cfg)
    params = jax.eval_shape(lambda k: model.init(k, cfg), jax.random.key(0))
    state = jax.eval_shape(algo.init, jax.random.key(1), params)
    with pytest.raises(ValueError) as info:
        jax.eval_shape(algo.update, state, params)
    message = str(info.value)
    assert f"returned shape {list(shape)}" in message
    assert "[N] = [6]" in message and "num_prompts * group_size" in message
    with pytest.raises(ValueError, match=r"\[N\] = \[5\]"):
        jax.eval_shape(lambda p: rl.evaluate(jax.random.key(0), p, bad, cfg, 5), params)


def test_sft_steps_with_the_shared_injected_adam_equal_optax_adam():
    """SFT's optimizer is :func:`jaxpg.algorithms.base.injected_adam` with
    optax's ``eps=1e-8`` and no clipping: three steps on the same gradients
    equal ``optax.adam(lr)``'s bit for bit (``(-1 * lr) * u`` is ``-lr * u``)."""
    lr = 3e-3
    shared, plain = injected_adam(lr, None, eps=1e-8), optax.adam(lr)
    params = {"w": jnp.linspace(-1.0, 1.0, 7)}
    grads = [
        {"w": jax.random.normal(jax.random.key(i), (7,)) * 10.0**-i} for i in range(3)
    ]

    def steps(tx):
        p, s = params, tx.init(params)
        for g in grads:
            u, s = tx.update(g, s, p)
            p = optax.apply_updates(p, u)
        return p

    np.testing.assert_array_equal(
        jax.jit(lambda: steps(shared))()["w"], jax.jit(lambda: steps(plain))()["w"]
    )


def _bigram(scale: float):
    """A bigram whose logits are scaled by ``sqrt(scale)``, a parameter:
    ``scale = -1`` makes the logits and every gradient NaN."""
    from jaxpg.sequence.protocol import SequenceModel

    def apply(params, tokens, positions, mask):
        return params["table"][tokens] * jnp.sqrt(params["scale"])

    def init(key):
        return {"table": 0.1 * jax.random.normal(key, (14, 14)), "scale": scale}

    return SequenceModel("scaled-bigram", 14, 8, init, apply)


def test_sft_and_reward_model_steps_go_through_the_non_finite_guard():
    """Every SFT and reward-model step with a NaN gradient is rejected: the
    parameters stay those it started from and ``nonfinite`` marks the step,
    as in RL; finite steps are taken."""
    from jaxpg.sequence import reward_model as rm

    task = tasks.make_task("sort", num_digits=1)
    fine = jax.jit(sft.make_sft(task, _bigram(1.0), num_steps=3))(jax.random.key(0))
    np.testing.assert_array_equal(fine.nonfinite, [0.0, 0.0, 0.0])
    broken = _bigram(-1.0)
    out = jax.jit(sft.make_sft(task, broken, num_steps=3))(jax.random.key(0))
    np.testing.assert_array_equal(out.nonfinite, [1.0, 1.0, 1.0])
    start = broken.init(jax.random.split(jax.random.key(0))[0])
    for a, b in zip(jax.tree.leaves(out.params), jax.tree.leaves(start), strict=True):
        # Kept, not NaN: up to the rounding of an init compiled apart (an
        # Adam step at lr 3e-3 would move them by about 3e-3).
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)
    pairs = rm.preference_pairs(jax.random.key(1), task, fine.params, _bigram(1.0), 16)
    fit = jax.jit(rm.make_reward_model_train(broken, num_steps=2))
    out = fit(jax.random.key(2), pairs)
    np.testing.assert_array_equal(out.nonfinite, [1.0, 1.0])
    assert all(np.isfinite(x).all() for x in jax.tree.leaves(out.params["head"]))
    good = jax.jit(rm.make_reward_model_train(_bigram(1.0), num_steps=2))
    np.testing.assert_array_equal(good(jax.random.key(2), pairs).nonfinite, [0.0, 0.0])
