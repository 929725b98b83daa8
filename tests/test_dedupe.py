"""dedupe_window: each eventID counted once within the window, remembered with the checkpoint."""

from __future__ import annotations

from pathlib import Path

from exporter.dedupe import Dedupe
from exporter.state import StateStore


class Clock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


def test_in_memory_window() -> None:
    clock = Clock()
    d = Dedupe(3600, clock=clock)
    assert d.new(["a", "b", "a", None, ""]) == [True, True, False, True, True]
    assert d.new(["b", "c"]) == [False, True]
    clock.t += 3599
    assert d.new(["a"]) == [False]
    clock.t += 2
    assert d.new(["a", "c"]) == [True, True]  # a was first seen 3601 s ago; c 3601 s ago too


def test_remembered_only_through_a_committed_checkpoint(tmp_path: Path) -> None:
    clock = Clock()
    path = tmp_path / "s.db"
    store = StateStore(path)
    d = Dedupe(7200, store, clock=clock)
    assert d.new(["e1", "e2"]) == [True, True]
    store.commit(d.ops())
    d.committed()
    assert d.pending == {}
    assert d.new(["e1", "e3"]) == [False, True]  # e1 from the store, e3 pending
    # a crash now: e3 was never committed, so a new process counts it again (its counts were lost too)
    store.close()
    store2 = StateStore(path)
    d2 = Dedupe(7200, store2, clock=clock)
    assert d2.new(["e1", "e2", "e3"]) == [False, False, True]
    store2.close()


def test_expired_ids_leave_the_state_file(tmp_path: Path) -> None:
    clock = Clock()
    store = StateStore(tmp_path / "s.db")
    d = Dedupe(100, store, clock=clock)
    d.new([f"id{i}" for i in range(1000)])
    store.commit(d.ops())
    d.committed()
    assert store.query("SELECT count(*) FROM events")[0][0] == 1000
    clock.t += 200
    assert d.new(["id1"]) == [True]  # outside the window: counted again
    store.commit(d.ops())
    d.committed()
    assert store.query("SELECT count(*) FROM events")[0][0] == 1
    store.close()


class FakeShared:
    def __init__(self) -> None:
        self.claimed: dict[str, float] = {}

    def seen_events(self, ids: list[str]) -> set[str]:
        return {i for i in ids if i in self.claimed}

    def claim_events(self, ids: list[str], ttl: float) -> None:
        for i in ids:
            self.claimed.setdefault(i, ttl)


def test_replicas_share_claims_after_commit(tmp_path: Path) -> None:
    shared = FakeShared()
    a = Dedupe(3600, StateStore(tmp_path / "a.db"), shared)
    b = Dedupe(3600, StateStore(tmp_path / "b.db"), shared)
    assert a.new(["x", "y"]) == [True, True]
    assert a.store is not None
    a.store.commit(a.ops())  # type: ignore[attr-defined]
    a.committed()
    assert shared.claimed == {"x": 3600, "y": 3600}
    assert b.new(["x", "z"]) == [False, True]
