r"""Running statistics for observation normalisation and reward scaling.

Both are carried in the train state (per seed, vmapped like everything else).
The observation statistics are held fixed within an update: an update acts,
computes its loss and stores its PPO log-probabilities with the statistics it
started with, then merges the update's observations into them. So the ratio
of PPO's first epoch is exactly 1, and evaluation with the saved statistics
sees what the last update's policy saw. The reward scaler divides an update's
rewards by a variance that already includes that update's returns
(:meth:`RewardScaler.scale`, as Stable-Baselines3's ``VecNormalize`` does).

* :class:`RunningMeanStd`: mean and variance of everything seen so far,
  merged batch by batch (Chan et al.'s parallel formula, exact in real
  arithmetic; float32 here). For a pytree observation
  (:meth:`RunningMeanStd.for_observation`) it keeps the statistics of every
  floating-point leaf, in dicts keyed by the leaf's path (:func:`leaf_name`:
  the keys, fields or indices down to it joined by ``"."``, e.g. ``"pos"``);
  other leaves (integers, masks) pass through unchanged.
* :class:`RewardScaler`: divides rewards by the running standard deviation
  of a discounted return ``R_t = γ R_{t-1} + r_t`` (reset at episode ends),
  the scaling of Stable-Baselines3's ``VecNormalize``; the return reported as
  ``episode_return`` is always the raw one.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

OBS_CLIP = 10.0  # normalised observations are clipped to [-OBS_CLIP, OBS_CLIP]
EPS = 1e-8


class RunningMeanStd(NamedTuple):
    """Mean and variance of the samples seen so far.

    Attributes:
      mean: ``[*X]`` float32; for a pytree observation ``{path: [*X_leaf]}``,
        one entry per floating-point leaf.
      var: ``[*X]`` float32 (population variance; 1 before any sample); a
        dict like ``mean`` for a pytree observation.
      count: ``[]`` float32, the (weighted) number of samples seen.
    """

    mean: Array | dict[str, Array]
    var: Array | dict[str, Array]
    count: Array

    @classmethod
    def for_observation(cls, template: Any) -> RunningMeanStd:
        """No samples yet, for one observation's ``template`` (an array or
        ``ShapeDtypeStruct``: :meth:`zeros` of its shape, whatever its dtype;
        a pytree: one entry per floating-point leaf)."""
        if _is_leaf(template):
            return cls.zeros(tuple(template.shape))
        paths = _float_leaves(template)
        return cls(
            {p: jnp.zeros(x.shape, jnp.float32) for p, x in paths.items()},
            {p: jnp.ones(x.shape, jnp.float32) for p, x in paths.items()},
            jnp.zeros((), jnp.float32),
        )

    @classmethod
    def zeros(cls, shape: tuple[int, ...]) -> RunningMeanStd:
        """No samples yet: ``normalise`` is the identity."""
        return cls(
            jnp.zeros(shape, jnp.float32),
            jnp.ones(shape, jnp.float32),
            jnp.zeros((), jnp.float32),
        )

    def update(self, x: Any, weights: Array | None = None) -> RunningMeanStd:
        """Merge a batch ``x`` of ``[N, *X]`` samples (``weights``: ``[N]``
        0/1, the samples to count; default all). A batch with no counted
        sample leaves the statistics unchanged. For pytree statistics ``x``
        is a batch of pytree observations (every leaf ``[N, ...]``)."""
        if isinstance(self.mean, dict):
            leaves = _float_leaves(x)
            merged = {
                p: RunningMeanStd(self.mean[p], self.var[p], self.count).update(
                    leaves[p], weights
                )
                for p in self.mean
            }
            count = self.count + _weight_sum(x, weights)
            return RunningMeanStd(
                {p: m.mean for p, m in merged.items()},
                {p: m.var for p, m in merged.items()},
                count,
            )
        x = jnp.asarray(x, jnp.float32)
        w = jnp.ones(x.shape[:1], jnp.float32) if weights is None else weights
        w = w.astype(jnp.float32).reshape(w.shape + (1,) * (x.ndim - 1))
        n_b = jnp.sum(w)
        safe_n_b = jnp.maximum(n_b, 1.0)
        mean_b = jnp.sum(w * x, axis=0) / safe_n_b
        var_b = jnp.sum(w * (x - mean_b[None]) ** 2, axis=0) / safe_n_b
        n = self.count + n_b
        safe_n = jnp.maximum(n, 1.0)
        delta = mean_b - self.mean
        mean = self.mean + delta * n_b / safe_n
        m2 = self.var * self.count + var_b * n_b + delta**2 * self.count * n_b / safe_n
        # Before any sample the variance stays 1 (the identity transform).
        var = jnp.where(n > 0, m2 / safe_n, self.var)
        return RunningMeanStd(mean, var, n)

    def normalise(self, x: Any, clip: float = OBS_CLIP) -> Any:
        """``clip((x - mean) / sqrt(var + 1e-8))`` as float32, shape of ``x``
        (for pytree statistics: of every floating-point leaf of ``x``, the
        other leaves unchanged)."""
        if isinstance(self.mean, dict):

            def leaf(path: Any, v: Any) -> Any:
                p = leaf_name(path)
                if p not in self.mean:
                    return v
                stats = RunningMeanStd(self.mean[p], self.var[p], self.count)
                return stats.normalise(v, clip)

            return jax.tree_util.tree_map_with_path(leaf, x)
        x = jnp.asarray(x, jnp.float32)
        lead = (1,) * (x.ndim - self.mean.ndim)  # explicit broadcasting
        mean = self.mean.reshape(lead + self.mean.shape)
        std = jnp.sqrt(self.var + EPS).reshape(lead + self.mean.shape)
        return jnp.clip((x - mean) / std, -clip, clip)


def _is_leaf(x: Any) -> bool:
    return isinstance(x, jax.ShapeDtypeStruct | jax.Array | np.ndarray)


def leaf_name(path: tuple) -> str:
    """A pytree leaf's path as a name: its dict keys, fields and indices joined
    by ``"."`` (``{"a": {"b": x}}``: ``"a.b"``; a NamedTuple field: its name)."""
    parts = []
    for entry in path:
        for attr in ("key", "name", "idx"):
            if hasattr(entry, attr):
                parts.append(str(getattr(entry, attr)))
                break
        else:
            parts.append(str(entry))
    return ".".join(parts)


def _float_leaves(tree: Any) -> dict[str, Any]:
    """``{leaf_name(path): leaf}`` of the floating-point leaves of ``tree``."""
    flat = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {leaf_name(p): x for p, x in flat if jnp.issubdtype(x.dtype, jnp.floating)}


def _weight_sum(x: Any, weights: Array | None) -> Array:
    if weights is None:
        return jnp.asarray(jax.tree.leaves(x)[0].shape[0], jnp.float32)
    return jnp.sum(weights.astype(jnp.float32))


class RewardScaler(NamedTuple):
    """Running discounted return of each env and the statistics of it.

    Attributes:
      ret: ``[B]`` float32, the discounted return of each env's episode so far.
      stats: :class:`RunningMeanStd` of ``ret`` (scalar).
    """

    ret: Array
    stats: RunningMeanStd

    @classmethod
    def zeros(cls, num_envs: int) -> RewardScaler:
        return cls(jnp.zeros((num_envs,), jnp.float32), RunningMeanStd.zeros(()))

    def scale(
        self, rewards: Array, dones: Array, gamma: Array, mask: Array | None = None
    ) -> tuple[Array, RewardScaler]:
        """Scale ``[T, B]`` rewards by the standard deviation of the return.

        Args:
          rewards: ``[T, B]`` raw rewards.
          dones: ``[T, B]`` 1 where the episode ended after that step.
          gamma: the discount of the running return.
          mask: ``[T, B]`` 0/1, the steps that exist (default all); others
            neither change the return nor count.

        Returns:
          ``(rewards / sqrt(var + 1e-8), scaler)``, the variance being that of
          the returns including this batch's.
        """
        mask = jnp.ones_like(rewards) if mask is None else mask

        def body(ret, xs):
            r, d, m = xs
            ret = jnp.where(m > 0, ret * gamma + r, ret)
            return ret * (1.0 - d * m), ret

        ret, seen = jax.lax.scan(body, self.ret, (rewards, dones, mask))
        stats = self.stats.update(seen.reshape(-1), mask.reshape(-1))
        scaled = rewards / jnp.sqrt(stats.var + EPS)
        return scaled, RewardScaler(ret, stats)
