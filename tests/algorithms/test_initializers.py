"""jaxpg.initializers: flax's orthogonal draws, without the vmapped-QR hang."""

import os
import subprocess
import sys
import textwrap

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxpg import recurrent
from jaxpg.initializers import orthogonal
from jaxpg.networks import GRUTorso, LSTMTorso

KEYS = jax.vmap(jax.random.key)(jnp.arange(4))


@pytest.mark.parametrize(
    ("shape", "column_axis"), [((6, 6), -1), ((3, 5), -1), ((5, 3), 0), ((2, 3, 4), 0)]
)
def test_orthogonal_draws_flax_matrices_bit_for_bit(shape, column_axis):
    ref = nn.initializers.orthogonal(1.5, column_axis)
    new = orthogonal(1.5, column_axis)
    np.testing.assert_array_equal(new(KEYS[0], shape), ref(KEYS[0], shape))
    # vmapped over seeds, and over settings x seeds (nested vmap)
    want = jax.vmap(lambda k: ref(k, shape))(KEYS)
    got = jax.jit(jax.vmap(lambda k: new(k, shape)))(KEYS)
    np.testing.assert_array_equal(got, want)
    nested = jax.jit(jax.vmap(jax.vmap(lambda k: new(k, shape))))(
        jnp.stack([KEYS, KEYS])
    )
    np.testing.assert_array_equal(nested[1], want)


def test_orthogonal_rejects_a_vector_shape():
    with pytest.raises(ValueError, match=r"shape=\(3,\) is invalid"):
        orthogonal()(KEYS[0], (3,))


@pytest.mark.parametrize("torso", [GRUTorso(8, (5,)), LSTMTorso(8, (5,))], ids=str)
def test_recurrent_torsos_start_from_flax_default_cell_init(torso, monkeypatch):
    """The built-in torsos' parameters are exactly those they had with flax's
    default orthogonal recurrent init (only the QR's batching changed), so the
    presets tuned before train the same."""
    obs, reset = jnp.zeros((1, 3)), jnp.ones((1,), bool)

    def init(key):
        return torso.init(key, torso.initialize_carry(1), obs, reset)

    ours = jax.jit(jax.vmap(init))(KEYS)
    monkeypatch.setattr(recurrent, "orthogonal", nn.initializers.orthogonal)
    for i in range(KEYS.shape[0]):  # flax's own, one seed at a time
        want = jax.jit(init)(KEYS[i])
        got = jax.tree.map(lambda p, i=i: p[i], ours)
        assert jax.tree.structure(got) == jax.tree.structure(want)
        jax.tree.map(np.testing.assert_array_equal, got, want)


HANG_PROBE = textwrap.dedent(
    """
    import os
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(0, {cpus[0], cpus[-1]})  # a pool of at most 2 threads
    import jax, jax.numpy as jnp
    from jaxpg.initializers import orthogonal
    init = orthogonal()

    def f(key):  # eight independent QRs at once, like the gates of two cells
        return sum(init(k, (128, 128)).sum() for k in jax.random.split(key, 8))

    g = jax.jit(jax.vmap(f))
    keys = jax.vmap(jax.random.key)(jnp.arange(4))
    for _ in range(3):
        jax.block_until_ready(g(keys))
    print("finished")
    """
)


def test_vmapped_orthogonal_inits_do_not_hang():
    """With flax's orthogonal this program hangs at its first call on a
    2-thread pool (the batched QR waits on pool threads that are all waiting
    too); jaxpg's runs the batch's QRs one by one. 3 calls on 2 CPUs: flax's
    hung at the first call in 4 of 4 runs."""
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    done = subprocess.run(
        [sys.executable, "-c", HANG_PROBE],
        env=env,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert "finished" in done.stdout
