"""Each CloudTrail event counted once within `metrics.dedupe_window`, whichever source brings it.

EventBridge delivers an event seconds after the call; the S3 trail or CloudWatch Logs deliver the same
event (same `eventID`) minutes later. With the window set, the first arrival is counted and later ones
within the window are not.

Exactness across crashes comes from the state store: the ids first seen since the last checkpoint are
written in the same transaction as the counts they were counted in, so after a kill -9 an event is
either counted and remembered, or neither. Between checkpoints the pending ids are held in memory.

Memory is bounded by the checkpoint interval (only pending ids are in memory); the state file holds the
ids of one window (expired ones are deleted as checkpoints go by). With several replicas, ids are also
claimed in Redis with `SET NX` and a TTL of the window (see exporter.shared), after the local commit (and
the last checkpoint's ids again at start, in case the process died between the two).
"""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Sequence
from typing import Protocol

from .state import Op

SCHEMA = """
CREATE TABLE IF NOT EXISTS events (id TEXT PRIMARY KEY, seen REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_seen ON events (seen);
"""
_QUERY_CHUNK = 500  # SQLite's default limit on host parameters is far above this; it keeps statements short
_EXPIRE_EVERY = 60.0


class Reader(Protocol):
    """What dedupe needs of the state store: read committed rows, and have its ops run at checkpoints."""

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[object, ...]]: ...

    def script(self, sql: str) -> None: ...


class SharedClaims(Protocol):
    def seen_events(self, ids: Sequence[str]) -> set[str]: ...

    def claim_events(self, ids: Sequence[str], ttl: float) -> None: ...


class Dedupe:
    """Which event ids are new. Not thread-safe: the pipeline calls it under its lock."""

    def __init__(
        self,
        window: float,
        store: Reader | None = None,
        shared: SharedClaims | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.window = window
        self.store = store
        self.shared = shared
        self.clock = clock
        # ids first seen since the last checkpoint → when; without a store, every id of the window
        self.pending: dict[str, float] = {}
        self._writing: list[tuple[str, float]] = []
        self._last_expiry = 0.0
        if store is not None:
            store.script(SCHEMA)

    def new(self, ids: Sequence[str | None]) -> list[bool]:
        """For each id, whether it was not seen within the window (and is now remembered). An event
        without an id cannot be matched and is always new."""
        now = self.clock()
        pending = self.pending
        horizon = now - self.window
        unknown = [i for i in ids if i and (i not in pending or pending[i] < horizon)]
        known = self._known(unknown, horizon) if unknown else set()
        out: list[bool] = []
        for i in ids:
            if not i:
                out.append(True)
                continue
            t = pending.get(i)
            if (t is not None and t >= horizon) or i in known:
                out.append(False)
                continue
            pending[i] = now
            out.append(True)
        if self.store is None and now - self._last_expiry > _EXPIRE_EVERY:
            self._last_expiry = now
            for i in [i for i, t in pending.items() if t < horizon]:
                del pending[i]
        return out

    def _known(self, ids: list[str], horizon: float) -> set[str]:
        known: set[str] = set()
        if self.store is not None:
            for k in range(0, len(ids), _QUERY_CHUNK):
                chunk = ids[k : k + _QUERY_CHUNK]
                marks = ",".join("?" * len(chunk))
                rows = self.store.query(f"SELECT id FROM events WHERE seen >= ? AND id IN ({marks})", (horizon, *chunk))
                known.update(str(r[0]) for r in rows)
        if self.shared is not None:
            known |= self.shared.seen_events([i for i in ids if i not in known])
        return known

    def ops(self) -> list[Op]:
        """What the next checkpoint writes: the pending ids, and once a minute the removal of expired ones."""
        if self.store is None:
            return []
        rows = self._writing = list(self.pending.items())
        ops: list[Op] = []
        if rows:
            ops.append(lambda db: _insert(db, rows))
        now = self.clock()
        if now - self._last_expiry > _EXPIRE_EVERY:
            self._last_expiry = now
            horizon = now - self.window
            ops.append(lambda db: db.execute("DELETE FROM events WHERE seen < ?", (horizon,)))
        return ops

    def committed(self) -> None:
        """After the checkpoint that ran `ops()`: those ids are on disk now (and claimed for the other
        replicas), so memory can let them go."""
        written, self._writing = self._writing, []
        for i, _ in written:
            self.pending.pop(i, None)
        if self.shared is not None and written:
            self.shared.claim_events([i for i, _ in written], self.window)

    def reclaim(self, margin: float = 60.0) -> int:
        """At start, with Redis: claim again the ids of the last checkpoints before this process stopped.
        A crash between the SQLite commit and `claim_events` leaves them counted here but unknown to the
        other replicas; this closes that gap. Returns how many were claimed."""
        if self.store is None or self.shared is None:
            return 0
        rows = self.store.query(
            "SELECT id, seen FROM events WHERE seen >= (SELECT max(seen) FROM events) - ?", (margin,)
        )
        now = self.clock()
        ids = [str(r[0]) for r in rows if now - float(r[1]) < self.window]  # type: ignore[arg-type]
        if ids:
            self.shared.claim_events(ids, self.window)
        return len(ids)


def _insert(db: sqlite3.Connection, rows: list[tuple[str, float]]) -> None:
    db.executemany("INSERT OR REPLACE INTO events (id, seen) VALUES (?, ?)", rows)
