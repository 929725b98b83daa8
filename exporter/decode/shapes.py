"""A delivery's bytes (already gunzipped) → the raw CloudTrail record JSON values inside, whatever holds them.

Detected by content, never by file name: a leading UTF-8 BOM is ignored (RFC 8259 §8.1 lets a reader do
so); the text is one JSON value, or several back to back with or without whitespace between them (NDJSON,
Firehose concatenation). Each value is unwrapped:

- `{"Records": [...]}`: each element is a record;
- a CloudWatch Logs subscription envelope: `DATA_MESSAGE` log event messages are records,
  a `CONTROL_MESSAGE` (sent when a subscription is set up) is skipped and is not a record;
- an EventBridge event whose detail-type ends in "via CloudTrail": the record is its `detail`
  (other EventBridge events are skipped);
- an SNS notification (`{"Type": "Notification", "Message": "..."}`): its Message is unwrapped;
- `aws cloudtrail lookup-events` output: each `Events[].CloudTrailEvent` string is a record;
- an array: each element is unwrapped;
- any other object is a record, except a lone document with none of a record's keys (a digest file, an
  Insight summary, unrelated JSON), which is skipped.

Values that are not JSON are cut out line by line when the text has lines, so one bad line or one bad
value costs itself only. Records are returned as JSON text; the record decoder decides SQS / other / invalid.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

import msgspec

BOM = b"\xef\xbb\xbf"
DECODE_ERRORS = (msgspec.DecodeError, ValueError, RecursionError)
# SNS inside EventBridge inside an array inside a line is as deep as real deliveries go
MAX_DEPTH = 4


class _LogEvent(msgspec.Struct, gc=False):
    message: str | None = None


class _Top(msgspec.Struct, gc=False):
    """Every container's keys at once, and the keys that tell a lone record from other JSON."""

    Records: list[msgspec.Raw] | None = None
    logEvents: list[_LogEvent] | None = None
    messageType: Any = None
    detail_type: Any = msgspec.field(name="detail-type", default=None)
    detail: msgspec.Raw = msgspec.Raw()
    Type: Any = None
    Message: Any = None
    Events: Any = None
    eventSource: Any = None
    eventName: Any = None
    eventVersion: Any = None


_decode_top = msgspec.json.Decoder(_Top).decode
_decode_raw = msgspec.json.Decoder(msgspec.Raw).decode
_decode_list = msgspec.json.Decoder(list[msgspec.Raw]).decode
# msgspec's error for text after a complete value names a byte: where the next value of a concatenation
# starts, give or take a fixed shift (measured once here, so a change of convention cannot misplace a cut)
_TRAILING = re.compile(r"trailing characters \(byte (\d+)\)")


def _measure_shift() -> int | None:
    try:
        _decode_raw(b"{}{}")
    except msgspec.DecodeError as exc:
        m = _TRAILING.search(str(exc))
        return int(m.group(1)) - 2 if m else None
    return None  # pragma: no cover - msgspec would have to accept trailing text


_SHIFT = _measure_shift()
_ERROR_AT = re.compile(r"\(byte (\d+)\)")
_RESUME = re.compile(rb"\n(?:\xef\xbb\xbf)?[{\[]")


def _next_value(exc: Exception) -> int | None:
    """Where the next value starts, if `exc` says the text holds more than one."""
    m = _TRAILING.search(str(exc)) if _SHIFT is not None else None
    return int(m.group(1)) - _SHIFT if m else None  # type: ignore[operator]


@dataclass(slots=True)
class Unwrapped:
    """What a delivery holds. `records`: one JSON value each (bytes or msgspec.Raw); `invalid`: records
    known to be unreadable (an empty log message, a non-object array element); `skipped`: containers that
    hold no record by design (CONTROL_MESSAGE, non-CloudTrail EventBridge events, a digest); `broken`:
    pieces of text that are not JSON."""

    records: list[Any] = field(default_factory=list)
    invalid: int = 0
    skipped: int = 0
    broken: int = 0
    # containers that hold records, even none (`{"Records": []}` is a trail file with nothing in it)
    held: int = 0
    # False when some records are unchecked text (log event messages, CloudTrailEvent strings)
    parsed: bool = True
    error: str | None = None
    kinds: dict[str, int] = field(default_factory=dict)

    @property
    def outcome(self) -> str:
        if self.broken and not (self.records or self.held):
            # nothing read as a record or a container: binary junk with a stray digit or `\n[` in it is a
            # broken file, not a delivery of a few invalid records
            return "failed"
        if self.records or self.invalid or self.held:
            # a file of mostly non-JSON lines is a broken file, not a few stray records
            return "failed" if self.broken > len(self.records) + self.invalid else "ok"
        return "failed" if self.broken else "skipped"

    @property
    def reason(self) -> str | None:
        if self.outcome == "failed":
            return self.error if self.error else "json: malformed"
        if self.outcome == "skipped":
            if self.kinds:
                return "no records: " + ", ".join(f"{n} {k}" for k, n in sorted(self.kinds.items()))
            return "empty"
        return None

    def skip(self, kind: str) -> None:
        self.skipped += 1
        self.kinds[kind] = self.kinds.get(kind, 0) + 1


def unwrap(data: bytes) -> Unwrapped:
    """The records of one delivery's text. Never raises on bad input."""
    out = Unwrapped()
    if data[:3] == BOM:
        data = data[3:]
    view = memoryview(data)
    if not _first(view) and not data.strip():
        return out
    try:
        top = _decode_top(view)
    except msgspec.ValidationError as exc:
        if _first(view) == b"{":  # a container key of the wrong type (`{"Records": 5}`)
            out.broken += 1
            out.error = f"malformed trail file: {exc}"
        else:
            _many(data, out, lone=True)
    except DECODE_ERRORS:
        _many(data, out)
    else:
        _object(top, view, out, 0, lone=True)
    return out


def _many(text: bytes, out: Unwrapped, lone: bool = False) -> None:
    """Values back to back. msgspec reads each one (exactly, in C) and says where the next one starts;
    memoryview slices keep this linear. After text that is not JSON, reading resumes at the next line
    that starts with `{` or `[` in its first column (where NDJSON lines and pretty-printed documents
    start; a nested value is indented), past the error, so each pass moves forward."""
    view = memoryview(text)
    pos, end = 0, len(view)
    while pos < end:
        rest = view[pos:]
        if rest[:3] == BOM:  # files joined together keep each one's BOM
            pos += 3
            continue
        try:
            _decode_raw(rest)
        except DECODE_ERRORS as exc:
            step = _next_value(exc)
            if step is not None:
                _value(rest[:step], out, 0, lone=False)
                pos += step
                continue
            out.broken += 1
            out.error = out.error or f"json: {exc}"
            at = _ERROR_AT.search(str(exc))
            resume = _RESUME.search(text, pos + (int(at.group(1)) if at else 0))
            if resume is None:
                return
            pos = resume.start() + 1
        else:
            _value(rest, out, 0, lone=lone and pos == 0)
            return


def _value(view: Any, out: Unwrapped, depth: int, lone: bool) -> None:
    """One complete JSON value (already known to be well formed, or a text to check)."""
    first = _first(view)
    if first == b"{":
        try:
            top = _decode_top(view)
        except msgspec.ValidationError:
            # a container key with an odd type: let the record decoder decide
            out.records.append(_text(view))
            return
        except DECODE_ERRORS as exc:
            out.broken += 1
            out.error = out.error or f"json: {exc}"
            return
        _object(top, view, out, depth, lone)
    elif first == b"[":
        _array(view, out, depth, lone)
    elif lone:
        out.skip("JSON scalar")
    else:
        out.invalid += 1  # a scalar where a record belongs


def _array(view: Any, out: Unwrapped, depth: int, lone: bool) -> None:
    try:
        items = _decode_list(view)
    except DECODE_ERRORS as exc:
        out.broken += 1
        out.error = out.error or f"json: {exc}"
        return
    if depth >= MAX_DEPTH:
        out.invalid += len(items)
        return
    if lone and not any(_first(i) == b"{" for i in items):
        out.skip("top-level JSON array without objects")
        return
    for item in items:
        _value(item, out, depth + 1, lone=False)


def _object(top: _Top, view: Any, out: Unwrapped, depth: int, lone: bool) -> None:
    if top.Records is not None:
        out.held += 1
        out.records += top.Records
        return
    if top.logEvents is not None:
        if top.messageType == "CONTROL_MESSAGE":
            out.skip("CONTROL_MESSAGE")
            return
        out.held += 1
        out.parsed = False
        for ev in top.logEvents:
            if ev.message:
                out.records.append(ev.message.encode())
            else:
                out.invalid += 1
        return
    if isinstance(top.detail_type, str) and len(top.detail):
        if not top.detail_type.endswith("via CloudTrail"):
            out.skip("EventBridge event not from CloudTrail")
        elif _first(top.detail) == b"{":
            out.records.append(top.detail)
        else:
            out.invalid += 1
        return
    if top.Type == "Notification" and isinstance(top.Message, str):
        message = top.Message.encode()
        if _first(message) not in (b"{", b"["):
            out.skip("SNS notification without JSON")
        elif depth >= MAX_DEPTH:
            out.invalid += 1
        else:
            _value(message, out, depth + 1, lone=True)
        return
    if isinstance(top.Events, list):
        _lookup_events(top.Events, out)
        return
    if lone and top.eventSource is None and top.eventName is None and top.eventVersion is None:
        out.skip("object without records")
        return
    out.records.append(_text(view))


def _first(value: Any) -> bytes:
    """The first non-blank byte of a JSON text."""
    return bytes(memoryview(value)[:64]).lstrip()[:1]


def _text(value: Any) -> Any:
    """A record's JSON: msgspec.Raw and bytes as they are, a slice of the delivery as bytes."""
    return bytes(value).strip() if type(value) is memoryview else value


def _lookup_events(events: list[Any], out: Unwrapped) -> None:
    """`aws cloudtrail lookup-events` output: each event carries its record as a JSON string."""
    out.held += 1
    out.parsed = False
    for ev in events:
        rec = ev.get("CloudTrailEvent") if isinstance(ev, dict) else None
        if isinstance(rec, str) and rec:
            out.records.append(rec.encode())
        else:
            out.invalid += 1
