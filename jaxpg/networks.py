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

The default torso is :class:`MLPTorso` (flattens ``O``, then dense layers);
:func:`torso_from` builds the torso a config names (``Config.torso``).

Observations may be pytrees (a dict, NamedTuple or flax struct of arrays with
the same leading axes): the torso then receives the pytree (every leaf
``[N, ...]``) and :class:`MLPTorso` flattens and concatenates its leaves. What
a torso receives is the observation without its action-mask leaf, narrowed by
``obs_view`` (``policy_obs`` / ``critic_obs``; see
:mod:`jaxpg.envs.observations`), so a critic may read a privileged leaf the
policy cannot see. A discrete policy masks illegal actions
(:func:`~jaxpg.kernels.distributions.masked_logits`) with the observation's
mask leaf or a user's ``action_mask_fn``; a ``MultiDiscrete`` action space
gets a :class:`~jaxpg.kernels.distributions.MultiCategorical` head.

A torso may also be an ``nnx.Module`` (:mod:`jaxpg.nnx_bridge`) or recurrent
(:mod:`jaxpg.recurrent`: :class:`GRUTorso`, :class:`LSTMTorso`, or any module
of its protocol); a recurrent policy acts through ``step`` with a carry.
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
import os
import sys
import warnings
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import flax.errors
import flax.linen as nn
import jax
import jax.numpy as jnp

from jaxpg import nnx_bridge
from jaxpg.envs import EnvSpec
from jaxpg.envs.observations import (
    ObsView,
    batch_shape,
    flat_features,
    mask_fn,
    view_fn,
)
from jaxpg.envs.spec import obs_template
from jaxpg.initializers import scaled_normal as scaled_normal  # re-exported
from jaxpg.kernels import convolution
from jaxpg.kernels.distributions import (
    Categorical,
    DiagGaussian,
    Distribution,
    MultiCategorical,
    masked_logits,
)
from jaxpg.kernels.normalise import RunningMeanStd
from jaxpg.nnx_bridge import check_collections
from jaxpg.recurrent import GRUTorso as GRUTorso  # re-exported
from jaxpg.recurrent import LSTMTorso as LSTMTorso  # re-exported
from jaxpg.recurrent import is_recurrent, make_recurrent_trunk

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


class MLPTorso(nn.Module):
    """Flatten ``[N, *O]`` to ``[N, prod(O)]`` float32, then dense layers.

    A pytree observation: every leaf flattened to ``[N, -1]`` float32 (ints
    and bools as numbers) and concatenated in the pytree's leaf order. Weights
    drawn with :func:`scaled_normal` of gain ``√2``.
    """

    hidden: Sequence[int] = (64, 64)
    activation: str = "tanh"

    @nn.compact
    def __call__(self, obs: Any) -> Array:
        act = ACTIVATIONS[self.activation]
        x = flat_features(obs)
        for width in self.hidden:
            x = act(nn.Dense(width, kernel_init=scaled_normal(2**0.5))(x))
        return x


class Conv(nn.Conv):
    """``flax.linen.Conv`` (same fields, parameters and values) whose forward
    pass and gradients XLA runs with its fast CPU kernels inside the training
    loops: :func:`jaxpg.kernels.convolution.conv_general_dilated` in place of
    :func:`jax.lax.conv_general_dilated` (why, and what it supports: that
    module's docstring; on CPU no forward-mode differentiation). On GPU and TPU
    it is ``nn.Conv``."""

    conv_general_dilated: Callable = convolution.conv_general_dilated


TORSOS = ("mlp", "gru", "lstm")  # the torsos a Config can name (Config.torso)


def torso_from(
    kind: str,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    recurrent_size: int = 64,
) -> nn.Module:
    """The torso a config names (:attr:`jaxpg.Config.torso`).

    ``"mlp"``: :class:`MLPTorso` of widths ``hidden``; ``"gru"`` /
    ``"lstm"``: :class:`GRUTorso` / :class:`LSTMTorso` of ``recurrent_size``
    units after dense ``encoder`` layers of widths ``hidden`` (features
    ``[N, recurrent_size]``).

    Raises:
      ValueError: ``kind`` is not one of :data:`TORSOS`.
    """
    if kind == "mlp":
        return MLPTorso(tuple(hidden), activation)
    if kind == "gru":
        return GRUTorso(recurrent_size, tuple(hidden), activation)
    if kind == "lstm":
        return LSTMTorso(recurrent_size, tuple(hidden), activation)
    raise ValueError(f"torso={kind!r} is invalid: allowed: {', '.join(TORSOS)}")


class Policy(NamedTuple):
    """``init(key) -> params``; ``apply(params, obs [..., *O]) -> Distribution``.

    A recurrent policy (a torso of :mod:`jaxpg.recurrent`'s protocol) has
    ``initial_carry(B) -> carry`` and ``step(params, carry, obs [B, *O],
    reset [B]) -> (carry, Distribution)`` instead of ``apply``.
    """

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Distribution]
    initial_carry: Callable[[int], Any] | None = None
    step: Callable[..., tuple[Any, Distribution]] | None = None

    @property
    def recurrent(self) -> bool:
        """Whether the policy has a carry (its torso is recurrent)."""
        return self.step is not None


class Critic(NamedTuple):
    """``init(key) -> params``; ``apply(params, obs [..., *O]) -> [...]`` values.

    Recurrent: ``initial_carry`` and ``step(params, carry, obs [B, *O], reset
    [B]) -> (carry, [B] values)`` as :class:`Policy`.
    """

    init: Callable[[Array], Params]
    apply: Callable[[Params, Array], Array]
    initial_carry: Callable[[int], Any] | None = None
    step: Callable[..., tuple[Any, Array]] | None = None

    @property
    def recurrent(self) -> bool:
        """Whether the critic has a carry (its torso is recurrent)."""
        return self.step is not None


def _needs_step(name: str) -> Callable:
    def apply(params: Params, obs: Array) -> Any:
        raise TypeError(
            f"this {name} has a recurrent torso: call its step(params, carry, "
            "obs, reset) with a carry from initial_carry(batch_size), not apply"
        )

    return apply


def _check_torso(torso: Any, name: str) -> Any:
    """``torso`` as a linen-like module: an ``nnx.Module`` or a factory of one
    wrapped by :func:`jaxpg.nnx_bridge.wrap`, a linen module as it is."""
    torso = nnx_bridge.wrap(torso, name)
    if not isinstance(torso, (nn.Module, nnx_bridge.NNXTorso)):
        kind = f"{type(torso).__module__}.{type(torso).__qualname__}"
        raise TypeError(f"{name}=<a {kind}> is invalid: must be {nnx_bridge.ACCEPTED}")
    return torso


def _seen(spec: EnvSpec, view: Callable, name: str) -> tuple[Any, Any]:
    """``(template, dummy)``: what a torso sees of one observation (a pytree of
    ``ShapeDtypeStruct``) and a ``[1, ...]`` zero batch of it."""
    full = obs_template(spec)
    one = jax.tree.map(lambda x: jax.ShapeDtypeStruct((1, *x.shape), x.dtype), full)
    try:
        seen = jax.eval_shape(view, one)
    except Exception as err:  # a user view that cannot take the observation
        raise ValueError(
            f"the view of {name}'s observations failed on "
            f"{jax.tree.map(lambda x: x.shape, full)}: {err}"
        ) from err
    template = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), seen)
    dummy = jax.tree.map(lambda x: jnp.zeros(x.shape, x.dtype), seen)
    return template, dummy


def _make_recurrent(
    torso: Any, spec: EnvSpec, view: Callable, name: str
) -> tuple[Callable, Callable, Callable, int]:
    """:func:`jaxpg.recurrent.make_recurrent_trunk` on observations seen
    through ``view``: ``step(params, carry, obs [B, *O], reset [B])``."""
    _, dummy = _seen(spec, view, name)
    init, initial_carry, step, features = make_recurrent_trunk(torso, dummy, name)

    def step_view(params: Params, carry: Any, obs: Any, reset: Array):
        return step(params, carry, view(obs), reset)

    return init, initial_carry, step_view, features


def _first_caller_outside_jaxpg() -> int:
    """The ``stacklevel`` of the nearest frame outside this package (the
    user's call), counted from the function that calls this one."""
    package = os.path.dirname(os.path.abspath(__file__)) + os.sep
    frame, level = sys._getframe(1), 1
    while frame is not None and frame.f_code.co_filename.startswith(package):
        frame, level = frame.f_back, level + 1
    return level


def warn_plain_convolutions(
    spec: EnvSpec, network: Policy | Critic, torso: Any, name: str
) -> None:
    """On CPU, a :class:`~jaxpg.kernels.convolution.SlowConvolutionWarning`
    (at the user's call) when ``network``, built on the user's feed-forward
    ``torso``, makes plain ``lax.conv_general_dilated`` calls
    (:func:`~jaxpg.kernels.convolution.plain_convolutions`: ``nn.Conv``). The
    trainers call it; evaluation, which takes no gradient, does not."""
    if torso is None or network.recurrent or jax.default_backend() != "cpu":
        return
    obs = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct((1, *x.shape), x.dtype), obs_template(spec)
    )
    params = jax.eval_shape(network.init, jax.random.key(0))
    count = convolution.plain_convolutions(network.apply, params, obs)
    if count:
        warnings.warn(
            f"{name} ({getattr(torso, '__name__', type(torso).__name__)}) has "
            f"{count} convolution(s) from "
            "jax.lax.conv_general_dilated (flax's nn.Conv): on CPU, XLA runs their "
            "kernel gradients inside jaxpg's update loops with naive code (5x "
            "slower training for the README's CNN on a 2-core CPU); use "
            "jaxpg.networks.Conv, or pass conv_general_dilated=jaxpg.kernels."
            "convolution.conv_general_dilated to your convolution layers "
            "(docs/benchmarks.md, 'CNN torsos on CPU')",
            convolution.SlowConvolutionWarning,
            stacklevel=_first_caller_outside_jaxpg(),
        )


def _make_trunk(
    torso: nn.Module, spec: EnvSpec, view: Callable, name: str
) -> tuple[Callable, Callable, int]:
    """``(init, apply, F)`` for ``torso`` on ``[..., *O]`` observations seen
    through ``view`` (:func:`jaxpg.envs.observations.view_fn`).

    ``apply(params, obs)`` returns ``[..., F]``: leading axes are folded into
    one batch axis for the torso and unfolded afterwards.
    """
    template, dummy = _seen(spec, view, name)
    shapes = jax.tree.map(lambda x: tuple(x.shape), template)
    try:
        # ``apply`` too: it runs without the rng streams ``init`` may lend.
        variables = jax.eval_shape(lambda: torso.init(jax.random.key(0), dummy))
        check_collections(variables, torso, name)
        features = jax.eval_shape(lambda v: torso.apply(v, dummy), variables)
    except nnx_bridge.UnsupportedState:
        raise
    except flax.errors.InvalidRngError as err:  # e.g. linen Dropout
        raise ValueError(
            f"{name} ({type(torso).__name__}) draws from an rng stream other than "
            f"'params' (linen Dropout: 'dropout'): jaxpg trains torsos without "
            f"extra rng streams; set deterministic=True ({err})"
        ) from err
    except Exception as err:  # a user module that cannot take [1, *O]
        raise ValueError(
            f"{name} ({type(torso).__name__}) failed on observations of shape "
            f"[N, *O], O = {shapes}: {err}"
        ) from err
    if features.ndim != 2 or features.shape[0] != 1:
        raise ValueError(
            f"{name} ({type(torso).__name__}) must map [N, *O] observations to "
            f"[N, F] features; it returned shape {features.shape} for N=1"
        )
    if isinstance(template, jax.ShapeDtypeStruct):  # one array: as before
        obs_shape = template.shape
        rank = len(obs_shape)

        def init(key: Array) -> Params:
            return torso.init(key, dummy)

        def apply(params: Params, obs: Array) -> Array:
            obs = view(obs)
            batch = obs.shape[: obs.ndim - rank]
            flat = obs.reshape((math.prod(batch), *obs_shape))
            return torso.apply(params, flat).reshape((*batch, -1))

        return init, apply, int(features.shape[1])

    def init_tree(key: Array) -> Params:
        return torso.init(key, dummy)

    def apply_tree(params: Params, obs: Any) -> Array:
        obs = view(obs)
        batch = batch_shape(obs, template)
        flat = jax.tree.map(
            lambda x, t: x.reshape((math.prod(batch), *t.shape)), obs, template
        )
        return torso.apply(params, flat).reshape((*batch, -1))

    return init_tree, apply_tree, int(features.shape[1])


def make_policy(
    spec: EnvSpec,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    init_log_std: float = 0.0,
    head_scale: float = 0.01,
    *,
    torso: nn.Module | None = None,
    obs_view: ObsView = None,
    action_mask_fn: Callable[[Any], Array] | None = None,
) -> Policy:
    r"""A policy for the action space of ``spec``: ``torso`` plus jaxpg's head.

    A discrete policy masks the illegal actions of the observation's mask leaf
    (:attr:`~jaxpg.envs.EnvSpec.mask_key`) or of ``action_mask_fn``: they get
    probability 0 in sampling, log-probabilities, entropy and the mode; a
    state with no legal action falls back to the unmasked distribution
    (:func:`~jaxpg.kernels.distributions.masked_logits`). The mask is read
    from the observation ``apply`` receives (with observation normalisation,
    floating-point leaves are standardised; other leaves are unchanged).

    Args:
      spec: the environment's :class:`~jaxpg.envs.EnvSpec`.
      hidden, activation: the default :class:`MLPTorso` (ignored with ``torso``).
      init_log_std: initial :math:`\log\sigma` of a Gaussian policy.
      head_scale: init gain of the output layer: the default 0.01 starts near
        the uniform policy (categorical) or a zero mean (Gaussian); about 1
        starts from a random state-dependent policy, which explores
        differently (e.g. it can pump energy into MountainCar).
      torso: a ``flax.linen.Module`` ``[N, *O] -> [N, F]``; default MLP.
      obs_view: what the torso reads of the observation (``policy_obs``): a
        key, a tuple of keys or a function; default all but the mask leaf.
      action_mask_fn: ``obs [..., *O] -> [..., A]`` bool (True: legal);
        replaces the observation's mask leaf.

    Raises:
      TypeError: ``torso`` is not a flax module; a malformed view or mask
        function.
      ValueError: ``torso`` does not map ``[1, *O]`` to ``[1, F]``; a view
        naming keys the observation does not have.
    """
    torso = MLPTorso(tuple(hidden), activation) if torso is None else torso
    torso = _check_torso(torso, "policy_network")
    view = view_fn(spec, obs_view, "policy_obs")
    read_mask = mask_fn(spec, action_mask_fn)
    if is_recurrent(torso):
        trunk_init, initial_carry, trunk_step, features = _make_recurrent(
            torso, spec, view, "policy_network"
        )
    else:
        trunk_init, trunk_apply, features = _make_trunk(
            torso, spec, view, "policy_network"
        )
    head = nn.Dense(spec.num_actions, kernel_init=scaled_normal(head_scale))
    dummy = jnp.zeros((1, features), jnp.float32)

    def init(key: Array) -> Params:
        key_torso, key_head = jax.random.split(key)
        params = {"torso": trunk_init(key_torso), "head": head.init(key_head, dummy)}
        if not spec.discrete:
            params["log_std"] = jnp.full((spec.num_actions,), init_log_std, jnp.float32)
        return params

    def distribution(params: Params, features: Array, obs: Any) -> Distribution:
        out = head.apply(params["head"], features)
        mask = None if read_mask is None else read_mask(obs)
        if spec.nvec is not None:
            return MultiCategorical.from_logits(out, spec.nvec, mask)
        if spec.discrete:
            return Categorical(out if mask is None else masked_logits(out, mask))
        return DiagGaussian(out, jnp.broadcast_to(params["log_std"], out.shape))

    def apply(params: Params, obs: Array) -> Distribution:
        if carries_obs_norm(params):
            obs = params[OBS_NORM].normalise(obs)
        return distribution(params, trunk_apply(params["torso"], obs), obs)

    if not is_recurrent(torso):
        return Policy(init, apply)

    def step(params: Params, carry: Any, obs: Array, reset: Array):
        if carries_obs_norm(params):
            obs = params[OBS_NORM].normalise(obs)
        carry, features = trunk_step(params["torso"], carry, obs, reset)
        return carry, distribution(params, features, obs)

    return Policy(init, _needs_step("policy"), initial_carry, step)


def make_critic(
    spec: EnvSpec,
    hidden: Sequence[int] = (64, 64),
    activation: str = "tanh",
    *,
    torso: nn.Module | None = None,
    obs_view: ObsView = None,
) -> Critic:
    """A state-value network ``V(s)``: ``torso`` plus a linear head to ``[...]``.

    ``obs_view`` (``critic_obs``): what the torso reads, as
    :func:`make_policy`'s; a critic may read a privileged leaf the policy
    does not.

    Raises:
      TypeError, ValueError: as :func:`make_policy`, for ``critic_network``.
    """
    torso = MLPTorso(tuple(hidden), activation) if torso is None else torso
    torso = _check_torso(torso, "critic_network")
    view = view_fn(spec, obs_view, "critic_obs")
    if is_recurrent(torso):
        trunk_init, initial_carry, trunk_step, features = _make_recurrent(
            torso, spec, view, "critic_network"
        )
    else:
        trunk_init, trunk_apply, features = _make_trunk(
            torso, spec, view, "critic_network"
        )
    head = nn.Dense(1, kernel_init=scaled_normal(1.0))
    dummy = jnp.zeros((1, features), jnp.float32)

    def init(key: Array) -> Params:
        key_torso, key_head = jax.random.split(key)
        return {"torso": trunk_init(key_torso), "head": head.init(key_head, dummy)}

    def apply(params: Params, obs: Array) -> Array:
        features = trunk_apply(params["torso"], obs)
        return head.apply(params["head"], features)[..., 0]

    if not is_recurrent(torso):
        return Critic(init, apply)

    def step(params: Params, carry: Any, obs: Array, reset: Array):
        carry, features = trunk_step(params["torso"], carry, obs, reset)
        return carry, head.apply(params["head"], features)[..., 0]

    return Critic(init, _needs_step("critic"), initial_carry, step)
