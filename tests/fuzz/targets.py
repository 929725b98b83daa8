"""The fuzz targets' only contact with the C extension: each oracle feeds one input to a C entry point and
to the plain Python path that decides when the C is absent or declines, and raises AssertionError when
the C accepts an input and answers differently. When the C interface changes, only this file changes.

    scan_oracle(data)    data: one delivery's JSON (what the scanner reads after gunzip)
    encode_oracle(data)  data: one record's raw JSON (what the log encoder reads)
"""

from __future__ import annotations

from typing import Any

from exporter import config
from exporter.decode import scan
from exporter.decode.delivery import extract, scanned
from exporter.decode.reader import DECODE_ERRORS
from exporter.decode.record import SqsEvent, call_event, decode_record, to_event
from exporter.sinks import logs
from exporter.sinks.metrics import Aggregate

OBSERVED = 1_800_000_000.25  # the observed time of every record: fixed, so both encoders see the same
HUGE = 1 << 40  # queue room and batch limits that never stop encode_calls
LEAST = 32  # bytes kept per call that make a leak: the smallest Python object


def native_module() -> Any:
    """The C extension this process runs (None when it is not built)."""
    return logs._native


# -- the scanner ---------------------------------------------------------------------------------------------
def scan_oracle(data: bytes) -> None:
    """When the C scanner takes a delivery, its counts, calls and raw records equal the general
    (record-by-record) path's; when it declines, that path decides and nothing is compared."""
    general: tuple[Any, list[tuple[Any, SqsEvent]]] | None = None
    for keep_raw in (True, False):
        got = scanned(data, keep_raw)
        if got is None:
            continue
        if general is None:
            general = extract(data, keep_raw=True)  # keep_raw: never the scanner again
        res, events = general
        result, calls, raws = got
        if result != res:
            raise AssertionError(f"counts: C {result} vs Python {res}")
        if [call_event(c) for c in calls] != [ev for _, ev in events]:
            raise AssertionError("calls differ")
        if keep_raw and raws != [raw for raw, _ in events]:
            raise AssertionError("raw records differ")


# -- the log encoder -----------------------------------------------------------------------------------------
class _NullTransport:
    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        return True, False, 0, ""

    def close(self) -> None:
        pass


def _sink(**redact: Any) -> logs.LogSink:
    cfg = config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9", redact=config.LogsRedactConfig(**redact))
    sink = logs.LogSink(cfg, Aggregate(), transport=_NullTransport())
    # the oracles only encode: the export thread is stopped, so its wake-ups allocate nothing while
    # `leaked` measures
    sink.shutdown(0.0)
    return sink


_SINKS: list[logs.LogSink] = []


def sinks() -> list[logs.LogSink]:
    """One sink per redaction shape the C handles: none, HMAC and drop, plain hashing and parameters."""
    if not _SINKS:
        _SINKS.extend(
            [
                _sink(),
                _sink(source_ip="drop", user_agent="hash", access_key_id="drop", hash_key="k"),
                _sink(
                    source_ip="hash",
                    user_agent="drop",
                    access_key_id="keep",
                    parameters={"entries": "hash", "Id": "drop", "MessageBody": "hash", "receiptHandle": "drop"},
                ),
            ]
        )
    return _SINKS


_DEFAULT_EVENT: list[SqsEvent] = []


def _event(raw: bytes) -> SqsEvent:
    """The record's own event when Python reads it as an SQS call, else a fixed one: the encoder's
    body comes from `raw` either way; the event only chooses the attributes around it."""
    try:
        return to_event(decode_record(raw))
    except DECODE_ERRORS:
        pass
    if not _DEFAULT_EVENT:
        seed = (
            b'{"eventSource":"sqs.amazonaws.com","eventName":"SendMessageBatch","awsRegion":"eu-west-1",'
            b'"recipientAccountId":"111122223333","eventCategory":"Data","eventTime":"2026-11-01T00:00:00Z",'
            b'"requestParameters":{"queueUrl":"https://sqs.eu-west-1.amazonaws.com/111122223333/q",'
            b'"entries":[{"id":"1"}]},"errorCode":"AccessDenied",'
            b'"userIdentity":{"type":"IAMUser","arn":"arn:aws:iam::111122223333:user/u"}}'
        )
        _DEFAULT_EVENT.append(to_event(decode_record(seed)))
    return _DEFAULT_EVENT[0]


def _python_record(sink: logs.LogSink, raw: bytes, ev: SqsEvent) -> Any:
    saved, sink.native_record = sink.native_record, None
    try:
        return sink.encode(raw, ev, OBSERVED, False)
    except Exception as exc:
        return exc
    finally:
        sink.native_record = saved


def _fields(sink: logs.LogSink, raw: bytes) -> None:
    """encode_body: (body, attributes) as the Python encoder writes them, or ValueError."""
    assert sink.native is not None
    try:
        fast = sink.native(raw)
    except ValueError:
        return
    try:
        slow: Any = sink.fields(raw, use_native=False)
    except Exception as exc:
        slow = exc
    if fast != slow:
        raise AssertionError(f"encode_body: C {fast!r:.300} vs Python {slow!r:.300}")


def _record(sink: logs.LogSink, raw: bytes, ev: SqsEvent) -> None:
    """encode_record, as encode() uses it (declining with ValueError hands the record to Python): the
    same LogRecord element as the Python encoder, or an error where Python has one too (the record is
    then counted as failed either way)."""
    try:
        fast: Any = sink.encode(raw, ev, OBSERVED, False)
    except Exception as exc:
        fast = exc
    slow = _python_record(sink, raw, ev)
    if isinstance(fast, Exception) and isinstance(slow, Exception):
        return
    if fast != slow:
        raise AssertionError(f"encode_record: C {fast!r:.300} vs Python {slow!r:.300}")


def _calls(sink: logs.LogSink, raw: bytes) -> None:
    """encode_calls (the loop over an object's calls) on the record as a delivery, with the attribute
    caches filled first as emit_calls fills them: each record it writes equals the Python encoder's."""
    got = scanned(b'{"Records":[' + raw + b"]}", True)
    if got is None or not got[1]:
        return
    _, calls, raws = got
    for labels, error, entries, _, _, principal, urls in calls:
        sink._attributes((labels, error, urls), entries, principal)
    caches = (sink._kind_cache, sink._principal_cache, sink._batch_attrs)
    rooms = (HUGE, HUGE, HUGE, HUGE)  # queue records and bytes, batch records and bytes: nothing stops it
    chunks, stop, size, *_ = logs._native.encode_calls(
        calls, raws, [True] * len(calls), 0, *caches, int(OBSERVED * 1e9), *rooms, 0, 0, *sink.native_args
    )
    if size != sum(len(c) for c, _ in chunks) or sum(n for _, n in chunks) != stop:
        raise AssertionError(f"encode_calls: {len(chunks)} chunks, stop {stop}, size {size}")
    fast = b"".join(c for c, _ in chunks)
    # the input may well hold more than one record ("…},{…"): each call up to where the C stopped
    slow = [_python_record(sink, raws[i], call_event(calls[i])) for i in range(stop)]
    if any(isinstance(r, Exception) for r in slow) or fast != b"".join(slow):
        raise AssertionError(f"encode_calls: C {fast!r:.300} vs Python {slow!r:.300}")


def encode_oracle(data: bytes) -> None:
    """For each redaction setting: the C body, record and call-loop encoders write the Python encoder's
    bytes for a record they accept (and decline with ValueError what they do not handle exactly)."""
    ev = _event(data)
    for sink in sinks():
        _fields(sink, data)
        _record(sink, data, ev)
        _calls(sink, data)


def loaded() -> bool:
    """Whether the scanner and the encoder are both there to fuzz."""
    return scan.scan_calls is not None and logs._native is not None


def leaked(oracle: Any, data: bytes, rounds: int = 32, window: int = 1000, windows: int = 10) -> int:
    """Bytes the oracle keeps per call on one input (tracemalloc must be tracing), when that is at least
    LEAST (a leaked reference keeps at least one object): a reference or buffer the C forgets to release
    grows this on every call, for ever. The Python caches on the way are keyed by the input and stop
    growing after the first call; a measurement itself keeps a few hundred bytes whatever its length.
    The C's own caches of interned strings and tuples are slot tables of a few thousand entries: an
    input whose values collide in them makes new objects on every call until every slot is taken, and
    only then stops growing. So: a quick look over `rounds` calls, twice; when both grew, windows of
    `window` calls until one grows less (not a leak) or `windows` of them all did (a leak). An
    exception (an oracle mismatch) propagates."""
    import gc
    import tracemalloc

    def growth(calls: int) -> int:
        gc.collect()
        before = tracemalloc.get_traced_memory()[0]
        for _ in range(calls):
            oracle(data)
        gc.collect()
        return (tracemalloc.get_traced_memory()[0] - before) // calls

    for _ in range(2):
        oracle(data)
    per_call = min(growth(rounds), growth(rounds))
    for _ in range(windows if per_call >= LEAST else 0):
        per_call = min(per_call, growth(window))
        if per_call < LEAST:
            break
    return per_call if per_call >= LEAST else 0
