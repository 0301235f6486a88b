"""jaxpg.kernels.convolution: lax.conv_general_dilated's values and gradients,
laid out so that XLA's CPU backend runs it with its fast kernels inside loops."""

from __future__ import annotations

import re
import warnings

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

import jaxpg
from jaxpg.kernels.convolution import conv_general_dilated

# (lhs shape, rhs shape, keyword arguments): layouts, strides, padding,
# dilations and groups that CNN torsos use.
CASES = {
    "nhwc_valid": ((2, 7, 6, 3), (3, 3, 3, 4), dict(
        window_strides=(1, 1), padding="VALID",
        dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    "nchw_default_strided_same": ((2, 3, 7, 6), (4, 3, 3, 2), dict(
        window_strides=(2, 1), padding="SAME")),
    "nhwc_dilated_explicit_padding": ((2, 8, 8, 2), (2, 2, 2, 5), dict(
        window_strides=(1, 2), padding=((1, 0), (2, 1)), rhs_dilation=(2, 1),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    "nhwc_grouped": ((2, 6, 6, 4), (3, 3, 2, 6), dict(
        window_strides=(1, 1), padding="SAME", feature_group_count=2,
        dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    "nwc_1d": ((3, 9, 2), (4, 2, 3), dict(
        window_strides=(2,), padding="VALID",
        dimension_numbers=("NWC", "WIO", "NWC"))),
    "nhwc_lhs_dilated_transposed_conv": ((2, 4, 4, 3), (3, 3, 3, 2), dict(
        window_strides=(1, 1), padding=[[2, 2], [1, 2]], lhs_dilation=(2, 2),
        dimension_numbers=("NHWC", "HWIO", "NHWC"))),
    "ncdhw_3d_transposed_out": ((1, 2, 4, 5, 4), (3, 2, 2, 2, 2), dict(
        window_strides=(1, 1, 1), padding="SAME",
        dimension_numbers=("NCDHW", "OIDHW", "NDHWC"))),
}  # fmt: skip


def _operands(case):
    """Standard normal operands and cotangent, drawn by NumPy: no program is
    compiled for them (the ``optimized`` test below would compile JAX's
    sampler at XLA's default optimisation, 1.3-1.8 s per shape)."""
    lhs_shape, rhs_shape, kw = CASES[case]
    rng = np.random.default_rng(0)
    lhs = rng.standard_normal(lhs_shape, dtype=np.float32)
    rhs = rng.standard_normal(rhs_shape, dtype=np.float32)
    out = jax.eval_shape(lambda x, w: lax.conv_general_dilated(x, w, **kw), lhs, rhs)
    return lhs, rhs, rng.standard_normal(out.shape, dtype=np.float32), kw


@pytest.mark.parametrize("case", sorted(CASES))
def test_values_and_gradients_equal_lax(case):
    """Forward values and both gradients (a random cotangent, so every output
    entry counts) equal lax.conv_general_dilated's; the tolerance is float32
    rounding of the same sums taken in another order (rtol 1e-5 of values of
    order 10)."""
    lhs, rhs, cot, kw = _operands(case)

    def loss(conv):
        return lambda x, w: jnp.sum(conv(x, w, **kw) * cot)

    want = jax.jit(jax.value_and_grad(loss(lax.conv_general_dilated), (0, 1)))
    got = jax.jit(jax.value_and_grad(loss(conv_general_dilated), (0, 1)))
    np.testing.assert_allclose(
        conv_general_dilated(lhs, rhs, **kw),
        lax.conv_general_dilated(lhs, rhs, **kw),
        rtol=1e-5, atol=1e-5,
    )  # fmt: skip
    pairs = zip(
        jax.tree.leaves(got(lhs, rhs)), jax.tree.leaves(want(lhs, rhs)), strict=True
    )
    for a, b in pairs:
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-4)


def test_bfloat16_with_float32_accumulation_equals_lax():
    """Mixed precision as a torso would use it: bfloat16 operands, float32
    results (``preferred_element_type``); gradients come back in bfloat16.
    Tolerance: bfloat16's 8-bit mantissa (relative spacing 2^-8 = 0.004)."""
    lhs, rhs, cot, kw = _operands("nhwc_valid")
    lhs, rhs = lhs.astype(jnp.bfloat16), rhs.astype(jnp.bfloat16)
    kw = {**kw, "preferred_element_type": jnp.float32}

    def loss(conv):
        return jax.jit(jax.grad(lambda x, w: jnp.sum(conv(x, w, **kw) * cot), (0, 1)))

    out = conv_general_dilated(lhs, rhs, **kw)
    assert out.dtype == jnp.float32
    np.testing.assert_allclose(out, lax.conv_general_dilated(lhs, rhs, **kw), rtol=1e-5)
    got, want = (
        loss(conv_general_dilated)(lhs, rhs),
        loss(lax.conv_general_dilated)(lhs, rhs),
    )
    for a, b in zip(got, want, strict=True):
        assert a.dtype == b.dtype == jnp.bfloat16
        np.testing.assert_allclose(
            np.asarray(a, np.float32), np.asarray(b, np.float32), rtol=1e-2, atol=1e-2
        )


def test_gradients_under_vmap_and_scan_equal_lax():
    """Per-seed kernels (vmap, as train_seeds lays seeds out) and a scan over
    minibatches (as every update runs): the same gradients as lax's."""
    lhs, rhs, cot, kw = _operands("nhwc_valid")
    rhs = np.stack([rhs, 2 * rhs, -rhs])  # 3 seeds' kernels
    xs = np.stack([lhs, lhs + 1.0])  # 2 minibatches

    def run(conv):
        def grad_sum(w):
            def body(acc, x):
                g = jax.grad(lambda w: jnp.sum(conv(x, w, **kw) * cot))(w)
                return acc + g, None

            return lax.scan(body, jnp.zeros_like(w), xs)[0]

        return jax.jit(jax.vmap(grad_sum))(rhs)

    np.testing.assert_allclose(
        run(conv_general_dilated), run(lax.conv_general_dilated), rtol=1e-5, atol=1e-4
    )


def _loop_convolutions(conv, seeds: int = 0) -> list[str]:
    """The dimension labels of every convolution XLA compiled for a kernel
    gradient taken inside a ``lax.scan`` body (at the default optimisation);
    with ``seeds``, vmapped over that many seeds' inputs and kernels."""
    lhs, rhs, cot, kw = _operands("nhwc_valid")

    def f(w, xs):
        def body(w, x):
            g = jax.grad(lambda w: jnp.sum(conv(x, w, **kw) * cot))(w)
            return w - 0.1 * g, None

        return lax.scan(body, w, xs)[0]

    w, xs = rhs, np.stack([lhs, lhs])
    if seeds:
        f = jax.vmap(f)
        w, xs = (np.stack([a + k for k in range(seeds)]) for a in (w, xs))
    hlo = jax.jit(f).lower(w, xs).compile().as_text()
    return re.findall(r"convolution\(.*?dim_labels=([\w>-]+)", hlo)


@pytest.mark.optimized  # XLA's default passes decide the layouts checked here
def test_inside_a_loop_every_convolution_is_canonical():
    """The property the module exists for. XLA's CPU backend lays out a
    convolution canonically (``b01f_01io->b01f``) only at a program's top
    level; inside a loop, lax's kernel gradient keeps its batch-contracting
    layout (``f01b_i01o->01bf``) and runs in XLA's naive loop code (40 ms
    against 5 ms per gradient step of the README's torso on 512 frames; 4.9x
    slower PPO training, benchmarks/conv_speed.py). jaxpg's has only canonical
    ones, also vmapped over seeds (inputs and kernels batched). If XLA ever
    canonicalises loop bodies itself, the first assertion fails and the
    module can go."""
    assert any(
        labels != "b01f_01io->b01f"
        for labels in _loop_convolutions(lax.conv_general_dilated)
    )
    for seeds in (0, 3):
        labels = _loop_convolutions(conv_general_dilated, seeds)
        assert labels and all(lab == "b01f_01io->b01f" for lab in labels), labels


def test_networks_conv_is_flax_conv_with_the_fast_convolution():
    """jaxpg.networks.Conv has nn.Conv's parameters and values, linen and NNX
    layers accept the function itself."""
    x = jax.random.normal(jax.random.key(1), (2, 6, 6, 3))
    ours = jaxpg.networks.Conv(5, (3, 3), strides=2, padding="SAME")
    theirs = nn.Conv(5, (3, 3), strides=2, padding="SAME")
    params = theirs.init(jax.random.key(0), x)
    assert jax.tree.structure(ours.init(jax.random.key(0), x)) == jax.tree.structure(
        params
    )
    np.testing.assert_allclose(
        ours.apply(params, x), theirs.apply(params, x), rtol=1e-5, atol=1e-5
    )
    from flax import nnx

    layer = nnx.Conv(3, 5, (3, 3), conv_general_dilated=conv_general_dilated,
                     rngs=nnx.Rngs(0))  # fmt: skip
    plain = nnx.Conv(3, 5, (3, 3), rngs=nnx.Rngs(0))
    np.testing.assert_allclose(layer(x), plain(x), rtol=1e-5, atol=1e-5)


def test_forward_mode_is_refused_with_jax_own_error():
    lhs, rhs, _, kw = _operands("nhwc_valid")
    with pytest.raises(TypeError, match="custom_vjp"):
        jax.jvp(lambda w: conv_general_dilated(lhs, w, **kw), (rhs,), (rhs,))


class _Torso(nn.Module):
    conv: type = nn.Conv

    @nn.compact
    def __call__(self, obs):
        x = self.conv(2, (3, 3), padding="VALID")(obs.astype(jnp.float32))
        return nn.relu(nn.Dense(4)(x.reshape((x.shape[0], -1))))


def test_plain_convolutions_counts_those_outside_a_custom_vjp():
    x = jax.ShapeDtypeStruct((1, 5, 5, 3), jnp.float32)
    params = jax.eval_shape(_Torso().init, jax.random.key(0), x)
    count = jaxpg.kernels.convolution.plain_convolutions
    assert count(_Torso().apply, params, x) == 1
    assert count(_Torso(jaxpg.networks.Conv).apply, params, x) == 0
    assert count(jax.jit(_Torso().apply), params, x) == 1  # inside a jit too


def test_a_cpu_trainer_with_plain_convolutions_warns_at_the_users_call():
    """Building a trainer with an nn.Conv torso on CPU names the fix, once per
    network, pointing at the user's line; with jaxpg.networks.Conv or an MLP,
    and when only evaluating (no gradient), nothing is said."""
    cfg = jaxpg.Config(env="Breakout-MinAtar", algo="a2c", num_envs=2, rollout_steps=2)
    slow = jaxpg.kernels.convolution.SlowConvolutionWarning
    with pytest.warns(slow) as caught:
        jaxpg.make_train(cfg, policy_network=_Torso(), critic_network=_Torso())
    assert [str(w.message).split(" (")[0] for w in caught] == [
        "policy_network", "critic_network"
    ]  # fmt: skip
    assert {w.filename for w in caught} == {__file__}
    assert "has 1 convolution(s)" in str(caught[0].message)
    net = _Torso(jaxpg.networks.Conv)
    state = jaxpg.make_algorithm(cfg, policy_network=net).init(jax.random.key(0))
    with warnings.catch_warnings():
        warnings.simplefilter("error", slow)
        jaxpg.make_algorithm(cfg, policy_network=net, critic_network=net)
        jaxpg.make_algorithm(cfg)
        policy = state.params["policy"]
        jaxpg.evaluate(cfg, policy, jax.random.key(1), 1, policy_network=_Torso())
