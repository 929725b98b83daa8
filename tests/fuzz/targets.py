"""The fuzz targets' only contact with the C extension: each oracle feeds one input to the C components
(exporter._native.Scanner through exporter.decode.delivery, exporter._native.LogEncoder through the log
sink, exporter._native.Tally through the metrics aggregate) and to the plain Python path that decides when
the C is absent or declines, and raises AssertionError when the C accepts an input and answers differently.
When the C interface changes, only this file changes.

    scan_oracle(data)    data: one delivery's JSON (what the scanner reads after gunzip); the calls it
                         yields are also counted by both tallies (tally_oracle)
    encode_oracle(data)  data: one record's raw JSON (what the log encoder reads)
"""

from __future__ import annotations

import importlib
from typing import Any

from exporter import config
from exporter.decode import scan
from exporter.decode.delivery import decode, records, scanned
from exporter.decode.reader import DECODE_ERRORS
from exporter.decode.record import SqsEvent, call_event, decode_record, to_event
from exporter.selfmetrics import SelfMetrics
from exporter.sinks import logs
from exporter.sinks.metrics import Aggregate
from exporter.sinks.metrics import tally as tallies

OBSERVED = 1_800_000_000.25  # the observed time of every record: fixed, so both encoders see the same
HUGE = 1 << 40  # queue room: emit never drops, emit_calls never stops for room
LEAST = 32  # bytes kept per call that make a leak: the smallest Python object


def native_module() -> Any:
    """The C extension this process runs."""
    return importlib.import_module("exporter._native")


def loaded() -> bool:
    """Whether the scanner and the encoder are both there to fuzz (built, and CTSQS_NATIVE is not 0)."""
    return scan.scanner is not None and logs.LogEncoder is not None


# -- the scanner ---------------------------------------------------------------------------------------------
def scan_oracle(data: bytes) -> None:
    """When the C scanner takes a delivery, its counts, calls (exporter.model.Call, compared as Structs)
    and raw records equal the record-by-record path's; when it declines, that path decides and nothing is
    compared."""
    for keep_raw in (True, False):
        got = scanned(data, keep_raw)
        if got is None:
            continue
        res, calls, raws = got
        want_res, want_calls, want_raws = records(data, keep_raw)
        if res != want_res:
            raise AssertionError(f"counts: C {res} vs Python {want_res}")
        if calls != want_calls:
            raise AssertionError(f"calls: C {calls!r:.600} vs Python {want_calls!r:.600}")
        if raws != want_raws:
            raise AssertionError(f"raw records (keep_raw={keep_raw}): C {raws!r:.300} vs Python {want_raws!r:.300}")
        if not keep_raw:
            tally_oracle(calls)


# -- the tally -------------------------------------------------------------------------------------------------
TALLIED = ("calls", "errors", "batch", "principals", "newest", "queues", "lag", "principal_count", "changes")
ACCESS = ("principal_calls", "cross_account", "named", "callers")


def tally_oracle(calls: list[Any]) -> None:
    """The C Tally leaves an aggregate in the state the Python Tally does after counting these calls (twice,
    so the second pass runs from warm caches), with caps small enough that queues fold and principals are
    pruned. Nothing to compare without the C Tally."""
    if tallies.TALLY is tallies.Tally:
        return
    for granularity in ("role", "arn"):
        c, p = (
            Aggregate(max_queues=3, granularity=granularity, max_principals_per_queue=2, max_principals=5, tally=t)
            for t in (tallies.TALLY, tallies.Tally)
        )
        for now in (OBSERVED, OBSERVED + 86_400.5):
            kept = c.add_calls(calls, now, "fuzz"), p.add_calls(calls, now, "fuzz")
            if kept[0] != kept[1]:
                raise AssertionError(f"tally kept: C {kept[0]} vs Python {kept[1]}")
            for name in TALLIED:
                got, want = getattr(c, name), getattr(p, name)
                if got != want:
                    raise AssertionError(f"tally {name}: C {got!r:.300} vs Python {want!r:.300}")
            for name in ACCESS:
                if getattr(c.access, name) != getattr(p.access, name):
                    raise AssertionError(f"tally access.{name} differs")


# -- the log encoder -----------------------------------------------------------------------------------------
class _NullTransport:
    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        return True, False, 0, ""

    def close(self) -> None:
        pass


def _encoding(sink: logs.LogSink) -> Any:
    """What encodes a record for the sink (fields, encode, native, native_record): its RecordEncoder
    where the sink has one, else the sink itself."""
    return getattr(sink, "encoding", sink)


def _queue(sink: logs.LogSink) -> Any:
    """What holds the sink's encoded records (queue, stopping, records_in/out …): its ExportQueue where
    it has one, else the sink itself."""
    return getattr(sink, "exports", sink)


class _Pair:
    """One redaction setting, twice: a sink with the C encoder, and one with the Python encoder alone.
    Neither exports: the export thread is stopped (so it neither drains the queue nor allocates while
    `leaked` measures) and the queue is read and emptied here."""

    def __init__(self, **redact: Any) -> None:
        self.fast, self.fast_counts = self._sink(redact)
        self.slow, self.slow_counts = self._sink(redact)
        enc = _encoding(self.slow)
        enc.native = enc.native_record = None
        assert _encoding(self.fast).native_record is not None, "the C encoder is not built"

    @staticmethod
    def _sink(redact: dict[str, Any]) -> tuple[logs.LogSink, SelfMetrics]:
        cfg = config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9", redact=config.LogsRedactConfig(**redact))
        counts = SelfMetrics()
        sink = logs.LogSink(cfg, counts, transport=_NullTransport())
        sink.shutdown(0.0)
        q = _queue(sink)
        q.stopping.clear()  # the thread has ended; emit and emit_calls go on queueing
        q.max_records = q.max_bytes = HUGE
        return sink, counts

    @staticmethod
    def take(sink: logs.LogSink) -> list[tuple[bytes, int]]:
        """The chunks queued since the last take, leaving the queue empty."""
        q = _queue(sink)
        chunks = list(q.queue)
        q.queue.clear()
        q.records_out, q.bytes_out = q.records_in, q.bytes_in
        q.open_records = q.open_bytes = 0
        return chunks


_PAIRS: list[_Pair] = []


def pairs() -> list[_Pair]:
    """One pair per redaction shape the C handles: none; HMAC and drop; plain hashing and parameters."""
    if not _PAIRS:
        _PAIRS.extend(
            [
                _Pair(),
                _Pair(source_ip="drop", user_agent="hash", access_key_id="drop", hash_key="k"),
                _Pair(
                    source_ip="hash",
                    user_agent="drop",
                    access_key_id="keep",
                    parameters={"entries": "hash", "Id": "drop", "MessageBody": "hash", "receiptHandle": "drop"},
                ),
            ]
        )
    return _PAIRS


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


def _outcome(f: Any, *args: Any) -> Any:
    try:
        return f(*args)
    except Exception as exc:
        return exc


def _body(p: _Pair, raw: bytes) -> None:
    """LogEncoder.body: (body, attributes) as the Python encoder writes them, or it declines
    (ValueError) and Python decides. Accepting what Python refuses is a mismatch."""
    try:
        fast = _encoding(p.fast).native(raw)
    except ValueError:
        return
    slow = _outcome(_encoding(p.slow).fields, raw, False)
    if fast != slow:
        raise AssertionError(f"body: C {fast!r:.300} vs Python {slow!r:.300}")


def _record(p: _Pair, raw: bytes, ev: SqsEvent) -> None:
    """LogEncoder.record, as the sink's encode uses it (declining hands the record to Python): the same
    LogRecord element as the Python encoder, or an error where Python has one too (the record then counts as
    failed either way; a SystemError is the C breaking the C API's contract, never an answer)."""
    fast = _outcome(_encoding(p.fast).encode, raw, ev, OBSERVED, False)
    slow = _outcome(_encoding(p.slow).encode, raw, ev, OBSERVED, False)
    if isinstance(fast, Exception) and isinstance(slow, Exception) and not isinstance(fast, SystemError):
        return
    if fast != slow:
        raise AssertionError(f"record: C {fast!r:.300} vs Python {slow!r:.300}")


def _split(chunk: bytes) -> int:
    """How many ScopeLogs.log_records elements (tag 2, length-delimited) a chunk holds; AssertionError
    when it is not exactly a run of them."""
    i = n = 0
    while i < len(chunk):
        if chunk[i] != 0x12:
            raise AssertionError(f"chunk: tag {chunk[i]:#x} at {i}")
        size = shift = 0
        i += 1
        while True:
            if i >= len(chunk) or shift > 63:
                raise AssertionError("chunk: truncated length")
            b = chunk[i]
            i += 1
            size |= (b & 0x7F) << shift
            shift += 7
            if b < 0x80:
                break
        i += size
        n += 1
    if i != len(chunk):
        raise AssertionError("chunk: the last element runs past its end")
    return n


def _batch(p: _Pair, raw: bytes) -> None:
    """LogSink.emit_calls (LogEncoder.encode's loop over an object's calls, the calls it stops at through
    LogEncoder.record or Python) on the record as a delivery, against the Python sink's emit per kept
    call: the same records in the same order, each chunk framed as the records it counts, and the same
    failures. The input may well hold more than one record ("…},{…")."""
    got = decode(b'{"Records":[' + raw + b"]}", True)
    calls, raws = got.calls, got.raws
    if not calls:
        return
    kept = [i % 3 != 1 for i in range(len(calls))]  # and a call the metrics dropped, when there are two
    p.fast.emit_calls(calls, raws, kept, OBSERVED)
    for call, r, keep in zip(calls, raws, kept, strict=True):
        if keep:
            p.slow.emit(r, call_event(call), OBSERVED)
    fast, slow = p.take(p.fast), p.take(p.slow)
    for c, n in fast:
        if _split(c) != n:
            raise AssertionError(f"emit_calls: a chunk counted {n} records and holds {_split(c)}")
    a, b = b"".join(c for c, _ in fast), b"".join(c for c, _ in slow)
    if a != b or sum(n for _, n in fast) != sum(n for _, n in slow):
        raise AssertionError(f"emit_calls: C {a!r:.300} vs Python {b!r:.300}")
    if p.fast_counts.log_records != p.slow_counts.log_records:
        raise AssertionError(f"emit_calls: outcomes {p.fast_counts.log_records} vs {p.slow_counts.log_records}")


def encode_oracle(data: bytes) -> None:
    """For each redaction setting: the C body, record and batch encoders write the Python encoder's
    bytes for a record they accept, and decline with ValueError what they do not handle exactly."""
    ev = _event(data)
    for p in pairs():
        _body(p, data)
        _record(p, data, ev)
        _batch(p, data)


def leaked(oracle: Any, data: bytes, rounds: int = 32, window: int = 1000, windows: int = 10) -> int:
    """Bytes the oracle keeps per call on one input (tracemalloc must be tracing), when that is at least
    LEAST (a leaked reference keeps at least one object): a reference or buffer the C forgets to release
    grows this on every call, for ever. The Python caches on the way are keyed by the input and stop
    growing after the first call; a measurement itself keeps a few hundred bytes whatever its length.
    The C's own tables of handed-out strings and key tuples are slot tables of a few thousand entries: an
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
