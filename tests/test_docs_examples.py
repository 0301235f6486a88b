"""Examples that cannot rot: every Python block and every shell command in
README.md and docs/*.md runs here, as the user would paste it, with small
budgets substituted by the explicit tables below.

- Python blocks of one file run in order in one namespace, each file in its
  own temporary working directory; all files in one fresh process, which
  runs while the commands do.
- Shell commands run one by one in one shared temporary folder, in document
  order (README first), through ``jaxpg``'s entry point (``main(argv)``, what
  the ``jaxpg`` script calls) in this process: a fresh interpreter would spend
  most of a small-budget command importing JAX and the libraries again.
  Commands with ``VAR=value`` prefixes run as ``python -m jaxpg`` with this
  interpreter and those variables in their environment, so a fresh process
  starting the CLI is run here too. Commands for several processes
  (``--coordinator``) are the two-process ``jaxpg train`` that
  tests/drivers/test_parallel.py runs and compares with the one-process run
  (``NOT_RUN``: the check is that its command has every option the docs
  give). A command identical to one already run is not run again. Every
  process shares one compilation cache, so a repeated program compiles once.
- ``make`` targets are not run (``make test`` would recurse): ``make -n``
  must name the command the docs describe.
- Commands that cannot run here are listed in ``NOT_RUN`` with the reason and
  the check that replaces running them.

Besides, every ``jaxpg.*`` name written in the docs resolves, every repository
path and relative link exists, and the README stays a short document.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shlex
import signal
import subprocess
import sys
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path

import gc_tuning  # tests/helpers (conftest.py puts it on the path)
import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
IDS = [str(p.relative_to(ROOT)) for p in DOCS]
README_MAX_LINES = 250
TIMEOUT_S = 600

# ------------------------------------------------------------------ budgets
# Small budgets for the user's code: (pattern, replacement) applied in order to
# every Python block. Each must be used by some block (no stale rules).
PYTHON_BUDGETS: list[tuple[str, str]] = [
    (r"(jaxpg\.presets\.get\([^)]*\))", r"\1.replace(total_steps=4096)"),
    (r"\btotal_steps=[\d_]+", "total_steps=4096"),
    (r"\bnum_seeds=\d+", "num_seeds=2"),
    (r"\bjnp\.arange\(\d+\)", "jnp.arange(2)"),
    (r"\bnum_episodes=\d+", "num_episodes=4"),
    (r"\bnum_updates=\d+", "num_updates=8"),  # jaxpg.sequence.RLConfig
    (r"\bnum_steps=\d+", "num_steps=8"),  # jaxpg.sequence.make_sft
    # a 1-layer model, as for `jaxpg lm` below: each layer is traced and
    # compiled anew in every program of docs/llm.md's blocks
    (r"\bnum_layers=\d+", "num_layers=1"),  # jaxpg.sequence.TransformerConfig
]
# The same for commands: substitutions, then options appended per subcommand
# (only where the command does not give them itself).
COMMAND_BUDGETS: list[tuple[str, str]] = [
    (r"--seeds \d+", "--seeds 2"),
    (r"--episodes \d+", "--episodes 4"),
    (r"--num-settings \d+", "--num-settings 2"),
    (r"--reward-model --rm-noise",  # jaxpg lm: a smaller reward model's training
     "--reward-model --rm-pairs 128 --rm-steps 20 --rm-heldout 64 --rm-noise"),
]  # fmt: skip
COMMAND_EXTRAS: dict[str, list[str]] = {
    "train": ["--steps", "4096", "--eval-episodes", "4"],
    "train --resume": ["--eval-episodes", "4"],  # the rest is the run's own
    "sweep": ["--set", "total_steps=4096", "--eval-episodes", "4"],
    # and a 1-layer model: a command's options are what runs here; each
    # layer is traced and compiled anew (2 layers: 35 s of CPU for the three
    # commands of docs/llm.md, 1 layer: 23 s)
    "lm": ["--updates", "8", "--sft-steps", "8", "--layers", "1"],
}

# ------------------------------------------------------ commands not run here
# (pattern on the command, reason, check that replaces the run)
SLURM = r"\b(srun|scontrol)\b|\$SLURM_"
BENCH_EXTRA = r"^python benchmarks/(lm_trl|lm_tunix|learning|torch_reinforce)\.py\b"
BENCHMARK = r"^python benchmarks/\w+\.py\b"
PIP = r"^pip install\b"
SEVERAL_PROCESSES = r"^jaxpg \w+\b.*--coordinator\b"
MAKE = r"^make\b"
NOT_RUN: list[tuple[str, str, str]] = [
    (MAKE, "make would install and recurse into the suite", "make -n"),
    (
        SLURM,
        "needs a SLURM allocation; the same jaxpg options run here as local processes",
        "none",
    ),
    (
        SEVERAL_PROCESSES,
        "run by tests/drivers/test_parallel.py as two local processes with the "
        "suite's small options, and compared there with the one-process run",
        "two processes",
    ),
    (
        BENCH_EXTRA,
        "needs the bench extra (PyTorch, rejax, TRL) or the tunix extra, which "
        "the test environment does not install",
        "options",
    ),
    (
        BENCHMARK,
        "a measurement: minutes to hours, and it rewrites benchmarks/results/ "
        "(the suite never times)",
        "options",
    ),
    (PIP, "needs the network", "extras"),
]
# What ``make -n TARGET`` must print, for every target the docs name.
MAKE_TARGETS = {
    "train": "jaxpg train --env CartPole-v1 --algo reinforce --seeds 16 "
    "--out runs/cartpole-reinforce",
    "test": "pytest",
    "lint": "ruff check",
    "bench": "benchmarks/throughput.py",
}
SHELL_LANGS = {"bash", "sh", "shell", "console"}
KNOWN_LANGS = SHELL_LANGS | {"python", "text"}
COMMAND_WORDS = ("jaxpg", "python", "make", "pip", "srun", "export")


# ---------------------------------------------------------------- extraction
@dataclass(frozen=True)
class Block:
    doc: str  # path relative to the repository
    line: int  # first line of the block's content
    lang: str
    text: str


@dataclass(frozen=True)
class Command:
    doc: str
    line: int
    text: str  # as written (continuations joined)

    @property
    def where(self) -> str:
        return f"{self.doc}:{self.line}"


def _blocks(path: Path) -> list[Block]:
    """Fenced blocks, and 4-space indented lines that start with a command
    (outside fences, they would otherwise go unchecked)."""
    doc = str(path.relative_to(ROOT))
    lines = path.read_text().splitlines()
    out, i = [], 0
    while i < len(lines):
        fence = re.match(r"^(\s*)(```+)(.*)$", lines[i])
        if fence:
            lang, start, i = fence.group(3).strip(), i + 1, i + 1
            while not lines[i].strip().startswith(fence.group(2)):
                i += 1
            body = textwrap.dedent("\n".join(lines[start:i]))
            out.append(Block(doc, start + 1, lang, body))
        elif re.match(r"^    \S", lines[i]) and lines[i].split()[0] in COMMAND_WORDS:
            out.append(Block(doc, i + 1, "indented", lines[i].strip()))
        i += 1
    return out


def _commands(block: Block) -> list[Command]:
    out, pending, start = [], "", 0
    for offset, raw in enumerate(block.text.splitlines()):
        line = raw.strip()
        if block.lang == "console" and line.startswith("$ "):
            line = line[2:]
        if not pending:
            start = block.line + offset
            if not line or line.startswith("#"):
                continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        out.append(Command(block.doc, start, pending + line))
        pending = ""
    return out


def _tokens(text: str) -> list[str]:
    return shlex.split(text, comments=True)


def _not_run(cmd: Command) -> tuple[str, str] | None:
    for pattern, reason, check in NOT_RUN:
        if re.search(pattern, cmd.text):
            return reason, check
    return None


def _jaxpg_argv(tokens: list[str]) -> tuple[dict[str, str], list[str]] | None:
    """``(env assignments, jaxpg argv)`` of ``[VAR=value ...] jaxpg ...``."""
    env = {}
    while tokens and re.match(r"^[A-Z_][A-Z0-9_]*=", tokens[0]):
        name, value = tokens.pop(0).split("=", 1)
        env[name] = value
    if tokens and tokens[0] == "jaxpg":
        return env, tokens[1:]
    return None


def _budget(argv: list[str]) -> list[str]:
    text = shlex.join(argv)
    for pattern, repl in COMMAND_BUDGETS:
        text = re.sub(pattern, repl, text)
    argv = shlex.split(text)
    sub = argv[0] + (" --resume" if "--resume" in argv else "")
    for opt, *value in _pairs(COMMAND_EXTRAS.get(sub, [])):
        if opt not in argv or opt == "--set":
            argv += [opt, *value]
    return argv


def _pairs(extras: list[str]) -> list[list[str]]:
    return [extras[i : i + 2] for i in range(0, len(extras), 2)]


def _python_source(text: str, used: set[int]) -> str:
    for k, (pattern, repl) in enumerate(PYTHON_BUDGETS):
        text, n = re.subn(pattern, repl, text)
        if n:
            used.add(k)
    return text


# ------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Environment of every process started here: ``jaxpg`` on PATH as this
    interpreter's ``-m jaxpg``, this repository first on the import path, the
    suite's compilation cache (conftest.py), so that a program the other tests
    compiled, or a repeated one, compiles once."""
    bin_dir = tmp_path_factory.mktemp("bin")
    shim = bin_dir / "jaxpg"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m jaxpg "$@"\n')
    shim.chmod(0o755)
    cache = os.environ.get("JAXPG_TEST_CACHE_DIR") or str(
        tmp_path_factory.mktemp("xla-cache")
    )
    drop = ("JAX_NUM_CPU_DEVICES", "JAX_COORDINATOR_ADDRESS", "JAX_NUM_PROCESSES")
    out = {k: v for k, v in os.environ.items() if k not in drop}
    out.pop("JAX_PROCESS_ID", None)
    out.update(
        PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}",
        PYTHONPATH=os.pathsep.join(
            x for x in (str(ROOT), os.environ.get("PYTHONPATH")) if x
        ),
        JAXPG_CACHE_DIR=cache,
        JAX_COMPILATION_CACHE_DIR=cache,
        MPLBACKEND="Agg",
    )
    return out


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """The one folder every documented command runs in (runs/ accumulate)."""
    return tmp_path_factory.mktemp("commands")


@pytest.fixture(scope="module")
def done():
    """Commands already run (by their budgeted argv), where they were run."""
    return {}


@pytest.fixture(scope="module")
def python_budget_use():
    return set()


# ------------------------------------------------------------------- running
def _run(args, cwd, env, what: str, timeout=TIMEOUT_S) -> str:
    start = time.perf_counter()
    proc = subprocess.Popen(
        args,
        cwd=cwd,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
        pytest.fail(f"{what}: timed out after {timeout} s\n{out[-4000:]}")
    if proc.returncode != 0:
        pytest.fail(f"{what}: exit status {proc.returncode}\n{out[-6000:]}")
    print(f"{time.perf_counter() - start:6.1f} s  {what}")
    return out


def _run_in_process(argv, cwd, what: str) -> None:
    """``jaxpg ARGV`` through the command's own entry point in this process
    (the same ``main`` the ``jaxpg`` script calls), from ``cwd``: a fresh
    interpreter would spend most of a small-budget command importing JAX
    and the libraries again."""
    from cli_capture import run_main

    start, home = time.perf_counter(), os.getcwd()
    try:
        os.chdir(cwd)
        code, out, err = run_main(*argv)
    finally:
        os.chdir(home)
    if code != 0:
        pytest.fail(f"{what}: exit status {code}\n{(out + err)[-6000:]}")
    print(f"{time.perf_counter() - start:6.1f} s  {what} (in-process)")


def _check_not_run(cmd: Command, check: str, env) -> None:
    tokens = _tokens(cmd.text)
    if check == "make -n":
        (target,) = tokens[1:]
        assert target in MAKE_TARGETS, (
            f"{cmd.where}: `make {target}`: add the target to MAKE_TARGETS"
        )
        out = _run(["make", "-n", target], ROOT, env, f"{cmd.where}: make -n")
        assert MAKE_TARGETS[target] in out, (cmd.where, out)
    elif check == "options":
        script = ROOT / tokens[1]
        assert script.is_file(), f"{cmd.where}: no {tokens[1]}"
        source = script.read_text()
        # Options may be defined in a sibling module the script imports.
        for name in re.findall(r"^(?:from|import) (\w+)", source, re.M):
            if (script.parent / f"{name}.py").is_file():
                source += (script.parent / f"{name}.py").read_text()
        for opt in (t.split("=")[0] for t in tokens[2:] if t.startswith("--")):
            assert f'"{opt}"' in source, f"{cmd.where}: {tokens[1]} has no {opt}"
    elif check == "two processes":
        # The worker's command has every option the documented one gives.
        from parallel_worker import train_argv

        argv = train_argv(0, 0)
        given = [t for t in tokens[1:] if t.startswith("--")]
        assert tokens[1] == argv[0] and set(given) <= set(argv), (
            f"{cmd.where}: tests/helpers/parallel_worker.py runs "
            f"`jaxpg {shlex.join(argv)}`, without {sorted(set(given) - set(argv))}"
        )
    elif check == "extras":
        pyproject = (ROOT / "pyproject.toml").read_text()
        section = pyproject.split("[project.optional-dependencies]", 1)[1]
        extras = re.findall(r"^([\w-]+) = ", section.split("\n[", 1)[0], re.M)
        for spec in tokens:
            for group in re.findall(r"\[([^\]]+)\]", spec):
                for name in group.split(","):
                    assert name in extras, f"{cmd.where}: no extra {name!r}"
        if "-c" in tokens:
            assert (ROOT / tokens[tokens.index("-c") + 1]).is_file()


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_shell_commands_run(doc, env, workdir, done, python_job):
    # python_job: the Python blocks run in their own process meanwhile.
    commands = [
        c for b in _blocks(doc) if b.lang in SHELL_LANGS | {"indented"}
        for c in _commands(b)
    ]  # fmt: skip
    for cmd in commands:
        skip = _not_run(cmd)
        if skip:
            _check_not_run(cmd, skip[1], env)
            continue
        parsed = _jaxpg_argv(_tokens(cmd.text))
        assert parsed, (
            f"{cmd.where}: `{cmd.text}` is neither a jaxpg command nor listed "
            "in NOT_RUN; add a rule for it"
        )
        extra_env, argv = parsed
        argv = _budget(argv)
        key = (tuple(sorted(extra_env.items())), tuple(argv))
        if key in done:
            continue
        what = f"{cmd.where}: `{cmd.text}` (run as: jaxpg {shlex.join(argv)})"
        if extra_env:
            _run(["jaxpg", *argv], workdir, {**env, **extra_env}, what)
        else:
            _run_in_process(argv, workdir, what)
        done[key] = cmd.where


# The blocks' own imports come first (a block may set JAX options before it
# imports jaxpg), so the runner tunes the garbage collector as the suite's
# processes do (``gc_tuning``) with what exists after each block.
_PYTHON_RUNNER = f"""\
import gc, json, os, sys, traceback
gc.set_threshold(*{gc_tuning.THRESHOLDS})
docs, results = json.loads(sys.argv[1]), {{}}
home = os.getcwd()
for doc, blocks in docs.items():
    os.chdir(os.path.join(home, doc.replace("/", "_")))
    ns = {{"__name__": "__main__"}}
    try:
        for line, src in blocks:
            exec(compile("\\n" * (line - 1) + src, doc, "exec"), ns)
            gc.freeze()
        results[doc] = None
    except BaseException:
        results[doc] = traceback.format_exc()
    with open(os.path.join(home, "results.json"), "w") as f:
        json.dump(results, f)
"""


@pytest.fixture(scope="module")
def python_job(env, tmp_path_factory, python_budget_use):
    """Every doc's Python blocks in one fresh process (one import of JAX),
    started with the module so that it overlaps the commands: each doc in its
    own namespace and working directory, its blocks in order."""
    home = tmp_path_factory.mktemp("python")
    docs = {}
    for doc in DOCS:
        blocks = [
            (b.line, _python_source(b.text, python_budget_use))
            for b in _blocks(doc)
            if b.lang == "python"
        ]
        if blocks:
            docs[str(doc.relative_to(ROOT))] = blocks
            (home / str(doc.relative_to(ROOT)).replace("/", "_")).mkdir()
    proc = subprocess.Popen(
        [sys.executable, "-c", _PYTHON_RUNNER, json.dumps(docs)],
        cwd=home,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    yield proc, home, list(docs)
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()


@pytest.fixture(scope="module")
def python_results(python_job):
    """``{doc: None, or the traceback}``; tracebacks name the doc and line."""
    proc, home, docs = python_job
    try:
        out, _ = proc.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, _ = proc.communicate()
    results_file = home / "results.json"
    results = json.loads(results_file.read_text()) if results_file.exists() else {}
    failed = f"did not finish (exit status {proc.returncode})\n{out[-4000:]}"
    return {doc: results.get(doc, failed) for doc in docs}


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_python_blocks_run(doc, python_results):
    name = str(doc.relative_to(ROOT))
    if name in python_results:
        assert python_results[name] is None, f"{name}:\n{python_results[name]}"


def test_every_python_budget_rule_is_used(python_budget_use):
    for doc in DOCS:
        for b in _blocks(doc):
            if b.lang == "python":
                _python_source(b.text, python_budget_use)
    unused = [PYTHON_BUDGETS[k] for k in range(len(PYTHON_BUDGETS))]
    unused = [r for k, r in enumerate(unused) if k not in python_budget_use]
    assert not unused, f"stale budget rules: {unused}"


# -------------------------------------------------------------- static checks
def test_blocks_are_labelled_and_commands_known():
    for doc in DOCS:
        for b in _blocks(doc):
            where = f"{b.doc}:{b.line}"
            assert b.lang in KNOWN_LANGS | {"indented"}, (
                f"{where}: fence language {b.lang!r}: use one of {KNOWN_LANGS}"
            )
            assert b.lang != "indented", (
                f"{where}: an indented command; put it in a ```bash block"
            )


def test_readme_is_short_with_a_two_command_quick_start():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= README_MAX_LINES
    section = text.split("## Quick start", 1)[1].split("\n## ", 1)[0]
    blocks = re.findall(r"```bash\n(.*?)```", section, flags=re.S)
    commands = [_tokens(line) for b in blocks for line in b.splitlines()]
    assert [c for c in commands if c] == [["make", "train"], ["make", "test"]]


def _prose(text: str) -> str:
    """``text`` without its fenced blocks."""
    return re.sub(r"^\s*```.*?^\s*```", "", text, flags=re.S | re.M)


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_named_jaxpg_objects_exist(doc):
    names = set()
    for code in re.findall(r"`([^`]+)`", _prose(doc.read_text())):
        names.update(re.findall(r"\bjaxpg(?:\.[A-Za-z_]\w*)+", code))
    missing = []
    for name in sorted(names):
        parts = name.split(".")
        obj, i = None, len(parts)
        while i > 0:  # the longest importable prefix, then attributes
            try:
                obj = importlib.import_module(".".join(parts[:i]))
                break
            except ImportError:
                i -= 1
        for attr in parts[i:]:
            obj = getattr(obj, attr, None)
        if obj is None:
            missing.append(name)
    assert not missing, f"{doc.name} names what does not exist: {missing}"


def _slug(heading: str) -> str:
    """GitHub's anchor for a heading."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    return re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", text))


def _expand(pattern: str) -> list[str]:
    m = re.search(r"\{([^{}]*)\}", pattern)
    if not m:
        return [pattern]
    return [
        x
        for alt in m.group(1).split(",")
        for x in _expand(pattern[: m.start()] + alt + pattern[m.end() :])
    ]


@pytest.mark.parametrize("doc", DOCS, ids=IDS)
def test_paths_and_links_exist(doc):
    text = doc.read_text()
    missing = []
    pattern = r"(?<![\w/.])((?:tests|benchmarks|docs)/[^\s`)\]'\"#]*)"
    for path in re.findall(pattern, text):
        path = path.rstrip(".,:;/")
        if "<" in path:
            continue
        if not any(list(ROOT.glob(p)) for p in _expand(path)):
            missing.append(path)
    for target in re.findall(r"\]\(([^)\s]+)\)", text):
        if re.match(r"^[a-z]+://", target):
            continue
        file, _, anchor = target.partition("#")
        dest = (doc.parent / file).resolve() if file else doc
        if not dest.exists():
            missing.append(target)
        elif anchor and dest.suffix == ".md":
            headings = re.findall(r"^#+\s+(.*)$", _prose(dest.read_text()), re.M)
            if anchor not in {_slug(h) for h in headings}:
                missing.append(target)
    assert not missing, f"{doc.name} points at what does not exist: {missing}"
