"""Checkpoints write what changed: the aggregate is saved in parts (exporter.sinks.metrics.sections) and a
checkpoint writes only the parts whose bytes differ from the last successful commit (exporter.snapshots).
Real state files throughout; the byte count comes from the statements each commit runs."""

from __future__ import annotations

import json
import shutil
import sqlite3
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import exporter
from exporter.model import NO_REF, Call, Labels
from exporter.pipeline import Pipeline
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.metrics import Aggregate, sections
from exporter.snapshots import Snapshots
from exporter.state import Op, StateStore

FIXTURE = Path(__file__).parent / "fixtures" / "state" / "single-blob.db"
T0 = 1.8e9


class CountingStore(StateStore):
    """A real state file that counts the bytes each commit hands to SQLite, and can fail a commit inside
    its transaction (as a full disk would), after every op has run."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.written = 0  # bytes of the last commit's statements
        self.fail = False

    def commit(self, ops: Iterable[Op]) -> None:
        count = [0]

        def counted(op: Op) -> Op:
            return lambda db: op(_Counting(db, count))  # type: ignore[arg-type]

        def full(db: sqlite3.Connection) -> None:
            raise sqlite3.OperationalError("database or disk is full")

        wrapped = [counted(op) for op in ops]
        super().commit([*wrapped, full] if self.fail else wrapped)
        self.written = count[0]


class _Counting:
    def __init__(self, db: sqlite3.Connection, count: list[int]) -> None:
        self.db, self.count = db, count

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        self.count[0] += len(sql) + sum(len(p) for p in params if isinstance(p, (bytes, str)))
        return self.db.execute(sql, params)


def call(queue: int, principal: int, t: float) -> Call:
    role = f"arn:aws:iam::111122223333:role/app-{principal:04d}"
    return Call(
        Labels("111122223333", "eu-west-1", f"q-{queue:03d}", "SendMessage", "Data"), None, 0, t, role, role, NO_REF
    )


def filled(queues: int, principals: int) -> Aggregate:
    agg = Aggregate(max_queues=queues, max_principals_per_queue=2 * principals, max_principals=4 * queues * principals)
    for q in range(queues):
        agg.add_calls([call(q, p, T0 + p) for p in range(principals)], T0 + 60, "t")
    return agg


def normal(agg: Aggregate) -> dict[str, Any]:
    """The aggregate's whole snapshot with row order left out (a set's order is not state)."""

    def norm(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: norm(x) for k, x in v.items()}
        if isinstance(v, list) and v and all(isinstance(x, list) for x in v):
            return sorted(json.dumps(x, sort_keys=True) for x in v)
        return v

    return norm(sections.join(agg.snapshot()))


def test_an_object_touching_one_queue_writes_a_small_fraction(tmp_path: Path) -> None:
    store = CountingStore(tmp_path / "state.db")
    agg = filled(200, 100)
    pipeline = Pipeline([agg], store, SelfMetrics())
    assert pipeline.checkpoint(force=True)
    full = store.written
    assert full > 1_000_000  # the whole aggregate, 20,000 principals
    agg.add_calls([call(7, 500, T0 + 100)], T0 + 160, "t")
    pipeline.stage([StateStore.object_op("object-1", T0)])
    assert pipeline.checkpoint()
    assert store.written < full / 50, (store.written, full)
    # and nothing at all when nothing changed
    assert pipeline.checkpoint(force=True)
    assert store.written == 0
    store.close()
    again = Aggregate(max_queues=200)
    Pipeline([again], StateStore(tmp_path / "state.db"), SelfMetrics())
    assert normal(again) == normal(agg)
    assert (
        again.principals[("111122223333", "eu-west-1", "q-007")][f"arn:aws:iam::111122223333:role/app-{500:04d}"]
        == T0 + 100
    )


def test_a_failed_commit_marks_nothing_written(tmp_path: Path) -> None:
    """The retry after a failed commit writes the changed parts again: a part counted as written by the
    failed attempt would be missing from the state file."""
    store = CountingStore(tmp_path / "state.db")
    agg = filled(20, 10)
    pipeline = Pipeline([agg], store, SelfMetrics())
    assert pipeline.checkpoint(force=True)
    agg.add_calls([call(3, 99, T0 + 100)], T0 + 160, "t")
    pipeline.stage([StateStore.object_op("object-1", T0)])
    store.fail = True
    assert not pipeline.checkpoint()
    store.fail = False
    assert pipeline.checkpoint(force=True)
    assert store.written > 0
    store.close()
    again = Aggregate()
    Pipeline([again], StateStore(tmp_path / "state.db"), SelfMetrics())
    assert normal(again) == normal(agg)
    assert ("111122223333", "eu-west-1", "q-003", "SendMessage", "Data") in again.calls
    assert again.calls[("111122223333", "eu-west-1", "q-003", "SendMessage", "Data")] == 11


class Parts:
    """A sectioned component whose parts come and go (unit test of exporter.snapshots)."""

    state_key = "fake"
    sectioned = True

    def __init__(self, parts: dict[str, Any]) -> None:
        self.parts = parts

    def snapshot(self) -> dict[str, Any]:
        return dict(self.parts)

    def restore(self, snap: dict[str, Any]) -> None:
        self.parts = dict(snap)


def test_parts_that_disappear_are_deleted(tmp_path: Path) -> None:
    store = StateStore(tmp_path / "state.db")
    fake = Parts({"a": [1], "b": {"x": 2}})
    snaps = Snapshots(store)
    store.commit(snaps.ops([fake]))
    snaps.committed()
    assert set(store.blobs_under("fake/")) == {"a", "b"}
    fake.parts = {"a": [1], "c": 3}
    ops = snaps.ops([fake])
    assert len(ops) == 2  # c written, b deleted; a unchanged
    store.commit(ops)
    snaps.committed()
    assert set(store.blobs_under("fake/")) == {"a", "c"}
    assert Snapshots(store).load(Parts({})) == {"a": [1], "c": 3}
    store.close()


def sample_counted(store: StateStore | None) -> tuple[Pipeline, Aggregate]:
    """The sample trail counted as tests/fixtures/state/make.py counted it."""
    agg = Aggregate()
    pipeline = Pipeline([agg], store, SelfMetrics(), clock=lambda: T0)
    pipeline.register("file")
    root = Path(exporter.__file__).parent / "sample" / "trail"
    for f in sorted(root.rglob("*.json.gz")):
        pipeline.process(f.read_bytes(), "file", f.relative_to(root).as_posix())
    return pipeline, agg


def test_a_state_file_of_the_previous_release(tmp_path: Path) -> None:
    """A state file written before sections (the aggregate one blob under `aggregate`, made by
    tests/fixtures/state/make.py with that release's code) restores whole; the next checkpoint replaces the
    blob by parts, which restore the same."""
    path = tmp_path / "state.db"
    shutil.copy(FIXTURE, path)
    _, truth = sample_counted(None)
    assert truth.calls and truth.principals
    store = StateStore(path)
    old = store.get("aggregate")
    assert old is not None and old.get("v") == 1 and "head" not in old
    agg, counters = Aggregate(), SelfMetrics()
    pipeline = Pipeline([agg], store, counters)
    assert normal(agg) == normal(truth)
    assert counters.objects and sum(counters.objects.values()) == len(store.files("file")) == 24
    assert pipeline.checkpoint(force=True)
    assert store.get("aggregate") is None
    assert {"head", "queues", "access"} <= set(store.blobs_under("aggregate/"))
    store.close()
    again = Aggregate()
    Pipeline([again], StateStore(path), SelfMetrics())
    assert normal(again) == normal(truth)


def test_a_single_blob_beside_parts_is_the_newer(tmp_path: Path) -> None:
    """Parts, then a single blob (an older release ran on the file after this one): the blob is restored,
    and the next checkpoint rewrites every part from it and deletes the blob."""
    path = tmp_path / "state.db"
    store = StateStore(path)
    first = filled(10, 5)
    Pipeline([first], store, SelfMetrics()).checkpoint(force=True)
    newer = filled(12, 6)
    store.commit([StateStore.put_op("aggregate", sections.join(newer.snapshot()))])
    agg = Aggregate(max_queues=12)
    pipeline = Pipeline([agg], store, SelfMetrics())
    assert normal(agg) == normal(newer)
    assert pipeline.checkpoint(force=True)
    assert store.get("aggregate") is None
    store.close()
    again = Aggregate(max_queues=12)
    Pipeline([again], StateStore(path), SelfMetrics())
    assert normal(again) == normal(newer)
