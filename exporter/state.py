"""Progress and counters, kept together in one embedded SQLite file.

A checkpoint writes the aggregated counters and the progress they reflect (files done, keys reached,
objects seen) in one transaction, so after a crash the exporter resumes from a point where both agree:
nothing is lost and nothing is counted twice.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

Op = Callable[[sqlite3.Connection], None]

SCHEMA = """
CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS files (
    source TEXT NOT NULL, path TEXT NOT NULL, size INTEGER, mtime_ns INTEGER, outcome TEXT,
    PRIMARY KEY (source, path)
);
CREATE TABLE IF NOT EXISTS objects (
    id TEXT PRIMARY KEY, seen REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS objects_seen ON objects (seen);
"""


class StateStore:
    """SQLite in WAL mode; one connection shared under a lock (writes are batched, so it is cheap)."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        if str(path) != ":memory:":
            self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
        self._db.executescript(SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    # -- reads -------------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        with self._lock:
            row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        return msgspec.json.decode(row[0]) if row else None

    def files(self, source: str) -> dict[str, tuple[int, int, str]]:
        with self._lock:
            rows = self._db.execute(
                "SELECT path, size, mtime_ns, outcome FROM files WHERE source = ?", (source,)
            ).fetchall()
        return {p: (s, m, o) for p, s, m, o in rows}

    def objects_since(self, t: float) -> list[str]:
        with self._lock:
            return [r[0] for r in self._db.execute("SELECT id FROM objects WHERE seen >= ?", (t,))]

    def seen_object(self, object_id: str) -> bool:
        with self._lock:
            return self._db.execute("SELECT 1 FROM objects WHERE id = ?", (object_id,)).fetchone() is not None

    # -- writes (as ops run inside a checkpoint) ---------------------------------------------------
    @staticmethod
    def put_op(key: str, value: Any) -> Op:
        blob = msgspec.json.encode(value)
        return lambda db: db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, blob))

    @staticmethod
    def file_op(source: str, path: str, size: int, mtime_ns: int, outcome: str) -> Op:
        return lambda db: db.execute(
            "INSERT OR REPLACE INTO files (source, path, size, mtime_ns, outcome) VALUES (?, ?, ?, ?, ?)",
            (source, path, size, mtime_ns, outcome),
        )

    @staticmethod
    def object_op(object_id: str, seen: float | None = None) -> Op:
        t = time.time() if seen is None else seen
        return lambda db: db.execute("INSERT OR REPLACE INTO objects (id, seen) VALUES (?, ?)", (object_id, t))

    def commit(self, ops: Iterable[Op]) -> None:
        """Run every op in one transaction."""
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                for op in ops:
                    op(db)
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def query(self, sql: str, params: Sequence[object] = ()) -> list[tuple[Any, ...]]:
        """Read committed rows (for components that keep a table of their own, such as dedupe)."""
        with self._lock:
            return self._db.execute(sql, params).fetchall()

    def script(self, sql: str) -> None:
        """Create a component's tables (idempotent DDL)."""
        with self._lock:
            self._db.executescript(sql)

    def expire_objects(self, older_than: float) -> int:
        with self._lock:
            return self._db.execute("DELETE FROM objects WHERE seen < ?", (older_than,)).rowcount
