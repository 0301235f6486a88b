r"""Views of a pytree observation: the action mask, what a network reads.

An observation is an array or a pytree of arrays. Three functions of it,
built once from the :class:`~jaxpg.envs.EnvSpec` (static, so the plain-array
path costs nothing):

* :func:`mask_fn`: the ``[..., A]`` bool action mask (True: legal) of a batch
  of observations, from the leaf :attr:`EnvSpec.mask_key` or a user's
  ``action_mask_fn(obs) -> [..., A]``; ``None`` when there is no mask.
* :func:`view_fn`: what a network's torso receives: the observation without
  its mask leaf, then narrowed by a *view* (``policy_obs=`` / ``critic_obs=``):
  ``None`` (all of it), a key (that leaf or subtree), a tuple of keys (a dict
  of those), or a function ``obs -> pytree`` (any leading batch axes).
* :func:`batch_shape`: the leading axes ``[...]`` of a batch of observations.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from jaxpg.envs.spec import EnvSpec, is_structured, mask_shapes, obs_template

Array = jax.Array

# A view: None, a key, a tuple of keys, or a function obs -> pytree.
ObsView = str | tuple[str, ...] | Callable[[Any], Any] | None


def _entries(obs: Any) -> dict[str, Any] | None:
    if isinstance(obs, dict):
        return {str(k): v for k, v in obs.items()}
    if hasattr(obs, "_fields"):
        return {k: getattr(obs, k) for k in obs._fields}
    if dataclasses.is_dataclass(obs) and not isinstance(obs, type):
        return {f.name: getattr(obs, f.name) for f in dataclasses.fields(obs)}
    return None


def _get(obs: Any, key: str) -> Any:
    return obs[key] if isinstance(obs, dict) else getattr(obs, key)


def _drop(obs: Any, key: str) -> Any:
    """``obs`` without its top-level entry ``key`` (a dict loses the key, a
    NamedTuple or dataclass holds ``None`` there, which has no leaves)."""
    if isinstance(obs, dict):
        return {k: v for k, v in obs.items() if k != key}
    if hasattr(obs, "_replace"):
        return obs._replace(**{key: None})
    return dataclasses.replace(obs, **{key: None})


def check_view(view: ObsView, spec: EnvSpec, name: str) -> None:
    """Refuse a view that cannot apply to ``spec``'s observations.

    Raises:
      TypeError: ``view`` is not ``None``, a str, a tuple of str or callable.
      ValueError: keys on an array observation, or keys it does not have.
    """
    if view is None or callable(view):
        return
    keys = (view,) if isinstance(view, str) else view
    if (
        not isinstance(keys, tuple)
        or not keys
        or not all(isinstance(k, str) for k in keys)
    ):
        raise TypeError(
            f"{name}={view!r} is invalid: a key, a tuple of keys of a dict "
            "observation, or a function obs -> pytree"
        )
    entries = _entries(obs_template(spec)) if is_structured(spec) else None
    if entries is None:
        raise ValueError(
            f"{name}={view!r} names keys, but the observation is "
            f"{'an array' if not is_structured(spec) else 'not a dict'}; give a "
            "function obs -> pytree instead"
        )
    missing = [k for k in keys if k not in entries]
    if missing:
        raise ValueError(
            f"{name}={view!r} is invalid: the observation has no "
            f"{', '.join(map(repr, missing))}; it has {', '.join(entries)}"
        )


def view_fn(spec: EnvSpec, view: ObsView = None, name: str = "view") -> Callable:
    """``obs -> what a torso receives``: the mask leaf dropped, then ``view``.

    ``view``: ``None`` (everything else), a key, a tuple of keys, or a function
    (see the module docstring). Checked by :func:`check_view`.
    """
    check_view(view, spec, name)
    mask_key = spec.mask_key

    def narrow(obs: Any) -> Any:
        if view is None:
            return obs
        if callable(view):
            return view(obs)
        if isinstance(view, str):
            return _get(obs, view)
        return {k: _get(obs, k) for k in view}

    if mask_key is None:
        if view is None:
            return lambda obs: obs  # the plain path: nothing to do
        return narrow
    return lambda obs: narrow(_drop(obs, mask_key))


def mask_fn(
    spec: EnvSpec, action_mask_fn: Callable[[Any], Array] | None = None
) -> Callable[[Any], Array] | None:
    """``obs [..., *O] -> [..., A]`` bool action mask, or ``None`` (no mask).

    The user's ``action_mask_fn`` wins over the observation's leaf
    :attr:`EnvSpec.mask_key`. A ``[..., K, n]`` mask of ``K`` equal factors is
    flattened to ``[..., K n]``.

    Raises:
      ValueError: ``action_mask_fn`` with a continuous action space.
      TypeError: ``action_mask_fn`` is not callable.
    """
    if action_mask_fn is not None:
        if not callable(action_mask_fn):
            raise TypeError(
                f"action_mask_fn={action_mask_fn!r} is invalid: must be a "
                "function obs -> [..., A] bool"
            )
        if not spec.discrete:
            raise ValueError(
                "action_mask_fn was given but the action space is continuous; "
                "masks apply to Discrete and MultiDiscrete actions"
            )
        read = action_mask_fn
    elif spec.mask_key is not None:
        key = spec.mask_key
        read = lambda obs: _get(obs, key)  # noqa: E731
    else:
        return None
    shapes = mask_shapes(spec)

    def mask(obs: Any) -> Array:
        m = jnp.asarray(read(obs))
        for shape in shapes:
            if m.shape[m.ndim - len(shape) :] == shape:
                lead = m.shape[: m.ndim - len(shape)]
                return m.reshape((*lead, spec.num_actions)).astype(jnp.bool_)
        raise ValueError(
            f"the action mask has shape {m.shape}; it must end in "
            f"{' or '.join(map(str, shapes))}"
        )

    return mask


def batch_shape(obs: Any, template: Any) -> tuple[int, ...]:
    """The leading axes ``[...]`` of ``obs``, a batch of observations of one
    observation's ``template`` (read from its first leaf)."""
    leaf = jax.tree.leaves(obs)[0]
    rank = len(jax.tree.leaves(template)[0].shape)
    return tuple(leaf.shape[: leaf.ndim - rank])


def flat_features(obs: Any) -> Array:
    """``[N, F]`` float32: an array ``[N, *O]`` flattened, or every leaf of a
    pytree observation flattened to ``[N, -1]`` (ints and bools as numbers)
    and concatenated in the pytree's leaf order."""
    if isinstance(obs, jax.Array):
        return obs.reshape((obs.shape[0], -1)).astype(jnp.float32)
    leaves = jax.tree.leaves(obs)
    n = leaves[0].shape[0]
    return jnp.concatenate(
        [jnp.reshape(v, (n, -1)).astype(jnp.float32) for v in leaves], axis=-1
    )
