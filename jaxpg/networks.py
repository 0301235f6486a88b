r"""Policy and value networks behind a pure ``init`` / ``apply`` pair.

``policy.apply(params, obs)`` maps observations ``[..., *O]`` (flattened to
``[..., prod(O)]``) to a distribution with batch shape ``[...]``: a
:class:`~jaxpg.distributions.Categorical` for discrete actions, a
:class:`~jaxpg.distributions.DiagGaussian` with a state-independent
``log_std`` for continuous ones. ``critic.apply(params, obs)`` returns ``[...]``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpg.distributions import Categorical, DiagGaussian, Distribution
from jaxpg.envs import EnvSpec

Array = jax.Array
Params = Any

ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
}


class MLP(nn.Module):
    """Fully connected torso plus a linear head of ``out`` units.

    Weights are drawn from scaled normals (variance ``gain² / fan_in``): gain
    ``√2`` in the torso, ``head_scale`` in the head (0.01 makes the initial
    policy near uniform). Orthogonal init would need a QR decomposition, a
    LAPACK call that XLA's CPU runtime can deadlock on when it is vmapped over
    many seeds; scaled normals need none and train the same here.
    """

    hidden: Sequence[int]
    out: int
    activation: str = "tanh"
    head_scale: float = 0.01

    @nn.compact
    def __call__(self, x: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=_scaled_normal(2**0.5))(x))
        return nn.Dense(self.out, kernel_init=_scaled_normal(self.head_scale))(x)


def _scaled_normal(gain: float):
    return nn.initializers.variance_scaling(gain**2, "fan_in", "normal")


class Policy(NamedTuple):
    """``init(key) -> params``; ``apply(params, obs [..., *O]) -> Distribution``."""

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Distribution]


class Critic(NamedTuple):
    """``init(key) -> params``; ``apply(params, obs [..., *O]) -> [...]`` values."""

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]


def _flatten(obs: Array, obs_shape: tuple[int, ...]) -> Array:
    batch = obs.shape[: obs.ndim - len(obs_shape)]
    return obs.reshape((*batch, math.prod(obs_shape))).astype(jnp.float32)


def make_policy(
    spec: EnvSpec,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    init_log_std: float = 0.0,
    head_scale: float = 0.01,
) -> Policy:
    """A flax MLP policy with a head matched to the action space of ``spec``.

    ``head_scale`` is the init gain of the output layer: the default 0.01 starts
    near the uniform policy (categorical) or near a zero mean (Gaussian);
    about 1 starts from a random state-dependent policy, which explores
    differently (e.g. it can pump energy into MountainCar).
    """
    net = MLP(tuple(hidden), spec.num_actions, activation, head_scale)
    dummy = jnp.zeros((1, math.prod(spec.obs_shape)), jnp.float32)

    if spec.discrete:

        def init(key: Array) -> Params:
            return {"net": net.init(key, dummy)}

        def apply(params: Params, obs: Array) -> Distribution:
            return Categorical(net.apply(params["net"], _flatten(obs, spec.obs_shape)))

    else:

        def init(key: Array) -> Params:
            log_std = jnp.full((spec.num_actions,), init_log_std, jnp.float32)
            return {"net": net.init(key, dummy), "log_std": log_std}

        def apply(params: Params, obs: Array) -> Distribution:
            mean = net.apply(params["net"], _flatten(obs, spec.obs_shape))
            log_std = jnp.broadcast_to(params["log_std"], mean.shape)
            return DiagGaussian(mean, log_std)

    return Policy(init, apply)


def make_critic(
    spec: EnvSpec, hidden: Sequence[int] = (64, 64), activation: str = "tanh"
) -> Critic:
    """A flax MLP state-value network ``V(s)``."""
    net = MLP(tuple(hidden), 1, activation, head_scale=1.0)
    dummy = jnp.zeros((1, math.prod(spec.obs_shape)), jnp.float32)

    def init(key: Array) -> Params:
        return net.init(key, dummy)

    def apply(params: Params, obs: Array) -> Array:
        return net.apply(params, _flatten(obs, spec.obs_shape))[..., 0]

    return Critic(init, apply)
