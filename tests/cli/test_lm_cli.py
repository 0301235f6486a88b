"""``jaxpg lm`` through its own parser (the top-level CLI wires ``register``)."""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import io
import json
import os
import re
import signal
import subprocess
import sys

import jax
import nan_rewards
import pytest

from jaxpg.cli import lm as cli
from jaxpg.drivers import updates
from jaxpg.experiment import checkpoint, lock
from jaxpg.sequence import model, rl, seeds, sft, tasks


def _parse(argv):
    parser = argparse.ArgumentParser(prog="jaxpg")
    sub = parser.add_subparsers(dest="command")
    cli.register(sub)
    return parser.parse_args(argv)


TINY = [
    "--width", "8", "--layers", "1", "--heads", "2", "--sft-steps", "3",
    "--updates", "4", "--chunk", "2", "--prompts", "2", "--group", "2",
    "--seeds", "2", "--no-progress",
]  # fmt: skip


@contextlib.contextmanager
def _nan_in_seed_1():
    """``jaxpg lm``'s task optimised on a reward that is NaN in seed 1's first
    update (what a user's reward function may do)."""
    make = tasks.make_task

    def make_task(name, **kwargs):
        return nan_rewards.poisoned(make(name, **kwargs), 2, 2, seed=1)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(tasks, "make_task", make_task)
        yield


@pytest.fixture(scope="module")
def full_run_and_stderr(tmp_path_factory):
    """One uninterrupted tiny ``jaxpg lm`` run whose seed 1 meets a NaN
    reward in its first update, its progress shown: ``(out, printed,
    stderr)``."""
    out = tmp_path_factory.mktemp("lm") / "run"
    shown = [a for a in TINY if a != "--no-progress"]
    args = _parse(["lm", "--task", "sort_proxy", "--out", str(out), *shown])
    printed, err = io.StringIO(), io.StringIO()
    with (
        contextlib.redirect_stdout(printed),
        contextlib.redirect_stderr(err),
        _nan_in_seed_1(),
    ):
        assert args.func(args) == 0
    return out, printed.getvalue(), err.getvalue()


@pytest.fixture(scope="module")
def full_run(full_run_and_stderr):
    """``(out, printed)`` of :func:`full_run_and_stderr`."""
    return full_run_and_stderr[:2]


def test_lm_says_what_it_is_doing_and_for_how_long(full_run_and_stderr):
    """The SFT reference and the RL program each get a line before they
    start and one with their seconds when done; then the bar over updates."""
    err = full_run_and_stderr[2]
    assert "fitting the reference by SFT (3 steps" in err
    assert re.search(r"fitted the reference in \d+\.\d s", err)
    assert "compiling the RL program, 2 seeds..." in err
    assert re.search(r"compiled the RL program, 2 seeds in \d+\.\d s", err)
    assert err.index("fitted the reference") < err.index("compiling the RL")


def test_lm_runs_sft_then_rl_and_records_the_reference_version(full_run):
    out, printed = full_run
    record = json.loads((out / "metrics.json").read_text())
    ref_info = json.loads((out / "reference" / "reference.json").read_text())
    params, _, _ = sft.load_reference(out / "reference")
    assert record["reference_version"] == ref_info["version"] == sft.params_hash(params)
    assert record["rl"]["advantage"] == "grpo" and record["seeds"] == 2
    for name in ("reward", "true_reward", "accuracy", "kl_exact", "kl_estimate",
                 "entropy", "response_length", "clip_frac"):  # fmt: skip
        assert len(record["metrics"][name]) == 2
        assert len(record["metrics"][name][0]) == 4
    assert len(record["summary"]["final_accuracy"]) == 2
    assert (out / "curves.png").stat().st_size > 1000
    assert ref_info["version"] in printed and "hacked at" in printed
    # On CPU the RL program ran with YNNPACK off (the default), recorded.
    expected = seeds.NO_YNN if jax.default_backend() == "cpu" else None
    assert record["compiler_options"] == expected


def test_lm_rejects_and_reports_a_nan_update_and_writes_standard_json(full_run):
    """Seed 1's first update has a NaN reward: it is rejected (parameters
    kept), counted in ``nonfinite_updates`` and printed; ``metrics.json`` is
    standard JSON (the NaN means of that update are ``null``, no ``NaN``
    token); seed 1 still trains and evaluates to finite numbers."""
    out, printed = full_run
    text = (out / "metrics.json").read_text()

    def refuse(token):
        raise AssertionError(f"non-standard JSON token {token}")

    record = json.loads(text, parse_constant=refuse)
    assert record["nonfinite_updates"] == [0, 1]
    assert record["metrics"]["nonfinite"] == [[0, 0, 0, 0], [1, 0, 0, 0]]
    assert record["metrics"]["reward"][1][0] is None  # the NaN mean
    assert all(v is not None for v in record["metrics"]["reward"][1][1:])
    assert all(v is not None for v in record["summary"]["final_accuracy"])
    assert "non-finite updates rejected (parameters kept): seed 1: 1" in printed


@pytest.mark.parametrize(
    ("xla_ynn", "backend", "expected"),
    [
        ("off", "cpu", seeds.NO_YNN),
        ("on", "cpu", None),
        ("off", "gpu", None),
    ],
)
def test_lm_compiler_options(xla_ynn, backend, expected):
    assert seeds.compiler_options(xla_ynn, backend) == expected
    with pytest.raises(ValueError, match="--xla-ynn='maybe'"):
        seeds.compiler_options("maybe", backend)
    assert _parse(["lm"]).xla_ynn == "off"


def test_lm_estimator_options_reach_the_config():
    args = _parse(["lm", *TINY, "--clip-eps-high", "0.28", "--dual-clip", "3",
                   "--importance-ratio", "sequence", "--aggregation", "seq_mean",
                   "--dynamic-sampling", "64", "--overlong-buffer", "2",
                   "--overlong-penalty", "0.5", "--mask-truncated",
                   "--advantage", "grpo_batch"])  # fmt: skip
    _, _, rl_cfg = cli.build_config(args)
    assert (rl_cfg.clip_eps_high, rl_cfg.dual_clip) == (0.28, 3.0)
    assert rl_cfg.importance_ratio == "sequence" and rl_cfg.dynamic_sampling == 64
    assert (rl_cfg.overlong_buffer, rl_cfg.overlong_penalty) == (2, 0.5)
    assert rl_cfg.mask_truncated and rl_cfg.advantage == "grpo_batch"


def test_lm_falls_back_to_default_xla_options_when_one_is_unknown(capsys, monkeypatch):
    """An XLA that rejects the options compiles the same ``Lowered`` program
    with its defaults: the RL chunk is traced and lowered once."""
    args = _parse(["lm", *TINY, "--updates", "2", "--seeds", "1"])
    task, model_cfg, rl_cfg = cli.build_config(args)
    # One compiled program (an eager init is one per operation, 2 s of CPU).
    params = jax.jit(model.init, static_argnums=1)(jax.random.key(0), model_cfg)
    unknown = {"xla_no_such_option_for_this_test": "1"}
    compiles, traces = [], []
    real_compile, real_lower = jax.stages.Lowered.compile, updates.lower

    def compile_(self, options=None, **kwargs):
        compiles.append((self, options))
        return real_compile(self, options, **kwargs)

    def lower(*a, **k):
        traces.append(1)  # once per trace and lowering of the chunk program
        return real_lower(*a, **k)

    monkeypatch.setattr(jax.stages.Lowered, "compile", compile_)
    monkeypatch.setattr(updates, "lower", lower)
    result = seeds.train_seeds(task, model_cfg, rl_cfg, params, 1, 2, unknown)
    metrics, used = result.metrics, result.options
    assert used is None
    assert "not supported; using the defaults" in capsys.readouterr().out
    assert metrics["reward"].shape == (1, 2)
    assert len(traces) == 1
    (rejected,) = [i for i, (_, o) in enumerate(compiles) if o == unknown]
    assert compiles[rejected + 1][0] is compiles[rejected][0]  # the same Lowered
    assert compiles[rejected + 1][1] is None


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--chunk", "0"], "--chunk=0 is invalid: must be an integer >= 1"),
        (["--seeds", "0"], "--seeds=0 is invalid"),
        (["--epochs", "2", "--clip-eps", "0"], "--epochs=2 reuses samples"),
        (["--lr", "nan"], "--lr=nan is invalid: must be a finite number > 0"),
        (["--lr", "1e30"], "--lr=1e+30 is invalid"),
        (["--beta", "inf"], "--beta=inf is invalid: must be a finite number"),
        (["--temperature", "inf"], "--temperature=inf is invalid"),
        (["--temperature", "0"], "--temperature=0.0 is invalid"),
        (["--max-new-tokens", "0"], "--max-new-tokens=0 is invalid"),
        (["--sft-steps", "0"], "--sft-steps=0 is invalid: must be an int >= 1"),
        (["--sft-lr", "nan"], "--sft-lr=nan is invalid"),
        (["--hack-window", "0"], "--hack-window=0 is invalid"),
        (["--dual-clip", "0.5"], "--dual-clip=0.5 is invalid"),
        (["--importance-ratio", "sequence"], "needs --aggregation='seq_mean'"),
        # Validated although --reference makes SFT options unused.
        (["--reference", "some/ref", "--sft-steps", "0"], "--sft-steps=0 is invalid"),
    ],
)
def test_lm_rejects_bad_settings(tmp_path, capsys, extra, message):
    args = _parse(["lm", "--out", str(tmp_path), *TINY, *extra])
    assert args.func(args) == 2
    assert message in capsys.readouterr().err


def test_lm_overwrite_with_a_bad_setting_keeps_the_existing_run(tmp_path, capsys):
    (tmp_path / cli.RUN_FILE).write_text('{"options": {}}')
    args = _parse(["lm", "--out", str(tmp_path), "--overwrite", *TINY, "--lr", "-1"])
    assert args.func(args) == 2
    assert "--lr=-1.0 is invalid" in capsys.readouterr().err
    assert (tmp_path / cli.RUN_FILE).read_text() == '{"options": {}}'


def test_lm_refuses_a_reference_of_another_shape(tmp_path, capsys):
    cfg = model.TransformerConfig(vocab_size=14, width=16, num_heads=2, max_len=8)
    params = jax.eval_shape(lambda k: model.init(k, cfg), jax.random.key(0))
    params = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), params)
    sft.save_reference(tmp_path / "ref", params, cfg)
    args = _parse(["lm", "--out", str(tmp_path / "out"), "--reference",
                   str(tmp_path / "ref"), *TINY])  # fmt: skip
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert "differs from the requested" in err
    # TINY's --sft-steps is not used with --reference: said, not silent.
    assert "--sft-steps not used: --reference" in err


def test_lm_overwrite_refuses_a_reference_inside_out_and_deletes_nothing(
    tmp_path, capsys
):
    """--overwrite deletes --out first: a reference saved inside it (the
    natural way to run RL again on a run's reference) is refused, not lost."""
    out = tmp_path / "run"
    _, cfg, _ = cli.build_config(_parse(["lm", *TINY]))
    params = jax.eval_shape(lambda k: model.init(k, cfg), jax.random.key(0))
    params = jax.tree.map(lambda s: jax.numpy.zeros(s.shape, s.dtype), params)
    sft.save_reference(out / "reference", params, cfg)
    (out / cli.RUN_FILE).write_text('{"options": {}}')
    before = sorted(p.relative_to(out) for p in out.rglob("*"))
    args = _parse(["lm", "--out", str(out), "--overwrite", "--reference",
                   str(out / "reference"), *TINY])  # fmt: skip
    assert args.func(args) == 2
    assert "is inside --out" in capsys.readouterr().err
    assert sorted(p.relative_to(out) for p in out.rglob("*")) == before


def test_lm_resume_refuses_an_option_given_at_its_default_that_differs(
    full_run, capsys
):
    """The run has --seeds 2; --seeds at its default on the command line is
    a request too (it was taken for "not given" and dropped)."""
    out, _ = full_run
    default = _parse(["lm"]).defaults["seeds"]
    assert default != 2
    args = _parse(["lm", "--resume", str(out), "--seeds", str(default)])
    assert args.given == {"resume", "seeds"}
    assert args.func(args) == 2
    assert f"--seeds: run has 2, command line {default}" in capsys.readouterr().err


def test_lm_names_options_its_settings_leave_unused():
    args = _parse(["lm", "--task", "sort_proxy", "--reward", "partial",
                   "--overlong-penalty", "0.5", "--kl-placement", "none",
                   "--beta", "0.1"])  # fmt: skip
    assert cli.ignored_options(args) == [
        "--reward not used: --task sort_proxy optimises its own proxy",
        "--overlong-penalty not used: no --overlong-buffer",
        "--beta not used: --kl-placement none",
    ]
    assert cli.ignored_options(_parse(["lm", "--beta", "0.1"])) == []


@pytest.mark.parametrize(
    "argv, says",
    [
        (["--prompts", "0"], "--prompts=0 is invalid"),
        (["--group", "1"], "needs --group >= 2, got 1"),
        (["--clip-eps", "0.3", "--clip-eps-high", "0.2"], "--clip-eps-high=0.2"),
        (["--dynamic-sampling", "1"], "must be >= --prompts=16"),
        (["--layers", "0"], "--layers=0 is invalid"),
    ],
)  # fmt: skip
def test_lm_errors_name_the_flags_not_the_config_fields(argv, says, tmp_path, capsys):
    args = _parse(["lm", "--out", str(tmp_path / "run"), *argv])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert says in err, err
    assert "RLConfig" not in err and "TransformerConfig" not in err, err
    assert not (tmp_path / "run").exists()


def test_in_flags_leaves_plain_words_alone():
    message = "advantage='grpo' needs group_size >= 2: the advantage is 0"
    assert cli.in_flags(message) == (
        "--advantage='grpo' needs --group >= 2: the advantage is 0"
    )


def test_lm_refuses_a_folder_that_holds_something_else(tmp_path, capsys):
    (tmp_path / "config.json").write_text("{}")  # e.g. a jaxpg train run
    args = _parse(["lm", "--out", str(tmp_path), *TINY])
    assert args.func(args) == 2
    assert "is not empty and holds no jaxpg lm run" in capsys.readouterr().err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["config.json"]


def test_interrupted_lm_run_resumes_bit_identically(full_run, tmp_path, monkeypatch):
    """SIGINT after the first chunk: the run checkpoints at update 2 and exits
    130; ``--resume`` (options from the run directory, reference loaded, no
    SFT) ends with the metrics, evaluation and final state of the
    uninterrupted run, bit for bit."""
    full, _ = full_run
    out = tmp_path / "cut"
    real = cli.train_seeds

    def interrupted(*args, on_chunk=None, **kwargs):
        def hook(size, metrics):
            if on_chunk is not None:
                on_chunk(size, metrics)
            assert _is_locked(out)  # held while the run trains
            signal.raise_signal(signal.SIGINT)

        return real(*args, on_chunk=hook, **kwargs)

    monkeypatch.setattr(cli, "train_seeds", interrupted)
    args = _parse(["lm", "--task", "sort_proxy", "--out", str(out), *TINY])
    with _nan_in_seed_1():
        assert args.func(args) == 128 + signal.SIGINT
    assert checkpoint.list_steps(out / "checkpoints") == [2]
    assert not (out / "metrics.json").exists()
    progress = json.loads((out / "progress.json").read_text())
    assert progress == {"updates_done": 2, "num_updates": 4,
                        "status": "interrupted", "latest_checkpoint": 2}  # fmt: skip
    monkeypatch.setattr(cli, "train_seeds", real)
    # A new run into the same directory is refused; the run is kept.
    again = _parse(["lm", "--task", "sort_proxy", "--out", str(out), *TINY])
    assert again.func(again) == 2
    # Resuming with a different option is refused, naming it.
    clash = _parse(["lm", "--resume", str(out), "--lr", "0.5"])
    assert clash.func(clash) == 2
    resumed = _parse(["lm", "--resume", str(out), "--no-progress"])
    printed = io.StringIO()
    with _nan_in_seed_1(), contextlib.redirect_stdout(printed):
        assert resumed.func(resumed) == 0
    assert "(loaded, " in printed.getvalue()  # the run's reference, not SFT
    progress = json.loads((out / "progress.json").read_text())
    assert progress["status"] == "finished" and progress["latest_checkpoint"] == 4
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((full / "metrics.json").read_text())
    for key in ("metrics", "summary", "reference_eval", "reference_version"):
        assert got[key] == want[key], key
    abstract = _abstract_state(full)
    like = checkpoint.restore(full / "checkpoints", 4, abstract)
    state = checkpoint.restore(out / "checkpoints", 4, abstract)
    for a, b in zip(jax.tree.leaves(like), jax.tree.leaves(state), strict=True):
        a = (
            jax.random.key_data(a)
            if jax.dtypes.issubdtype(a.dtype, jax.dtypes.prng_key)
            else a
        )
        b = (
            jax.random.key_data(b)
            if jax.dtypes.issubdtype(b.dtype, jax.dtypes.prng_key)
            else b
        )
        assert (a == b).all()


def test_checkpoint_every_lets_a_crashed_lm_run_resume_bit_identically(
    full_run, tmp_path, monkeypatch
):
    """``--checkpoint-every 2``: a process that dies in its second chunk
    (an exception, as a lost device or a killed host would end it) leaves the
    checkpoint at update 2, and ``--resume`` ends as the uninterrupted run."""
    full, _ = full_run
    out = tmp_path / "crashed"
    real = cli.train_seeds

    def crashing(*args, on_chunk=None, **kwargs):
        def hook(size, metrics):
            hook.chunks += 1
            if hook.chunks == 2:
                raise RuntimeError("the host went away")

        hook.chunks = 0
        return real(*args, on_chunk=hook, **kwargs)

    monkeypatch.setattr(cli, "train_seeds", crashing)
    argv = ["lm", "--task", "sort_proxy", "--out", str(out), *TINY]
    args = _parse([*argv, "--checkpoint-every", "2"])
    with _nan_in_seed_1(), pytest.raises(RuntimeError, match="went away"):
        args.func(args)
    assert checkpoint.list_steps(out / "checkpoints") == [2]
    monkeypatch.setattr(cli, "train_seeds", real)
    resumed = _parse(["lm", "--resume", str(out)])
    with _nan_in_seed_1(), contextlib.redirect_stdout(io.StringIO()):
        assert resumed.func(resumed) == 0
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((full / "metrics.json").read_text())
    for key in ("metrics", "summary", "reference_eval"):
        assert got[key] == want[key], key
    assert checkpoint.list_steps(out / "checkpoints") == [2, 4]
    bad = _parse([*argv, "--overwrite", "--checkpoint-every", "0"])
    assert bad.func(bad) == 2


def test_lm_resume_refuses_a_changed_reference_naming_it(full_run, capsys):
    """The run's reference replaced by another (same model, other
    parameters): ``--resume`` names the folder and both versions and changes
    nothing; another ``--reference`` is refused as a changed option."""
    out, _ = full_run
    folder = out / "reference"
    params, cfg, info = sft.load_reference(folder)
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    config = (out / cli.RUN_FILE).read_text()
    assert json.loads(config)["reference_version"] == info["version"]
    new = sft.save_reference(folder, jax.tree.map(lambda x: x + 1.0, params), cfg)
    try:
        args = _parse(["lm", "--resume", str(out), "--no-progress"])
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert f"the reference in {folder} has version {new}" in err
        assert f"trained against version {info['version']}" in err
        assert (out / cli.RUN_FILE).read_text() == config
    finally:
        for name, data in before.items():
            (folder / name).write_bytes(data)
    args = _parse(["lm", "--resume", str(out), "--reference", str(folder)])
    assert args.func(args) == 2
    assert f"--reference: run has None, command line '{folder}'" in (
        capsys.readouterr().err
    )


def _is_locked(directory) -> bool:
    """Whether some open file description holds ``directory``'s lock (a new
    descriptor conflicts with a ``flock`` held even by this process)."""
    fd = os.open(directory / lock.LOCK, os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


def test_lm_refuses_a_missing_reference_or_a_file_as_out_in_one_sentence(
    tmp_path, capsys
):
    missing = tmp_path / "no-such-ref"
    args = _parse(["lm", "--out", str(tmp_path / "a"), "--reference", str(missing)])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert err == f"jaxpg lm: error: --reference {missing}: no such folder\n"
    (tmp_path / "empty-ref").mkdir()
    args = _parse(["lm", "--reference", str(tmp_path / "empty-ref")])
    assert args.func(args) == 2
    assert "reference.json, reference.msgpack missing" in capsys.readouterr().err
    (tmp_path / "file").write_text("")
    args = _parse(["lm", "--out", str(tmp_path / "file"), *TINY])
    assert args.func(args) == 2
    err = capsys.readouterr().err
    assert (
        err == f"jaxpg lm: error: --out {tmp_path / 'file'} is a file, not a folder\n"
    )
    assert not (tmp_path / "a").exists()  # nothing was created


# Runs ``jaxpg.cli.main.main`` on each argv of a JSON list; prints the codes.
_MAIN_EACH = """\
import json, sys
from jaxpg.cli.main import main
codes = []
for argv in json.loads(sys.argv[1]):
    try:
        codes.append(main(argv))
    except SystemExit as stop:
        codes.append(stop.code)
print(json.dumps(codes))
"""


def test_lm_on_a_locked_run_directory_is_refused_and_deletes_nothing(tmp_path):
    """Another process holds the run directory (a live ``jaxpg lm``): a resume
    and an overwrite of it are refused naming the holder, nothing deleted.
    Refused before anything compiles: the subprocesses take seconds."""
    out = tmp_path / "run"
    out.mkdir()
    record = {"options": cli.recorded(_parse(["lm", *TINY])), "jaxpg": "test"}
    (out / cli.RUN_FILE).write_text(json.dumps(record))
    (out / "checkpoints").mkdir()
    env = {**os.environ, "JAXPG_CACHE_DIR": ""}
    commands = [
        ["lm", "--resume", str(out)],
        ["lm", "--out", str(out), "--overwrite", *TINY],
    ]
    with lock.hold(out):
        # Both commands in one other process (one interpreter start), each
        # through the entry point the ``jaxpg`` script calls.
        done = subprocess.run(
            [sys.executable, "-c", _MAIN_EACH, json.dumps(commands)],
            capture_output=True, text=True, env=env, timeout=120,
        )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout.splitlines()[-1]) == [2, 2], done.stderr
    assert done.stderr.count(f"in use by process {os.getpid()}") == 2, done.stderr
    assert "Traceback" not in done.stderr
    assert json.loads((out / cli.RUN_FILE).read_text()) == record
    assert (out / "checkpoints").is_dir()


def _abstract_state(run_dir):
    """The abstract ``[S]`` RL state of the run in ``run_dir``."""
    options = json.loads((run_dir / cli.RUN_FILE).read_text())["options"]
    args = _parse(["lm"])
    for k, v in options.items():
        setattr(args, k, v)
    task, model_cfg, rl_cfg = cli.build_config(args)
    algo = rl.make_rl(task, model_cfg, rl_cfg)
    ref = jax.eval_shape(lambda: model.init(jax.random.key(0), model_cfg))
    keys = jax.eval_shape(lambda: jax.random.split(jax.random.key(0), args.seeds))
    return jax.eval_shape(jax.vmap(algo.init, in_axes=(0, None)), keys, ref)


def test_a_failed_lm_save_names_the_previous_checkpoint_and_the_resume(
    full_run, tmp_path, monkeypatch, capsys
):
    """Chunks of 3 over 4 updates (the last of 1, through the same compiled
    program), a checkpoint at update 3, and the save at update 4 fails (a
    full disk): exit 1, the message names update 3's checkpoint and ``jaxpg
    lm --resume``, progress.json says failed, and that resume ends as the
    uninterrupted run in chunks of 2, bit for bit: the chunking changes
    nothing."""
    full, _ = full_run
    out = tmp_path / "run"
    real = checkpoint.save

    def save(directory, step, state):
        if step == 4:
            error = checkpoint.CheckpointError("saving checkpoint 4: no space left")
            error.no_space = True
            raise error
        return real(directory, step, state)

    monkeypatch.setattr(checkpoint, "save", save)
    args = _parse(["lm", "--task", "sort_proxy", "--out", str(out), *TINY,
                   "--chunk", "3", "--checkpoint-every", "2"])  # fmt: skip
    with _nan_in_seed_1():
        assert args.func(args) == 1
    err = capsys.readouterr().err
    assert "cannot resume" not in err
    assert (
        f"the previous good checkpoint is update 3 ({out / 'checkpoints'}"
        f"/000000000003); free space, then resume with: jaxpg lm --resume {out}"
    ) in err
    progress = json.loads((out / "progress.json").read_text())
    assert progress["status"] == "failed" and progress["latest_checkpoint"] == 3
    monkeypatch.setattr(checkpoint, "save", real)
    resumed = _parse(["lm", "--resume", str(out), "--no-progress"])
    with _nan_in_seed_1():
        assert resumed.func(resumed) == 0
    got = json.loads((out / "metrics.json").read_text())
    want = json.loads((full / "metrics.json").read_text())
    assert got["metrics"] == want["metrics"] and got["summary"] == want["summary"]
