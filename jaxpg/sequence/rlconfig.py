r"""Static settings of sequence-level RL (:class:`RLConfig`) and the traced
ones (:class:`Hyperparams`), validated on construction."""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from jaxpg.sequence import checks
from jaxpg.sequence import estimators as est
from jaxpg.sequence.tasks import Task

Array = jax.Array

__all__ = ["IMPORTANCE_RATIOS", "KL_PLACEMENTS", "Hyperparams", "RLConfig"]

IMPORTANCE_RATIOS = ("token", "sequence")
KL_PLACEMENTS = ("none", "reward", "loss")
_INT32_MAX = int(np.iinfo(np.int32).max)
# Advantages that subtract a group's own mean: 0 for groups of one response.
_GROUP_BASELINES = ("rloo", "grpo", "dr_grpo", "grpo_batch")


@dataclasses.dataclass(frozen=True)
class RLConfig:
    r"""Static settings of sequence-level RL (validated on construction:
    ``ValueError`` naming the field, the value and what is allowed).

    Attributes:
      num_prompts: ``P >= 1`` prompts per update.
      group_size: ``G >= 1`` samples per prompt (``>= 2`` for rloo, grpo).
      num_updates: updates of one :func:`make_rl_train` run, ``>= 1``.
      max_new_tokens: response budget ``R >= 1``; ``None``: the task's default.
      advantage: one of :data:`.estimators.ADVANTAGES`.
      aggregation: one of :data:`.estimators.AGGREGATIONS`.
      loss_norm: the constant ``> 0`` of ``aggregation="constant"``; ``None``:
        ``R``.
      kl_placement: ``"none"``, ``"reward"`` or ``"loss"``.
      kl_estimator: ``"k1"``, ``"k2"`` or ``"k3"``.
      beta: KL coefficient, finite ``>= 0``.
      lr: Adam learning rate (when no ``optimizer`` is passed), in
        ``(0, 1]`` (:data:`.checks.MAX_LR`).
      max_grad_norm: global-norm clipping of the default optimizer, ``> 0``.
      epochs: gradient steps per batch ``>= 1`` (PPO-style reuse needs
        ``clip_eps``).
      clip_eps: PPO ratio clip ``> 0``, or ``None``.
      temperature: sampling temperature, finite ``> 0`` (ratios correct for
        it).
      top_k: sampling top-k ``>= 1``, or ``None``.
      clip_eps_high: the upper clip :math:`\epsilon_{high}` (DAPO's
        clip-higher; ``clip_eps`` is then :math:`\epsilon_{low}`), ``> 0``,
        or ``None`` (symmetric). Needs ``clip_eps``.
      dual_clip: dual-clip PPO's :math:`c > 1` (negative advantages), or
        ``None``. Needs ``clip_eps``.
      importance_ratio: ``"token"`` (PPO/GRPO) or ``"sequence"`` (GSPO: one
        length-normalised ratio per response; needs
        ``aggregation="seq_mean"``).
      dynamic_sampling: ``K >= num_prompts`` groups drawn per update, of which
        the first ``num_prompts`` whose rewards are not all equal are kept
        (DAPO), or ``None``.
      overlong_buffer: DAPO's soft overlong punishment over the last
        ``overlong_buffer`` tokens of the budget (``1 .. R``), or ``None``.
      overlong_penalty: its scale (the penalty at the budget), finite
        ``>= 0``.
      mask_truncated: drop responses that never emit EOS from the loss (DAPO's
        overlong filtering); they still count in their group's baseline.

    Numbers must be finite in float32, where they are used.
    """

    num_prompts: int = 16
    group_size: int = 4
    num_updates: int = 100
    max_new_tokens: int | None = None
    advantage: str = "grpo"
    aggregation: str = "seq_mean"
    loss_norm: float | None = None
    kl_placement: str = "loss"
    kl_estimator: str = "k3"
    beta: float = 0.04
    lr: float = 1e-3
    max_grad_norm: float = 1.0
    epochs: int = 1
    clip_eps: float | None = 0.2
    temperature: float = 1.0
    top_k: int | None = None
    clip_eps_high: float | None = None
    dual_clip: float | None = None
    importance_ratio: str = "token"
    dynamic_sampling: int | None = None
    overlong_buffer: int | None = None
    overlong_penalty: float = 1.0
    mask_truncated: bool = False

    def __post_init__(self):
        # Numbers first (NaN, inf, a bool, a string: named), NumPy scalars
        # become Python ones so that the config stays hashable and JSON-able.
        def field(name: str, check, *args, **kwargs) -> None:
            value = check(f"RLConfig.{name}", getattr(self, name), *args, **kwargs)
            object.__setattr__(self, name, value)

        for name in ("num_prompts", "group_size", "num_updates", "epochs"):
            field(name, checks.positive_int)
        if self.num_updates > _INT32_MAX:  # the int32 step counter
            raise ValueError(
                f"RLConfig.num_updates={self.num_updates} is invalid: must be "
                f"<= {_INT32_MAX}"
            )
        for name in ("max_new_tokens", "top_k", "dynamic_sampling", "overlong_buffer"):
            if getattr(self, name) is not None:
                field(name, checks.positive_int)
        field("lr", checks.learning_rate)
        field("beta", checks.number, 0.0)
        field("max_grad_norm", checks.number, 0.0, low_open=True)
        field("temperature", checks.number, 0.0, low_open=True)
        field("overlong_penalty", checks.number, 0.0)
        if self.dual_clip is not None:
            field("dual_clip", checks.number, 1.0, low_open=True)
        for name in ("clip_eps", "loss_norm", "clip_eps_high"):
            if getattr(self, name) is not None:
                field(name, checks.number, 0.0, low_open=True)
        choices = {
            "advantage": est.ADVANTAGES,
            "aggregation": est.AGGREGATIONS,
            "kl_placement": KL_PLACEMENTS,
            "kl_estimator": est.KL_ESTIMATORS,
            "importance_ratio": IMPORTANCE_RATIOS,
        }
        for name, allowed in choices.items():
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"{name}={getattr(self, name)!r} is not one of {allowed}"
                )
        # Settings whose every advantage is 0 (only a KL term would train).
        if self.advantage in _GROUP_BASELINES and self.group_size < 2:
            raise ValueError(
                f"advantage={self.advantage!r} needs group_size >= 2, got "
                f"{self.group_size}: with one response per prompt, r minus its "
                "group's mean is 0"
            )
        if (
            self.advantage in ("reinforce_mean", "reinforce_pp")
            and self.num_prompts * self.group_size < 2
        ):
            raise ValueError(
                f"advantage={self.advantage!r} needs num_prompts * group_size "
                f">= 2, got {self.num_prompts} * {self.group_size}: with one "
                "response, r minus the batch mean is 0"
            )
        if self.dynamic_sampling is not None and self.group_size < 2:
            raise ValueError(
                f"RLConfig.dynamic_sampling={self.dynamic_sampling} needs "
                f"group_size >= 2, got {self.group_size}: a group of one "
                "response is never informative"
            )
        if self.clip_eps is not None and self.clip_eps >= 1:
            raise ValueError(
                f"RLConfig.clip_eps={self.clip_eps} is invalid: must be < 1 (the "
                "ratio's lower bound 1 - clip_eps must be > 0)"
            )
        if self.clip_eps_high is not None and (
            self.clip_eps is not None and self.clip_eps_high < self.clip_eps
        ):
            raise ValueError(
                f"RLConfig.clip_eps_high={self.clip_eps_high} is invalid: must be "
                f">= clip_eps={self.clip_eps} (clip-higher widens the upper bound)"
            )
        if not isinstance(self.mask_truncated, bool):
            raise ValueError(
                f"RLConfig.mask_truncated={self.mask_truncated!r} must be a bool"
            )
        for name in ("clip_eps_high", "dual_clip"):
            if getattr(self, name) is not None and self.clip_eps is None:
                raise ValueError(
                    f"RLConfig.{name}={getattr(self, name)} needs clip_eps "
                    "(the ratio clip it extends), got clip_eps=None"
                )
        if self.importance_ratio == "sequence" and self.aggregation != "seq_mean":
            raise ValueError(
                f"importance_ratio='sequence' (GSPO) averages per sequence: it "
                f"needs aggregation='seq_mean', got {self.aggregation!r}"
            )
        if self.dynamic_sampling is not None and (
            self.dynamic_sampling < self.num_prompts
        ):
            raise ValueError(
                f"RLConfig.dynamic_sampling={self.dynamic_sampling} is invalid: "
                f"must be >= num_prompts={self.num_prompts} (groups drawn, of "
                "which num_prompts are kept)"
            )
        if self.epochs > 1 and self.clip_eps is None:
            raise ValueError(
                f"epochs={self.epochs} reuses samples: set clip_eps (e.g. 0.2)"
            )

    def response_len(self, task: Task) -> int:
        return self.max_new_tokens or task.max_new_tokens

    def pool_size(self) -> int:
        """Groups drawn per update (``dynamic_sampling`` or ``num_prompts``)."""
        return self.dynamic_sampling or self.num_prompts

    def hyperparams(self) -> Hyperparams:
        """The traced (sweepable) settings, as float32 scalars."""
        return Hyperparams(jnp.float32(self.beta), jnp.float32(self.lr))


class Hyperparams(NamedTuple):
    """Settings that may be traced, hence ``vmap``-ed over (a sweep)."""

    beta: Array  # [] KL coefficient
    lr: Array  # [] learning rate of the default optimizer
