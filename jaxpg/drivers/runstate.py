r"""What :func:`jaxpg.drivers.runner.run` keeps in its run directory besides
metrics and reads back on resume: the description of the parts a user passed
as objects, the chunk plan of a run sized by time (and the hook that adapts
it), and the restored ``[P]`` state; with several processes, the run
directory's answers shared from process 0.

Shapes: ``S`` seeds, ``P`` padded seeds.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import inspect
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import jax
import numpy as np

from jaxpg.config import Config
from jaxpg.drivers import parallel, programs
from jaxpg.drivers.chunking import ChunkPlan, default_chunk, fixed_plan, timed_plan
from jaxpg.drivers.loop import Chunk, Hook
from jaxpg.experiment import guard, integrity, lock, rundir
from jaxpg.kernels.keys import key_to_data

__all__ = [
    "PlanHook",
    "closure_digest",
    "describe",
    "from_process_zero",
    "open_run",
    "read_plan",
    "record_end",
    "resume_state",
    "write_plan",
]


def describe(part: Any) -> str | None:
    """A stable description of a part passed as a Python object, the same in
    every process (a repr with a memory address would differ in the process
    that resumes and block it):

    - a flax module: its repr (its fields);
    - a function or class (an NNX torso): its import path;
    - a lambda or a nested function (a view, a mask): ``builtins.function``
      and a digest of its code and of what it closes over, so that
      ``lambda o: o["a"]`` and ``lambda o: o["b"]`` differ;
    - an optimizer (an ``optax.GradientTransformation``: a tuple of an
      ``init`` and an ``update`` function): its type and a digest of what
      those functions close over (:func:`closure_digest`), so that
      ``optax.adam(1e-3)`` and ``optax.adam(3e-4)`` differ and a new
      ``optax.adam(1e-3)`` matches the recorded one;
    - anything else: its type (and its ``name`` where it has one).
    """
    if part is None:
        return None
    import flax.linen as nn

    if isinstance(part, nn.Module):
        return repr(part)
    if isinstance(part, functools.partial):
        given = ", ".join(f"{k}={describe(v)}" for k, v in part.keywords.items())
        return f"partial({describe(part.func)}, {given})"
    if (inspect.isfunction(part) or inspect.isclass(part)) and (
        "<" not in part.__qualname__
    ):
        return f"{part.__module__}:{part.__qualname__}"  # an import path
    name = f"{type(part).__module__}.{type(part).__qualname__}"
    if inspect.isfunction(part):  # no import path: what it computes
        both = f"{_code_digest(part.__code__)}{closure_digest(part)}".encode()
        return f"{name}#{hashlib.sha256(both).hexdigest()[:16]}"
    if _is_transformation(part):
        return f"{name}#{closure_digest(part)}"
    env_name = getattr(part, "name", None)
    return f"{name}({env_name!r})" if isinstance(env_name, str) else name


def describe_part(name: str, part: Any) -> str | None:
    """:func:`describe`, except that an observation view (``policy_obs``,
    ``critic_obs``) given as a key or a tuple of keys is recorded by its
    repr: the keys it reads."""
    keys = isinstance(part, str) or (
        isinstance(part, tuple) and all(isinstance(p, str) for p in part)
    )
    if name in ("policy_obs", "critic_obs") and keys:
        return repr(part)
    return describe(part)


def _code_digest(code: types.CodeType) -> str:
    """16 hex digits of a function's bytecode, names and constants (nested
    code included), not of its file or line: the same function moved in its
    file keeps its digest."""
    digest = hashlib.sha256()

    def put(c: types.CodeType) -> None:
        digest.update(c.co_code)
        digest.update(repr((c.co_names, c.co_varnames)).encode())
        for const in c.co_consts:
            if isinstance(const, types.CodeType):
                put(const)
            else:
                digest.update(repr(const).encode())

    put(code)
    return digest.hexdigest()[:16]


def _is_transformation(part: Any) -> bool:
    return (
        isinstance(part, tuple)
        and callable(getattr(part, "init", None))
        and callable(getattr(part, "update", None))
    )


def closure_digest(obj: Any, max_depth: int = 24) -> str:
    """A digest of ``obj`` and, for functions, of what they close over.

    Walks tuples, lists, dicts, sets, ``functools.partial``, bound methods and
    functions (their import path, default arguments and closure cells, each
    function once); numbers, strings and ``None`` by value, arrays by dtype,
    shape and bytes, classes by import path; any other object by its type
    alone. The digest is the
    same in every process (no ``id`` or address enters it) and differs when a
    hyperparameter captured by value differs.

    Returns:
      16 hex digits.
    """
    import hashlib

    digest = hashlib.sha256()
    seen: set[int] = set()

    def put(text: str) -> None:
        digest.update(text.encode())
        digest.update(b"\0")

    def walk(x: Any, depth: int) -> None:
        if depth > max_depth:
            put("<deep>")
        elif x is None or isinstance(x, bool | int | float | complex | str | bytes):
            put(f"{type(x).__name__}:{x!r}")
        elif isinstance(x, np.ndarray | np.generic | jax.Array):
            a = np.asarray(key_to_data(x))  # typed PRNG keys as their data
            put(f"array:{x.dtype}{a.shape}")
            digest.update(np.ascontiguousarray(a).tobytes())
        elif isinstance(x, functools.partial):
            put("partial")
            walk(x.func, depth + 1)
            walk(x.args, depth + 1)
            walk(x.keywords, depth + 1)
        elif inspect.ismethod(x):
            put("method")
            walk(x.__func__, depth + 1)
            walk(x.__self__, depth + 1)
        elif inspect.isfunction(x):
            put(f"function:{x.__module__}:{x.__qualname__}")
            if id(x) in seen:
                return
            seen.add(id(x))
            walk(x.__defaults__, depth + 1)
            walk(x.__kwdefaults__, depth + 1)
            for cell in x.__closure__ or ():
                try:
                    walk(cell.cell_contents, depth + 1)
                except ValueError:  # a cell not filled yet
                    put("<empty cell>")
        elif inspect.isclass(x):
            put(f"class:{x.__module__}:{x.__qualname__}")
        elif isinstance(x, tuple | list):
            put(f"{type(x).__module__}.{type(x).__qualname__}[{len(x)}]")
            for item in x:
                walk(item, depth + 1)
        elif isinstance(x, dict):
            put(f"dict[{len(x)}]")
            for k, v in x.items():
                walk(k, depth + 1)
                walk(v, depth + 1)
        elif isinstance(x, set | frozenset):  # order-free: sorted item digests
            put(f"set[{len(x)}]")
            for item in sorted(closure_digest(i, max_depth - depth) for i in x):
                put(item)
        else:
            put(f"object:{type(x).__module__}.{type(x).__qualname__}")

    walk(obj, 0)
    return digest.hexdigest()[:16]


def fingerprint(tree: Any) -> str:
    """A stable digest of a pytree's structure and values (environment
    parameters passed as ``env_params=``): two trees with the same leaves,
    bit for bit, in the same structure have the same fingerprint, in any
    process."""
    import hashlib

    leaves, treedef = jax.tree.flatten(tree)
    digest = hashlib.sha256(str(treedef).encode())
    for leaf in leaves:
        a = np.asarray(leaf)
        digest.update(f"{a.dtype}{a.shape}".encode())
        digest.update(np.ascontiguousarray(a).tobytes())
    kind = f"{type(tree).__module__}.{type(tree).__qualname__}"
    return f"{kind}:{digest.hexdigest()[:16]}"


def read_plan(out: Path) -> dict[str, Any] | None:
    """The chunk plan recorded in ``out`` (``None``: none yet)."""
    path = out / rundir.CHUNKS
    if not path.is_file():
        return None
    bad = integrity.problems(out, rundir.CHUNKS)
    if bad:
        raise rundir.RunDirError(bad[0][1])
    try:
        return rundir.read_json(path)
    except ValueError as e:
        raise rundir.RunDirError(f"{path} is unreadable: {e}") from None


def write_plan(out: Path, plan: ChunkPlan) -> None:
    """Record ``plan`` in ``out`` (with its checksum)."""
    rundir.write_json(out / rundir.CHUNKS, plan.to_json())
    integrity.record(out, rundir.CHUNKS)


class PlanHook(Hook):
    """Keeps a timed :class:`~jaxpg.drivers.chunking.ChunkPlan` up to date
    with the measured speed (and recorded in ``out`` when it changes); while
    it still measures, the loop reads each one-update chunk before it
    dispatches the next (its time sets the length). With several processes
    the time of process 0 is used everywhere, so all plan alike."""

    def __init__(self, plan: ChunkPlan, out: Path | None):
        self.plan = plan
        self.out = out

    def sync_at(self, update: int) -> bool:
        return self.plan.measuring

    def chunk(self, chunk: Chunk) -> None:
        if self.plan.chunk_seconds is None:
            return
        took = chunk.seconds
        if jax.process_count() > 1:  # every process plans alike
            took = float(parallel.broadcast_object(took))
        changed = self.plan.observe(chunk.size, took, chunk.next_start, chunk.cold)
        if changed is not None and self.out is not None:
            write_plan(self.out, self.plan)


def _restore(
    out: Path, state_spec: Any, plan: ChunkPlan, start_over: bool
) -> tuple[int, Any]:
    step, state = guard.restore(out, state_spec, start_over, stacklevel=4)
    if state is None:
        return 0, None
    if not plan.is_boundary(step):
        raise rundir.RunDirError(
            f"checkpoint at update {step} is not a chunk boundary of the run ({plan!r})"
        )
    rundir.drop_metrics_from(out, step)
    return step, state


def resume_state(
    out: Path | None, progs: programs.Programs, plan: ChunkPlan, start_over: bool
) -> tuple[int, Any]:
    """``(start, [P] state or None)``: process 0 restores the ``[S]``
    checkpoint, every process receives it and places its share (padded as at
    the start, by repeating the last seed)."""
    lay = progs.layout
    device = jax.local_devices()[0]
    target = jax.tree.map(
        lambda x: jax.ShapeDtypeStruct(
            (lay.num_members, *x.shape),
            x.dtype,
            sharding=jax.sharding.SingleDeviceSharding(device),
        ),
        progs.member,
    )
    start, raw = restore_from_process_zero(
        lambda: _restore(out, target, plan, start_over), target
    )
    if raw is None:
        return start, None
    return start, progs.restore(*parallel.place((raw,), lay))


def restore_from_process_zero(
    read: Callable[[], tuple[int, Any]], target: Any
) -> tuple[int, Any]:
    """``read() -> (update, state or None)`` run on process 0 alone (it
    reads a checkpoint), and on every process that update and the state as
    NumPy arrays, PRNG keys as their raw data, bit for bit (``None`` when
    process 0 read none). ``target``: the state's abstract value, which the
    other processes receive into. What ``read`` raises is raised everywhere
    (:func:`from_process_zero`)."""
    restored: dict[str, Any] = {}

    def run() -> dict[str, Any]:
        start, state = read()
        restored["state"] = state
        return {"start": start, "restored": state is not None}

    info = from_process_zero(run)
    if not info["restored"]:
        return info["start"], None
    state = restored.get("state")
    if state is None:  # not process 0: receives process 0's arrays
        spec = jax.eval_shape(lambda t: jax.tree.map(key_to_data, t), target)
        raw = jax.tree.map(lambda x: np.zeros(x.shape, x.dtype), spec)
    else:
        raw = jax.tree.map(lambda x: np.asarray(key_to_data(x)), state)
    return info["start"], parallel.broadcast_arrays(raw)


def from_process_zero(fn: Callable[[], Any]) -> Any:
    """``fn()`` (a JSON-serialisable result) run on process 0 alone and
    returned on every process; what it raises is raised on every process
    (:class:`~jaxpg.experiment.rundir.RunDirError` as itself, anything else as a
    ``RuntimeError`` on the other processes)."""
    if jax.process_count() == 1:
        return fn()
    reply: dict[str, Any] | None = None
    error: Exception | None = None
    if jax.process_index() == 0:
        try:
            reply = {"ok": fn()}
        except Exception as e:  # shared, then raised here too
            error = e
            reply = {
                "error": str(e),
                "type": type(e).__name__,
                "run_dir": isinstance(e, rundir.RunDirError),
            }
    reply = parallel.broadcast_object(reply)
    if error is not None:
        raise error
    if "error" in reply:
        if reply["run_dir"]:
            raise rundir.RunDirError(reply["error"])
        raise RuntimeError(f"process 0 failed: {reply['type']}: {reply['error']}")
    return reply["ok"]


def open_run(
    out: Path | None,
    has_dir: bool,
    held: contextlib.ExitStack,
    cfg: Config,
    num_seeds: int,
    first_seed: int,
    custom: dict[str, str | None],
    *,
    chunk_updates: int | None,
    chunk_seconds: float | None,
    resume: bool,
    overwrite: bool,
    start_over: bool,
    checkpoint_every: int | None,
) -> tuple[bool, int, ChunkPlan]:
    """``(resuming, chunk, plan)`` of a run: process 0 locks its run
    directory ``out`` (the lock kept in ``held``), checks it
    (:func:`jaxpg.experiment.guard.prepare_run_dir`), and records a new run
    or checks that a resumed one is the same run (its chunking, and the
    plan of a run sized by time, from the directory); every process gets
    the answer. ``chunk``: the fixed chunk (a timed plan's longest)."""
    num_updates = cfg.num_updates

    def opened() -> dict[str, Any]:
        resuming, given_chunk, seconds = False, chunk_updates, chunk_seconds
        if out is not None:
            if not out.is_file():  # (a file is refused just below)
                held.enter_context(lock.hold(out))
            resuming, stored_chunk = guard.prepare_run_dir(
                out, resume, overwrite, start_over
            )
            if given_chunk is None and stored_chunk is not None:
                given_chunk = stored_chunk
            if resuming and seconds is None:
                seconds = rundir.read_json(out / rundir.CONFIG).get("chunk_seconds")
        chunk = given_chunk or default_chunk(num_updates)
        if checkpoint_every is not None and given_chunk is None:
            chunk = min(chunk, checkpoint_every)
        chunk = min(chunk, num_updates)
        record = rundir.run_record(cfg, num_seeds, first_seed, chunk, custom, seconds)
        stored_plan = None
        if out is not None and resuming:
            stored = rundir.read_json(out / rundir.CONFIG)
            differ = rundir.diff_run(stored, record)
            if differ:
                raise rundir.RunDirError(
                    f"cannot resume {out}: the run differs from the stored one in "
                    + "; ".join(differ)
                )
            if seconds is not None:
                stored_plan = read_plan(out)
        elif out is not None:
            out.mkdir(parents=True, exist_ok=True)
            rundir.write_json(out / rundir.CONFIG, record)
            integrity.record(out, rundir.CONFIG)
            rundir.write_json(out / rundir.VERSIONS, rundir.versions())
        return {
            "resuming": resuming,
            "chunk": chunk,
            "seconds": seconds,
            "plan": stored_plan,
        }

    answer = from_process_zero(opened) if has_dir else opened()
    chunk = answer["chunk"]
    if answer["plan"] is not None:
        plan = ChunkPlan.from_json(answer["plan"])
    elif answer["seconds"] is not None:
        plan = timed_plan(num_updates, answer["seconds"], chunk)
    else:
        plan = fixed_plan(num_updates, chunk)
    return answer["resuming"], chunk, plan


def record_end(out: Path, cfg: Config, state: Any, done: int, last_ckpt: int) -> None:
    """At the end of a call of the runner: the final parameters of a finished
    run (and its observation statistics), and ``progress.json``."""
    interrupted = done < cfg.num_updates
    if not interrupted:
        final = {rundir.PARAMS: state.params["policy"]}
        if cfg.normalise_obs:
            final[rundir.OBS_NORM] = state.obs_norm
        guard.save_final(out, final, done, cfg.num_updates)
    guard.write_progress(
        out,
        done,
        cfg.num_updates,
        "interrupted" if interrupted else "finished",
        done if last_ckpt == done else last_ckpt,
    )
