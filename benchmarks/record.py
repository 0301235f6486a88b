"""Where a benchmark's record goes: ``benchmarks/results/NAME`` for a full
run, ``--out PATH`` when given (a ``--tiny`` run writes only there)."""

from __future__ import annotations

import json
from pathlib import Path

RESULTS = Path(__file__).parent / "results"


def write_record(record: dict, name: str, tiny: bool, out: str | None) -> None:
    """Write ``record`` as JSON to ``out``, else (not ``tiny``) to
    ``results/name``; a ``tiny`` run without ``out`` writes nothing."""
    if tiny and not out:
        return
    path = Path(out) if out else RESULTS / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {path}")
