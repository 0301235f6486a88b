r"""Configuration: a frozen, validated dataclass plus the traced hyperparameters.

What changes shapes or control flow (env, algorithm, sizes, network) is static
and lives in :class:`Config`. What a user may sweep (learning rate, ``γ``,
coefficients, clip ``ε``, GAE ``λ``) is also collected in :class:`Hyperparams`,
a pytree of scalars carried in the train state, so ``jax.vmap`` can batch runs
over settings inside one compiled program.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.envs import known_envs
from jaxpg.envs.custom import is_import_path
from jaxpg.envs.registry import SUITES, is_known_env
from jaxpg.kernels.advantages import BASELINES
from jaxpg.networks import ACTIVATIONS, TORSOS

ALGOS = ("reinforce", "a2c", "ppo")
CUSTOM_ENV = "custom"


class Hyperparams(NamedTuple):
    """Sweepable scalars (float32 arrays; a leading axis batches settings)."""

    lr: jax.Array
    gamma: jax.Array
    ent_coef: jax.Array
    vf_coef: jax.Array
    gae_lambda: jax.Array
    clip_eps: jax.Array


def _fail(field: str, value: Any, allowed: str) -> None:
    raise ValueError(f"Config.{field}={value!r} is invalid: {allowed}")


@dataclasses.dataclass(frozen=True)
class Config:
    r"""Everything that defines a training run.

    Attributes:
      env: a gymnax environment name; an import path
        ``"package.module:make_env"`` of a function returning ``(env,
        env_params)`` (:mod:`jaxpg.envs.custom`: rebuilt wherever the config
        is, so run directories resume and evaluate it); or ``"custom"`` when
        the environment is passed to :func:`jaxpg.make_train` as ``env=``.
      algo: ``"reinforce"``, ``"a2c"`` or ``"ppo"``.
      baseline: REINFORCE's baseline, one of ``none, mean, standardise, loo,
        group, value`` (see :mod:`jaxpg.kernels.advantages`); ignored by a2c/ppo, which
        always use a learned critic with GAE.
      num_envs: ``B``, parallel environments per seed.
      total_steps: env-step budget per seed. a2c/ppo make exactly
        ``num_updates = total_steps // (num_envs * rollout_steps)`` updates.
        reinforce collects at least ``num_envs * rollout_steps`` steps per
        update (more while episodes are long), so ``num_updates`` is an upper
        bound and the budget decides when the run ends: its last update is
        the one that reaches ``total_steps`` (exceeding it by at most that
        update's episodes). The update slots after it collect nothing, change
        nothing, cost next to nothing and repeat the last update's metrics,
        so ``metrics[name][-1]`` is always an update with data; their
        ``update`` and ``env_steps`` metrics stop rising.
      rollout_steps: a2c/ppo: the window length ``T`` of each update.
        reinforce: episodes that *start* within the first ``rollout_steps``
        steps of an update are run to their end (complete episodes only).
      gamma: discount ``γ ∈ [0, 1]``.
      lr: Adam learning rate ``> 0``.
      hidden: widths of the MLP torso (policy and critic); with a recurrent
        ``torso``, the widths of its dense encoder before the cell (``()``:
        none).
      activation: one of ``tanh, relu, gelu, silu``.
      torso: the policy's and the critic's torso when none is passed to
        :func:`jaxpg.make_train`: ``"mlp"`` (:class:`~jaxpg.networks.MLPTorso`
        of ``hidden``), ``"gru"`` or ``"lstm"``
        (:class:`~jaxpg.networks.GRUTorso` / :class:`~jaxpg.networks.LSTMTorso`
        of ``recurrent_size`` units after the ``hidden`` encoder; see
        :func:`jaxpg.networks.torso_from`). With a recurrent torso, ppo needs
        ``num_minibatches`` to divide ``num_envs`` (minibatches of whole env
        sequences). Being in the config, it is rebuilt wherever the config is
        (run directories, ``jaxpg eval`` and ``jaxpg compare``).
      recurrent_size: ``H``, units of a recurrent ``torso``'s cell (its
        features and carry ``[N, H]``); unused by ``"mlp"``.
      ent_coef: entropy bonus coefficient ``≥ 0``.
      vf_coef: value-loss coefficient ``≥ 0`` (critic algorithms).
      gae_lambda: GAE ``λ ∈ [0, 1]`` (a2c, ppo).
      clip_eps: PPO ratio clip ``ε > 0``.
      num_epochs: PPO epochs over each rollout.
      num_minibatches: PPO minibatches per epoch; must divide
        ``num_envs * rollout_steps``.
      clip_value: PPO value clipping with ``clip_eps``.
      max_grad_norm: clip gradients by global norm; ``None`` disables.
      clip_per_network: clip the policy's and the critic's gradients each by
        its own norm (``max_grad_norm`` each) instead of their joint norm, so
        a critic's large errors do not shrink the policy's step. Needs
        ``max_grad_norm``.
      anneal_lr: decay jaxpg's default optimizer's learning rate linearly
        with the step budget: each update sets it to
        ``lr * (1 - env_steps / total_steps)`` (env steps before the update),
        through the optimizer's injected hyperparameter, so ``lr`` stays
        sweepable. A user's optimizer brings its own schedule instead.
      normalise_obs: feed the networks observations standardised by a running
        mean and variance (:class:`jaxpg.kernels.normalise.RunningMeanStd`, carried in
        the train state as ``obs_norm``, fixed within an update, saved with the
        policy and used by evaluation). Float observations only.
      scale_rewards: divide the rewards the learner sees by the running
        standard deviation of a discounted return
        (:class:`jaxpg.kernels.normalise.RewardScaler`); reported returns stay raw.
      max_episode_steps: a time limit jaxpg enforces (truncation); required when
        the env has no ``max_steps_in_episode`` of its own.
      init_log_std: initial ``log σ`` of the Gaussian head (continuous actions).
      policy_head_scale: init gain ``> 0`` of the policy's output layer; 0.01
        starts near a uniform / zero-mean policy, about 1 from a random
        state-dependent one.
      loop_chunk: steps the episode loops (REINFORCE's collection and its
        returns, evaluation) run between tests of their predicate, an int
        ``>= 1``; ``None`` takes the platform's
        :data:`jaxpg.rollout.LOOP_CHUNK`. Only speed depends on it: every
        value gives the same batch, gradient and metrics, bit for bit.
      policy_obs: what the policy's torso reads of a dict observation: a key
        or a tuple of keys (``None``: every leaf but the action mask). A
        function instead goes to ``make_train(..., policy_obs=fn)``.
      critic_obs: the same for the critic (e.g. a privileged leaf the policy
        does not see, as brax's ``value_obs_key``).
    """

    env: str = "CartPole-v1"
    algo: str = "reinforce"
    baseline: str = "standardise"
    num_envs: int = 16
    total_steps: int = 200_000
    rollout_steps: int = 32
    gamma: float = 0.99
    lr: float = 3e-3
    hidden: tuple[int, ...] = (64, 64)
    activation: str = "tanh"
    torso: str = "mlp"
    recurrent_size: int = 64
    ent_coef: float = 0.0
    vf_coef: float = 0.5
    gae_lambda: float = 0.95
    clip_eps: float = 0.2
    num_epochs: int = 4
    num_minibatches: int = 4
    clip_value: bool = False
    max_grad_norm: float | None = None
    clip_per_network: bool = False
    anneal_lr: bool = False
    normalise_obs: bool = False
    scale_rewards: bool = False
    max_episode_steps: int | None = None
    init_log_std: float = 0.0
    policy_head_scale: float = 0.01
    loop_chunk: int | None = None
    policy_obs: str | tuple[str, ...] | None = None
    critic_obs: str | tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        # Types first, strictly (a bool is not an int, "false" is not a bool);
        # NumPy scalars become Python ones so the config stays hashable and
        # JSON-able.
        for name in _STR_FIELDS:
            _normalise(self, name, _as_str)
        for name in _INT_FIELDS:
            _normalise(self, name, _as_int)
        for name in _FLOAT_FIELDS:
            _normalise(self, name, _as_float)
        for name in _BOOL_FIELDS:
            _normalise(self, name, _as_bool)
        if self.max_grad_norm is not None:
            _normalise(self, "max_grad_norm", _as_float)
        if self.max_episode_steps is not None:
            _normalise(self, "max_episode_steps", _as_int)
        if self.loop_chunk is not None:
            _normalise(self, "loop_chunk", _as_int)
        _normalise(self, "hidden", _as_hidden)
        for name in ("policy_obs", "critic_obs"):
            if getattr(self, name) is not None:
                _normalise(self, name, _as_keys)

        named = is_known_env(self.env) or is_import_path(self.env)
        if self.env != CUSTOM_ENV and not named:
            _fail(
                "env",
                self.env,
                f"allowed: {', '.join(known_envs())}, SUITE/NAME with SUITE one of "
                f"{', '.join(SUITES)}, an import path MODULE:FUNCTION returning "
                f"(env, env_params), or '{CUSTOM_ENV}' with make_train(cfg, env=...)",
            )
        if self.algo not in ALGOS:
            _fail("algo", self.algo, f"allowed: {', '.join(ALGOS)}")
        baselines = (*BASELINES, "value")
        if self.baseline not in baselines:
            _fail("baseline", self.baseline, f"allowed: {', '.join(baselines)}")
        if self.activation not in ACTIVATIONS:
            _fail("activation", self.activation, f"allowed: {', '.join(ACTIVATIONS)}")
        if self.torso not in TORSOS:
            _fail(
                "torso",
                self.torso,
                f"allowed: {', '.join(TORSOS)} (your own module goes to "
                "make_train(..., policy_network=..., critic_network=...))",
            )
        for name in _INT_FIELDS:
            value = getattr(self, name)
            if value <= 0:
                _fail(name, value, "must be a positive integer")
            if value > INT32_MAX:
                _fail(name, value, f"must fit the int32 counters: <= {INT32_MAX}")
        batch = self.num_envs * self.rollout_steps
        if batch > INT32_MAX:
            _fail(
                "num_envs",
                self.num_envs,
                f"num_envs * rollout_steps = {batch} must fit the int32 counters: "
                f"<= {INT32_MAX}",
            )
        if self.algo == "ppo" and batch % self.num_minibatches:
            _fail(
                "num_minibatches",
                self.num_minibatches,
                f"must divide num_envs * rollout_steps = {batch}",
            )
        if (
            self.algo == "ppo"
            and self.torso != "mlp"
            and self.num_envs % self.num_minibatches
        ):
            _fail(
                "num_minibatches",
                self.num_minibatches,
                f"must divide num_envs = {self.num_envs} with torso="
                f"{self.torso!r} (minibatches are sets of envs, each a whole "
                "sequence)",
            )
        if self.total_steps < batch:
            _fail(
                "total_steps",
                self.total_steps,
                f"must be at least num_envs * rollout_steps = {batch} (one update)",
            )
        _check_range("gamma", self.gamma, 0.0, 1.0)
        _check_range("gae_lambda", self.gae_lambda, 0.0, 1.0)
        _check_positive("lr", self.lr)
        _check_positive("clip_eps", self.clip_eps)
        for name in ("ent_coef", "vf_coef"):
            if not getattr(self, name) >= 0:
                _fail(name, getattr(self, name), "must be a finite number >= 0")
        if self.max_grad_norm is not None:
            _check_positive("max_grad_norm", self.max_grad_norm)
        elif self.clip_per_network:
            _fail(
                "clip_per_network",
                True,
                "clips by max_grad_norm, which is None: set max_grad_norm too",
            )
        if self.max_episode_steps is not None and not (
            0 < self.max_episode_steps <= INT32_MAX
        ):
            _fail(
                "max_episode_steps",
                self.max_episode_steps,
                f"a positive int <= {INT32_MAX}, or None",
            )
        _check_positive("policy_head_scale", self.policy_head_scale)
        if self.loop_chunk is not None and not 0 < self.loop_chunk <= INT32_MAX:
            _fail(
                "loop_chunk",
                self.loop_chunk,
                f"a positive int <= {INT32_MAX}, or None for the platform's default",
            )

    @property
    def num_updates(self) -> int:
        """Updates per run: ``total_steps // (num_envs * rollout_steps)``."""
        return self.total_steps // (self.num_envs * self.rollout_steps)

    def hyperparams(self) -> Hyperparams:
        """The sweepable scalars of this config as float32 arrays."""
        f = lambda x: jnp.asarray(x, jnp.float32)  # noqa: E731
        return Hyperparams(
            lr=f(self.lr),
            gamma=f(self.gamma),
            ent_coef=f(self.ent_coef),
            vf_coef=f(self.vf_coef),
            gae_lambda=f(self.gae_lambda),
            clip_eps=f(self.clip_eps),
        )

    def replace(self, **changes: Any) -> Config:
        """A copy with ``changes`` applied (validated again)."""
        return dataclasses.replace(self, **changes)


_BOOL_FIELDS = (
    "clip_value",
    "clip_per_network",
    "anneal_lr",
    "normalise_obs",
    "scale_rewards",
)
_STR_FIELDS = ("env", "algo", "baseline", "activation", "torso")
_INT_FIELDS = (
    "num_envs",
    "total_steps",
    "rollout_steps",
    "num_epochs",
    "num_minibatches",
    "recurrent_size",
)
_FLOAT_FIELDS = (
    "gamma",
    "lr",
    "ent_coef",
    "vf_coef",
    "gae_lambda",
    "clip_eps",
    "init_log_std",
    "policy_head_scale",
)
INT32_MAX = int(np.iinfo(np.int32).max)
_FLOAT32_MAX = float(np.finfo(np.float32).max)


def _normalise(cfg: Config, name: str, convert: Any) -> None:
    object.__setattr__(cfg, name, convert(name, getattr(cfg, name)))


def _as_str(name: str, value: Any) -> str:
    if not isinstance(value, str):
        _fail(name, value, f"must be a string, got {type(value).__name__}")
    return str(value)


def _as_int(name: str, value: Any) -> int:
    if isinstance(value, bool | np.bool_) or not isinstance(value, int | np.integer):
        _fail(name, value, f"must be an int, got {type(value).__name__}")
    return int(value)


def _as_float(name: str, value: Any) -> float:
    if isinstance(value, bool | np.bool_) or not isinstance(
        value, int | float | np.integer | np.floating
    ):
        _fail(name, value, f"must be a number, got {type(value).__name__}")
    number = float(value)
    if not math.isfinite(number) or abs(number) > _FLOAT32_MAX:
        _fail(
            name,
            value,
            f"must be finite in float32 (|x| <= {_FLOAT32_MAX:.4g}), where it is "
            "traced",
        )
    return number


def _as_bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool | np.bool_):
        _fail(name, value, f"must be True or False, got {type(value).__name__}")
    return bool(value)


def _as_hidden(name: str, value: Any) -> tuple[int, ...]:
    if not isinstance(value, tuple | list) or not all(
        isinstance(h, int | np.integer) and not isinstance(h, bool | np.bool_)
        for h in value
    ):
        _fail(name, value, "must be a tuple of positive ints, e.g. (64, 64)")
    widths = tuple(int(h) for h in value)
    if not all(h > 0 for h in widths):
        _fail(name, value, "must be a tuple of positive ints, e.g. (64, 64)")
    return widths


def _as_keys(name: str, value: Any) -> str | tuple[str, ...]:
    if isinstance(value, str) and value:
        return value
    if (
        isinstance(value, tuple | list)
        and value
        and all(isinstance(k, str) and k for k in value)
    ):
        return tuple(value)
    _fail(
        name,
        value,
        "must be None, a key or a tuple of keys of a dict observation (a "
        f"function goes to make_train(..., {name}=fn))",
    )


def _is_real(value: Any) -> bool:
    return (
        isinstance(value, int | float)
        and not isinstance(value, bool)
        and value == value
        and abs(value) != float("inf")
    )


def _check_range(name: str, value: Any, lo: float, hi: float) -> None:
    if not _is_real(value) or not lo <= value <= hi:
        _fail(name, value, f"must be a number in [{lo}, {hi}]")


def _check_positive(name: str, value: Any) -> None:
    # Checked in float32, where it is used: 1e-50 would become 0.
    if not _is_real(value) or not np.float32(value) > 0:
        _fail(name, value, "must be a finite number > 0")
