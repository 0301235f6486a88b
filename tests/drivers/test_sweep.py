"""jaxpg.sweep: settings × seeds in one program; grids, random search, errors.

The sweep is compiled once per module (a tiny REINFORCE config, 4 settings ×
2 seeds); one setting is checked against its own single run. Tolerance:
the single run and the sweep member run the same arithmetic, vmapped over 8
members in one and not at all in the other, so float results agree to
float32 rounding (measured about 1e-8 in the parameters after 3 updates; the
bound rtol 1e-5, atol 1e-6 still fails for a member trained with another
setting, whose parameters move by more than 1e-3: checked below). Random
draws (steps collected, episode returns of the first update) are exact.
"""

from __future__ import annotations

import json

import jax
import numpy as np
import pytest
import tiny

import jaxpg
from jaxpg.drivers.members import train_members
from jaxpg.drivers.sweep import SWEEPABLE, grid_settings, random_settings, sweep
from jaxpg.drivers.train import policy_params

# The sweep equals its chunked and single runs to the last bits.
pytestmark = pytest.mark.bitwise

CFG = tiny.config("reinforce", updates=3)
GRID = {"lr": [1e-3, 3e-2], "ent_coef": [0.0, 0.1]}
SEEDS = 2


@pytest.fixture(scope="module")
def swept():
    return sweep(CFG, GRID, SEEDS, first_seed=3)


@pytest.fixture(scope="module")
def single_run(swept):
    settings, _ = swept
    return jax.jit(jaxpg.make_train(CFG.replace(**settings[1])))(jax.random.key(4))


def test_settings_follow_itertools_product_in_key_order(swept):
    settings, out = swept
    assert settings == [
        {"lr": 1e-3, "ent_coef": 0.0},
        {"lr": 1e-3, "ent_coef": 0.1},
        {"lr": 3e-2, "ent_coef": 0.0},
        {"lr": 3e-2, "ent_coef": 0.1},
    ]
    for leaf in jax.tree.leaves(out):
        assert leaf.shape[:2] == (4, SEEDS)
    assert out.metrics["env_steps"].shape == (4, SEEDS, CFG.num_updates)


def test_setting_k_seed_i_is_its_single_run(swept, single_run):
    _, out = swept
    k, i = 1, 1  # seed first_seed + 1 = 4
    member = jax.tree.map(lambda x: x[k, i], out)
    # The first update's draws are exact: the same episodes were collected.
    for name in ("env_steps", "num_episodes", "episode_return"):
        np.testing.assert_array_equal(
            np.asarray(member.metrics[name])[0], np.asarray(single_run.metrics[name])[0]
        )
    np.testing.assert_array_equal(
        np.asarray(member.metrics["env_steps"]),
        np.asarray(single_run.metrics["env_steps"]),
    )
    for got, want in zip(
        jax.tree.leaves(member.params), jax.tree.leaves(single_run.params), strict=True
    ):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_settings_differ_beyond_the_tolerance(swept, single_run):
    _, out = swept
    # Power of the check above: setting 3 (another lr and ent_coef), same
    # seed, is far outside the tolerance from setting 1's single run.
    other = jax.tree.leaves(jax.tree.map(lambda x: x[3, 1], out.params))
    want = jax.tree.leaves(single_run.params)
    assert (
        max(
            float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
            for a, b in zip(other, want, strict=True)
        )
        > 1e-3
    )


def test_chunked_members_are_the_one_program_sweep_bit_for_bit(swept):
    """train_members (what ``jaxpg sweep`` runs: chunks of 2 updates, then a
    remainder of 1) gives the one-program sweep's metrics and parameters
    exactly, and its finish program evaluates those parameters exactly as a
    separate evaluation does."""
    settings, out = swept
    hp = [CFG.replace(**st).hyperparams() for st in settings]
    member_hp = jax.tree.map(lambda *xs: np.repeat(np.stack(xs), SEEDS, 0), *hp)
    seeds = np.tile(np.arange(3, 3 + SEEDS), len(settings))

    def finish(seed, state):
        params = policy_params(CFG, state)
        key = jax.random.fold_in(jax.random.key(7), seed)
        return {"params": params, "eval": jaxpg.evaluate(CFG, params, key, 4)}

    result = train_members(
        CFG, jaxpg.make_algorithm(CFG), seeds, member_hp, finish=finish,
        chunk_updates=2,
    )  # fmt: skip
    flat = jax.tree.map(
        lambda x: np.asarray(x).reshape((-1, *x.shape[2:])),
        {"metrics": out.metrics, "params": out.params},
    )
    assert set(result.metrics) == set(flat["metrics"])
    for name, values in flat["metrics"].items():
        np.testing.assert_array_equal(result.metrics[name], values, err_msg=name)
    jax.tree.map(np.testing.assert_array_equal, result.final["params"], flat["params"])
    keys = jax.vmap(lambda s: jax.random.fold_in(jax.random.key(7), s))(seeds)
    alone = jax.jit(jax.vmap(lambda p, k: jaxpg.evaluate(CFG, p, k, 4)))(
        flat["params"], keys
    )
    np.testing.assert_array_equal(result.final["eval"], alone)


def test_same_seed_index_shares_its_key_across_settings(swept):
    _, out = swept
    keys = np.asarray(jax.random.key_data(out.state.key))  # [K, S, 2]
    # The key sequence depends on the seed only (common random numbers).
    np.testing.assert_array_equal(keys[0], keys[3])
    assert not np.array_equal(keys[0, 0], keys[0, 1])


@pytest.mark.parametrize("field", ["num_envs", "hidden", "algo"])
def test_non_sweepable_field_is_a_clear_error(field):
    with pytest.raises(ValueError, match=f"'{field}' cannot be swept") as err:
        grid_settings({field: [1, 2]})
    for name in SWEEPABLE:
        assert name in str(err.value)
    assert "changes shapes or control flow" in str(err.value)


def test_unknown_field_and_bad_values_are_clear_errors():
    with pytest.raises(ValueError, match=r"'lrate' cannot be swept.*not a Config"):
        grid_settings({"lrate": [1.0]})
    with pytest.raises(ValueError, match=r"grid\['lr'\]=\[\] is invalid"):
        grid_settings({"lr": []})
    with pytest.raises(ValueError, match="lr='a' is invalid: must be a number"):
        grid_settings({"lr": ["a"]})
    with pytest.raises(ValueError, match=r"Config\.lr=-1\.0 is invalid"):
        sweep(CFG, {"lr": [-1.0]}, 1)
    with pytest.raises(ValueError, match="num_seeds=0 is invalid"):
        sweep(CFG, {"lr": [1e-3]}, 0)
    with pytest.raises(ValueError, match="'num_envs' cannot be swept"):
        sweep(CFG, [{"num_envs": 2}], 1)  # an explicit list of settings
    with pytest.raises(ValueError, match="custom optimizer"):
        sweep(CFG, {"lr": [1e-3]}, 1, optimizer=object())


def test_random_settings_are_reproducible_and_in_range():
    ranges = {"lr": (1e-4, 1e-2), "gamma": (0.9, 0.999, "linear")}
    a = random_settings(jax.random.key(0), ranges, 200)
    assert a == random_settings(jax.random.key(0), ranges, 200)
    assert a != random_settings(jax.random.key(1), ranges, 200)
    lr = np.array([s["lr"] for s in a])
    gamma = np.array([s["gamma"] for s in a])
    assert lr.min() >= 1e-4 and lr.max() <= 1e-2
    assert gamma.min() >= 0.9 and gamma.max() <= 0.999
    # Log-uniform: log10(lr) is uniform on [-4, -2], mean -3, sd 2/sqrt(12);
    # the mean of 200 draws has standard error 0.577/sqrt(200) = 0.041, so
    # 4 standard errors is 0.16. A linear draw would have mean log10 about
    # -2.3 (far outside).
    assert abs(np.log10(lr).mean() + 3.0) < 0.16
    with pytest.raises(ValueError, match="low > 0 for a log-uniform"):
        random_settings(jax.random.key(0), {"ent_coef": (0.0, 0.1)}, 2)
    with pytest.raises(ValueError, match="'hidden' cannot be swept"):
        random_settings(jax.random.key(0), {"hidden": (1, 2)}, 2)


def test_sweep_evaluates_as_train_does(tmp_path, capsys):
    """Seed i of setting lr=X in ``jaxpg sweep`` is evaluated on the episodes
    ``jaxpg train --set lr=X`` evaluates seed i on (round 0's keys), and
    summarised alike: the same summary fields, the same values (the sweep's
    second setting, so a sweep that mixed up its settings fails too)."""
    pytest.importorskip("orbax.checkpoint")
    from jaxpg.cli.main import main

    tiny = ["--no-preset", "--seeds", "2", "--set", "num_envs=4", "--set",
            "rollout_steps=8", "--steps", "96", "--set", "hidden=8",
            "--eval-episodes", "4"]  # fmt: skip
    assert main(["sweep", *tiny, "--grid", "lr=0.001,0.03", "--no-progress",
                 "--out", str(tmp_path / "sweep")]) == 0  # fmt: skip
    assert main(["train", *tiny, "--set", "lr=0.03", "--no-progress",
                 "--out", str(tmp_path / "train")]) == 0  # fmt: skip
    swept = json.loads((tmp_path / "sweep" / "sweep.json").read_text())
    trained = json.loads((tmp_path / "train" / "summary.json").read_text())["eval"]
    ours = swept["results"][1]
    assert ours.pop("setting") == {"lr": 0.03}
    assert set(ours) == set(trained)
    floats = ("mean_per_seed", "std_per_seed")
    for name in floats:
        np.testing.assert_allclose(ours[name], trained[name], rtol=1e-6)
    for name in ("iqm", "mean"):
        for field in ("estimate", "low", "high"):
            np.testing.assert_allclose(
                ours[name][field], trained[name][field], rtol=1e-6
            )
    same = {k for k in ours if k not in (*floats, "iqm", "mean")}
    assert {k: ours[k] for k in same} == {k: trained[k] for k in same}
    # The evaluations tell seeds and settings apart (a constant would pass
    # the comparisons above).
    other = swept["results"][0]["mean_per_seed"]
    assert ours["mean_per_seed"][0] != ours["mean_per_seed"][1]
    assert other != ours["mean_per_seed"]
    # A second sweep into the same folder is refused before anything is
    # computed, and the first one's record is kept.
    before = (tmp_path / "sweep" / "sweep.json").read_bytes()
    capsys.readouterr()
    assert main(["sweep", *tiny, "--grid", "lr=0.01", "--no-progress",
                 "--out", str(tmp_path / "sweep")]) == 2  # fmt: skip
    err = capsys.readouterr().err
    assert "already holds a sweep (sweep.json)" in err and "--overwrite" in err
    assert (tmp_path / "sweep" / "sweep.json").read_bytes() == before


def test_sweep_passes_every_part_to_make_train(monkeypatch):
    """The parts keywords reach ``make_train`` (what trains every member);
    the members' program itself is stubbed: nothing compiles."""
    import jaxpg.drivers.sweep as sweep_module

    given = {}

    def fake_make_train(cfg, env, env_params, **parts):
        given.update(parts)
        return "train"

    def fake_run_members(train, seeds, hparams, devices=None):
        return {"x": np.zeros((len(seeds), 1))}

    monkeypatch.setattr(sweep_module, "make_train", fake_make_train)
    monkeypatch.setattr(sweep_module, "run_members", fake_run_members)
    parts = dict(
        policy_network="p", critic_network="c", optimizer=None, algorithm="a",
        policy_obs=("obs",), critic_obs=("obs", "secret"), action_mask_fn=len,
    )  # fmt: skip
    sweep(CFG, {"ent_coef": [0.0, 0.1]}, 2, **parts)
    assert given == {k: v for k, v in parts.items() if v is not None}


def test_rank_settings_summarises_each_setting_and_picks_the_highest_iqm():
    from jaxpg.drivers.report import rank_settings

    returns = np.stack(
        [np.full((4, 3), 10.0), np.full((4, 3), 30.0), np.full((4, 3), 20.0)]
    )  # [K=3, S=4, E=3]
    rows, best = rank_settings(returns, 3, solved_at=25.0)
    assert best == 1
    assert [r["iqm"]["estimate"] for r in rows] == [10.0, 30.0, 20.0]
    assert [r["seeds_solved"] for r in rows] == [0, 4, 0]
    _, none = rank_settings(np.full((2, 4, 3), np.nan), 3, solved_at=None)
    assert none is None
