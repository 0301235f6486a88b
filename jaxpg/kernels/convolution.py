r"""Convolutions that stay fast inside ``lax.scan`` on CPU.

XLA's CPU backend runs a convolution with its fast (Eigen or YNNPACK) kernels
only when the convolution's layout is canonical: input ``[N, *spatial, C]``,
kernel ``[*spatial, I, O]``, output ``[N, *spatial, O]``. A pass rewrites
other layouts into this one with transposes, but it visits only the program's
top level, not the bodies of loops. The gradient of a convolution with
respect to its kernel is a convolution in which the batch is contracted, a
layout that is never canonical; and every jaxpg update runs inside loops
(epochs, minibatches, updates). So on CPU the kernel gradient of a CNN torso
falls to XLA's naive loop code: measured on a 2-core CPU, a flax ``nn.Conv``
torso's gradient step on 512 MinAtar frames takes 40 ms inside a scan against
5 ms at the top level.

:func:`conv_general_dilated` is :func:`jax.lax.conv_general_dilated` with the
same arguments and results, whose forward pass and gradients are written in
the canonical layout (explicit transposes around each convolution), so XLA
runs them with its fast kernels wherever they are. Pass it to your own
convolution layers (``nn.Conv(..., conv_general_dilated=...)`` in linen,
``nnx.Conv(..., conv_general_dilated=...)`` in NNX) or use
:class:`jaxpg.networks.Conv`. Its gradients are JAX's own transpose rules,
re-laid out. On CPU it is a ``jax.custom_vjp``: reverse-mode gradients of
any order, ``vmap`` and ``jax.checkpoint`` work, forward mode (``jax.jvp``,
``jax.hessian``, ``jacfwd``) raises JAX's custom_vjp error; on other backends
it is :func:`jax.lax.conv_general_dilated` itself, where forward mode works.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
from jax import lax

Array = jax.Array


def _canonical_conv(lhs: Array, rhs: Array, **params: Any) -> Array:
    """One ``conv_general_dilated`` equation's work, laid out canonically:
    the operands transposed to ``[N, *S, C]`` / ``[*S, I, O]``, the result
    transposed back to the equation's output layout. The spatial dimensions
    keep their order, so strides, padding and dilations are unchanged."""
    dn = params["dimension_numbers"]
    lhs_spec, rhs_spec, out_spec = dn.lhs_spec, dn.rhs_spec, dn.out_spec
    spatial = len(lhs_spec) - 2
    lhs = lax.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))
    rhs = lax.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))
    canonical = lax.ConvDimensionNumbers(
        lhs_spec=(0, spatial + 1, *range(1, spatial + 1)),
        rhs_spec=(spatial + 1, spatial, *range(spatial)),
        out_spec=(0, spatial + 1, *range(1, spatial + 1)),
    )
    out = lax.conv_general_dilated_p.bind(
        lhs, rhs, **{**params, "dimension_numbers": canonical}
    )
    # out is [N, *S, O]; out_spec[k] is where dimension k (N, O, *S) goes.
    order = (out_spec[0], *out_spec[2:], out_spec[1])  # canonical -> logical
    perm = [0] * len(order)
    for canon_axis, axis in enumerate(order):
        perm[axis] = canon_axis
    return lax.transpose(out, tuple(perm))


def _eval_canonical(jaxpr: jax.extend.core.ClosedJaxpr, *args: Any) -> list:
    """Evaluate a small jaxpr with every convolution made canonical."""
    env: dict = {}

    def read(v):
        return v.val if isinstance(v, jax.extend.core.Literal) else env[v]

    for var, val in zip(jaxpr.jaxpr.constvars, jaxpr.consts, strict=True):
        env[var] = val
    for var, val in zip(jaxpr.jaxpr.invars, args, strict=True):
        env[var] = val
    for eqn in jaxpr.jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        if eqn.primitive is lax.conv_general_dilated_p:
            outvals = [_canonical_conv(*invals, **eqn.params)]
        else:
            bind = eqn.primitive.get_bind_params(eqn.params)  # jax >= 0.8: params
            subfuns, params = bind if isinstance(bind, tuple) else ((), bind)
            outvals = eqn.primitive.bind(*subfuns, *invals, **params)
            if not eqn.primitive.multiple_results:
                outvals = [outvals]
        for var, val in zip(eqn.outvars, outvals, strict=True):
            env[var] = val
    return [read(v) for v in jaxpr.jaxpr.outvars]


def _canonically(fn: Callable, *args: Any) -> list:
    return _eval_canonical(jax.make_jaxpr(fn)(*args), *args)


def conv_general_dilated(lhs: Array, rhs: Array, *args: Any, **kwargs: Any) -> Array:
    """:func:`jax.lax.conv_general_dilated`, fast inside loops on CPU.

    Same arguments, shapes and values (up to float rounding: the same sums in
    XLA's fast kernels); on CPU the forward pass and both gradients run in the
    canonical layout (the module docstring says why); on other backends it is
    :func:`jax.lax.conv_general_dilated` itself.

    Args:
      lhs: input, ``[N, C, *S]`` by default or as ``dimension_numbers`` says.
      rhs: kernel, ``[O, I, *K]`` by default or as ``dimension_numbers`` says.
      *args, **kwargs: the other arguments of
        :func:`jax.lax.conv_general_dilated` (``window_strides``, ``padding``,
        ``dimension_numbers``, ...), passed on unchanged.

    Returns:
      The convolution, laid out as ``dimension_numbers`` says.
    """

    def conv(x: Array, w: Array) -> Array:
        return lax.conv_general_dilated(x, w, *args, **kwargs)

    if jax.default_backend() != "cpu":  # the layout pass is the CPU backend's
        return conv(lhs, rhs)

    @jax.custom_vjp
    def fast(x: Array, w: Array) -> Array:
        (out,) = _canonically(conv, x, w)
        return out

    def fwd(x: Array, w: Array) -> tuple[Array, tuple[Array, Array]]:
        return fast(x, w), (x, w)

    def bwd(res: tuple[Array, Array], g: Array) -> tuple[Array, Array]:
        x, w = res
        _, vjp = jax.vjp(conv, x, w)
        dx, dw = _canonically(vjp, g)
        return dx, dw

    fast.defvjp(fwd, bwd)
    return fast(lhs, rhs)


class SlowConvolutionWarning(UserWarning):
    """A torso's convolutions will run their gradients with XLA's naive CPU
    code inside jaxpg's update loops (see :func:`plain_convolutions`)."""


def _count_plain(jaxpr: Any) -> int:
    count = 0
    for eqn in jaxpr.eqns:
        if eqn.primitive is lax.conv_general_dilated_p:
            count += 1
        elif not eqn.primitive.name.startswith("custom_vjp"):  # ours, or a user's
            for value in eqn.params.values():
                for sub in value if isinstance(value, (tuple, list)) else (value,):
                    if isinstance(sub, jax.extend.core.ClosedJaxpr):
                        count += _count_plain(sub.jaxpr)
                    elif isinstance(sub, jax.extend.core.Jaxpr):
                        count += _count_plain(sub)
    return count


def plain_convolutions(fn: Callable, *args: Any) -> int:
    """How many :func:`jax.lax.conv_general_dilated` calls ``fn(*args)`` makes
    outside a ``jax.custom_vjp`` (this module's, or one of the user's own that
    decides its gradients' layout). Each such convolution's kernel gradient
    runs with XLA's naive code on CPU inside a loop. ``args`` may be
    :class:`jax.ShapeDtypeStruct` trees: ``fn`` is traced, not run."""
    return _count_plain(jax.make_jaxpr(fn)(*args).jaxpr)
