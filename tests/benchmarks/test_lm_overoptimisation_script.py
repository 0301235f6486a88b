"""Bookkeeping of benchmarks/lm_overoptimisation.py on synthetic curves (no
training): Gao et al.'s fit, its peak, the monitor's first flag, the stopping
rules and the Markdown row."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

BENCH = Path(__file__).resolve().parents[2] / "benchmarks"


def _module():
    path = BENCH / "lm_overoptimisation.py"
    spec = importlib.util.spec_from_file_location("lm_overoptimisation", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_gao_fit_stopping_rules_and_markdown_on_synthetic_curves():
    bench = _module()
    # Noiseless gold(d) - gold(0) = d (0.3 - 0.2 log d): the fit recovers it,
    # R² = 1, and its peak is exp(0.3 / 0.2 - 1) = e^0.5.
    d = np.linspace(0.05, 4.0, 60)
    fit = bench.fit_gao(d, d * (0.3 - 0.2 * np.log(d)))
    assert fit["alpha"] == pytest_approx(0.3) and fit["beta"] == pytest_approx(0.2)
    assert fit["r2"] == pytest_approx(1.0) and fit["n"] == 60
    assert bench.gao_peak(fit) == pytest_approx(np.exp(0.5))
    assert bench.gao_peak({"alpha": 1.0, "beta": -0.1, "r2": 1.0}) is None
    assert np.isnan(bench.fit_gao(np.zeros(5), np.ones(5))["alpha"])

    # One seed: gold rises by 0.01 per update to 0.9 at update 40, then falls
    # by 0.02; the proxy rises by 0.03; KL = 0.01 u. Window 5 (tol 0.05):
    # the proxy's window mean always rises by 0.15; the gold's first falls by
    # more than 0.05 at update 46 (mean of 42..46 = 0.82, of 37..41 = 0.884).
    u = np.arange(100)
    gold = np.where(u < 40, 0.5 + 0.01 * u, 0.9 - 0.02 * (u - 40))[None]
    proxy = (0.03 * u)[None]
    kl = (0.01 * u)[None]
    r = bench.summarise(gold, proxy, kl, u, window=5, budget_d=0.5)
    flag = r["monitor_first_flag"][0]
    assert flag == 46
    assert r["gold_at_first_flag"] == pytest_approx(0.82)
    assert r["gold_best"] == pytest_approx(0.884)  # updates 37..41
    assert r["gold_final"] == pytest_approx(-0.24)  # updates 95..99
    # KL budget d = 0.5: the mean of sqrt(0.01 u) over u-4..u first exceeds
    # 0.5 at u = 28 (5.097 / 10; at 27: 4.998 / 10): gold mean of 24..28.
    assert r["gold_at_kl_budget"] == pytest_approx(0.76)
    result = {
        "machine": "test",
        "total_s": 1.0,
        "settings": {
            "sft_steps": 1,
            "pair_temperature": 1.0,
            "noise": 0.1,
            "prompts": 2,
            "group_size": 2,
            "lr": 1e-3,
            "updates": 100,
            "seeds": 1,
            "dpo_steps": 4,
            "dpo_batch": 2,
            "dpo_lr": 1e-3,
            "dpo_eval_every": 2,
            "eval_prompts": 4,
            "window": 5,
        },
        "reference": {"true_reward": 0.5, "accuracy": 0.1, "reward": 0.0},
        "reward_model": {
            "backbone": "transformer",
            "init": "reference",
            "train_pairs": 10,
            "held_out_accuracy": 0.75,
            "held_out_pairs": 4,
            "version": "abc",
        },
        "gao_fit_pooled_rl": fit,
        "kl_budget_sqrt": bench.gao_peak(fit),
        "dpo_smoothing_points": 3,
        "runs": {"rl beta=0": r},
        "best_by_rule": {"rl": {"none (final)": "rl beta=0"}},
    }
    text = bench.markdown(result)
    assert f"| rl beta=0 | 0.500 | {r['gold_final']:.3f} ± - |" in text
    assert f"| {flag} | " in text
    assert f"- RL: none (final): rl beta=0 ({r['gold_final']:.3f})" in text


def pytest_approx(x):
    import pytest

    return pytest.approx(x, rel=1e-6, abs=1e-9)
