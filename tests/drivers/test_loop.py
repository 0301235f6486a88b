"""jaxpg.drivers.loop: the order in which the chunk loop dispatches chunks,
reads their metrics and calls its hooks, with a fake program (no compile):
the state is the number of updates done, a chunk's metrics are the update
indices it ran."""

from __future__ import annotations

import re

import numpy as np
import pytest

from jaxpg.drivers import loop
from jaxpg.drivers.chunking import fixed_plan
from jaxpg.drivers.signals import Stopper


class Recorder(loop.Hook):
    """Logs every call into a shared event list."""

    def __init__(self, events, sync=(), stop_after=None):
        self.events, self.sync, self.stop_after = events, set(sync), stop_after

    def sync_at(self, update):
        return update in self.sync

    def chunk(self, chunk):
        self.events.append(("chunk", chunk.first, chunk.size, chunk.next_start))
        return self.stop_after is not None and chunk.first >= self.stop_after

    def boundary(self, done, state, stopping):
        self.events.append(("boundary", done, state, stopping))

    def end(self, done, finished):
        self.events.append(("end", done, finished))

    def close(self):
        self.events.append(("close",))


def _run(num_updates, chunk, hooks, events, **kwargs):
    plan = fixed_plan(num_updates, chunk)

    def dispatch(state, at):
        n = plan.length_at(at)
        assert state == at  # chunks run in order on the state they are given
        events.append(("dispatch", at))
        return state + n, {"update": np.arange(at, at + n)[None]}

    return loop.run_chunks(
        0, 0, num_updates, plan.length_at, dispatch, lambda m: m, hooks, **kwargs
    )


def test_overlap_dispatches_the_next_chunk_before_reading_the_current():
    events = []
    state, done = _run(7, 3, [Recorder(events)], events)
    assert (state, done) == (7, 7)
    assert events == [
        ("dispatch", 0), ("dispatch", 3), ("chunk", 0, 3, 6),
        ("dispatch", 6), ("chunk", 3, 3, 7),
        ("chunk", 6, 1, 7), ("boundary", 7, 7, False),
        ("end", 7, True), ("close",),
    ]  # fmt: skip


def test_without_overlap_every_chunk_is_read_at_a_boundary():
    events = []
    _run(5, 2, [Recorder(events)], events, overlap=False)
    assert [e for e in events if e[0] in ("dispatch", "boundary")] == [
        ("dispatch", 0), ("boundary", 2, 2, False),
        ("dispatch", 2), ("boundary", 4, 4, False),
        ("dispatch", 4), ("boundary", 5, 5, False),
    ]  # fmt: skip


def test_a_hook_that_syncs_gets_the_state_at_that_boundary():
    events = []
    _run(9, 3, [Recorder(events, sync={3})], events)
    # Reading chunk 0 (ending at 3): nothing dispatched ahead, a boundary.
    assert events[:4] == [
        ("dispatch", 0), ("chunk", 0, 3, 3), ("boundary", 3, 3, False),
        ("dispatch", 3),
    ]  # fmt: skip


def test_a_stop_request_ends_the_run_at_the_next_boundary_with_a_checkpoint():
    events, saved = [], []
    stopper = Stopper(False)
    saver = loop.Checkpointer(lambda d, s: saved.append((d, s)), 12, every=None)
    hooks = [Recorder(events, stop_after=3), saver]
    state, done = _run(12, 3, hooks, events, stopper=stopper)
    # Chunk 3..6 asks to stop while 6..9 is queued: the stop is taken at 9.
    assert (state, done) == (9, 9) and stopper.stop
    assert saved == [(9, 9)]
    assert ("end", 9, False) in events and events[-1] == ("close",)


def test_the_checkpointer_saves_every_n_updates_and_at_the_end():
    saved, events = [], []
    saver = loop.Checkpointer(lambda d, s: saved.append(d), 10, every=4)
    _run(10, 2, [saver], events)
    assert saved == [4, 8, 10]


def test_the_metrics_writer_joins_chunks_into_files_of_min_updates(tmp_path):
    from jaxpg.experiment import rundir

    writer = loop.MetricsWriter(tmp_path, 4)
    _run(10, 3, [writer], [])
    spans = [(start, end) for start, end, _ in rundir.metric_chunks(tmp_path)]
    assert spans == [(0, 6), (6, 10)]  # 3 + 3 >= 4, then 3 + 1 at the end
    got = rundir.read_metrics(tmp_path)["update"]
    assert got.tolist() == [list(range(10))]


def test_hooks_are_closed_when_a_chunk_raises():
    events = []

    def failing(state, at):
        raise RuntimeError("device lost")

    with pytest.raises(RuntimeError, match="device lost"):
        loop.run_chunks(0, 0, 4, lambda u: 2, failing, dict, [Recorder(events)])
    assert events == [("close",)]


def test_the_update_bar_counts_updates_and_shows_the_latest_means():
    pytest.importorskip("tqdm")
    from jaxpg.drivers.progress import UpdateBar

    bar = UpdateBar(True, 5, {"last": "update"}, desc="RL")
    seen = []
    real_close = bar.close
    bar.close = lambda: (seen.append((bar.bar.n, bar.bar.postfix)), real_close())
    _run(5, 2, [loop.Progress(bar)], [])
    # 5 updates counted; the postfix is the last chunk's last update (4).
    assert seen == [(5, "last=4.000")]


def test_a_chunk_is_timed_without_the_compile_of_the_one_dispatched_behind_it():
    # A fake clock: a dispatch of a length not seen before compiles for 50 s
    # on the host, every chunk keeps the devices busy for 2 s, which the
    # host waits out when it reads the chunk's metrics.
    now, compiled, seconds = [0.0], set(), []
    plan = fixed_plan(7, 3)  # chunks of 3, 3, then 1: the 1 compiles anew

    def dispatch(state, at):
        n = plan.length_at(at)
        if n not in compiled:
            compiled.add(n)
            now[0] += 50.0
        return state + n, {"update": np.arange(at, at + n)[None]}

    def read(metrics):
        now[0] += 2.0
        return metrics

    class Times(loop.Hook):
        def chunk(self, chunk):
            seconds.append((chunk.first, chunk.seconds))

    loop.run_chunks(
        0, 0, 7, plan.length_at, dispatch, read, [Times()], clock=lambda: now[0]
    )
    # The chunk at 3 was read after the 1-update chunk compiled: 2 s, not 52.
    assert seconds == [(0, 2.0), (3, 2.0), (6, 2.0)]


def test_elapsed_says_done_only_when_the_block_finishes(capsys):
    from jaxpg.drivers.progress import compiling, elapsed

    with elapsed("fitting", done="fitted"):
        pass
    with pytest.raises(KeyboardInterrupt), compiling("the program"):
        raise KeyboardInterrupt
    with elapsed("quiet", shown=False):
        pass
    err = capsys.readouterr().err
    assert re.search(r"^fitting\.\.\.\nfitted in \d+\.\d s\n", err)
    assert re.search(r"compiling the program\.\.\.\ncompiling the program: "
                     r"stopped after \d+\.\d s\n$", err)  # fmt: skip
    assert "compiled" not in err and "quiet" not in err
