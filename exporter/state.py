"""Progress and counters, kept together in one embedded SQLite file.

A checkpoint writes the aggregated counters and the progress they reflect (files done, keys reached,
objects seen) in one transaction, so after a crash the exporter resumes from a point where both agree:
nothing is lost and nothing is counted twice.

One process owns a state file: an exclusive lock on a sidecar `<state>.lock` (holding the owner's pid)
is taken at open, so a second daemon on the same file stops at start instead of mixing counts. A state
file deleted or replaced while running is noticed at the next checkpoint (its device/inode changed).
"""

from __future__ import annotations

import fcntl
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import msgspec

Op = Callable[[sqlite3.Connection], None]
log = logging.getLogger(__name__)


class StateError(Exception):
    """The state file cannot be used (in use, unwritable, corrupt); the message names the path."""


class StateLost(StateError):
    """The state file was deleted or replaced while this process held it."""


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

    def __init__(self, path: str | Path, on_lost: Callable[[str], None] | None = None) -> None:
        self.path = Path(path)
        self.on_lost = on_lost  # told once (with the reason) when the file is found deleted or replaced
        self._lost: str | None = None
        self._lock = threading.Lock()
        self._lock_fd: int | None = None
        self._ids: list[tuple[Path, tuple[int, int]]] = []
        memory = str(path) == ":memory:"
        if not memory:
            self._take_lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes
            self._db.executescript(SCHEMA)
        except sqlite3.Error as exc:
            self._release()
            if isinstance(exc, sqlite3.DatabaseError) and "not a database" in str(exc):
                raise StateError(f"state file {self.path} is not a readable SQLite database ({exc})") from None
            raise StateError(f"state file {self.path}: cannot open ({exc})") from None
        if not memory:
            self._ids.append((self.path, _identity(self.path)))

    def _take_lock(self) -> None:
        lock_path = self.path.with_name(self.path.name + ".lock")
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
        except OSError as exc:
            raise StateError(
                f"state file {self.path}: cannot create {exc.filename or lock_path}: {exc.strerror}"
            ) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            owner = os.read(fd, 32).decode(errors="replace").strip()
            os.close(fd)
            who = f"pid {owner}" if owner.isdigit() else "another process"
            raise StateError(f"state file {self.path} is in use by {who}") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        self._lock_fd = fd
        st = os.fstat(fd)
        self._ids.append((lock_path, (st.st_dev, st.st_ino)))

    def _release(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)  # closing the descriptor drops the flock
            self._lock_fd = None

    def _check_identity(self) -> None:
        """Stop before writing to a file nobody will read again (deleted) or next to another owner's
        (replaced): either would be a silent recount at the next start."""
        if self._lost is None:
            for path, ident in self._ids:
                try:
                    now = _identity(path)
                except FileNotFoundError:
                    self._lost = f"state file {self.path}: {path} was deleted while running"
                    break
                except OSError as exc:
                    self._lost = f"state file {self.path}: cannot stat {path}: {exc.strerror}"
                    break
                if now != ident:
                    self._lost = f"state file {self.path}: {path} was replaced while running"
                    break
            else:
                return
            log.error("%s; stopping (counts since the last checkpoint are not saved)", self._lost)
            if self.on_lost is not None:
                self.on_lost(self._lost)
        raise StateLost(self._lost)

    def close(self) -> None:
        with self._lock:
            self._db.close()
            self._release()

    # -- reads -------------------------------------------------------------------------------------
    def get(self, key: str) -> Any:
        blob = self.get_blob(key)
        return None if blob is None else self.decode(key, blob)

    def get_blob(self, key: str) -> bytes | None:
        """A value as stored (encoded)."""
        try:
            with self._lock:
                row = self._db.execute("SELECT value FROM kv WHERE key = ?", (key,)).fetchone()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {self.path}: cannot read {key!r} ({exc})") from None
        return _blob(row[0]) if row else None

    def blobs_under(self, prefix: str) -> dict[str, bytes]:
        """The values stored under keys starting with `prefix` (a sectioned snapshot's parts), as stored,
        by key without the prefix."""
        # the keys between prefix and prefix + U+10FFFF: a range the primary key's index answers
        try:
            with self._lock:
                rows = self._db.execute(
                    "SELECT key, value FROM kv WHERE key >= ? AND key < ?", (prefix, prefix + "\U0010ffff")
                ).fetchall()
        except sqlite3.DatabaseError as exc:
            raise StateError(f"state file {self.path}: cannot read {prefix!r}… ({exc})") from None
        return {k[len(prefix) :]: _blob(v) for k, v in rows if k.startswith(prefix)}

    def decode(self, key: str, blob: bytes) -> Any:
        try:
            return msgspec.json.decode(blob)
        except msgspec.DecodeError as exc:
            raise StateError(f"state file {self.path}: cannot read {key!r} ({exc})") from None

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
        return StateStore.blob_op(key, msgspec.json.encode(value))

    @staticmethod
    def blob_op(key: str, blob: bytes) -> Op:
        """Store a value already encoded (msgspec JSON)."""
        return lambda db: db.execute("INSERT OR REPLACE INTO kv (key, value) VALUES (?, ?)", (key, blob))

    @staticmethod
    def delete_op(key: str) -> Op:
        return lambda db: db.execute("DELETE FROM kv WHERE key = ?", (key,))

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
            if self._ids:
                self._check_identity()
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


def _blob(value: bytes | str) -> bytes:
    return value.encode() if isinstance(value, str) else bytes(value)  # TEXT if written by hand


def _identity(path: Path) -> tuple[int, int]:
    st = os.stat(path)
    return st.st_dev, st.st_ino
