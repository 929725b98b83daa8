"""OTel log record per SQS event, exported over OTLP (gRPC or HTTP/protobuf).

`emit` (processing thread, under the pipeline lock) filters, encodes the LogRecord protobuf itself
(exporter.sinks.otlp, or the C encoder exporter._native.LogEncoder when it is built) and appends
it to a bounded queue; when the queue is full the record is dropped and counted, so the metrics path
never waits on the collector. One export thread drains the queue in batches and sends them, retrying
transient failures with backoff for up to `retry_max_elapsed`.

Outcomes are counted in the exporter's own counters (exporter.selfmetrics,
cloudtrail_sqs_exporter_log_records_total{outcome}): `exported`
(acknowledged by the collector), `dropped` (queue full, or still queued at the shutdown bound),
`failed` (rejected by the collector, or given up after retries). Every record that passed the filters
ends in exactly one of them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import random
import re
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import msgspec

from .. import __version__
from ..cache import BoundedCache
from ..config import LogsConfig
from ..decode.record import SqsEvent, call_event
from ..interfaces import After
from ..masking import mask_url
from ..model import NO_QUEUE, Call
from ..selfmetrics import SelfMetrics
from . import otel_env, otlp
from .otel_env import ExportSettings, export_settings, parse_headers
from .otlp_transport import GRPC_METHOD, SendResult, Transport, make_transport
from .retry import Retrier

try:  # the C log encoder; optional (built when a compiler and libcrypto's headers are present)
    from .._native import LogEncoder

    if os.environ.get("CTSQS_NATIVE", "1") == "0":
        LogEncoder = None
except ImportError:  # pragma: no cover - depends on the build
    LogEncoder = None

log = logging.getLogger(__name__)

SERVICE_NAME = "cloudtrail-sqs-exporter"
SCOPE_NAME = "cloudtrail-sqs-exporter"
SAMPLING_ATTR = "cloudtrail_sqs.sampling.ratio"

# Severity: INFO without errorCode; ERROR for authentication / authorization failures; WARN otherwise.
SEV_INFO, SEV_WARN, SEV_ERROR = (9, "INFO"), (13, "WARN"), (17, "ERROR")
AUTH_ERROR = re.compile(
    r"AccessDenied|Unauthori[sz]ed|NotAuthorized|AuthFailure|Forbidden|InvalidClientTokenId|"
    r"SignatureDoesNotMatch|ExpiredToken|IncompleteSignature|MissingAuthenticationToken|InvalidSecurity|"
    r"InvalidAccessKeyId|RequestExpired",
    re.I,
)
_severity_cache: dict[str, tuple[int, str]] = {}


def severity(error_code: str | None) -> tuple[int, str]:
    if error_code is None:
        return SEV_INFO
    s = _severity_cache.get(error_code)
    if s is None:
        s = SEV_ERROR if AUTH_ERROR.search(error_code) else SEV_WARN
        if len(_severity_cache) < 10_000:
            _severity_cache[error_code] = s
    return s


# -- settings, resource and transports: exporter.sinks.otel_env, exporter.sinks.otlp_transport ---------------------


def resource_attributes(env: Mapping[str, str] | None = None) -> dict[str, Any]:
    """OTEL_RESOURCE_ATTRIBUTES and OTEL_SERVICE_NAME over this exporter's identity (service.name
    cloudtrail-sqs-exporter rather than the SDK's unknown_service)."""
    return otel_env.resource_attributes(env, SERVICE_NAME, __version__)


# -- redaction -----------------------------------------------------------------------------------------------------


class Redactor:
    """Applies `logs.redact` to a decoded record in place: keep, drop, or hash."""

    def __init__(self, cfg: Any) -> None:
        key = cfg.hash_key.encode() if cfg.hash_key else None
        self.source_ip = cfg.source_ip
        self.user_agent = cfg.user_agent
        self.access_key_id = cfg.access_key_id
        self.params = {k: v for k, v in cfg.parameters.items() if v != "keep"}
        self._hash_cache: dict[str, str] = {}
        self._pads: tuple[Any, Any] | None = None
        # what the C encoder hashes strings with: the HMAC key as RFC 2104 uses it (hashed when long)
        self.native_key = None if key is None else (hashlib.sha256(key).digest() if len(key) > 64 else key)
        if self.native_key is not None:
            block = self.native_key.ljust(64, b"\0")
            self._pads = (
                hashlib.sha256(bytes(x ^ 0x36 for x in block)),
                hashlib.sha256(bytes(x ^ 0x5C for x in block)),
            )

    def hash(self, value: Any) -> str:
        s = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        h = self._hash_cache.get(s)
        if h is None:
            b = s.encode("utf-8", "surrogatepass")
            if self._pads is not None:  # HMAC-SHA256 from the keyed pads (RFC 2104), twice as fast as hmac.digest
                inner, outer = self._pads[0].copy(), self._pads[1].copy()
                inner.update(b)
                outer.update(inner.digest())
                digest = outer.digest()
            else:
                digest = hashlib.sha256(b).digest()
            h = "sha256:" + digest[:16].hex()
            if len(s) <= 64:  # ids and addresses repeat; receipt handles (hundreds of chars) never do
                if len(self._hash_cache) > 100_000:
                    self._hash_cache.clear()
                self._hash_cache[s] = h
        return h

    def _apply(self, d: dict[str, Any], key: str, action: str) -> None:
        if key in d:
            if action == "drop":
                del d[key]
            elif action == "hash" and d[key] is not None:
                d[key] = self.hash(d[key])

    def __call__(self, rec: dict[str, Any]) -> None:
        if self.source_ip != "keep":
            self._apply(rec, "sourceIPAddress", self.source_ip)
        if self.user_agent != "keep":
            self._apply(rec, "userAgent", self.user_agent)
        if self.access_key_id != "keep":
            ident = rec.get("userIdentity")
            if type(ident) is dict:
                self._apply(ident, "accessKeyId", self.access_key_id)
        if self.params:
            for top in ("requestParameters", "responseElements"):
                v = rec.get(top)
                if v:
                    self._walk(v)

    def _walk(self, node: Any) -> None:
        if type(node) is dict:
            params = self.params
            for k in list(node):
                action = params.get(k)
                if action is not None:
                    self._apply(node, k, action)
                else:
                    v = node[k]
                    if type(v) is dict or type(v) is list:
                        self._walk(v)
        elif type(node) is list:
            for x in node:
                if type(x) is dict or type(x) is list:
                    self._walk(x)


# -- the sink ------------------------------------------------------------------------------------------------------

_decode = msgspec.json.decode
_decode_fields = msgspec.json.Decoder(dict[str, msgspec.Raw]).decode
# top-level fields that differ on every call: not worth caching
_UNIQUE = frozenset(("eventID", "requestID", "sharedEventID"))
# top-level values the attributes read
_WANTED = frozenset(("sourceIPAddress", "userAgent", "readOnly", "userIdentity"))
_DROPPED = object()
# attributes read from the record, in the order both encoders write them (see exporter/_native.c)
_RECORD_ATTRS = (
    "client.address",
    "user_agent.original",
    "aws.cloudtrail.read_only",
    "aws.cloudtrail.user_identity.type",
    "aws.request_id",
    "aws.cloudtrail.event_id",
)
_CONSTANT_ATTRS = b"".join(
    otlp.attribute(k, v, False)
    for k, v in (
        ("cloud.provider", "aws"),
        ("rpc.system", "aws-api"),
        ("rpc.service", "SQS"),
        ("messaging.system", "aws_sqs"),
    )
)


class EncoderSettings(msgspec.Struct, frozen=True):
    """What the C log encoder is built from: the redaction rules and the export batch limits."""

    source_ip: int  # 0 keep, 1 drop, 2 hash
    user_agent: int
    access_key_id: int
    params: tuple[tuple[bytes, int], ...]  # requestParameters / responseElements keys and their action
    hasher: Callable[[Any], str]  # for redacted values that are not strings (strings are hashed in C)
    hash_key: bytes | None  # HMAC-SHA256 key; None: plain SHA-256
    decode: Callable[[bytes], Any]
    batch_records: int
    batch_bytes: int


_ACTION = {"keep": 0, "drop": 1, "hash": 2}


def encoder_settings(cfg: LogsConfig, redact: Redactor, batch_records: int, batch_bytes: int) -> EncoderSettings:
    r = cfg.redact
    return EncoderSettings(
        source_ip=_ACTION[r.source_ip],
        user_agent=_ACTION[r.user_agent],
        access_key_id=_ACTION[r.access_key_id],
        params=tuple((k.encode(), _ACTION[v]) for k, v in redact.params.items()),
        hasher=redact.hash,
        hash_key=redact.native_key,
        decode=_decode,
        batch_records=batch_records,
        batch_bytes=batch_bytes,
    )


class LogSink:
    def __init__(
        self,
        cfg: LogsConfig,
        counters: SelfMetrics,
        transport: Transport | None = None,
        env: Mapping[str, str] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg
        # outcomes are counted from both threads: the counters' own lock keeps every increment
        self.count = counters.count_log
        self.settings = export_settings(cfg, env)
        self.transport = transport or make_transport(self.settings)
        self.retry = Retrier(self.settings.timeout, cfg.retry_max_elapsed)
        self.builder = otlp.RequestBuilder(resource_attributes(env), SCOPE_NAME, __version__)
        self.redact = Redactor(cfg.redact)
        self.record_field = self.builder.record_field
        self.batch_size = cfg.batch_size
        self.batch_bytes = cfg.batch_max_bytes - self.builder.overhead()
        # the C encoder (exporter._native.LogEncoder) when built and not turned off (CTSQS_NATIVE=0)
        self.encoder: Any = None
        if LogEncoder is not None:
            self.encoder = LogEncoder(encoder_settings(cfg, self.redact, self.batch_size, self.batch_bytes))
        self.native: Callable[[bytes], tuple[bytes, bytes]] | None = self.encoder.body if self.encoder else None
        self.native_record: Callable[..., bytes] | None = self.encoder.record if self.encoder else None
        # (top-level key, raw JSON) → (encoded KeyValue element, redacted value); see body()
        self._field_cache: dict[tuple[str, bytes], tuple[bytes, Any]] = {}
        # (labels, error, queue) → (attributes up to the error type, severity, event name, is a batch call);
        # batch size → messaging.batch.message_count; principal → user.id and enduser.id. The encoder's
        # own caches when it is built: its encode() reads them.
        enc = self.encoder
        self._kind_cache: BoundedCache[Any, tuple[bytes, bytes, bytes, bool]] = (
            enc.kinds if enc else BoundedCache(65_536)
        )
        self._batch_attrs: BoundedCache[int, bytes] = enc.batch_sizes if enc else BoundedCache(4096)
        self._principal_cache: BoundedCache[str, bytes] = enc.principals if enc else BoundedCache(65_536)
        self._part_cache: dict[tuple[Any, ...], Any] = {}  # see _call_kind
        self.rng = rng
        # filters
        self.only_errors = cfg.only_errors
        self.only_management = cfg.only_management
        self.include = frozenset(cfg.include_events) if cfg.include_events is not None else None
        self.exclude = frozenset(cfg.exclude_events or ())
        self.ratio = cfg.sample_ratio
        self.filtering = bool(self.only_errors or self.only_management or self.include is not None or self.exclude)
        # queue of encoded records, as (concatenated LogRecord elements, how many): deque appends/pops
        # are atomic; records and bytes held = in - out, each side written by one thread. Records are
        # encoded by `emit`, on the processing thread: on one core a second Python thread only adds GIL
        # hand-offs, and encoded records are what a batch needs. Chunks are cut where the producer's
        # batch ends (open_records / open_bytes: that batch so far), so the export thread sends whole
        # chunks and no request grows past batch_size records or batch_max_bytes.
        self.queue: deque[tuple[bytes, int]] = deque()
        self.max_records = cfg.queue_size
        self.max_bytes = cfg.queue_max_bytes
        self.records_in = self.records_out = 0
        self.bytes_in = self.bytes_out = 0
        self.open_records = self.open_bytes = 0
        # wait for room instead of dropping when the queue is full (replay); see _wait_for_room
        self.block = False
        self.room = threading.Event()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.deadline = float("inf")  # monotonic; set by shutdown
        self.thread = threading.Thread(target=self._run, name="otlp-logs-export", daemon=True)
        self.thread.start()
        log.info(
            "OTel logs: %s to %s (queue %d records / %d MiB)",
            self.settings.protocol,
            mask_url(self.settings.endpoint),
            self.max_records,
            self.max_bytes >> 20,
        )

    # -- as a sink ----------------------------------------------------------------------------------------------
    wants_raw = True

    def consume(self, calls: list[Call], raws: list[Any], observed: float, source: str) -> After | None:
        """The calls of one object, already through the metrics filters."""
        self.emit_calls(calls, raws, [True] * len(calls), observed)
        return None

    # -- processing thread --------------------------------------------------------------------------------------
    def emit(self, raw: Any, ev: SqsEvent, observed: float) -> None:
        if self.filtering and not self._keep(ev):
            return
        sampled = False
        if self.ratio < 1.0 and ev.category == "Data" and ev.error_code is None:
            if self.rng() >= self.ratio:
                return
            sampled = True
        if (self._full() or self.stopping.is_set()) and not (self.block and self._wait_for_room()):
            self.count("dropped")
            return
        try:
            f = self.encode(raw, ev, observed, sampled)
        except Exception:
            self._failed(ev.event_name)
            return
        self._enqueue(f)

    def _failed(self, event_name: str) -> None:
        log.exception("OTel logs: cannot encode a record of %s", event_name)
        self.count("failed")

    def _full(self) -> bool:
        return self.queued() >= self.max_records or self.bytes_in - self.bytes_out > self.max_bytes

    def _enqueue(self, f: bytes) -> None:
        n = len(f)
        if self.open_records and (self.open_records >= self.batch_size or self.open_bytes + n > self.batch_bytes):
            self.open_records = self.open_bytes = 0  # this record starts the next batch (as in LogEncoder.encode)
        self.open_records += 1
        self.open_bytes += n
        self.records_in += 1
        self.bytes_in += n
        self.queue.append((f, 1))
        self._wake_at_batch()

    def _wake_at_batch(self) -> None:
        """A full batch is queued: the export thread need not wait out the flush interval."""
        if (
            self.queued() >= self.batch_size or self.bytes_in - self.bytes_out >= self.batch_bytes
        ) and not self.wake.is_set():
            self.wake.set()

    def emit_calls(self, calls: list[Call], raws: list[Any], kept: list[bool], observed: float) -> None:
        """emit() for the calls of one object (exporter.model.Call), where the
        metrics `kept` them. Without event filters or sampling, and with the C module, LogEncoder.encode
        writes the records of a run of calls at once, with the attribute blocks cached here per kind of
        call, batch size and principal; the call where it stops (a cache miss, a full queue, a record it
        leaves to the Python encoder) goes through _emit_call, then it goes on. tests/test_native.py
        checks that the records sent are the bytes emit() sends."""
        if self.filtering or self.ratio < 1.0 or self.native_record is None:
            for call, raw, keep in zip(calls, raws, kept, strict=True):
                if keep:
                    self.emit(raw, call_event(call), observed)
            return
        o_ns = int(observed * 1e9)
        encode = self.encoder.encode
        q = self.queue
        i, n = 0, len(calls)
        while i < n:
            if not self.stopping.is_set():
                budget = (
                    self.max_records - self.queued(),
                    self.max_bytes - (self.bytes_in - self.bytes_out),
                    self.open_records,
                    self.open_bytes,
                )
                chunks, i, size, self.open_records, self.open_bytes = encode(calls, raws, kept, i, o_ns, budget)
                if chunks:
                    self.records_in += sum(c[1] for c in chunks)
                    self.bytes_in += size
                    q.extend(chunks)
                    self._wake_at_batch()
            if i < n:
                if kept[i]:
                    self._emit_call(calls[i], raws[i], o_ns, observed)
                i += 1

    def _emit_call(self, call: Call, raw: Any, o_ns: int, observed: float) -> None:
        """One call of emit_calls, in Python: fills the caches LogEncoder.encode reads."""
        if self._full() or self.stopping.is_set():
            self.emit(raw, call_event(call), observed)  # waits for room, or counts the drop
            return
        attrs, head, tail = self._attributes((call.labels, call.error, call.queue), call.entries, call.principal_arn)
        t = call.time
        try:
            t_ns = int(t * 1e9) if t is not None else 0
            f = self.encoder.record(raw, t_ns, o_ns, (head, attrs, tail))
        except ValueError:  # input the C encoder does not handle exactly: encode() decides
            self.emit(raw, call_event(call), observed)
            return
        except Exception:
            self._failed(call.labels.event_name)
            return
        self._enqueue(f)

    def _wait_for_room(self) -> bool:
        """Back-pressure for batch runs (`replay`): wait for the export thread instead of dropping.
        The daemon never waits here: its scrapes share the lock `emit` is called under."""
        while not self.stopping.is_set() and self.thread.is_alive():
            if not self._full():
                return True
            self.room.clear()
            self.wake.set()
            self.room.wait(0.05)
        return False

    def _keep(self, ev: SqsEvent) -> bool:
        if self.only_errors and ev.error_code is None:
            return False
        if self.only_management and ev.category != "Management":
            return False
        if self.include is not None and ev.event_name not in self.include:
            return False
        return ev.event_name not in self.exclude

    # -- export thread ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        q = self.queue
        try:
            while True:
                if self.queued() < self.batch_size and not self.stopping.is_set():
                    # a partial batch waits up to one flush interval for more (emit wakes us at a full one)
                    self.wake.wait(self.cfg.flush_interval)
                    self.wake.clear()
                if self.stopping.is_set() and (not q or time.monotonic() >= self.deadline):
                    return
                if q:
                    self._export_one()
        except Exception:
            log.exception("OTel log export thread failed")
        finally:
            self._abandon()

    def _abandon(self) -> None:
        """Whatever is still queued when the thread ends is dropped (and counted)."""
        left = 0
        q = self.queue
        while q:
            try:
                left += q.popleft()[1]
            except IndexError:
                break
        if left:
            self.count("dropped", left)
            log.warning("OTel logs: %d records still queued at shutdown were dropped", left)

    def _export_one(self) -> None:
        """One request of whole chunks: as many as fit in batch_size records and batch_max_bytes (a
        chunk that fits nothing alone, a single oversized record, goes alone)."""
        q = self.queue
        chunks: list[bytes] = []
        count = size = 0
        most, limit = self.batch_size, self.batch_bytes
        while q:
            f, n = q[0]  # this thread is the only consumer: the head stays until popped here
            if chunks and (count + n > most or size + len(f) > limit):
                break
            q.popleft()
            chunks.append(f)
            count += n
            size += len(f)
        self.records_out += count
        self.bytes_out += size
        self.room.set()
        if not chunks:
            return
        if time.monotonic() >= self.deadline:
            self.count("dropped", count)
            return
        self._send(self.builder.request(chunks), count)

    def _send(self, body: bytes, n: int) -> None:
        res = self.retry.run(lambda timeout: self.transport.send(body, timeout), self.stopping, lambda: self.deadline)
        if res.ok:
            if res.rejected:
                log.warning("OTel logs: collector rejected %d of %d records: %s", res.rejected, n, res.message)
            self.count("exported", n - res.rejected)
            self.count("failed", res.rejected)
            return
        log.log(self.retry.give_up_level(), "OTel logs: export of %d records failed: %s", n, res.message)
        self.count("failed", n)

    # -- encoding -----------------------------------------------------------------------------------------------
    def body(self, raw: bytes) -> tuple[bytes, dict[str, Any]]:
        """The record as ready KeyValueList bytes, and the (redacted) top-level values the attributes
        need. Most top-level fields repeat from record to record (the caller's identity, the queue's
        parameters, TLS details, the event time…): each is encoded once per distinct raw JSON, so only
        the per-call parts (ids, message ids) are decoded and encoded every time."""
        cache = self._field_cache
        parts = []
        vals: dict[str, Any] = {}
        for k, r in _decode_fields(raw).items():
            if k in _UNIQUE:
                v = _decode(r)
                vals[k] = v
                parts.append(otlp.kv_element(k, v))
                continue
            rb = bytes(r)
            hit = cache.get((k, rb))
            if hit is None:
                one = {k: _decode(rb)}
                self.redact(one)
                hit = (otlp.kv_element(k, one[k]), one[k]) if k in one else (b"", _DROPPED)
                if len(rb) <= 4096:
                    if len(cache) >= 65_536:
                        cache.clear()
                    cache[(k, rb)] = hit
            if hit[1] is not _DROPPED:
                parts.append(hit[0])
                if k in _WANTED:
                    vals[k] = hit[1]
        return b"".join(parts), vals

    def fields(self, raw: bytes, use_native: bool = True) -> tuple[bytes, bytes]:
        """(body KeyValueList bytes, the attributes read from the record: client.address,
        user_agent.original, aws.cloudtrail.read_only, aws.cloudtrail.user_identity.type,
        aws.request_id, aws.cloudtrail.event_id), redacted: from the C encoder when it handles the
        record, else from body(). Both write the same bytes (tests/test_native.py)."""
        if use_native and self.native is not None:
            try:
                return self.native(raw)
            except ValueError:
                pass  # input it does not handle exactly: the Python encoder decides
        body, rec = self.body(raw)
        get = rec.get
        ident = get("userIdentity")
        values = (
            get("sourceIPAddress"),
            get("userAgent"),
            get("readOnly"),
            ident.get("type") if type(ident) is dict else None,
            get("requestID"),
            get("eventID"),
        )
        attr = otlp.attribute
        extra = b"".join(attr(k, v, False) for k, v in zip(_RECORD_ATTRS, values, strict=True) if v is not None)
        return body, extra

    def encode(self, raw: bytes, ev: SqsEvent, observed: float, sampled: bool) -> bytes:
        """The LogRecord, as an element of ScopeLogs.log_records (tag and length included)."""
        e = ev
        kind = ((e.account_id, e.region, e.queue, e.event_name, e.category), e.error_code, (e.queue_url, e.queue_arn))
        attrs, head, tail = self._attributes(kind, e.batch_entries, e.principal_arn)
        if sampled:
            attrs += otlp.attribute(SAMPLING_ATTR, self.ratio)
        t = ev.event_time
        t_ns = int(t * 1e9) if t is not None else 0
        o_ns = int(observed * 1e9)
        if self.native_record is not None:
            try:
                return self.native_record(raw, t_ns, o_ns, (head, attrs, tail))
            except ValueError:
                pass  # the Python encoder decides (fields() below does not try C again)
        body, extra = self.fields(raw, use_native=False)
        number, text = severity(ev.error_code)
        event_name = "aws.cloudtrail.sqs." + ev.event_name
        return self.record_field(otlp.log_record(t_ns, o_ns, number, text, body, attrs + extra, event_name))

    def _attributes(self, kind: tuple[Any, ...], entries: int, principal: str | None) -> tuple[bytes, bytes, bytes]:
        """(attributes, severity fields, event-name field) of a call: the part that repeats for every call
        of one kind on a queue, the batch size and the principal, each cached (LogEncoder.encode reads the same
        caches). `kind` is (labels, error, queue) of a Call."""
        hit = self._kind_cache.get(kind)
        if hit is None:
            hit = self._kind_cache.put(kind, self._call_kind(*kind))
        attrs, head, tail, batch = hit
        if batch:
            b = self._batch_attrs.get(entries)
            if b is None:
                b = otlp.attribute("messaging.batch.message_count", entries)
                if type(entries) is int:
                    self._batch_attrs.put(entries, b)
            attrs += b
        if principal:
            p = self._principal_cache.get(principal)
            attrs += p if p is not None else self._principal_attributes(principal)
        return attrs, head, tail

    def _principal_attributes(self, principal: str) -> bytes:
        p = otlp.attribute("user.id", principal, False) + otlp.attribute("enduser.id", principal, False)
        if len(principal) <= 256:
            self._principal_cache.put(principal, p)
        return p

    def _call_kind(
        self, labels: tuple[Any, ...], error: str | None, urls: tuple[str | None, str | None]
    ) -> tuple[bytes, bytes, bytes, bool]:
        """(attributes up to the error type, severity fields, event-name field, whether a batch call), from
        parts cached per account and region, per event name and category, per queue and per error: a
        trail touching thousands of queues has as many kinds of call, but few of each part."""
        account, region, queue, name, category = labels
        url, arn = urls
        parts = self._part_cache
        if len(parts) >= 65_536:
            parts.clear()
        attr = otlp.attribute
        where = parts.get(("where", account, region))
        if where is None:
            where = parts[("where", account, region)] = (
                attr("cloud.account.id", account) + attr("cloud.region", region) + _CONSTANT_ATTRS
            )
        what = parts.get(("what", name, category))
        if what is None:
            what = parts[("what", name, category)] = attr("rpc.method", name) + attr(
                "aws.cloudtrail.event_category", category
            )
        target = parts.get(("queue", queue, url, arn))
        if target is None:
            target = parts[("queue", queue, url, arn)] = (
                (attr("cloud.resource_id", arn) if arn else b"")
                + (attr("aws.sqs.queue.url", url) if url else b"")
                + (attr("messaging.destination.name", queue) if queue != NO_QUEUE else b"")
            )
        outcome = parts.get(("outcome", name, error))
        if outcome is None:
            number, text = severity(error)
            outcome = parts[("outcome", name, error)] = (
                attr("error.type", error, False) if error is not None else b"",
                otlp.severity_fields(number, text),
                otlp.event_name_field("aws.cloudtrail.sqs." + name),
                name.endswith("Batch"),
            )
        return where + what + target + outcome[0], outcome[1], outcome[2], outcome[3]

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def queued(self) -> int:
        """Records waiting to be exported."""
        return self.records_in - self.records_out

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush what is queued within the bound (`shutdown_timeout`), then stop the export thread."""
        bound = self.cfg.shutdown_timeout if timeout is None else timeout
        self.deadline = time.monotonic() + bound
        self.stopping.set()
        self.wake.set()
        self.thread.join(bound + self.settings.timeout + 5.0)
        try:
            self.transport.close()
        except Exception:
            log.debug("closing the OTLP transport failed", exc_info=True)


def build_log_sink(cfg: LogsConfig, counters: SelfMetrics, block: bool = False) -> LogSink:
    sink = LogSink(cfg, counters)
    sink.block = block
    if block:  # a batch run waits for room: a few batches of queue keep the exporter busy, and RSS low
        sink.max_records = min(sink.max_records, 4 * cfg.batch_size)
        sink.max_bytes = min(sink.max_bytes, 4 * cfg.batch_max_bytes)
    return sink


__all__ = [
    "GRPC_METHOD",
    "ExportSettings",
    "LogSink",
    "SendResult",
    "Transport",
    "build_log_sink",
    "export_settings",
    "parse_headers",
    "resource_attributes",
    "severity",
]
