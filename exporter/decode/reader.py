"""Bytes of one delivery (file, S3 object, log batch) → the raw CloudTrail records in it.

Shapes: `{"Records":[…]}` (plain or gzip, detected by magic bytes), a single record object, NDJSON,
and CloudWatch Logs subscription envelopes (`logEvents[].message`). Anything else is "skipped"
(digest, Insight summaries, unrelated JSON) or "failed" (corrupt gzip, malformed JSON).
"""

from __future__ import annotations

import io
import threading
from dataclasses import dataclass, field
from typing import Any

import msgspec
from isal import igzip, isal_zlib

GZIP_MAGIC = b"\x1f\x8b"
# A decompression bomb must not take the process down; real trail files are far below this.
MAX_DECOMPRESSED = 256 << 20
DECODE_ERRORS = (msgspec.DecodeError, ValueError, RecursionError)


class _LogEvent(msgspec.Struct):
    message: str | None = None
    id: str | None = None
    timestamp: int | None = None


class _Top(msgspec.Struct):
    Records: list[msgspec.Raw] | None = None
    logEvents: list[_LogEvent] | None = None
    # any of these at the top level means a single bare record (their values are not checked here)
    eventSource: Any = None
    eventName: Any = None
    eventVersion: Any = None


_decode_top = msgspec.json.Decoder(_Top).decode


@dataclass(slots=True)
class Delivery:
    """What one object holds: records to look at, how many parts were unreadable, and why."""

    outcome: str  # "ok" | "skipped" | "failed"
    records: list[Any] = field(default_factory=list)  # msgspec.Raw or bytes, one JSON value each
    invalid: int = 0
    reason: str | None = None
    # False when the records are unparsed text (NDJSON lines, log event messages): check each one
    parsed: bool = True


class DecompressError(ValueError):
    pass


def gunzip(data: bytes, limit: int = MAX_DECOMPRESSED) -> bytes:
    """Decompress all gzip members; refuse output beyond `limit`."""
    if len(data) * 1032 < limit:  # deflate cannot expand more than ~1032×
        try:
            return igzip.decompress(data)
        except Exception as exc:  # isal raises OSError/EOFError/zlib-style errors
            raise DecompressError(f"gzip: {exc}") from exc
    out = bytearray()
    try:
        with igzip.GzipFile(fileobj=io.BytesIO(data)) as gz:
            while chunk := gz.read(1 << 20):
                out += chunk
                if len(out) > limit:
                    raise DecompressError(f"gzip: more than {limit} bytes uncompressed")
    except DecompressError:
        raise
    except Exception as exc:
        raise DecompressError(f"gzip: {exc}") from exc
    return bytes(out)


# The C reader behind igzip.decompress; it can fill a buffer we keep.
_GzipReader = getattr(isal_zlib, "_GzipReader", None)
_KEEP = 64 << 20  # a scratch buffer grown beyond this is not kept (bounded RSS after an odd big file)
_scratch = threading.local()


def gunzip_scratch(data: bytes, limit: int = MAX_DECOMPRESSED) -> memoryview | bytes:
    """Like gunzip, into this thread's reused buffer: fresh multi-MB buffers per file cost page faults
    and allocator time comparable to inflating. The view is valid until the next call in this thread."""
    if _GzipReader is None:
        return gunzip(data, limit)
    buf: bytearray | None = getattr(_scratch, "buf", None)
    # ISIZE (the last member's size mod 2**32) is a good first guess for one-member trail files
    # …but a truncated or hostile file's last 4 bytes are anything: never trust more than deflate can expand
    want = min(int.from_bytes(data[-4:], "little"), len(data) * 1032, limit) + 1 if len(data) >= 18 else 1 << 16
    if buf is None or len(buf) < want:
        buf = bytearray(max(want, 1 << 20))
    n = 0
    try:
        reader = _GzipReader(data)
        while True:
            if n == len(buf):
                if n > limit:
                    raise DecompressError(f"gzip: more than {limit} bytes uncompressed")
                grown = bytearray(min(2 * n, limit + 1))
                grown[:n] = buf
                buf = grown
            with memoryview(buf) as view:
                got = reader.readinto(view[n:])
            if not got:
                break
            n += got
    except DecompressError:
        raise
    except Exception as exc:  # isal raises OSError/EOFError/zlib-style errors
        raise DecompressError(f"gzip: {exc}") from exc
    _scratch.buf = buf if len(buf) <= _KEEP else None
    return memoryview(buf)[:n]


def inflate(data: bytes) -> bytes | memoryview | None:
    """The delivery's JSON: gunzipped into this thread's scratch buffer when gzip (valid until the next
    call), None when the gzip is bad (the general path reports it)."""
    if data[:2] != GZIP_MAGIC:
        return data
    try:
        return gunzip_scratch(data)
    except DecompressError:
        return None


def read_delivery(data: bytes, scratch: bool = False) -> Delivery:
    """Find the records in one delivery. Never raises on bad input. With `scratch`, gzip is inflated
    into a reused per-thread buffer and the records point into it: use them before the next call."""
    if data[:2] == GZIP_MAGIC:
        try:
            data = gunzip_scratch(data) if scratch else gunzip(data)  # type: ignore[assignment]
        except DecompressError as exc:
            return Delivery("failed", reason=str(exc))
        if type(data) is memoryview:
            try:
                top = _decode_top(data)
            except DECODE_ERRORS:
                top = None
            if top is not None and top.Records is not None:
                return Delivery("ok", top.Records)
            data = data.tobytes()  # the other shapes are rare: handle them on bytes, as below
    if not data.strip():
        return Delivery("skipped", reason="empty")
    try:
        top = _decode_top(data)
    except msgspec.ValidationError as exc:
        return _not_a_trail_object(data, exc)
    except DECODE_ERRORS as exc:
        if data.count(b"\n", 0, 1 << 16) or data.strip().count(b"\n"):
            return _ndjson(data, str(exc))
        return Delivery("failed", reason=f"json: {exc}")
    if top.Records is not None:
        return Delivery("ok", top.Records)
    if top.logEvents is not None:
        return _log_events(top.logEvents)
    if top.eventSource is not None or top.eventName is not None or top.eventVersion is not None:
        return Delivery("ok", [data])
    return Delivery("skipped", reason="no Records (digest, Insight summary or other JSON)")


def _not_a_trail_object(data: bytes, exc: Exception) -> Delivery:
    """Valid JSON whose shape is wrong: a non-object top level is skipped, bad `Records` is failed."""
    try:
        value = msgspec.json.decode(data)
    except DECODE_ERRORS as exc2:
        return Delivery("failed", reason=f"json: {exc2}")
    if isinstance(value, dict):
        return Delivery("failed", reason=f"malformed trail file: {exc}")
    return Delivery("skipped", reason=f"top-level JSON {type(value).__name__}, not an object")


def _ndjson(data: bytes, first_error: str) -> Delivery:
    records: list[Any] = []
    invalid = 0
    for line in data.splitlines():
        line = line.strip()
        if not line:
            continue
        if line[:1] == b"{":
            records.append(line)
        else:
            invalid += 1
    if not records:
        return Delivery("failed", reason=f"json: {first_error}")
    # A pretty-printed file that is simply broken looks like many lines, few of them starting with '{'.
    if invalid > len(records):
        return Delivery("failed", reason=f"json: {first_error}")
    return Delivery("ok", records, invalid=invalid, parsed=False)


def _log_events(events: list[_LogEvent]) -> Delivery:
    records: list[Any] = []
    invalid = 0
    for ev in events:
        if ev.message:
            records.append(ev.message.encode())
        else:
            invalid += 1
    return Delivery("ok", records, invalid=invalid, parsed=False)
