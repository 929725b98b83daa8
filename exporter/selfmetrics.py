"""The exporter's own counters: records and objects read, source errors, log-record outcomes, failed
checkpoints, and the named counters a source or a stage adds (late events, duplicate events).

They are written from several threads (each source, the pipeline, the log sink's export thread), so they
sit behind a lock of their own rather than borrowing another component's. Saved in the same checkpoint
as the aggregate, so an object's counts and its progress never part.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from .model import LOG_OUTCOMES, OBJECT_OUTCOMES, RECORD_OUTCOMES

Key = tuple[str, ...]
DUPLICATE_EVENTS = "exporter_duplicate_events"  # a named counter: {source}


@dataclass(frozen=True, slots=True)
class Counts:
    """A copy of the counters, taken under the lock, for rendering."""

    records: list[tuple[Key, int]]
    objects: list[tuple[Key, int]]
    source_errors: list[tuple[Key, int]]
    log_records: list[tuple[str, int]]
    extra: dict[str, list[tuple[Key, int]]]
    checkpoint_errors: int = 0


class SelfMetrics:
    # where the checkpoint keeps them; state files written before they had a key of their own carry the
    # same fields in the aggregate's snapshot
    state_key = "self_metrics"
    legacy_key = "aggregate"

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.records: dict[Key, int] = {}  # (source, outcome)
        self.objects: dict[Key, int] = {}  # (source, outcome)
        self.source_errors: dict[Key, int] = {}  # (source, kind)
        self.log_records: dict[str, int] = dict.fromkeys(LOG_OUTCOMES, 0)
        self.extra: dict[str, dict[Key, int]] = {}  # counter name → label values → count
        self.checkpoint_errors = 0  # failed attempts to save the state (each retry counts)

    # -- counting ----------------------------------------------------------------------------------
    def register_source(self, source: str, extra: Iterable[str] = ()) -> None:
        """Zero series for a source (and its named counters), so rate() works from its first scrape."""
        with self.lock:
            for o in RECORD_OUTCOMES:
                self.records.setdefault((source, o), 0)
            for o in OBJECT_OUTCOMES:
                self.objects.setdefault((source, o), 0)
            for name in extra:
                self.extra.setdefault(name, {}).setdefault((source,), 0)

    def count_object(self, source: str, outcome: str, sqs: int = 0, other: int = 0, invalid: int = 0) -> None:
        """One object read with this outcome, and the records found in it."""
        with self.lock:
            _add(self.objects, (source, outcome), 1)
            if sqs:
                _add(self.records, (source, "sqs"), sqs)
            if other:
                _add(self.records, (source, "other"), other)
            if invalid:
                _add(self.records, (source, "invalid"), invalid)

    def count_source_error(self, source: str, kind: str) -> None:
        with self.lock:
            _add(self.source_errors, (source, kind), 1)

    def count_log(self, outcome: str, n: int = 1) -> None:
        """Log records that ended as `outcome` (exported, dropped, failed)."""
        with self.lock:
            self.log_records[outcome] += n

    def register_duplicates(self, source: str) -> None:
        with self.lock:
            self.extra.setdefault(DUPLICATE_EVENTS, {}).setdefault((source,), 0)

    def count_duplicates(self, source: str, n: int) -> None:
        """Calls not counted because their eventID was counted within metrics.dedupe_window."""
        self.count_extra(DUPLICATE_EVENTS, (source,), n)

    def count_checkpoint_error(self) -> None:
        with self.lock:
            self.checkpoint_errors += 1

    def count_extra(self, name: str, key: Key, n: int = 1) -> None:
        with self.lock:
            _add(self.extra.setdefault(name, {}), key, n)

    # -- views -------------------------------------------------------------------------------------
    def counts(self) -> Counts:
        with self.lock:
            return Counts(
                list(self.records.items()),
                list(self.objects.items()),
                list(self.source_errors.items()),
                list(self.log_records.items()),
                {n: list(t.items()) for n, t in self.extra.items()},
                self.checkpoint_errors,
            )

    # -- persistence -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        with self.lock:
            return {
                "records": [[*k, v] for k, v in self.records.items()],
                "objects": [[*k, v] for k, v in self.objects.items()],
                "source_errors": [[*k, v] for k, v in self.source_errors.items()],
                "log_records": dict(self.log_records),
                "extra": {n: [[*k, v] for k, v in t.items()] for n, t in self.extra.items()},
                "checkpoint_errors": self.checkpoint_errors,
            }

    def restore(self, snap: dict[str, Any]) -> None:
        """From a snapshot of this class, or from an aggregate snapshot of the older layout."""

        def rows(name: str) -> Iterator[tuple[Key, int]]:
            for row in snap.get(name, ()):
                yield tuple(row[:-1]), row[-1]

        with self.lock:
            self.records = dict(rows("records"))
            self.objects = dict(rows("objects"))
            self.source_errors = dict(rows("source_errors"))
            self.log_records = {**dict.fromkeys(LOG_OUTCOMES, 0), **snap.get("log_records", {})}
            self.extra = {n: {tuple(r[:-1]): r[-1] for r in t} for n, t in snap.get("extra", {}).items()}
            self.checkpoint_errors = int(snap.get("checkpoint_errors", 0))


def _add(table: dict[Key, int], key: Key, n: int) -> None:
    table[key] = table.get(key, 0) + n
