"""The object processor: one delivery's bytes → SQS events → sinks, counted per outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any, Protocol

from .decode import scan
from .decode.reader import DECODE_ERRORS, inflate, read_delivery, read_records
from .decode.record import (
    INSIGHT,
    SQS_SOURCE,
    Call,
    SqsEvent,
    call_event,
    decode_record,
    decode_source,
    to_calls,
    to_event,
)
from .sinks.metrics import Aggregate
from .state import Op, StateStore

log = logging.getLogger(__name__)

_NEEDLE = SQS_SOURCE.encode()


class EventSink(Protocol):
    def emit(self, raw: Any, ev: SqsEvent, observed: float) -> None: ...

    def emit_calls(self, calls: list[Call], raws: list[Any], kept: list[bool], observed: float) -> None: ...


@dataclass(slots=True)
class ObjectResult:
    outcome: str  # ok | skipped | failed
    sqs: int = 0
    other: int = 0
    invalid: int = 0
    reason: str | None = None


def extract(data: bytes, keep_raw: bool = True) -> tuple[ObjectResult, list[tuple[Any, SqsEvent]]]:
    """Decode one delivery into its SQS events (and the raw JSON of each, for the log sink; None
    without `keep_raw`)."""
    if not keep_raw:
        fast = _extract_typed(data)
        if fast is not None:
            return fast
    # records may point into a reused inflate buffer: what outlives this call is copied to bytes
    delivery = read_delivery(data, scratch=True)
    res = ObjectResult(delivery.outcome, invalid=delivery.invalid, reason=delivery.reason)
    events: list[tuple[Any, SqsEvent]] = []
    other = 0
    parsed = delivery.parsed
    for raw in delivery.records:
        b = raw if type(raw) is bytes else memoryview(raw).tobytes()  # faster than bytes(Raw)
        # Cheap test first: most records are not SQS and never need a typed decode. Records from a
        # parsed `Records` array are known to be valid JSON; text lines are checked one by one.
        if parsed and _NEEDLE not in b and b"\\u" not in b:  # an escaped eventSource still counts
            if b[:1] == b"{":
                other += 1
            else:
                res.invalid += 1
            continue
        try:
            rec = decode_record(b)
        except DECODE_ERRORS:
            # not an SQS record with the types we read; its source decides other vs invalid
            if _classify(b) == "other":
                other += 1
            else:
                res.invalid += 1
            continue
        if rec.eventSource != SQS_SOURCE or rec.eventType == INSIGHT:
            other += 1
            continue
        try:
            ev = to_event(rec)
        except DECODE_ERRORS:
            res.invalid += 1
            continue
        events.append((b, ev))
    res.other = other
    res.sqs = len(events)
    return res, events


def _extract_typed(data: bytes) -> tuple[ObjectResult, list[tuple[Any, SqsEvent]]] | None:
    calls = extract_calls(data)
    if calls is None:
        return None
    return calls[0], [(None, call_event(c)) for c in calls[1]]


def scanned(data: bytes, keep_raw: bool) -> tuple[ObjectResult, list[Call], list[Any]] | None:
    """The C scanner's calls (and the raw JSON of each with `keep_raw`), or None without the scanner
    or when it declines the file (any shape or type it does not handle exactly)."""
    if scan.scan_calls is None:
        return None
    buf = inflate(data)
    if buf is None:
        return None
    out = scan.scan_calls(buf, keep_raw)
    if out is None:
        return None
    rows, other = out
    calls = scan.calls_of(rows)
    return ObjectResult("ok", sqs=len(calls), other=other), calls, [r[5] for r in rows] if keep_raw else []


def extract_calls(data: bytes) -> tuple[ObjectResult, list[Call]] | None:
    """Metrics only: calls (tuples) rather than SqsEvents, from the C scanner, else from one typed
    decode of the whole file (about a third cheaper than record by record). None when the file needs
    the general path (other shapes, bad records), which then decides."""
    fast = scanned(data, False)
    if fast is not None:
        return fast[0], fast[1]
    records = read_records(data)
    if records is None:
        return None
    try:
        calls, other = to_calls(records)
    except DECODE_ERRORS:
        return None
    return ObjectResult("ok", sqs=len(calls), other=other), calls


def _classify(b: bytes) -> str:
    """A record the full decode refused: `other` if it is not an SQS API call, else `invalid`."""
    try:
        src = decode_source(b)
    except DECODE_ERRORS:
        return "invalid"
    return "other" if src.eventSource != SQS_SOURCE or src.eventType == INSIGHT else "invalid"


class Pipeline:
    """Applies decoded objects to the aggregate (and the optional log sink) under one lock per object,
    and checkpoints counters together with the progress they reflect."""

    def __init__(
        self,
        agg: Aggregate,
        sink: EventSink | None = None,
        store: StateStore | None = None,
        commit_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agg = agg
        self.sink = sink
        self.store = store
        self.commit_interval = commit_interval
        self.clock = clock
        self.lock = threading.RLock()
        self._pending: list[Op] = []
        self._after: list[Callable[[], None]] = []
        self._last_commit = time.monotonic()
        if store is not None:
            snap = store.get("aggregate")
            if snap:
                agg.restore(snap)

    def process(
        self,
        data: bytes,
        source: str,
        name: str = "",
        progress: Iterable[Op] | Callable[[ObjectResult], Iterable[Op]] = (),
        after: Callable[[], None] | None = None,
    ) -> ObjectResult:
        """Count one object. `progress` (ops, or a function of the result giving ops) is saved with
        the counters; `after` runs once they are saved."""
        calls: list[Call] = []
        raws: list[Any] = []
        events: list[tuple[Any, SqsEvent]] = []
        try:
            if self.sink is None:
                fast = extract_calls(data)
                if fast is not None:
                    res, calls = fast
            else:
                fast = scanned(data, True)
                if fast is not None:
                    res, calls, raws = fast
            if fast is None:
                res, events = extract(data, keep_raw=self.sink is not None)
        except Exception as exc:  # a decoder bug must cost one object, not the daemon
            log.exception("unexpected error decoding %s", name)
            res, events = ObjectResult("failed", reason=f"internal: {exc!r}"), []
        if res.outcome == "failed":
            log.warning("source %s: failed to read %s: %s", source, name or "object", res.reason)
        now = self.clock()
        agg = self.agg
        with self.lock:
            agg.count(agg.objects, (source, res.outcome))
            if res.sqs:
                agg.count(agg.records, (source, "sqs"), res.sqs)
            if res.other:
                agg.count(agg.records, (source, "other"), res.other)
            if res.invalid:
                agg.count(agg.records, (source, "invalid"), res.invalid)
            sink = self.sink
            if calls:
                if sink is None:
                    agg.add_calls(calls, now, source)
                else:
                    kept: list[bool] = []
                    agg.add_calls(calls, now, source, kept)
                    sink.emit_calls(calls, raws, kept, now)
            add = agg.add
            for raw, ev in events:
                if add(ev, now, source) and sink is not None:
                    sink.emit(raw, ev, now)
            self._stage(progress(res) if callable(progress) else progress, after)
            shared = agg.shared.take() if agg.shared is not None and (events or calls) else None
        if shared is not None:  # Redis I/O outside the lock
            agg.shared.send(shared)
        return res

    def count_object(
        self,
        source: str,
        outcome: str,
        progress: Iterable[Op] = (),
        after: Callable[[], None] | None = None,
    ) -> None:
        """Count an object that was not decoded: skipped by its key, or failed to download."""
        with self.lock:
            self.agg.count(self.agg.objects, (source, outcome))
            self._stage(progress, after)

    def stage(self, progress: Iterable[Op] = (), after: Callable[[], None] | None = None) -> None:
        """Save `progress` with the next checkpoint and run `after` once saved, counting nothing."""
        with self.lock:
            self._stage(progress, after)

    def source_error(self, source: str, kind: str) -> None:
        with self.lock:
            self.agg.count(self.agg.source_errors, (source, kind))

    def _stage(self, progress: Iterable[Op], after: Callable[[], None] | None) -> None:
        self._pending.extend(progress)
        if after is not None:
            self._after.append(after)

    def checkpoint(self, force: bool = False) -> None:
        """Save counters and staged progress in one transaction, then run the post-commit actions."""
        with self.lock:
            if not force and not self._pending and not self._after:
                return
            if self.store is not None:
                ops = [*self._pending, StateStore.put_op("aggregate", self.agg.snapshot())]
                self.store.commit(ops)
            self._pending.clear()
            after, self._after = self._after, []
            self._last_commit = time.monotonic()
        for action in after:
            try:
                action()
            except Exception:
                log.exception("post-checkpoint action failed")

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_commit >= self.commit_interval:
            self.checkpoint()
