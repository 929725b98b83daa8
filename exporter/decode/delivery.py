"""Which decoder reads a delivery: the C scanner when it is built and takes the file; whatever it declines
(or everything, without it) goes record by record through msgspec, which decides `other` / `invalid`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from . import scan
from .reader import DECODE_ERRORS, Delivery, inflate, read_delivery
from .record import INSIGHT, SQS_SOURCE, Call, SqsEvent, call_event, decode_record, decode_source, to_call
from .scan import RAW_EVENTS

_NEEDLE = SQS_SOURCE.encode()


@dataclass(slots=True)
class ObjectResult:
    outcome: str  # ok | skipped | failed
    sqs: int = 0
    other: int = 0
    invalid: int = 0
    reason: str | None = None


def records(data: bytes, keep_raw: bool) -> tuple[ObjectResult, list[Call], list[Any]]:
    """Decode one delivery record by record into its SQS calls (and the raw JSON of each with `keep_raw`,
    for the log sink). The plain path: it takes every input and decides `other` / `invalid`."""
    # records may point into a reused inflate buffer: what outlives this call is copied to bytes
    return calls_of(read_delivery(data, scratch=True), keep_raw)


def calls_of(delivery: Delivery, keep_raw: bool) -> tuple[ObjectResult, list[Call], list[Any]]:
    """Each record of a delivery decoded on its own: the SQS calls (and their raw JSON with `keep_raw`;
    without it, raws is [] or aligned with calls, holding only the raw JSON of `scan.RAW_EVENTS` calls)."""
    res = ObjectResult(delivery.outcome, invalid=delivery.invalid, reason=delivery.reason)
    calls: list[Call] = []
    raws: list[Any] = []
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
            call = to_call(rec)
        except DECODE_ERRORS:
            res.invalid += 1
            continue
        calls.append(call)
        if keep_raw:
            raws.append(b)
        elif call.labels[3] in RAW_EVENTS:
            # the metrics read these calls' request parameters: raws aligned with calls, None elsewhere
            if len(raws) < len(calls) - 1:
                raws.extend([None] * (len(calls) - 1 - len(raws)))
            raws.append(b)
    if raws and len(raws) < len(calls):
        raws.extend([None] * (len(calls) - len(raws)))
    res.other = other
    res.sqs = len(calls)
    return res, calls, raws


def extract(data: bytes, keep_raw: bool = True) -> tuple[ObjectResult, list[tuple[Any, SqsEvent]]]:
    """records(), as (raw JSON or None, SqsEvent) pairs."""
    res, calls, raws = records(data, True)
    return res, [(raw if keep_raw else None, call_event(c)) for raw, c in zip(raws, calls, strict=True)]


def scanned(data: bytes, keep_raw: bool, event_ids: bool = True) -> tuple[ObjectResult, list[Call], list[Any]] | None:
    """The C scanner's calls (and the raw JSON of each with `keep_raw`), or None without the scanner
    or when it declines the file (any shape or type it does not handle exactly). Without `event_ids`
    the calls' event_id may be None (the scanner does not read it)."""
    if scan.scanner is None:
        return None
    buf = inflate(data)
    if buf is None:
        return None
    try:
        out = scan.scanner.scan(buf, keep_raw, event_ids)
    except scan.Declined:  # a caller the scanner's identity fields cannot tell apart
        return None
    if out is None:
        return None
    calls, other, raws = out
    return ObjectResult("ok", sqs=len(calls), other=other), calls, raws


def decode_records(records: Sequence[bytes], keep_raw: bool) -> Decoded:
    """Records a source has already split (CloudWatch log event messages, one CloudTrail record each),
    decoded record by record as one object; an empty one counts as invalid."""
    kept = [r for r in records if r]
    delivery = Delivery("ok", kept, invalid=len(records) - len(kept), parsed=False)
    return Decoded(*calls_of(delivery, keep_raw))


def extract_calls(data: bytes) -> tuple[ObjectResult, list[Call]] | None:
    """Metrics only: the C scanner's calls, or None without it or when it declines the file."""
    fast = scanned(data, False)
    return None if fast is None else (fast[0], fast[1])


def _classify(b: bytes) -> str:
    """A record the full decode refused: `other` if it is not an SQS API call, else `invalid`."""
    try:
        src = decode_source(b)
    except DECODE_ERRORS:
        return "invalid"
    return "other" if src.eventSource != SQS_SOURCE or src.eventType == INSIGHT else "invalid"


@dataclass(slots=True)
class Decoded:
    """One delivery, decoded: its outcome and counts, and its SQS calls (with the raw JSON of each when
    asked)."""

    result: ObjectResult
    calls: list[Call] = field(default_factory=list)
    raws: list[Any] = field(default_factory=list)


def decode(data: bytes, keep_raw: bool, event_ids: bool = True) -> Decoded:
    """Decode one delivery with the fastest path that takes it. `keep_raw`: the log sink wants the
    raw JSON of each SQS record. `event_ids=False`: nothing reads the calls' event_id (dedupe is off),
    so it may be left None: each one is a new string per call."""
    fast = scanned(data, keep_raw, event_ids)
    if fast is not None:
        return Decoded(*fast)
    return Decoded(*records(data, keep_raw))
