"""OTLP logs wire format, encoded by hand: a CloudTrail record (decoded JSON) → LogRecord protobuf bytes.

Building opentelemetry-proto message objects costs ~100 Python objects per CloudTrail record (every
map entry is a KeyValue and an AnyValue); writing the protobuf wire format directly, with the repeated
keys and values cached as ready bytes, avoids them (the measured rates are in
docs/adr/0001-hand-written-otlp-encoder.md). The layout follows
opentelemetry/proto/{common,resource,logs}/v1 and collector/logs/v1 (field numbers in the comments);
the tests decode what this writes with the official opentelemetry-proto classes.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from typing import Any

# varints below 2**14 (every length and small count in practice) come from a table
_SMALL = [bytes([n]) if n < 0x80 else bytes([(n & 0x7F) | 0x80, n >> 7]) for n in range(1 << 14)]
_pack_d = struct.Struct("<d").pack
_pack_q = struct.Struct("<Q").pack
_INT64_MIN = -(1 << 63)
_INT64_MAX = (1 << 63) - 1


def varint(n: int) -> bytes:
    if n < 0x4000 and n >= 0:
        return _SMALL[n]
    if n < 0:
        n += 1 << 64  # two's complement, 10 bytes
    out = bytearray()
    while n >= 0x80:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def field(tag: bytes, payload: bytes) -> bytes:
    """A length-delimited field: tag, length, payload."""
    n = len(payload)
    return tag + (_SMALL[n] if n < 0x4000 else varint(n)) + payload


# Caches of encoded pieces that repeat across records (map keys, enum-like values). Bounded: cleared
# when full, which only costs re-encoding.
_CACHE_MAX = 65_536
_key_cache: dict[str, bytes] = {}
_str_cache: dict[str, bytes] = {}
_EMPTY = b""
_TRUE = b"\x10\x01"  # AnyValue.bool_value = 2
_FALSE = b"\x10\x00"


def _key(k: str) -> bytes:
    """KeyValue.key (field 1) with its tag and length."""
    b = _key_cache.get(k)
    if b is None:
        e = k.encode()
        n = len(e)
        b = b"\x0a" + (_SMALL[n] if n < 0x4000 else varint(n)) + e
        if len(_key_cache) >= _CACHE_MAX:
            _key_cache.clear()
        _key_cache[k] = b
    return b


def _string(s: str) -> bytes:
    """AnyValue{string_value (1)}."""
    e = s.encode("utf-8", "surrogatepass")
    n = len(e)
    return b"\x0a" + (_SMALL[n] if n < 0x4000 else varint(n)) + e


def any_value(v: Any) -> bytes:
    """A JSON value as an AnyValue message (without tag): map → kvlist_value, list → array_value,
    str/bool/int/float as such, null → the empty AnyValue."""
    t = type(v)
    if t is str:
        if len(v) > 64:
            return _string(v)
        b = _str_cache.get(v)
        if b is None:
            b = _string(v)
            if len(_str_cache) >= _CACHE_MAX:
                _str_cache.clear()
            _str_cache[v] = b
        return b
    if t is dict:
        inner = kv_list(v)
        n = len(inner)
        return b"\x32" + (_SMALL[n] if n < 0x4000 else varint(n)) + inner  # kvlist_value = 6
    if t is list:
        parts = []
        for x in v:
            a = any_value(x)
            n = len(a)
            parts.append(b"\x0a" + (_SMALL[n] if n < 0x4000 else varint(n)) + a)  # ArrayValue.values = 1
        inner = b"".join(parts)
        n = len(inner)
        return b"\x2a" + (_SMALL[n] if n < 0x4000 else varint(n)) + inner  # array_value = 5
    if t is bool:
        return _TRUE if v else _FALSE
    if t is int:
        if _INT64_MIN <= v <= _INT64_MAX:
            return b"\x18" + varint(v)  # int_value = 3
        return _string(str(v))
    if t is float:
        return b"\x21" + _pack_d(v)  # double_value = 4
    if v is None:
        return _EMPTY
    if isinstance(v, Mapping):
        return any_value(dict(v))
    if isinstance(v, bytes):
        return field(b"\x3a", v)  # bytes_value = 7
    if isinstance(v, Iterable):
        return any_value(list(v))
    return _string(str(v))


def key_value(k: str, v: Any) -> bytes:
    """A KeyValue message (without tag)."""
    a = any_value(v)
    n = len(a)
    return _key(k) + b"\x12" + (_SMALL[n] if n < 0x4000 else varint(n)) + a


_pair_cache: dict[tuple[str, str], bytes] = {}


def kv_element(k: str, v: Any) -> bytes:
    """One KeyValueList.values element (tag included): what kv_list writes for one entry."""
    return kv_list({k: v})


def kv_list(d: Mapping[str, Any]) -> bytes:
    """The repeated `values = 1` of a KeyValueList (also Resource.attributes: field 1 too). The hot
    path of the body: string entries come whole from a cache keyed by (key, value); maps inline."""
    parts: list[bytes] = []
    ap = parts.append
    cache = _pair_cache
    small = _SMALL
    for k, v in d.items():
        t = type(v)
        if t is str:
            el = cache.get((k, v))
            if el is None:
                e = v.encode("utf-8", "surrogatepass")
                n = len(e)
                a = b"\x0a" + (small[n] if n < 0x4000 else varint(n)) + e
                n = len(a)
                kv = _key(k) + b"\x12" + (small[n] if n < 0x4000 else varint(n)) + a
                n = len(kv)
                el = b"\x0a" + (small[n] if n < 0x4000 else varint(n)) + kv
                if len(v) <= 64:
                    if len(cache) >= _CACHE_MAX:
                        cache.clear()
                    cache[(k, v)] = el
            ap(el)
            continue
        if t is dict:
            inner = kv_list(v)
            n = len(inner)
            a = b"\x32" + (small[n] if n < 0x4000 else varint(n)) + inner
        elif v is None:
            a = _EMPTY
        elif t is bool:
            a = _TRUE if v else _FALSE
        else:
            a = any_value(v)
        n = len(a)
        kb = _key_cache.get(k) or _key(k)
        kv = kb + b"\x12" + (small[n] if n < 0x4000 else varint(n)) + a
        n = len(kv)
        ap(b"\x0a" + (small[n] if n < 0x4000 else varint(n)) + kv)
    return b"".join(parts)


def log_record(
    time_ns: int,
    observed_ns: int,
    severity_number: int,
    severity_text: str,
    body: Any,
    attributes: bytes,
    event_name: str,
) -> bytes:
    """A LogRecord message (without tag); `attributes` are ready LogRecord.attributes elements (attribute()).
    `body` is a value, or ready KeyValueList bytes (a map encoded by the caller) when it is `bytes`."""
    if type(body) is bytes:
        n = len(body)
        b = b"\x32" + (_SMALL[n] if n < 0x4000 else varint(n)) + body  # kvlist_value = 6
    else:
        b = any_value(body)
    n = len(b)
    return b"".join(
        (
            b"\x09",
            _pack_q(time_ns),  # time_unix_nano = 1 (fixed64)
            b"\x59",
            _pack_q(observed_ns),  # observed_time_unix_nano = 11 (fixed64)
            severity_fields(severity_number, severity_text),
            b"\x2a",  # body = 5
            _SMALL[n] if n < 0x4000 else varint(n),
            b,
            attributes,
            event_name_field(event_name),
        )
    )


def severity_fields(number: int, text: str) -> bytes:
    """LogRecord severity_number (= 2) and severity_text (= 3)."""
    return (_SEVERITY[number] if 0 <= number < 32 else b"\x10" + varint(number)) + _cached_field(b"\x1a", text)


def event_name_field(name: str) -> bytes:
    """LogRecord event_name (= 12)."""
    return _cached_field(b"\x62", name)


_SEVERITY = [b"\x10" + bytes([i]) for i in range(32)]  # severity_number = 2
_attr_cache: dict[tuple[str, Any], bytes] = {}


def attribute(k: str, v: Any, cache: bool = True) -> bytes:
    """One LogRecord.attributes (= 6) element; repeated (key, value) pairs come from a cache."""
    if cache:
        el = _attr_cache.get((k, v))
        if el is not None:
            return el
    if type(v) is str:
        e = v.encode("utf-8", "surrogatepass")
        n = len(e)
        a = b"\x0a" + (_SMALL[n] if n < 0x4000 else varint(n)) + e
    else:
        a = any_value(v)
    n = len(a)
    kv = _key(k) + b"\x12" + (_SMALL[n] if n < 0x4000 else varint(n)) + a
    n = len(kv)
    el = b"\x32" + (_SMALL[n] if n < 0x4000 else varint(n)) + kv
    if cache:
        if len(_attr_cache) >= _CACHE_MAX:
            _attr_cache.clear()
        _attr_cache[(k, v)] = el
    return el


_field_cache: dict[tuple[bytes, str], bytes] = {}


def _cached_field(tag: bytes, s: str) -> bytes:
    b = _field_cache.get((tag, s))
    if b is None:
        b = field(tag, s.encode())
        if len(_field_cache) >= 4096:
            _field_cache.clear()
        _field_cache[(tag, s)] = b
    return b


def resource(attributes: Mapping[str, Any]) -> bytes:
    """A Resource message (without tag): attributes = 1."""
    return kv_list(attributes)


def scope(name: str, version: str) -> bytes:
    """An InstrumentationScope message (without tag): name = 1, version = 2."""
    return field(b"\x0a", name.encode()) + field(b"\x12", version.encode())


class RequestBuilder:
    """ExportLogsServiceRequest bytes for a batch of encoded LogRecords, under one resource and scope (with the
    schema URL of the conventions its records follow)."""

    def __init__(
        self, resource_attributes: Mapping[str, Any], scope_name: str, scope_version: str, schema_url: str = ""
    ) -> None:
        self.resource_field = field(b"\x0a", resource(resource_attributes))  # ResourceLogs.resource = 1
        self.scope_field = field(b"\x0a", scope(scope_name, scope_version))  # ScopeLogs.scope = 1
        if schema_url:  # ScopeLogs.schema_url = 3, ahead of the records (field order is free)
            self.scope_field += field(b"\x1a", schema_url.encode())

    @staticmethod
    def record_field(record: bytes) -> bytes:
        """A LogRecord as an element of ScopeLogs.log_records (= 2)."""
        n = len(record)
        return b"\x12" + (_SMALL[n] if n < 0x4000 else varint(n)) + record

    def request(self, record_fields: list[bytes]) -> bytes:
        # one join of the whole request: nesting by concatenation would copy megabytes three times
        scope_len = len(self.scope_field) + sum(map(len, record_fields))
        head = self.resource_field + b"\x12" + varint(scope_len)  # ResourceLogs.scope_logs = 2
        resource_len = len(head) + scope_len
        # ExportLogsServiceRequest.resource_logs = 1
        return b"".join((b"\x0a", varint(resource_len), head, self.scope_field, *record_fields))

    def overhead(self) -> int:
        """Upper bound of the request bytes beyond its record fields."""
        return len(self.resource_field) + len(self.scope_field) + 24


def parse_partial_success(data: bytes) -> tuple[int, str]:
    """ExportLogsServiceResponse → (rejected_log_records, error_message); (0, "") when absent."""
    rejected, message = 0, ""
    for num, val in fields(data):
        if num == 1 and isinstance(val, bytes):  # partial_success
            for n2, v2 in fields(val):
                if n2 == 1 and isinstance(v2, int):
                    rejected = v2
                elif n2 == 2 and isinstance(v2, bytes):
                    message = v2.decode("utf-8", "replace")
    return rejected, message


def read_varint(data: bytes | memoryview, i: int) -> tuple[int, int]:
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if b < 0x80:
            return result, i
        shift += 7


def fields(data: bytes | memoryview) -> Iterable[tuple[int, int | bytes | memoryview]]:
    """(field number, value) of each varint or length-delimited field, until the end or the first
    malformed byte. A memoryview gives its values as views: nothing is copied."""
    i, end = 0, len(data)
    try:
        while i < end:
            key, i = read_varint(data, i)
            num, wt = key >> 3, key & 7
            if wt == 0:
                v, i = read_varint(data, i)
                yield num, v
            elif wt == 2:
                n, i = read_varint(data, i)
                yield num, data[i : i + n]
                i += n
            elif wt == 1:
                i += 8
            elif wt == 5:
                i += 4
            else:
                return
    except IndexError:
        return
