"""The console exporter's output: an ExportLogsServiceRequest (the bytes exporter.sinks.logs.wire wrote) → one
JSON object per LogRecord, with the fields the SDK's ConsoleLogExporter prints (LogRecord.to_json), on
one line each. Decoded here with a small wire-format reader: the protobuf classes are only a test
dependency.
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import msgspec

from .wire import read_varint

_unpack_d = struct.Struct("<d").unpack_from
_unpack_q = struct.Struct("<Q").unpack_from


def wire(data: bytes | memoryview) -> Iterator[tuple[int, int, Any]]:
    """(field number, wire type, value): varints as int, fixed64 as its 8 bytes, length-delimited as a view."""
    data = memoryview(data)
    i, end = 0, len(data)
    while i < end:
        key, i = read_varint(data, i)
        num, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(data, i)
            yield num, wt, v
        elif wt == 1:
            yield num, wt, data[i : i + 8]
            i += 8
        elif wt == 2:
            n, i = read_varint(data, i)
            yield num, wt, data[i : i + n]
            i += n
        elif wt == 5:
            yield num, wt, data[i : i + 4]
            i += 4
        else:
            raise ValueError(f"wire type {wt} at byte {i}")


def _str(v: memoryview) -> str:
    return bytes(v).decode("utf-8", "surrogatepass")  # the encoder writes lone surrogates this way


def _int64(n: int) -> int:
    return n - (1 << 64) if n >= 1 << 63 else n


def any_value(data: memoryview) -> Any:
    """AnyValue → the Python value (string 1, bool 2, int 3, double 4, array 5, kvlist 6, bytes 7)."""
    out: Any = None
    for num, wt, v in wire(data):
        if num == 1 and wt == 2:
            out = _str(v)
        elif num == 2 and wt == 0:
            out = bool(v)
        elif num == 3 and wt == 0:
            out = _int64(v)
        elif num == 4 and wt == 1:
            out = _unpack_d(v)[0]
        elif num == 5 and wt == 2:
            out = [any_value(x) for n, w, x in wire(v) if n == 1 and w == 2]
        elif num == 6 and wt == 2:
            out = key_values(v)
        elif num == 7 and wt == 2:
            out = base64.b64encode(bytes(v)).decode()
    return out


def key_value(data: memoryview) -> tuple[str, Any]:
    key, value = "", None
    for num, wt, v in wire(data):
        if num == 1 and wt == 2:
            key = _str(v)
        elif num == 2 and wt == 2:
            value = any_value(v)
    return key, value


def key_values(data: memoryview, field_number: int = 1) -> dict[str, Any]:
    """The repeated KeyValue `field_number` of a message (KeyValueList.values, Resource.attributes…)."""
    return dict(key_value(v) for n, w, v in wire(data) if n == field_number and w == 2)


def _iso(ns: int) -> str | None:
    return datetime.fromtimestamp(ns / 1e9, tz=UTC).isoformat() if ns else None


def log_record(data: memoryview, resource: dict[str, Any]) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "body": None,
        "severity_number": None,
        "severity_text": None,
        "attributes": None,
        "dropped_attributes": 0,
        "timestamp": None,
        "observed_timestamp": None,
        "trace_id": "",
        "span_id": "",
        "trace_flags": 0,
        "resource": resource,
        "event_name": "",
    }
    attrs: dict[str, Any] = {}
    for num, wt, v in wire(data):
        if num == 1 and wt == 1:
            rec["timestamp"] = _iso(_unpack_q(v)[0])
        elif num == 11 and wt == 1:
            rec["observed_timestamp"] = _iso(_unpack_q(v)[0])
        elif num == 2 and wt == 0:
            rec["severity_number"] = v
        elif num == 3 and wt == 2:
            rec["severity_text"] = _str(v)
        elif num == 5 and wt == 2:
            rec["body"] = any_value(v)
        elif num == 6 and wt == 2:
            k, val = key_value(v)
            attrs[k] = val
        elif num == 7 and wt == 0:
            rec["dropped_attributes"] = v
        elif num == 8 and wt == 5:
            rec["trace_flags"] = int.from_bytes(v, "little")
        elif num == 9 and wt == 2 and len(v):
            rec["trace_id"] = "0x" + bytes(v).hex()
        elif num == 10 and wt == 2 and len(v):
            rec["span_id"] = "0x" + bytes(v).hex()
        elif num == 12 and wt == 2:
            rec["event_name"] = _str(v)
    rec["attributes"] = attrs or None
    return rec


def records(body: bytes) -> Iterator[dict[str, Any]]:
    """Every LogRecord of an ExportLogsServiceRequest (resource_logs 1 → scope_logs 2 → log_records 2)."""
    for num, wt, rl in wire(body):
        if num != 1 or wt != 2:
            continue
        resource: dict[str, Any] = {"attributes": {}, "schema_url": ""}
        scopes = []
        for n2, w2, v2 in wire(rl):
            if n2 == 1 and w2 == 2:
                resource["attributes"] = key_values(v2)
            elif n2 == 2 and w2 == 2:
                scopes.append(v2)
            elif n2 == 3 and w2 == 2:
                resource["schema_url"] = _str(v2)
        for sl in scopes:
            for n3, w3, v3 in wire(sl):
                if n3 == 2 and w3 == 2:
                    yield log_record(v3, resource)


def json_lines(body: bytes) -> str:
    """The records of a request as JSON lines (each ends with a newline)."""
    out = []
    for r in records(body):
        try:
            out.append(msgspec.json.encode(r).decode())
        except UnicodeEncodeError:  # a lone surrogate: json writes it as a \\u escape
            out.append(json.dumps(r, separators=(",", ":")))
    return "".join(line + "\n" for line in out)
