"""A checkpoint that fails (disk full) is retried, counted and reported, never lost or doubled; no source
loop ends while the process serves. Unit tests on the pipeline and the source loop (the disk-full run on
a real tmpfs is in tests/test_disk_full.py)."""

from __future__ import annotations

import logging
import sqlite3
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import pytest

from exporter import pipeline as pipeline_mod
from exporter.config import FileSourceConfig
from exporter.pipeline import Pipeline
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.metrics import Aggregate, AggregateCollector
from exporter.sources import base as base_mod
from exporter.sources.base import Context, Source
from exporter.state import Op, StateStore


class FlakyStore(StateStore):
    """A real state file whose commits fail (as on a full disk) while `full` is set."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.full = False
        self.commits = 0

    def commit(self, ops: Iterable[Op]) -> None:
        if self.full:
            list(ops)
            raise sqlite3.OperationalError("database or disk is full")
        super().commit(ops)
        self.commits += 1


@pytest.fixture
def fast_retry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pipeline_mod, "RETRY_FIRST", 0.01)
    monkeypatch.setattr(pipeline_mod, "RETRY_MAX", 0.02)
    monkeypatch.setattr(base_mod, "HOLD_WAIT", 0.02)


def marks(store: StateStore) -> list[str]:
    return [r[0] for r in store.query("SELECT id FROM objects ORDER BY id")]


def test_failed_checkpoint_keeps_everything_staged_and_saves_it_once(
    tmp_path: Path, fast_retry: None, caplog: pytest.LogCaptureFixture
) -> None:
    store = FlakyStore(tmp_path / "s.db")
    counters = SelfMetrics()
    p = Pipeline([], store, counters)
    p.register("src")
    ran: list[str] = []
    p.count_object("src", "ok", [StateStore.object_op("a")], after=lambda: ran.append("a"))
    assert p.checkpoint()
    store.full = True
    p.count_object("src", "ok", [StateStore.object_op("b")], after=lambda: ran.append("b"))
    with caplog.at_level(logging.DEBUG, logger="exporter.pipeline"):
        assert p.checkpoint() is False
        assert p.checkpoint() is False  # the retry is not due yet: no attempt
        assert counters.checkpoint_errors == 1
        for _ in range(5):
            time.sleep(0.03)
            p.count_object("src", "ok", [StateStore.object_op("c")], after=lambda: ran.append("c"))
            assert p.checkpoint() is False
        assert counters.checkpoint_errors == 6
        assert ran == ["a"]  # post-commit actions wait for a commit
        assert marks(store) == ["a"]
        ok, detail = p.health(unready_after=3600)
        assert ok and "failing" in detail
        time.sleep(0.02)
        ok, detail = p.health(unready_after=0.01)
        assert not ok and "database or disk is full" in detail
        store.full = False
        time.sleep(0.03)
        assert p.checkpoint()
    assert ran == ["a", "b", *["c"] * 5]  # each once
    assert marks(store) == ["a", "b", "c"]
    assert p.health(unready_after=0.01) == (True, "state: ok")
    assert p.checkpoint()  # nothing left staged: nothing runs twice
    assert ran == ["a", "b", *["c"] * 5]
    # logged once when it started and once when it ended, however many retries
    lines = [(r.levelno, r.getMessage()) for r in caplog.records if r.levelno >= logging.INFO]
    assert [lv for lv, _ in lines] == [logging.ERROR, logging.WARNING], lines
    assert "database or disk is full" in lines[0][1] and "recovered after 6" in lines[1][1]
    # the counts and the error counter are saved: a restart shows them
    store.close()
    again = SelfMetrics()
    Pipeline([], StateStore(tmp_path / "s.db"), again)
    assert again.checkpoint_errors == 6
    assert dict(again.counts().objects)[("src", "ok")] == 7


def test_checkpoint_error_counter_is_a_zero_series_from_the_start() -> None:
    text = "\n".join(
        f"{s.name} {s.value}"
        for fam in AggregateCollector(Aggregate(), counters=SelfMetrics()).collect()
        for s in fam.samples
    )
    assert "\ncloudtrail_sqs_exporter_checkpoint_errors_total 0\n" in text


def test_gives_up_after_the_bound(tmp_path: Path, fast_retry: None) -> None:
    store = FlakyStore(tmp_path / "s.db")
    p = Pipeline([], store, SelfMetrics(), max_failure=0.1)
    told: list[str] = []
    p.on_fatal = told.append
    store.full = True
    p.count_object("src", "ok", [StateStore.object_op("a")])
    deadline = time.monotonic() + 5
    while not told and time.monotonic() < deadline:
        p.checkpoint()
        time.sleep(0.01)
    for _ in range(5):
        time.sleep(0.03)
        p.checkpoint()
    assert len(told) == 1, told  # told once
    assert "cannot save the state" in told[0] and "database or disk is full" in told[0]


class Counting(Source[FileSourceConfig]):
    type = "test"

    def __init__(self, ctx: Context, boom: BaseException | None = None) -> None:
        super().__init__(FileSourceConfig(type="file", path=Path("."), poll_interval=0.1), ctx)
        self.interval = 0.01
        self.passes = 0
        self.boom = boom

    def poll(self, stop: threading.Event) -> None:
        self.passes += 1
        self.intake.count_object(self.name, "ok", [StateStore.object_op(str(self.passes))])
        if self.boom is not None and self.passes == 3:
            raise self.boom


def run_for(src: Source, seconds: float) -> threading.Thread:
    stop = threading.Event()
    t = threading.Thread(target=src.run, args=(stop,), daemon=True)
    t.start()
    time.sleep(seconds)
    assert t.is_alive()
    stop.set()
    t.join(5)
    return t


def test_source_takes_no_new_work_while_the_checkpoint_fails(tmp_path: Path, fast_retry: None) -> None:
    store = FlakyStore(tmp_path / "s.db")
    p = Pipeline([], store, SelfMetrics())
    src = Counting(Context(p, store))
    stop = threading.Event()
    t = threading.Thread(target=src.run, args=(stop,), daemon=True)
    t.start()
    time.sleep(0.1)
    store.full = True
    time.sleep(0.1)
    held = src.passes
    time.sleep(0.5)
    assert src.passes <= held + 1  # at most the pass that was running
    assert p.counters.checkpoint_errors >= 3  # retried meanwhile
    store.full = False
    time.sleep(0.3)
    assert src.passes > held + 5  # counting resumes, no restart
    assert t.is_alive()
    stop.set()
    t.join(5)
    assert p.checkpoint()
    assert dict(p.counters.counts().objects)[("test", "ok")] == src.passes == len(marks(store))


class RaisingIntake(Pipeline):
    """An intake whose checkpoint raises (as the pipeline did before it retried)."""

    def __init__(self) -> None:
        super().__init__([])
        self.raises = 0

    def checkpoint(self, force: bool = False) -> bool:
        if self.raises:
            self.raises -= 1
            raise sqlite3.OperationalError("database or disk is full")
        return super().checkpoint(force)


def test_an_exception_escaping_the_checkpoint_does_not_end_the_loop(caplog: pytest.LogCaptureFixture) -> None:
    intake = RaisingIntake()
    intake.raises = 3
    src = Counting(Context(intake, None))
    with caplog.at_level(logging.INFO, logger="exporter.sources.base"):
        run_for(src, 3 * 0.5 + 0.6)  # HOLD_WAIT between attempts
    lines = [(r.levelno, r.getMessage()) for r in caplog.records]
    assert [lv for lv, _ in lines] == [logging.ERROR, logging.INFO], lines
    assert "checkpoint raised" in lines[0][1] and "work again" in lines[1][1]
    assert intake.raises == 0
    assert src.passes > 3  # the loop went on


@pytest.mark.filterwarnings("ignore::pytest.PytestUnhandledThreadExceptionWarning")
def test_a_loop_that_ends_anyway_asks_the_process_to_exit() -> None:
    p = Pipeline([])
    told: list[str] = []
    p.on_fatal = told.append
    src = Counting(Context(p, None), boom=SystemExit(3))
    stop = threading.Event()
    t = threading.Thread(target=src.run, args=(stop,), daemon=True)
    t.start()
    t.join(5)
    assert not t.is_alive()
    assert told == ["source test: poll loop ended unexpectedly"]


def test_a_failing_poll_is_reported_and_retried_not_fatal() -> None:
    p = Pipeline([])
    told: list[str] = []
    p.on_fatal = told.append
    src = Counting(Context(p, None), boom=RuntimeError("boom"))
    run_for(src, 0.3)
    assert src.passes > 3 and not told
