"""jaxpg.drivers.chunking and the runner's chunks sized by time: the plan's
arithmetic, and a timed run that is stopped and resumed ends bit-identical to
the uninterrupted one, continuing with the chunk lengths recorded in its run
directory.

The runner's chunk timing reads ``jaxpg.drivers.runner._clock``; the runner
tests replace it with a clock that advances a fixed amount per reading, so
the chunk lengths are the same on a loaded machine as on an idle one."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import tiny
from trees import raw_leaves

import jaxpg
from jaxpg.drivers import runner
from jaxpg.drivers.chunking import (
    OVERRUN,
    ChunkPlan,
    default_chunk,
    fixed_plan,
    timed_plan,
)
from jaxpg.experiment import rundir

# -- the plan -----------------------------------------------------------------


def _walk(plan: ChunkPlan) -> list[int]:
    """The chunk lengths of a plan from update 0 to the end."""
    out, u = [], 0
    while u < plan.num_updates:
        assert plan.is_boundary(u)
        out.append(plan.length_at(u))
        u += out[-1]
    return out


def test_fixed_plan_is_the_default_chunking_with_a_remainder():
    assert _walk(fixed_plan(7, 3)) == [3, 3, 1]
    plan = fixed_plan(7, 3)
    assert [plan.is_boundary(u) for u in range(8)] == [
        True, False, False, True, False, False, True, True,
    ]  # fmt: skip
    # Observations never change a fixed plan.
    assert plan.observe(3, 1e6, 3) is None and plan.segments == [(0, 3)]


def test_timed_plan_probes_one_update_twice_then_fills_the_target_time():
    # 100 updates, at most 5 per chunk (the fixed plan's chunk), 2 s target.
    plan = timed_plan(100, 2.0, default_chunk(100))
    assert plan.length_at(0) == 1
    # The first call pays one-time costs: its time is not the speed.
    assert plan.measuring
    assert plan.observe(1, 9.0, 1, cold=True) is None and plan.length_at(1) == 1
    assert plan.measuring
    # The second took 0.5 s: 4 updates fit in 2 s; the 2 updates left at
    # the end run one at a time (the probe's program: none compiled for them).
    assert plan.observe(1, 0.5, 2) == 4
    assert plan.segments == [(0, 1), (2, 4)] and not plan.measuring
    assert _walk(plan) == [1, 1] + [4] * 24 + [1, 1]
    assert plan.is_boundary(98) and plan.is_boundary(99) and not plan.is_boundary(97)
    # Fast updates: the fixed plan's chunk is the longest.
    fast = timed_plan(100, 2.0, 5)
    fast.observe(1, 9.0, 1, cold=True)
    assert fast.observe(1, 1e-4, 2) == 5
    assert _walk(fast) == [1, 1] + [5] * 19 + [1, 1, 1]
    # A fixed plan cuts its last chunk instead.
    assert _walk(fixed_plan(100, 7)) == [7] * 14 + [2]


def _probed(seconds_per_update: float) -> ChunkPlan:
    plan = timed_plan(1000, 1.0, 50)
    plan.observe(1, 9.0, 1, cold=True)
    plan.observe(1, seconds_per_update, 2)
    return plan


def test_timed_plan_shortens_chunks_that_overrun_and_never_lengthens():
    plan = _probed(0.05)  # 20 updates fit in 1 s
    assert plan.length_at(2) == 20
    # Updates grew 1.4x slower: within OVERRUN, kept.
    assert OVERRUN > 1.4 and plan.observe(20, 1.4, 22) is None
    # 4x slower: the next chunks are cut to what fits in 1 s (5 updates).
    assert plan.observe(20, 4.0, 42) == 5
    assert plan.segments == [(0, 1), (2, 20), (42, 5)]
    # Faster again: the length stays (no new program is compiled).
    assert plan.observe(5, 0.01, 47) is None
    assert plan.is_boundary(42) and plan.is_boundary(47) and not plan.is_boundary(44)


def test_plan_round_trips_and_resumes_at_a_boundary():
    plan = _probed(0.05)
    plan.observe(20, 4.0, 42)
    again = ChunkPlan.from_json(plan.to_json())
    assert again.segments == plan.segments and again.chunk_seconds == 1.0
    again.resume_at(22)  # a checkpoint before the shortening
    assert again.segments == [(0, 1), (2, 20)] and again.length_at(22) == 20


@pytest.mark.parametrize("seconds", [0, -1.0, float("nan"), float("inf"), True])
def test_timed_plan_rejects_bad_seconds(seconds):
    with pytest.raises(ValueError, match=r"chunk_seconds=.* is invalid"):
        timed_plan(10, seconds, 1)


def test_run_rejects_chunk_updates_with_chunk_seconds():
    with pytest.raises(ValueError, match="give one of them"):
        runner.run(jaxpg.Config(), 1, chunk_updates=2, chunk_seconds=1.0)
    with pytest.raises(ValueError, match="chunk_seconds=0 is invalid"):
        runner.run(jaxpg.Config(), 1, chunk_seconds=0)


# -- the runner ---------------------------------------------------------------

# 2 seeds, 40 updates of 4 envs x 8 steps: the fixed plan's chunk is 2.
CFG = tiny.config(updates=40, lr=1e-2)
SECONDS = 2.5


def _ticking(slow_after: int | None = None):
    """A clock that advances 1 s per reading (3 s after ``slow_after``
    readings): a chunk read right after it was dispatched (a probe) took
    1 s, a pipelined one 2 s (6 s once slow)."""
    count = itertools.count()

    def clock() -> float:
        n = next(count)
        if slow_after is None or n <= slow_after:
            return float(n)
        return slow_after + 3.0 * (n - slow_after)

    return clock


@pytest.fixture(scope="module")
def timed_runs(tmp_path_factory):
    pytest.importorskip("orbax.checkpoint")
    with pytest.MonkeyPatch.context() as mp:
        # Full run: a probe takes 1 s (2 updates fit in 2.5 s); after 12
        # readings updates get 3x slower and chunks are cut to 1 update.
        mp.setattr(runner, "_clock", _ticking(slow_after=12))
        full_dir = tmp_path_factory.mktemp("full") / "run"
        full = runner.run(
            CFG, 2, chunk_seconds=SECONDS, progress=False, checkpoint_dir=full_dir
        )
        # The same run stopped after its fourth chunk (callback)...
        mp.setattr(runner, "_clock", _ticking(slow_after=12))
        cut_dir = tmp_path_factory.mktemp("cut") / "run"
        seen = []

        def stop_after_four(info):
            seen.append(info.start)
            return len(seen) == 4

        cut = runner.run(
            CFG, 2, chunk_seconds=SECONDS, progress=False, checkpoint_dir=cut_dir,
            callback=stop_after_four,
        )  # fmt: skip
        cut_plan = rundir.read_json(cut_dir / rundir.CHUNKS)
        # ...and resumed on a machine where nothing gets slower.
        mp.setattr(runner, "_clock", _ticking())
        resumed = runner.run(
            CFG, 2, progress=False, checkpoint_dir=cut_dir, resume=True
        )
    return full, full_dir, cut, cut_dir, cut_plan, resumed


def test_timed_run_probes_then_shortens_when_updates_slow_down(timed_runs):
    _, full_dir, *_ = timed_runs
    plan = rundir.read_json(full_dir / rundir.CHUNKS)
    assert plan["chunk_seconds"] == SECONDS and plan["cap"] == default_chunk(40)
    # Two probes of 1 (the second took 1 s), then 2 per chunk (2 s each),
    # then 1 once chunks took 6 s.
    segments = [tuple(s) for s in plan["segments"]]
    assert segments[:2] == [(0, 1), (2, 2)] and segments[2][1] == 1
    record = rundir.read_json(full_dir / rundir.CONFIG)
    assert record["chunk_seconds"] == SECONDS
    # Metrics files hold at least the fixed chunk (2 updates) each, not one
    # file per 1-update chunk; together every update, in order.
    starts = [start for start, _, _ in rundir.metric_chunks(full_dir)]
    ends = [end for _, end, _ in rundir.metric_chunks(full_dir)]
    assert starts[0] == 0 and ends[-1] == 40 and starts[1:] == ends[:-1]
    assert len(starts) <= 21
    assert rundir.read_metrics(full_dir)["env_steps"].shape == (2, 40)


def test_stopped_timed_run_resumes_with_its_plan_bit_identically(timed_runs):
    full, full_dir, cut, cut_dir, cut_plan, resumed = timed_runs
    # Stopped after its fourth chunk and the fifth, queued behind it (the
    # two chunks a stop waits for): 1 + 1 + 2 + 2 + 2 updates.
    assert cut.interrupted and cut.updates_done == 8
    plan = ChunkPlan.from_json(cut_plan)
    assert plan.is_boundary(8)
    # The resume kept the plan up to its checkpoint (no new probe at 8)
    # and, on its clock that never slows, kept its length to the end.
    after = [tuple(s) for s in rundir.read_json(cut_dir / rundir.CHUNKS)["segments"]]
    assert after == [(0, 1), (2, 2)]
    # Bit-identical to the uninterrupted run, whose later chunks were cut to
    # 1 update where the resumed run's were not.
    assert not resumed.interrupted and resumed.updates_done == 40
    for a, b in zip(raw_leaves(full.state), raw_leaves(resumed.state), strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(
        raw_leaves(rundir.read_metrics(full_dir)),
        raw_leaves(rundir.read_metrics(cut_dir)),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
