r"""Weight initialisers that are safe to vmap over many seeds on CPU.

Inside ``jax.jit(jax.vmap(make_train(cfg)))`` every seed initialises its own
parameters, so an initialiser is batched over the seeds. Orthogonal
initialisation needs a QR decomposition, and the batched QR of jaxlib's CPU
LAPACK kernels splits its batch over XLA's intra-op thread pool and waits for
the pieces on a pool thread. When several independent QRs (the gates of a GRU
or LSTM cell) run at once, every pool thread can end up waiting for pieces
that no free thread is left to run: the program hangs at 0% CPU in
``block_until_ready``. On a 2-core machine eight 128x128 orthogonal
initialisations vmapped over 4 seeds hang on the first call.

* :func:`scaled_normal` needs no QR (jaxpg's default for dense layers).
* :func:`orthogonal` draws exactly the matrices of
  :func:`jax.nn.initializers.orthogonal` (bit for bit), but under ``vmap`` it
  decomposes the batch's matrices one after another (``lax.map``), so no QR is
  ever split over the thread pool. jaxpg's GRU and LSTM torsos use it for their
  recurrent kernels; use it in your own torsos in place of flax's
  ``orthogonal()``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array


def scaled_normal(gain: float) -> Callable:
    """Normal init with variance ``gain² / fan_in`` (no QR)."""
    return nn.initializers.variance_scaling(gain**2, "fan_in", "normal")


@jax.custom_batching.custom_vmap
def _qr(a: Array) -> tuple[Array, Array]:
    """Reduced QR of one ``[n, m]`` matrix; batched, one matrix at a time."""
    q, r = jnp.linalg.qr(a)
    return q, r


@_qr.def_vmap
def _qr_batched(axis_size: int, in_batched: list, a: Array) -> tuple:
    del axis_size
    if not in_batched[0]:
        return _qr(a), (False, False)
    return jax.lax.map(_qr, a), (True, True)


def _orthogonal_matrix(key: Array, n: int, m: int, dtype: jnp.dtype) -> Array:
    """``[n, m]`` with orthonormal rows or columns, drawn as
    :func:`jax.random.orthogonal` draws it (a normal matrix's QR, columns
    signed by ``R``'s diagonal)."""
    z = jax.random.normal(key, (max(n, m), min(n, m)), dtype)
    q, r = _qr(z)
    q = q * jnp.sign(jnp.diagonal(r))[None, :]
    return q if n >= m else q.T


def orthogonal(scale: float = 1.0, column_axis: int = -1) -> Callable:
    """Flax's / JAX's orthogonal initialiser, safe to vmap on CPU.

    Same draws as ``jax.nn.initializers.orthogonal(scale, column_axis)``:
    for ``shape`` with ``n_cols = shape[column_axis]`` and ``n_rows`` the
    product of the others, a uniformly distributed ``[n_rows, n_cols]``
    matrix with orthonormal rows or columns (whichever side is smaller),
    reshaped to ``shape`` and multiplied by ``scale``.

    Raises:
      ValueError: ``shape`` has fewer than two dimensions.
    """

    def init(key: Array, shape: tuple[int, ...], dtype=jnp.float32) -> Array:
        if len(shape) < 2:
            raise ValueError(
                f"shape={tuple(shape)} is invalid: the orthogonal initialiser "
                "needs at least two dimensions"
            )
        if any(dim == 0 for dim in shape):
            return jnp.zeros(shape, dtype)
        n_cols = shape[column_axis]
        n_rows = math.prod(shape) // n_cols
        q = _orthogonal_matrix(key, n_rows, n_cols, dtype)
        rest = tuple(d for i, d in enumerate(shape) if i != column_axis % len(shape))
        q = jnp.moveaxis(q.reshape((*rest, n_cols)), -1, column_axis)
        return jnp.asarray(scale, dtype) * q

    return init
