"""Bytes of one delivery (file, S3 object, log batch) → the raw CloudTrail records in it.

Gzip (one or many members) is detected by magic bytes; the shapes inside are unwrapped by
exporter.decode.shapes. What holds no record is "skipped" (digest, Insight summaries, CONTROL_MESSAGE,
unrelated JSON), what cannot be read "failed" (corrupt gzip, malformed JSON).
"""

from __future__ import annotations

import io
import os
import re
import threading
from dataclasses import dataclass, field
from typing import Any

import msgspec
from isal import igzip, isal_zlib

from . import shapes

GZIP_MAGIC = b"\x1f\x8b"
# One object's uncompressed size, plain or inflated (limits.max_object_bytes, set at start by `set_limit`):
# a decompression bomb or a huge file must not take the process down; real trail files are far below this.
MAX_DECOMPRESSED = 64 << 20
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


class TooLarge(OSError):
    """An object above the size cap, refused before it is read."""


def set_limit(max_object_bytes: int) -> None:
    """The process-wide cap on one object's uncompressed size (limits.max_object_bytes)."""
    global MAX_DECOMPRESSED
    MAX_DECOMPRESSED = max_object_bytes


def too_large(size: int) -> str | None:
    """Why an object of `size` bytes is refused, or None."""
    if size > MAX_DECOMPRESSED:
        return f"{size} bytes, more than limits.max_object_bytes ({MAX_DECOMPRESSED})"
    return None


def read_file(path: Any) -> bytes:
    """A file's bytes; TooLarge (an OSError) when it is above the cap, without reading it."""
    with open(path, "rb") as f:
        size = os.fstat(f.fileno()).st_size
        reason = too_large(size)
        if reason is not None:
            raise TooLarge(reason)
        # read(n) allocates n bytes first: asking for the cap would map 64 MiB of fresh pages per file (a
        # page fault for each page read into), where a buffer of the file's size comes from the reused heap
        data = f.read(size + 1)
        if len(data) > size:  # it grew since fstat: on to the cap, where a file still growing fails as truncated
            data += f.read(MAX_DECOMPRESSED + 1 - len(data))
        return data


def gunzip(data: bytes, limit: int | None = None) -> bytes:
    """Decompress all gzip members; refuse output beyond `limit` (default: the object cap)."""
    limit = MAX_DECOMPRESSED if limit is None else limit
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


def gunzip_scratch(data: bytes, limit: int | None = None) -> memoryview | bytes:
    """Like gunzip, into this thread's reused buffer: fresh multi-MB buffers per file cost page faults
    and allocator time comparable to inflating. The view is valid until the next call in this thread."""
    limit = MAX_DECOMPRESSED if limit is None else limit
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
            if n > limit:  # checked on every read: a kept buffer may be larger than a lowered limit
                raise DecompressError(f"gzip: more than {limit} bytes uncompressed")
            if n == len(buf):
                grown = bytearray(min(2 * n, limit + 1))
                grown[:n] = buf
                buf = grown
            with memoryview(buf) as view:
                got = reader.readinto(view[n : limit + 1])
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
        return data if len(data) <= MAX_DECOMPRESSED else None
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
    elif (reason := too_large(len(data))) is not None:
        return Delivery("failed", reason=reason)
    got = shapes.unwrap(data)
    if got.outcome == "failed" or got.broken:
        # one record the parser cannot take (a lone surrogate, extreme nesting) must not cost its siblings
        records = split_records(data)
        if records is not None:
            return Delivery("ok", records, parsed=False)
    if got.outcome != "ok":
        return Delivery(got.outcome, reason=got.reason)
    return Delivery("ok", got.records, invalid=got.invalid + got.broken, parsed=got.parsed)


# a whole JSON string (escapes skipped), a quote that opens a string never closed, or structure
_TOKENS = re.compile(rb'"[^"\\]*(?:\\[\s\S][^"\\]*)*"|"|[\[\]{},]')
_WS = b" \t\r\n"


def split_records(data: bytes) -> list[bytes] | None:
    """The raw elements of the top-level `Records` array, found by structure alone (strings, brackets,
    commas), so each can be decoded on its own; None unless the document is one complete object with
    a `Records` array (a truncated or otherwise broken file stays failed)."""
    n = len(data)
    i = 0
    while i < n and data[i] in _WS:
        i += 1
    if i == n or data[i] != 0x7B:  # {
        return None
    records: list[bytes] = []
    found = False
    depth = 0
    inside = 0  # depth of the Records array while in it, else 0
    start = 0  # where the current element began
    opens = -1  # position of the '[' that opens Records, once its key is seen
    end = -1
    for m in _TOKENS.finditer(data, i):
        at = m.start()
        c = data[at]
        if c == 0x22:  # "
            if m.end() - at == 1:
                return None  # a string that never closes
            if depth == 1 and not inside and data[at : m.end()] == b'"Records"':
                j = m.end()
                while j < n and data[j] in _WS:
                    j += 1
                if j < n and data[j] == 0x3A:  # :
                    j += 1
                    while j < n and data[j] in _WS:
                        j += 1
                    opens = j
        elif c == 0x5B or c == 0x7B:  # [ {
            depth += 1
            if at == opens:
                inside, start, opens, found = depth, m.end(), -1, True
        elif c == 0x2C:  # ,
            if inside and depth == inside:
                piece = data[start:at].strip()
                if not piece:
                    return None
                records.append(piece)
                start = m.end()
        else:  # ] }
            if inside and depth == inside:
                if c != 0x5D:
                    return None
                piece = data[start:at].strip()
                if piece:
                    records.append(piece)
                inside = 0
            depth -= 1
            if depth == 0:
                end = m.end()
                break
    if end < 0 or not found or data[end:].strip(_WS):
        return None
    return records
