"""The built-in transformer's speed before and after the model protocol, in one
process: ``lm_throughput.py``'s four programs (KV-cached generation, generation
without a cache, whole RL updates, the learner alone) built from today's
``jaxpg.sequence`` and from an older checkout's, compiled apart, then timed in
turns (``--repeats`` rounds) so both versions see the same background load.

The older checkout (``--old-tree``, a ``git worktree`` of the commit before the
protocol, ``dbae0a5``) is copied into a temporary folder as a package named
``jaxpg_old`` (its ``jaxpg`` imports renamed), so both import side by side.

    git worktree add ../jaxpg-dbae0a5 dbae0a5
    python benchmarks/lm_protocol_speed.py --old-tree ../jaxpg-dbae0a5

Output: ``results/lm_protocol_speed_<platform>.json`` and ``.md``: tokens/s
per program and version (median round), and new / old with the range of the
per-round ratios.
"""

from __future__ import annotations

import argparse
import importlib
import json
import re
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import jax

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import lm_settings  # noqa: E402
import lm_throughput  # noqa: E402
import throughput  # noqa: E402

RESULTS = HERE / "results"


def import_old(tree: Path, into: Path):
    """``jaxpg_old``: the package of ``tree`` with its imports renamed."""
    target = into / "jaxpg_old"
    shutil.copytree(tree / "jaxpg", target, ignore=shutil.ignore_patterns("*.pyc"))
    for path in target.rglob("*.py"):
        text = path.read_text()
        path.write_text(re.sub(r"\bjaxpg\b(?=[\s.,])", "jaxpg_old", text))
    sys.path.insert(0, str(into))
    return importlib.import_module("jaxpg_old")


def repeat(compiled, arg, k: int):
    """``k`` calls of ``compiled(arg)`` (the last one's output)."""
    for _ in range(k):
        out = compiled(arg)
    return out


def markdown(record: dict) -> str:
    lines = [
        "# The built-in transformer before and after the model protocol",
        "",
        ", ".join(f"{k} {v}" for k, v in record["settings"].items())
        + f"; {record['device']} ({record['machine']}), jax "
        f"{record['jax']}; old = `{record['old_commit']}`; median of "
        f"{record['settings']['repeats']} rounds timed in turns in one process.",
        "",
        "| program | old tokens/s | new tokens/s | new / old (per-round range) |",
        "|---|---:|---:|---:|",
    ]
    for name, row in record["rows"].items():
        low, high = row["ratio_min_max"]
        lines.append(
            f"| {name} | {row['old']:,.0f} | {row['new']:,.0f} | "
            f"{row['ratio']:.3f} ({low:.3f}-{high:.3f}) |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--old-tree", type=Path, required=True)
    p.add_argument("--old-commit", default="dbae0a5")
    lm_settings.add_options(p, iters_help="calls per timing (RL: updates per call)")
    p.set_defaults(task="sort", epochs=1, repeats=10)
    a = p.parse_args(argv)
    if a.tiny:
        a.width, a.layers, a.prompts, a.group, a.seeds = 8, 1, 2, 2, 2
        a.repeats, a.iters = 1, 2
    import jaxpg.sequence

    with tempfile.TemporaryDirectory() as tmp:
        import_old(a.old_tree, Path(tmp))
        old_sequence = importlib.import_module("jaxpg_old.sequence")
        built = {
            "old": lm_throughput.programs(old_sequence, a)[0],
            "new": lm_throughput.programs(jaxpg.sequence, a)[0],
        }
        calls, names = [], []
        for version, progs in built.items():
            compiled, _ = lm_settings.compile_programs(progs)
            for name, (_, arg, _, k) in progs.items():
                jax.block_until_ready(compiled[name](arg))  # untimed
                calls.append(lambda c=compiled[name], x=arg, k=k: repeat(c, x, k))
                names.append((version, name))
        times = throughput.time_interleaved(calls, a.repeats)
    by = dict(zip(names, times, strict=True))
    rows = {}
    for name, (_, _, tokens, k) in built["new"].items():
        tokens *= k
        old_t, new_t = by[("old", name)], by[("new", name)]
        per_round = [o / n for o, n in zip(old_t, new_t, strict=True)]
        rows[name] = {
            "old": tokens / statistics.median(old_t),
            "new": tokens / statistics.median(new_t),
            "ratio": round(statistics.median(old_t) / statistics.median(new_t), 4),
            "ratio_min_max": [round(min(per_round), 4), round(max(per_round), 4)],
            "old_times_s": old_t,
            "new_times_s": new_t,
        }
    record = lm_settings.run_record(a, old_commit=a.old_commit, rows=rows)
    for key in ("old_tree", "tiny"):  # no machine path in the record
        record["settings"].pop(key)
    out = (
        Path(a.out)
        if a.out
        else RESULTS / f"lm_protocol_speed_{jax.default_backend()}.json"
    )
    if a.tiny and not a.out:
        print(markdown(record))
        return record
    out.write_text(json.dumps(record, indent=1) + "\n")
    out.with_suffix(".md").write_text(markdown(record))
    print(markdown(record))
    return record


if __name__ == "__main__":
    main()
