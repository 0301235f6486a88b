r"""Members (settings × seeds) laid out over every device, on one host or many.

A *member* is one independent training run: a seed, or a (setting, seed) pair
of a sweep. :func:`run_members` trains ``M`` members in one compiled program
with ``jax.shard_map`` over a one-dimensional :class:`jax.sharding.Mesh` of
all devices (axis :data:`MEMBER_AXIS`); each device ``vmap``\ s its local
members. Members never talk to each other, so the program has no cross-device
collective at all: a device runs its share start to finish at its own pace.

Conventions:

- Member ``m`` of a run with seeds ``seeds`` uses the key
  ``jax.random.key(seeds[m])``, created on the device that trains it: seed
  ``i`` is the same run whatever the layout, device count or host.
- ``M`` need not divide the device count ``D``: the members are padded to
  ``P = ceil(M / D) * D`` by repeating the last member, device ``j`` trains
  members ``[j P/D, (j+1) P/D)`` (so the padding sits on the last devices),
  and the padding is dropped from the result. There is no silent fallback to
  one device.
- Devices are ordered by ``(process_index, id)``: with several processes
  (hosts), each process trains a contiguous block of members on its own
  devices, and :func:`collect` gathers the blocks on every process (process
  0 writes the outputs).

Hosts join with JAX's own runtime, :func:`jax.distributed.initialize`
(:func:`initialize`, or :func:`add_distributed_arguments` and
:func:`initialize_from_args` in a command line). On CPU the processes need
CPU collectives for the final gather; :func:`initialize` selects gloo unless
another implementation is configured.

Shapes: ``M`` members, ``P`` padded members, ``D`` devices.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import partial
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jaxpg.checks import positive_int
from jaxpg.drivers.hosts import (
    JOIN_TIMEOUT_S,
    CoordinatorError,
    broadcast_arrays,
    broadcast_object,
    initialize,
)
from jaxpg.kernels.keys import data_to_key, key_to_data

__all__ = [
    "JOIN_TIMEOUT_S",
    "MEMBER_AXIS",
    "CoordinatorError",
    "Layout",
    "broadcast_arrays",
    "broadcast_object",
    "collect",
    "host_members",
    "initialize",
    "layout",
    "map_members",
    "place",
    "real_members",
    "replicate",
    "run_members",
    "sharded",
]

MEMBER_AXIS = "members"

# The name jaxpg's loops reduce their predicates over (see jaxpg.kernels.batching).
# Bound on the *local* vmap inside each shard, it never crosses a device.
try:
    from jaxpg.kernels.batching import SEED_AXIS as _LOCAL_AXIS
except ImportError:  # pragma: no cover - kept importable by the drivers
    _LOCAL_AXIS = None


class Layout(NamedTuple):
    """How ``M`` members sit on the devices.

    Attributes:
      mesh: a one-dimensional mesh over the devices, axis :data:`MEMBER_AXIS`.
      num_members: ``M``, the real members.
      padded: ``P``, ``M`` rounded up to a multiple of the device count.
    """

    mesh: Mesh
    num_members: int
    padded: int

    @property
    def num_devices(self) -> int:
        """``D``, devices in the mesh."""
        return self.mesh.devices.size

    @property
    def per_device(self) -> int:
        """Members each device trains (``P / D``)."""
        return self.padded // self.num_devices


def layout(num_members: int, devices: Sequence[Any] | None = None) -> Layout:
    """The layout of ``num_members`` members over ``devices``.

    Args:
      num_members: ``M >= 1``.
      devices: the devices to use; default: all devices of all processes
        (``jax.devices()``).

    Returns:
      :class:`Layout`.

    Raises:
      ValueError: ``num_members`` is not a positive int or ``devices`` is
        empty or repeats a device.
    """
    num_members = positive_int("num_members", num_members)
    devs = list(jax.devices() if devices is None else devices)
    if not devs:
        raise ValueError("devices=[] is invalid: need at least one device")
    if len({(d.process_index, d.id) for d in devs}) != len(devs):
        raise ValueError(f"devices={devs!r} is invalid: a device is repeated")
    devs.sort(key=lambda d: (d.process_index, d.id))
    num = len(devs)
    padded = -(-int(num_members) // num) * num
    return Layout(Mesh(np.array(devs), (MEMBER_AXIS,)), int(num_members), padded)


def place(args: Any, lay: Layout) -> Any:
    r"""Pad host arrays of ``M`` members to ``P`` and lay them out.

    Every process passes the same full host arrays (they are small: seeds and
    hyperparameters); each keeps only the rows of its own devices.

    Args:
      args: a pytree of array-likes with a leading ``[M]`` axis (no PRNG keys:
        pass integer seeds and make keys inside the member function).
      lay: the layout.

    Returns:
      The same pytree of global ``jax.Array``\ s ``[P, ...]``, sharded over
      the mesh along their first axis.

    Raises:
      ValueError: a leaf does not have ``M`` rows.
    """
    sharding = NamedSharding(lay.mesh, PartitionSpec(MEMBER_AXIS))

    def one(x: Any) -> jax.Array:
        a = np.asarray(x)
        if a.ndim == 0 or a.shape[0] != lay.num_members:
            raise ValueError(
                f"an argument of shape {a.shape} is invalid: every leaf needs a "
                f"leading axis of num_members={lay.num_members}"
            )
        pad = lay.padded - lay.num_members
        if pad:
            a = np.concatenate([a, np.repeat(a[-1:], pad, axis=0)])
        return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])

    return jax.tree.map(one, args)


def sharded(
    fn: Callable[..., Any],
    lay: Layout,
    *,
    raw_keys: bool = True,
    donate_argnums: int | Sequence[int] = (),
    shared_argnums: Sequence[int] = (),
) -> Callable[..., Any]:
    r"""``jit(shard_map(vmap(fn)))``: ``fn`` of one member, mapped over ``P``.

    Each device applies ``jax.vmap(fn)`` to its ``P / D`` members; nothing
    crosses devices. On a one-device layout it is ``jit(vmap(fn))``, the same
    program without the ``shard_map`` (which there only costs tracing time).
    By default PRNG keys in the output are returned as their raw data
    (``jax.random.key_data``), so that they can be gathered across hosts;
    :func:`collect` wraps them again.

    A chunked driver feeds the output back in (``state = f(state)``): build
    ``init = sharded(lambda seed: algo.init(jax.random.key(seed)), lay,
    raw_keys=False)`` and ``step = sharded(one_chunk, lay, raw_keys=False)``
    and keep the ``[P]`` state on the devices between calls (with
    ``donate_argnums=0`` the step reuses the state's memory).

    Args:
      fn: ``fn(*member_args) -> pytree`` for one member (jittable).
      lay: the layout.
      raw_keys: return PRNG keys as raw data (``False``: as keys).
      donate_argnums: arguments whose buffers the call may reuse (as
        :func:`jax.jit`).
      shared_argnums: arguments that every member shares (not mapped:
        replicated on every device, e.g. a loop count), given as global
        arrays replicated over the mesh (:func:`replicate`).

    Returns:
      A jitted function of the global arrays of :func:`place`, returning
      global arrays ``[P, ...]``; ``.lower(...)`` gives its program.
    """
    return _sharded(fn, lay, raw_keys, donate_argnums, shared_argnums)[0]


def replicate(x: Any, lay: Layout) -> jax.Array:
    """A host value (the same on every process) as a global array replicated
    on every device of ``lay``: an argument of ``shared_argnums``."""
    a = np.asarray(x)
    sharding = NamedSharding(lay.mesh, PartitionSpec())
    return jax.make_array_from_callback(a.shape, sharding, lambda idx: a[idx])


def _sharded(
    fn: Callable[..., Any],
    lay: Layout,
    raw_keys: bool = True,
    donate_argnums: int | Sequence[int] = (),
    shared_argnums: Sequence[int] = (),
) -> tuple[Callable[..., Any], dict[str, Any]]:
    """:func:`sharded`, and a dict whose ``"like"`` is set, when the function
    is traced, to the abstract output of one member (what :func:`collect`
    needs to turn raw key data back into keys) so that nobody traces ``fn`` a
    second time to learn it."""
    traced: dict[str, Any] = {}

    shared = frozenset(shared_argnums)

    def local(*args: Any) -> Any:
        axes = tuple(None if i in shared else 0 for i in range(len(args)))
        out = jax.vmap(fn, in_axes=axes, axis_name=_LOCAL_AXIS)(*args)
        traced["like"] = jax.tree.map(
            lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), out
        )
        return jax.tree.map(key_to_data, out) if raw_keys else out

    if lay.mesh.size == 1:
        # One device: the same program without shard_map, which only adds
        # tracing and lowering time here.
        return jax.jit(local, donate_argnums=donate_argnums), traced
    # check_vma=False: the member function is ordinary single-device code
    # (scans whose carries start as constants); nothing in it is collective.
    spec = PartitionSpec(MEMBER_AXIS)

    def mapped(*args: Any) -> Any:
        specs = tuple(
            PartitionSpec() if i in shared else spec for i in range(len(args))
        )
        return jax.shard_map(
            local, mesh=lay.mesh, in_specs=specs, out_specs=spec, check_vma=False
        )(*args)

    return jax.jit(mapped, donate_argnums=donate_argnums), traced


def collect(out: Any, lay: Layout, like: Any = None) -> Any:
    r"""Drop the padding; with several processes, gather on every process.

    Args:
      out: global arrays ``[P, ...]`` from :func:`sharded`.
      lay: the layout.
      like: the abstract output of one member (``jax.eval_shape``), used to
        turn raw key data back into PRNG keys; ``None`` leaves it raw.

    Returns:
      ``[M, ...]`` arrays: ``jax.Array``\ s on one process, NumPy arrays
      (identical on every process) with several.
    """
    m = lay.num_members
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        host = multihost_utils.process_allgather(out, tiled=True)
        out = jax.tree.map(lambda x: np.asarray(x)[:m], host)
    elif lay.padded != m:
        out = _unpad(out, m)
    if like is None:
        return out
    return jax.tree.map(data_to_key, like, out)


@partial(jax.jit, static_argnums=1)
def _unpad(out: Any, m: int) -> Any:
    # One program for the whole tree: slicing leaf by leaf would dispatch (and
    # on a GPU compile) one small program per leaf shape.
    return jax.tree.map(lambda x: x[:m], out)


def real_members(tree: Any, lay: Layout) -> Any:
    r"""The ``M`` real members of ``[P]`` global arrays (PRNG keys included),
    on this process's first local device; with several processes gathered
    on every process (a collective: all of them call it). What a chunked
    driver checkpoints and returns between its chunks of ``[P]`` state."""
    device = jax.local_devices()[0]
    if jax.process_count() == 1:
        return jax.tree.map(
            lambda x: jax.device_put(x, device)[: lay.num_members], tree
        )
    like = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), tree)
    real = collect(jax.tree.map(key_to_data, tree), lay, like)
    return jax.tree.map(lambda x: jax.device_put(x, device), real)


def host_members(tree: dict[str, Any], lay: Layout) -> dict[str, np.ndarray]:
    r"""``{name: [M, ...]}`` owned NumPy copies of ``[P, ...]`` global arrays
    (a chunk's metrics), the padding dropped; gathered from every process
    when there are several (a collective). Owned: on CPU, ``device_get`` may
    return views that keep the device buffers alive."""
    if jax.process_count() > 1:
        return {k: np.array(v) for k, v in collect(tree, lay).items()}
    m = lay.num_members
    return {k: np.array(np.asarray(v)[:m]) for k, v in jax.device_get(tree).items()}


def map_members(
    fn: Callable[..., Any],
    args: Any,
    *,
    shared: tuple[Any, ...] = (),
    devices: Sequence[Any] | None = None,
) -> Any:
    r"""Apply ``fn`` to each of ``M`` members, laid out over all devices.

    Args:
      fn: ``fn(*member_args, *shared) -> pytree`` for one member (jittable).
      args: a tuple of pytrees of host array-likes with a leading ``[M]``
        axis (no PRNG keys).
      shared: pytrees every member takes whole (a token policy's starting
        and reference parameters; no PRNG keys), copied from the host to
        every device. With several processes each copies its own values:
        they must be the same on every process (loaded from the same file,
        or made from the same key); nothing checks it.
      devices: default: all devices of all processes.

    Returns:
      The outputs with a leading ``[M]`` axis (see :func:`collect`).
    """
    leaves = jax.tree.leaves(args)
    if not leaves:
        raise ValueError("args has no arrays: cannot tell the member count")
    lay = layout(int(np.shape(leaves[0])[0]), devices)
    placed = place(args, lay)
    common = tuple(jax.tree.map(lambda x: replicate(x, lay), t) for t in shared)
    first = len(placed)
    mapped, traced = _sharded(
        fn, lay, shared_argnums=tuple(range(first, first + len(common)))
    )
    out = mapped(*placed, *common)
    return collect(out, lay, traced["like"])


def check_seeds(seeds: Any) -> np.ndarray:
    """``seeds`` as ``[M]`` int32, after checking that it is a non-empty 1-D
    array of integers in ``[0, 2**31)``.

    Raises:
      ValueError: naming the shape, dtype or range that is wrong.
    """
    s = np.asarray(seeds)
    if s.ndim != 1 or s.size == 0 or s.dtype.kind not in "iu":
        raise ValueError(
            f"seeds with shape {s.shape} and dtype {s.dtype} is invalid: must be "
            "a non-empty 1-D array of ints"
        )
    if s.min() < 0 or s.max() >= 2**31:
        raise ValueError(
            f"seeds in [{s.min()}, {s.max()}] are invalid: must be in [0, 2**31)"
        )
    return s.astype(np.int32)


def run_members(
    train: Callable[..., Any],
    seeds: Any,
    hparams: Any = None,
    *,
    shared: tuple[Any, ...] = (),
    devices: Sequence[Any] | None = None,
) -> Any:
    r"""Train ``M`` members over all devices: member ``m`` is
    ``train(jax.random.key(seeds[m]), hparams[m], *shared)``.

    Args:
      train: ``train(key)`` or ``train(key, hparams)`` (as
        :func:`jaxpg.make_train` returns), pure and jittable, followed by
        the ``shared`` arguments.
      seeds: ``[M]`` integer seeds in ``[0, 2**31)``.
      hparams: ``None`` (``train(key)``), or a pytree of ``[M]`` arrays
        (e.g. a :class:`jaxpg.Hyperparams` of ``[M]`` float32).
      shared: arguments every member takes whole (see :func:`map_members`).
      devices: default: all devices of all processes.

    Returns:
      ``train``'s output with a leading ``[M]`` axis on every leaf.

    Raises:
      ValueError: ``seeds`` is not a non-empty 1-D array of such integers.
    """
    s = check_seeds(seeds)
    if hparams is None:
        return map_members(
            lambda seed, *common: train(jax.random.key(seed), *common),
            (s,),
            shared=shared,
            devices=devices,
        )

    def member(seed: jax.Array, hp: Any, *common: Any) -> Any:
        return train(jax.random.key(seed), hp, *common)

    return map_members(member, (s, hparams), shared=shared, devices=devices)
