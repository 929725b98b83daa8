"""Which decoder reads a delivery: the C scanner when it is built and takes the file, else the typed
msgspec paths; whatever they decline goes record by record, which decides `other` / `invalid`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import scan
from .reader import DECODE_ERRORS, Delivery, inflate, read_delivery, read_records
from .record import (
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

_NEEDLE = SQS_SOURCE.encode()


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
    return events_of(read_delivery(data, scratch=True))


def events_of(delivery: Delivery) -> tuple[ObjectResult, list[tuple[Any, SqsEvent]]]:
    """The record-by-record path: each record of a delivery decoded on its own, which decides `other` /
    `invalid`; the SQS ones as (raw JSON bytes, event)."""
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
    try:
        calls = scan.calls_of(rows)
    except scan.Declined:
        return None
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


@dataclass(slots=True)
class Decoded:
    """One delivery, decoded: its outcome and counts, and its SQS calls either as calls (with the raw
    JSON of each when asked) or as (raw, event) pairs from the record-by-record path."""

    result: ObjectResult
    calls: list[Call] = field(default_factory=list)
    raws: list[Any] = field(default_factory=list)
    events: list[tuple[Any, SqsEvent]] = field(default_factory=list)


def decode(data: bytes, keep_raw: bool) -> Decoded:
    """Decode one delivery with the fastest path that takes it. `keep_raw`: the log sink wants the
    raw JSON of each SQS record."""
    if not keep_raw:
        fast = extract_calls(data)
        if fast is not None:
            return Decoded(fast[0], fast[1])
    else:
        scan_out = scanned(data, True)
        if scan_out is not None:
            return Decoded(scan_out[0], scan_out[1], scan_out[2])
    res, events = extract(data, keep_raw=keep_raw)
    return Decoded(res, events=events)


def decode_records(records: Sequence[bytes]) -> Decoded:
    """Records a source has already split (CloudWatch log event messages, one CloudTrail record each),
    decoded record by record as one object; an empty one counts as invalid."""
    kept = [r for r in records if r]
    delivery = Delivery("ok", kept, invalid=len(records) - len(kept), parsed=False)
    res, events = events_of(delivery)
    return Decoded(res, events=events)
