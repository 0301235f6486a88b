r"""Policy and value networks behind a pure ``init`` / ``apply`` pair.

A network is a *torso* and a *head*. The torso is any ``flax.linen.Module``
that maps a batch of observations ``[N, *O]`` (their original shape and dtype,
not flattened) to features ``[N, F]``; jaxpg adds the head that the action
space needs:

* ``Discrete(A)``: a linear layer to ``A`` logits, a
  :class:`~jaxpg.kernels.distributions.Categorical`;
* ``Box(D)``: a linear layer to the ``D`` means and a state-independent
  ``log_std`` parameter, a :class:`~jaxpg.kernels.distributions.DiagGaussian`;
* critic: a linear layer to one value.

The default torso is :class:`MLPTorso` (flattens ``O``, then dense layers).
``policy.apply(params, obs)`` accepts any leading batch shape ``[..., *O]``
and returns a distribution with batch shape ``[...]``; ``critic.apply``
returns ``[...]`` values. Parameters: ``{"torso": ..., "head": ...}`` plus
``"log_std": [D]`` for Gaussian policies.

A policy trained on normalised observations carries its statistics in its
parameters (as brax keeps ``(normalizer_params, policy_params)`` together):
``{"torso": ..., "head": ..., "obs_norm": RunningMeanStd}``. ``policy.apply``
standardises the observations with them first, so the parameters that
training returns are all that acting and evaluation need.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpg.envs import EnvSpec
from jaxpg.kernels.distributions import Categorical, DiagGaussian, Distribution
from jaxpg.kernels.normalise import RunningMeanStd

Array = jax.Array
Params = Any

OBS_NORM = "obs_norm"  # the parameters' entry for observation statistics


def with_obs_norm(params: Params, obs_norm: RunningMeanStd | None) -> Params:
    """Policy parameters that carry the observation statistics ``obs_norm``
    (``[*O]`` leaves, or ``[S, *O]`` beside ``[S]``-stacked parameters);
    ``obs_norm=None`` returns ``params`` unchanged."""
    if obs_norm is None:
        return params
    if not isinstance(obs_norm, RunningMeanStd):
        raise TypeError(
            f"obs_norm={type(obs_norm).__name__} is invalid: must be a "
            "jaxpg.kernels.normalise.RunningMeanStd (TrainOutput.state.obs_norm)"
        )
    return {**params, OBS_NORM: obs_norm}


def carries_obs_norm(params: Params) -> bool:
    """Whether policy parameters carry observation statistics."""
    return isinstance(params, dict) and OBS_NORM in params


ACTIVATIONS: dict[str, Callable[[Array], Array]] = {
    "tanh": jnp.tanh,
    "relu": jax.nn.relu,
    "gelu": jax.nn.gelu,
    "silu": jax.nn.silu,
}


def scaled_normal(gain: float) -> Callable:
    """Normal init with variance ``gain² / fan_in``.

    jaxpg's default instead of orthogonal init: orthogonal init needs a QR
    decomposition, a LAPACK call that XLA's CPU runtime can deadlock on when it
    is vmapped over many seeds; scaled normals need none and train the same on
    the preset tasks.
    """
    return nn.initializers.variance_scaling(gain**2, "fan_in", "normal")


class MLPTorso(nn.Module):
    """Flatten ``[N, *O]`` to ``[N, prod(O)]`` float32, then dense layers.

    Weights drawn with :func:`scaled_normal` of gain ``√2``.
    """

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: Array) -> Array:
        act = ACTIVATIONS[self.activation]
        x = obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=scaled_normal(2**0.5))(x))
        return x


class Policy(NamedTuple):
    """``init(key) -> params``; ``apply(params, obs [..., *O]) -> Distribution``."""

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Distribution]


class Critic(NamedTuple):
    """``init(key) -> params``; ``apply(params, obs [..., *O]) -> [...]`` values."""

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]


def _check_torso(torso: Any, name: str) -> None:
    if not isinstance(torso, nn.Module):
        raise TypeError(
            f"{name}={torso!r} is invalid: must be a flax.linen.Module mapping "
            "observations [N, *O] to features [N, F]"
        )


def _obs_dtype(spec: EnvSpec) -> Any:
    return getattr(spec, "obs_dtype", None) or jnp.float32


def _make_trunk(
    torso: nn.Module, obs_shape: tuple[int, ...], obs_dtype: Any, name: str
) -> tuple[Callable, Callable, int]:
    """``(init, apply, F)`` for ``torso`` on ``[..., *O]`` observations.

    ``apply(params, obs)`` returns ``[..., F]``: leading axes are folded into
    one batch axis for the torso and unfolded afterwards.
    """
    _check_torso(torso, name)
    dummy = jnp.zeros((1, *obs_shape), obs_dtype)
    try:
        out = jax.eval_shape(lambda: torso.init_with_output(jax.random.key(0), dummy))
    except Exception as err:  # a user module that cannot take [1, *O]
        raise ValueError(
            f"{name} ({type(torso).__name__}) failed on observations of shape "
            f"[N, {', '.join(map(str, obs_shape))}]: {err}"
        ) from err
    features = out[0]
    if features.ndim != 2 or features.shape[0] != 1:
        raise ValueError(
            f"{name} ({type(torso).__name__}) must map [N, *O] observations to "
            f"[N, F] features; it returned shape {features.shape} for N=1"
        )
    rank = len(obs_shape)

    def init(key: Array) -> Params:
        return torso.init(key, dummy)

    def apply(params: Params, obs: Array) -> Array:
        batch = obs.shape[: obs.ndim - rank]
        flat = obs.reshape((math.prod(batch), *obs_shape))
        return torso.apply(params, flat).reshape((*batch, -1))

    return init, apply, int(features.shape[1])


def make_policy(
    spec: EnvSpec,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    init_log_std: float = 0.0,
    head_scale: float = 0.01,
    *,
    torso: nn.Module | None = None,
) -> Policy:
    r"""A policy for the action space of ``spec``: ``torso`` plus jaxpg's head.

    Args:
      spec: the environment's :class:`~jaxpg.envs.EnvSpec`.
      hidden, activation: the default :class:`MLPTorso` (ignored with ``torso``).
      init_log_std: initial :math:`\log\sigma` of a Gaussian policy.
      head_scale: init gain of the output layer: the default 0.01 starts near
        the uniform policy (categorical) or a zero mean (Gaussian); about 1
        starts from a random state-dependent policy, which explores
        differently (e.g. it can pump energy into MountainCar).
      torso: a ``flax.linen.Module`` ``[N, *O] -> [N, F]``; default MLP.

    Raises:
      TypeError: ``torso`` is not a flax module.
      ValueError: ``torso`` does not map ``[1, *O]`` to ``[1, F]``.
    """
    torso = MLPTorso(tuple(hidden), activation) if torso is None else torso
    trunk_init, trunk_apply, features = _make_trunk(
        torso, spec.obs_shape, _obs_dtype(spec), "policy_network"
    )
    head = nn.Dense(spec.num_actions, kernel_init=scaled_normal(head_scale))
    dummy = jnp.zeros((1, features), jnp.float32)

    def init(key: Array) -> Params:
        key_torso, key_head = jax.random.split(key)
        params = {"torso": trunk_init(key_torso), "head": head.init(key_head, dummy)}
        if not spec.discrete:
            params["log_std"] = jnp.full((spec.num_actions,), init_log_std, jnp.float32)
        return params

    def apply(params: Params, obs: Array) -> Distribution:
        if carries_obs_norm(params):
            obs = params[OBS_NORM].normalise(obs)
        out = head.apply(params["head"], trunk_apply(params["torso"], obs))
        if spec.discrete:
            return Categorical(out)
        return DiagGaussian(out, jnp.broadcast_to(params["log_std"], out.shape))

    return Policy(init, apply)


def make_critic(
    spec: EnvSpec,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    *,
    torso: nn.Module | None = None,
) -> Critic:
    """A state-value network ``V(s)``: ``torso`` plus a linear head to ``[...]``.

    Raises:
      TypeError, ValueError: as :func:`make_policy`, for ``critic_network``.
    """
    torso = MLPTorso(tuple(hidden), activation) if torso is None else torso
    trunk_init, trunk_apply, features = _make_trunk(
        torso, spec.obs_shape, _obs_dtype(spec), "critic_network"
    )
    head = nn.Dense(1, kernel_init=scaled_normal(1.0))
    dummy = jnp.zeros((1, features), jnp.float32)

    def init(key: Array) -> Params:
        key_torso, key_head = jax.random.split(key)
        return {"torso": trunk_init(key_torso), "head": head.init(key_head, dummy)}

    def apply(params: Params, obs: Array) -> Array:
        features = trunk_apply(params["torso"], obs)
        return head.apply(params["head"], features)[..., 0]

    return Critic(init, apply)
