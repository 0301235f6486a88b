"""Subprocess worker for tests/drivers/test_parallel.py (CPU devices or processes).

The device count of a JAX process is fixed when its backend starts, so the
multi-device and multi-process checks run here, in fresh interpreters:

    python tests/helpers/parallel_worker.py devices OUT_DIR
        4 CPU devices (one process for both checks):
        - the sharded program of each algorithm in ALGOS (and of CHUNKED) is
          compiled and searched for collectives inside loops; 6 members of
          ALGOS[0] run sharded over 4 devices and on 1 device: writes
          OUT_DIR/sharded.npz, single.npz and report.json;
        - jaxpg.drivers.runner.run of RUNNER_SEEDS seeds (a run directory,
          remainder chunk, checkpoints), an interrupted and resumed run, and
          the one-device program of the same seeds: writes
          OUT_DIR/runner_*.npz and runner.json (skipped without orbax);
        - the token-policy seeds of :func:`lm_seeds` over the 4 devices:
          writes OUT_DIR/lm_single.npz.
    python tests/helpers/parallel_worker.py train OUT_DIR PORT PROCESS_ID
        one of 2 processes with 2 CPU devices each (jax.distributed on
        localhost, gloo): ``jaxpg train TRAIN_ARGS --out run`` (the command of
        :func:`train_argv`) run in OUT_DIR/cwd_<id> (the same command on both);
        the members of ALGOS[0] over the 4 devices of both processes (process
        0 writes OUT_DIR/process_gathered.npz, every process
        process_<id>.json); jaxpg.drivers.runner.run; and a run stopped by a
        SIGTERM to process 1 and resumed with ``jaxpg train --resume cut``;
        writes OUT_DIR/train_<id>.json and train_<id>_full.npz; the
        token-policy seeds of :func:`lm_seeds` over both processes, stopped
        by a SIGTERM to process 1 then resumed (process 0 writes
        OUT_DIR/lm_resumed.npz, every process lm_<id>.json).

Also importable for :func:`loop_collectives` (HLO text parsing).
"""

from __future__ import annotations

import json
import re
import signal
import sys
from pathlib import Path

NUM_MEMBERS = 6
RUNNER_SEEDS = 6
# jaxpg train's TINY options of tests/cli/test_cli.py with 6 seeds: 6 updates.
TRAIN_ARGS = (
    "--seeds", "6", "--num-envs", "4", "--rollout-steps", "8", "--steps", "192",
    "--eval-episodes", "5", "--hidden", "16,16", "--checkpoint-every", "2",
    "--no-progress",
)  # fmt: skip
ALGOS = ("reinforce", "ppo")
CHUNKED = "reinforce_loop_chunk_4"  # the program checked with Config.loop_chunk=4
COLLECTIVES = (
    "all-reduce",
    "all-gather",
    "all-to-all",
    "collective-permute",
    "collective-broadcast",
    "reduce-scatter",
    "ragged-all-to-all",
)
_COMPUTATION = re.compile(r"^(?:ENTRY\s+)?%?([\w.\-]+)\s.*\{\s*$")
_WHILE = re.compile(r"\bwhile\(.*?condition=%?([\w.\-]+).*?body=%?([\w.\-]+)")
_CALLED = re.compile(
    r"(?:to_apply|calls|body|condition|true_computation|false_computation)"
    r"=%?([\w.\-]+)|branch_computations=\{([^}]*)\}"
)
_OPCODE = re.compile(r"\s(" + "|".join(COLLECTIVES) + r")(?:-start)?\(")


def loop_collectives(hlo_text: str) -> list[str]:
    """Collective instructions reachable from any while loop's body or condition.

    Parses XLA's HLO text: computations, the computations each one calls
    (``to_apply``, ``calls``, ``body``, ``condition``, branches), and the
    opcode of every instruction. Returns ``"computation: opcode"`` for every
    collective (all-reduce, all-gather, ... and their async ``-start`` forms)
    found in a loop's body or condition or anything they call.
    """
    bodies: dict[str, list[str]] = {}
    current = None
    for line in hlo_text.splitlines():
        stripped = line.strip()
        if current is None:
            m = _COMPUTATION.match(stripped)
            if m and "=" not in stripped.split("(")[0]:
                current = m.group(1)
                bodies[current] = []
            continue
        if stripped == "}":
            current = None
            continue
        bodies[current].append(stripped)

    def called(line: str) -> list[str]:
        names = []
        for single, branches in _CALLED.findall(line):
            if single:
                names.append(single)
            if branches:
                names += [b.strip().lstrip("%") for b in branches.split(",")]
        return names

    roots = []
    for lines in bodies.values():
        for line in lines:
            m = _WHILE.search(line)
            if m:
                roots += [m.group(1), m.group(2)]
    seen, stack = set(), list(roots)
    while stack:
        name = stack.pop()
        if name in seen or name not in bodies:
            continue
        seen.add(name)
        for line in bodies[name]:
            stack += called(line)
    found = []
    for name in sorted(seen):
        for line in bodies[name]:
            m = _OPCODE.search(line)
            if m:
                found.append(f"{name}: {m.group(1)}")
    return found


def config(algo: str):
    import jaxpg

    extra = {"num_epochs": 2, "num_minibatches": 2} if algo == "ppo" else {}
    return jaxpg.Config(
        algo=algo,
        num_envs=4,
        rollout_steps=8,
        total_steps=4 * 8 * 4,
        hidden=(8,),
        **extra,
    )


def flat(tree) -> dict:
    """``{path: np.ndarray}`` of a pytree, PRNG keys as their raw data."""
    import jax
    import numpy as np

    out = {}
    for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
        if jax.dtypes.issubdtype(leaf.dtype, jax.dtypes.prng_key):
            leaf = jax.random.key_data(leaf)
        out[jax.tree_util.keystr(path)] = np.asarray(leaf)
    return out


def devices(out_dir: Path) -> None:
    import jax
    import numpy as np

    import jaxpg
    from jaxpg.drivers import parallel

    assert len(jax.devices()) == 4, jax.devices()
    report = {"devices": len(jax.devices())}
    seeds = np.arange(NUM_MEMBERS, dtype=np.int32)
    lay = parallel.layout(NUM_MEMBERS)
    placed = parallel.place((seeds,), lay)
    for algo in ALGOS:
        train = jaxpg.make_train(config(algo))

        def member(seed, train=train):
            return train(jax.random.key(seed))

        compiled = parallel.sharded(member, lay).lower(*placed).compile()
        report[algo] = {"loop_collectives": loop_collectives(compiled.as_text())}
        if algo != ALGOS[0]:
            continue  # the program is checked; one algorithm is run (time)
        raw = compiled(*placed)
        leaf = jax.tree.leaves(raw)[0]
        like = jax.eval_shape(member, jax.ShapeDtypeStruct((), np.int32))
        np.savez(out_dir / "sharded.npz", **flat(parallel.collect(raw, lay, like)))
        single = parallel.run_members(train, seeds, devices=jax.devices()[:1])
        np.savez(out_dir / "single.npz", **flat(single))
        report[algo].update(
            padded=lay.padded,
            shard_rows=[s.data.shape[0] for s in leaf.addressable_shards],
            shard_devices=sorted(s.device.id for s in leaf.addressable_shards),
        )
    # REINFORCE's episode loops in chunks of 4 steps (a scan inside the while
    # loop): still no collective inside a loop.
    train = jaxpg.make_train(config(ALGOS[0]).replace(loop_chunk=4))
    compiled = parallel.sharded(lambda s: train(jax.random.key(s)), lay)
    text = compiled.lower(*placed).compile().as_text()
    report[CHUNKED] = {"loop_collectives": loop_collectives(text)}
    # The parser has power: a psum inside a loop of a sharded program is found.
    mesh = jax.sharding.Mesh(np.array(jax.devices()), ("x",))
    spec = jax.sharding.PartitionSpec("x")

    def with_psum(x):
        return jax.lax.fori_loop(0, 3, lambda i, c: jax.lax.psum(c, "x") * 0.5, x)

    probe = jax.jit(
        jax.shard_map(
            with_psum, mesh=mesh, in_specs=spec, out_specs=spec, check_vma=False
        )
    )
    text = probe.lower(np.ones((4,), np.float32)).compile().as_text()
    report["probe_loop_collectives"] = loop_collectives(text)
    (out_dir / "report.json").write_text(json.dumps(report))


def process(out_dir: Path, process_id: int) -> None:
    """The members of ALGOS[0] over the devices of both processes (the job is
    already joined)."""
    import jax
    import numpy as np

    import jaxpg
    from jaxpg.drivers import parallel

    train = jaxpg.make_train(config(ALGOS[0]))
    seeds = np.arange(NUM_MEMBERS, dtype=np.int32)
    lay = parallel.layout(NUM_MEMBERS)
    placed = parallel.place((seeds,), lay)
    local_rows = sorted(
        int(s.data[0]) for s in placed[0].addressable_shards for _ in [0]
    )
    out = parallel.run_members(train, seeds)
    info = {
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "global_devices": len(jax.devices()),
        "local_devices": len(jax.local_devices()),
        "first_member_of_local_shards": local_rows,
    }
    (out_dir / f"process_{process_id}.json").write_text(json.dumps(info))
    if jax.process_index() == 0:
        np.savez(out_dir / "process_gathered.npz", **flat(out))


def runner_config():
    import tiny

    # 7 updates of 4 envs x 8 steps: chunks of 3, 3 and a remainder of 1.
    return tiny.config(updates=7, lr=1e-2)


def _stop(info) -> bool:
    return True


def _result(res) -> dict:
    return {"params": res.params, "metrics": dict(res.metrics), "state": res.state}


def runner(out_dir: Path) -> None:
    import jax
    import numpy as np

    import jaxpg
    from jaxpg.drivers import parallel, programs
    from jaxpg.drivers import runner as jrunner
    from jaxpg.drivers.train import seed_keys
    from jaxpg.experiment import checkpoint, rundir

    assert len(jax.devices()) == 4, jax.devices()
    cfg = runner_config()
    kwargs = {"chunk_updates": 3, "progress": False, "checkpoint_every": 3}
    full = jrunner.run(cfg, RUNNER_SEEDS, checkpoint_dir=out_dir / "full", **kwargs)
    jrunner.run(
        cfg, RUNNER_SEEDS, checkpoint_dir=out_dir / "cut", callback=_stop, **kwargs
    )
    resumed = jrunner.run(
        cfg, RUNNER_SEEDS, progress=False, checkpoint_dir=out_dir / "cut", resume=True
    )
    # The one-device program of the same seeds (inputs on device 0).
    one = jax.jit(jax.vmap(jaxpg.make_train(cfg)))(seed_keys(RUNNER_SEEDS))
    np.savez(out_dir / "runner_sharded.npz", **flat(_result(full)))
    np.savez(out_dir / "runner_resumed.npz", **flat(_result(resumed)))
    np.savez(
        out_dir / "runner_one.npz",
        **flat({"params": one.params, "metrics": one.metrics, "state": one.state}),
    )
    np.savez(out_dir / "runner_streamed.npz", **rundir.read_metrics(out_dir / "full"))
    step, ckpt = checkpoint.restore_latest(out_dir / "full" / "checkpoints", full.state)
    np.savez(out_dir / "runner_checkpoint.npz", **flat(ckpt))
    # The compiled programs the runs used, and a live state of the layout.
    progs = programs.cached(cfg, RUNNER_SEEDS)
    assert sorted(progs.chunks) == [1, 3], sorted(progs.chunks)
    lay = progs.layout
    seeds = np.arange(RUNNER_SEEDS, dtype=np.int32)
    state = progs.init(*parallel.place((seeds,), lay))
    leaves = jax.tree.leaves(state)
    report = {
        "padded": lay.padded,
        "checkpoint_step": step,
        "chunk_devices": {
            str(n): sorted(
                {
                    len(s.device_set)
                    for s in jax.tree.leaves(
                        (exe.input_shardings, exe.output_shardings)
                    )
                }
            )
            for n, exe in progs.chunks.items()
        },
        "state_shard_rows": sorted(
            {s.data.shape[0] for x in leaves for s in x.addressable_shards}
        ),
        "state_shard_devices": sorted(
            {s.device.id for x in leaves for s in x.addressable_shards}
        ),
        "result_rows": sorted({x.shape[0] for x in jax.tree.leaves(full.state)}),
    }
    (out_dir / "runner.json").write_text(json.dumps(report))


LM_SEEDS = 3  # over 4 devices: one padded


def lm_seeds(run_dir=None, resume=False, on_chunk=None):
    """``jaxpg.sequence.seeds.train_seeds`` of LM_SEEDS seeds of a tiny sort
    task: 5 updates in chunks of 2 (the last of 1)."""
    import jax
    from tiny_sequence import task_and_model

    from jaxpg.sequence import model, rlconfig, seeds

    task, model_cfg = task_and_model()
    rl_cfg = rlconfig.RLConfig(num_updates=5, num_prompts=2, group_size=2)
    ref = model.init(jax.random.key(0), model_cfg)
    return seeds.train_seeds(
        task, model_cfg, rl_cfg, ref, LM_SEEDS, 2, run_dir=run_dir,
        resume=resume, on_chunk=on_chunk,
    )  # fmt: skip


def lm_saved(result) -> dict:
    """What the LM checks compare: the final parameters and the metrics."""
    return {**flat(result.params), **{f"m.{k}": v for k, v in result.metrics.items()}}


def train_argv(port: int, process_id: int) -> list[str]:
    """The two-process ``jaxpg train`` command each process runs (the
    README's, with the suite's small options)."""
    return [
        "train", *TRAIN_ARGS, "--out", "run", "--coordinator", f"localhost:{port}",
        "--num-processes", "2", "--process-id", str(process_id),
    ]  # fmt: skip


def train(out_dir: Path, port: int, process_id: int) -> None:
    import os

    import jax
    import numpy as np

    from jaxpg.cli.main import build_parser, config_from_args, main
    from jaxpg.drivers import runner
    from jaxpg.drivers.runner import run

    cwd = out_dir / f"cwd_{process_id}"
    cwd.mkdir()
    os.chdir(cwd)
    code = main(train_argv(port, process_id))  # joins the job
    process(out_dir, process_id)
    # Every process returns the whole gathered result.
    cfg, _ = config_from_args(build_parser().parse_args(["train", *TRAIN_ARGS]))
    full = run(cfg, 6, chunk_updates=1, progress=False)

    # A SIGTERM to process 1 alone stops both at the same boundary, as a
    # SIGTERM on both (the signal is shared): `jaxpg train` exits 143 on each;
    # then `jaxpg train --resume` continues across both (already joined: no
    # distributed options the second time). The CLI's own run() is wrapped only
    # to raise the signal at a known chunk and to keep its result.
    def sigterm_to_process_1(info) -> None:
        if jax.process_index() == 1 and info.start == 0:
            signal.raise_signal(signal.SIGTERM)

    cut_results = []

    def run_cut_at_first_chunk(*args, **kwargs):
        assert kwargs["callback"] is None  # no --tensorboard: nothing replaced
        kwargs.update(callback=sigterm_to_process_1, chunk_updates=1)
        kwargs.update(chunk_seconds=None)
        cut_results.append(run(*args, **kwargs))
        return cut_results[-1]

    runner.run = run_cut_at_first_chunk
    try:
        cut_code = main(["train", *TRAIN_ARGS, "--out", "cut"])
    finally:
        runner.run = run
    (cut,) = cut_results
    resume_code = main(["train", "--resume", "cut", "--eval-episodes", "5"])
    info = {
        "code": code,
        "resume_code": resume_code,
        "process_index": jax.process_index(),
        "process_count": jax.process_count(),
        "global_devices": len(jax.devices()),
        "cut_code": cut_code,
        "cut_at": cut.updates_done,
        "cut_signal": cut.signal,
    }
    np.savez(out_dir / f"train_{process_id}_full.npz", **flat(full.state))
    (out_dir / f"train_{process_id}.json").write_text(json.dumps(info))
    # The token-policy seeds over both processes, stopped by a SIGTERM to
    # process 1 alone after the first chunk (both stop at update 2, with a
    # checkpoint) and resumed (process 0 reads the checkpoint and sends it to
    # process 1). The resume's programs come from a compilation cache.
    jax.config.update("jax_compilation_cache_dir", str(out_dir / "xla"))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)

    def sigterm_on_process_1(size, metrics) -> None:
        if jax.process_index() == 1:
            signal.raise_signal(signal.SIGTERM)

    cut = lm_seeds(out_dir / "lm_cut", on_chunk=sigterm_on_process_1)
    resumed = lm_seeds(out_dir / "lm_cut", resume=True)
    lm_info = {
        "cut_at": cut.updates_done,
        "cut_signal": cut.signal,
        "devices": resumed.devices,
        "resumed_done": resumed.updates_done,
    }
    (out_dir / f"lm_{process_id}.json").write_text(json.dumps(lm_info))
    if jax.process_index() == 0:
        np.savez(out_dir / "lm_resumed.npz", **lm_saved(resumed))
    jax.distributed.shutdown()


def _tune_gc() -> None:
    """The suite's garbage-collector tuning, once jaxpg and its libraries
    are imported (after the device count is set: importing them starts the
    backend)."""
    import gc_tuning  # beside this file

    import jaxpg.cli.main  # noqa: F401

    gc_tuning.tune()


if __name__ == "__main__":
    mode, out = sys.argv[1], Path(sys.argv[2])
    if mode == "devices":
        import importlib.util

        import jax

        jax.config.update("jax_num_cpu_devices", 4)
        _tune_gc()
        devices(out)
        if importlib.util.find_spec("orbax") is not None:
            runner(out)
        import numpy as np

        np.savez(out / "lm_single.npz", **lm_saved(lm_seeds()))
    elif mode == "train":
        import jax

        jax.config.update("jax_num_cpu_devices", 2)
        _tune_gc()
        train(out, int(sys.argv[3]), int(sys.argv[4]))
    else:
        raise SystemExit(f"unknown mode {mode!r}: devices or train")
