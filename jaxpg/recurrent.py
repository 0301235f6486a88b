r"""Recurrent torsos: the protocol, GRU and LSTM built-ins, sequence replay.

A *recurrent torso* is a ``flax.linen.Module`` (or an ``nnx.Module``, see
:mod:`jaxpg.nnx_bridge`) with two methods:

* ``initialize_carry(batch_size: int) -> carry``: the carry every episode
  starts from, for ``N = batch_size`` envs (a pytree of ``[N, ...]`` arrays;
  it takes no parameters and no key, so it is the same for every seed);
* ``__call__(carry, obs [N, *O], reset [N] bool) -> (carry, features [N, F])``:
  one step. Where ``reset`` is true the step starts from the initial carry,
  not from ``carry`` (jaxpg resets the carry there too, before calling it, so
  a torso that ignores ``reset`` is still correct).

jaxpg keeps the carry with the envs: in the train state between updates, reset
at every episode start (after termination *and* truncation), checkpointed with
the rest of the state. The learners replay the collected steps of every env
from the carry that env had when the data began (:func:`unroll`), so the
log-probabilities they differentiate are those of the policy that acted:

* REINFORCE collects complete episodes and every update starts at an episode
  boundary, so each episode is replayed from the initial carry, whole;
  nothing is truncated.
* A2C / PPO store each window's initial carries and replay whole windows
  (minibatches are sets of envs); gradients flow through the window and stop
  at its first step (truncated backpropagation through time at window
  boundaries).

Shapes: ``T`` time, ``B`` envs, ``H`` hidden units, ``O`` observation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpg.envs.observations import flat_features
from jaxpg.initializers import orthogonal, scaled_normal
from jaxpg.nnx_bridge import UnsupportedState, check_collections

Array = jax.Array
Carry = Any


def is_recurrent(torso: Any) -> bool:
    """Whether ``torso`` follows the recurrent-torso protocol (it has an
    ``initialize_carry`` method)."""
    return callable(getattr(torso, "initialize_carry", None))


def reset_carry(reset: Array, carry: Carry, initial: Carry) -> Carry:
    """``initial`` where ``reset`` (``[B]`` bool), else ``carry``, leaf by
    leaf (leaves ``[B, ...]``)."""

    def pick(c0: Array, c: Array) -> Array:
        flag = reset.reshape(reset.shape + (1,) * (c.ndim - reset.ndim))
        return jnp.where(flag, c0, c)

    return jax.tree.map(pick, initial, carry)


def unroll(
    step: Callable[[Carry, Array, Array], tuple[Carry, Any]],
    carry: Carry,
    obs: Any,
    reset: Array,
) -> tuple[Carry, Any]:
    r"""Run ``step`` over a sequence: a ``lax.scan`` over ``T``.

    Args:
      step: ``(carry, obs [B, *O], reset [B]) -> (carry, out)``.
      carry: the carry before the first step (``[B, ...]`` leaves).
      obs: ``[T, B, *O]`` observations.
      reset: ``[T, B]`` bool, the step starts a new episode.

    Returns:
      ``(carry after the last step, outs stacked to [T, ...])``.
    """
    return jax.lax.scan(lambda c, x: step(c, *x), carry, (obs, reset))


# jaxpg.networks.ACTIVATIONS (networks imports this module, not the reverse).
_ACTIVATIONS = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
}


def replay(
    net: Any, params: Any, obs: Any, reset: Array, carry: Carry = None
) -> tuple[Carry, Any]:
    r"""A network's outputs on a ``[T, B]`` sequence, as it acted.

    Args:
      net: a :class:`~jaxpg.networks.Policy` or :class:`~jaxpg.networks.Critic`.
      params: its parameters.
      obs: ``[T, B, *O]`` observations (as the network sees them).
      reset: ``[T, B]`` bool, the step starts an episode.
      carry: the carry before the first step (``[B, ...]``); default the
        initial carry.

    Returns:
      ``(carry, outs)``: a recurrent network unrolled (:func:`unroll`) from
      ``carry``, reset where ``reset``: its carry after the last step and its
      outputs (a distribution or values with batch shape ``[T, B]``); a
      feed-forward network applied to every step (``carry`` returned as is).
    """
    if not net.recurrent:
        return carry, net.apply(params, obs)
    if carry is None:
        carry = net.initial_carry(reset.shape[1])
    return unroll(lambda c, o, r: net.step(params, c, o, r), carry, obs, reset)


class _Encoder(nn.Module):
    widths: Sequence[int]
    activation: str

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        act = _ACTIVATIONS[self.activation]
        init = scaled_normal(2**0.5)
        x = flat_features(obs)
        for width in self.widths:
            x = act(nn.Dense(width, kernel_init=init)(x))
        return x


class GRUTorso(nn.Module):
    """Flatten ``[N, *O]`` (a pytree observation: its leaves, concatenated, as
    :class:`~jaxpg.networks.MLPTorso` does), optional dense ``encoder``
    layers, then a GRU cell of ``hidden_size`` units; features ``[N,
    hidden_size]``, carry ``[N, H]`` (zeros at an episode start)."""

    hidden_size: int = 64
    encoder: Sequence[int] = ()
    activation: str = "tanh"

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        return jnp.zeros((batch_size, self.hidden_size), jnp.float32)

    @nn.compact
    def __call__(self, carry: Carry, obs: Array, reset: Array) -> tuple[Carry, Array]:
        carry = reset_carry(reset, carry, self.initialize_carry(reset.shape[0]))
        x = _Encoder(tuple(self.encoder), self.activation)(obs)
        # Flax's orthogonal recurrent init, with a QR that cannot hang when
        # vmapped on CPU (jaxpg.initializers).
        return nn.GRUCell(self.hidden_size, recurrent_kernel_init=orthogonal())(
            carry, x
        )


class LSTMTorso(nn.Module):
    """Flatten ``[N, *O]`` (or a pytree observation's leaves), optional dense
    ``encoder`` layers, then an LSTM cell of ``hidden_size`` units; features
    ``[N, hidden_size]`` (the hidden state), carry ``(c, h)`` of ``[N, H]``
    each (zeros at an episode start)."""

    hidden_size: int = 64
    encoder: Sequence[int] = ()
    activation: str = "tanh"

    @nn.nowrap
    def initialize_carry(self, batch_size: int) -> Carry:
        zeros = jnp.zeros((batch_size, self.hidden_size), jnp.float32)
        return (zeros, zeros)

    @nn.compact
    def __call__(self, carry: Carry, obs: Array, reset: Array) -> tuple[Carry, Array]:
        carry = reset_carry(reset, carry, self.initialize_carry(reset.shape[0]))
        x = _Encoder(tuple(self.encoder), self.activation)(obs)
        init = orthogonal()
        cell = nn.OptimizedLSTMCell(self.hidden_size, recurrent_kernel_init=init)
        return cell(carry, x)


def make_recurrent_trunk(
    torso: Any, dummy_obs: Array, name: str
) -> tuple[Callable, Callable, Callable, int]:
    """``(init, initial_carry, step, F)`` for a recurrent linen ``torso``.

    ``init(key) -> params``; ``initial_carry(B) -> carry``;
    ``step(params, carry, obs [B, *O], reset [B]) -> (carry, features [B, F])``
    (the carry reset where ``reset`` before the torso's step).

    Raises:
      ValueError: ``torso`` does not follow the protocol on ``[1, *O]``
        observations (``name`` names the argument).
    """
    reset1 = jnp.zeros((1,), jnp.bool_)
    try:
        carry1 = torso.initialize_carry(1)
        variables = jax.eval_shape(
            lambda: torso.init(jax.random.key(0), carry1, dummy_obs, reset1)
        )
        check_collections(variables, torso, name)
        new_carry, features = jax.eval_shape(
            lambda v: torso.apply(v, carry1, dummy_obs, reset1), variables
        )
    except UnsupportedState:
        raise
    except flax.errors.InvalidRngError as err:  # e.g. linen Dropout
        raise ValueError(
            f"{name} ({type(torso).__name__}) draws from an rng stream other than "
            "'params' (linen Dropout: 'dropout'): jaxpg trains torsos without "
            f"extra rng streams; set deterministic=True ({err})"
        ) from err
    except Exception as err:  # a user module that does not follow the protocol
        raise ValueError(
            f"{name} ({type(torso).__name__}) has initialize_carry, so it must "
            "follow jaxpg's recurrent-torso protocol: initialize_carry(batch_size) "
            "-> carry and __call__(carry, obs [N, *O], reset [N]) -> (carry, "
            f"features [N, F]); on N=1 it failed: {err}"
        ) from err
    want = jax.tree.map(lambda x: (x.shape, x.dtype), carry1)
    got = jax.tree.map(lambda x: (x.shape, x.dtype), new_carry)
    if want != got:
        raise ValueError(
            f"{name} ({type(torso).__name__}) returned a carry {got} unlike its "
            f"initialize_carry(1) {want}: a step must keep the carry's structure"
        )
    if features.ndim != 2 or features.shape[0] != 1:
        raise ValueError(
            f"{name} ({type(torso).__name__}) must return [N, F] features; it "
            f"returned shape {features.shape} for N=1"
        )

    def init(key: Array) -> Any:
        return torso.init(key, carry1, dummy_obs, reset1)

    def step(params: Any, carry: Carry, obs: Array, reset: Array):
        carry = reset_carry(reset, carry, torso.initialize_carry(reset.shape[0]))
        return torso.apply(params, carry, obs, reset)

    return init, torso.initialize_carry, step, int(features.shape[1])
