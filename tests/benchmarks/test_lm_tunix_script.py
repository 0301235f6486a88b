"""Bookkeeping of benchmarks/lm_tunix.py that needs neither Tunix nor a run:
the reward Tunix's completions get (Tunix cuts a completion before its EOS)
and the Markdown record."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

from jaxpg.sequence import tasks

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


@pytest.fixture(scope="module")
def bench():
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(BENCH))  # the script imports benchmarks/record.py
        spec = importlib.util.spec_from_file_location("lm_tunix", BENCH / "lm_tunix.py")
        module = importlib.util.module_from_spec(spec)
        mp.setitem(sys.modules, "lm_tunix", module)  # its dataclass looks it up
        spec.loader.exec_module(module)
    return module


def test_tunix_completions_get_the_tasks_reward_with_their_eos_put_back(bench):
    # sort, R = 4: "3 1 2 =" -> "1 2 3 EOS". Tunix's texts end before the EOS:
    # "1 2 3" stopped there (right); "1 2 3 4" ran to the budget (no EOS);
    # "1 2" stopped early; "1 3 2" is in the wrong order.
    prompts = ["3 1 2 ="] * 4 + ["5 5 5 ="]
    completions = ["1 2 3", "1 2 3 4", "1 2", "1 3 2", "5 5 5"]
    stamps = []
    partial = bench.tunix_reward(tasks.sort_task(3, reward="partial"), stamps)
    assert partial(prompts, completions) == [1.0, 0.75, 0.5, 0.5, 1.0]
    exact = bench.tunix_reward(tasks.sort_task(3), stamps)
    assert exact(prompts, completions) == [1.0, 0.0, 0.0, 0.0, 1.0]
    assert len(stamps) == 2  # one time stamp per call (per update)


def test_markdown_record(bench):
    row = {"tokens_per_s": 60000.0, "rl_s": 0.64, "runs_s": [0.6, 0.64, 0.7],
           "compile_s": 12.0, "accuracy": 0.85}  # fmt: skip
    record = {
        "settings": {"reward": "partial", "width": 32, "layers": 2, "heads": 2,
                     "updates": 150, "prompts": 16, "group": 4},
        "rows": {"jaxpg": row, "tunix": {
            "tokens_per_s": 5000.0, "rl_s": 7.68, "wall_s": 20.0,
            "compile_and_first_s": 12.3, "accuracy": 0.8}},
        "ratios": {"jaxpg": 12.0}, "reference_accuracy": 0.576,
        "logp_gap": 3e-6, "machine": "test",
    }  # fmt: skip
    text = bench.markdown(record, 4)
    assert (
        "| jaxpg | 60,000 (12.0x Tunix) | 0.64 (median of 3 calls) | 12.0 | 0.850 |"
        in text
    )
    assert "| Tunix | 5,000 | 7.68 (median update x 150; wall 20.00) | 12.3" in text
    assert "agree within 3.0e-06" in text
