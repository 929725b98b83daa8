"""A CloudTrail record → its OTLP LogRecord bytes: the body, the attributes, the severity.

The attribute blocks that repeat (per kind of call, batch size and principal) are cached as ready bytes;
with the C encoder (exporter._native.LogEncoder, when it is built) the caches are the encoder's own, which
it reads when it writes a run of records (`LogSink.emit_calls`). Where the C encoder declines a record,
the Python encoder here decides; both write the same bytes (tests/test_native.py).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable
from typing import Any

import msgspec
from opentelemetry.semconv.schemas import Schemas

from ...access import POLICY_EVENTS, record_changes
from ...cache import BoundedCache
from ...config import LogsConfig
from ...decode.record import SqsEvent
from ...model import NO_QUEUE
from . import wire
from .redaction import Redactor

try:  # the C log encoder; optional (built when a compiler and libcrypto's headers are present)
    from ..._native import LogEncoder

    if os.environ.get("CTSQS_NATIVE", "1") == "0":
        LogEncoder = None
except ImportError:  # pragma: no cover - depends on the build
    LogEncoder = None

SAMPLING_ATTR = "cloudtrail_sqs.sampling.ratio"
EXPOSURE_ATTR = "aws.cloudtrail.sqs.exposure"
ENCRYPTION_ATTR = "aws.cloudtrail.sqs.encryption"

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
# The semantic conventions the attributes follow: the newest schema of the pinned
# opentelemetry-semantic-conventions (constraints.txt), written on the scope; tests/test_semconv.py fails on
# any key that version deprecates.
SCHEMA_URL = Schemas.V1_44_0.value
_CONSTANT_ATTRS = b"".join(
    wire.attribute(k, v, False)
    for k, v in (
        ("cloud.provider", "aws"),
        ("rpc.system.name", "aws-api"),
        ("messaging.system", "aws_sqs"),
    )
)
# messaging.operation.type of the message APIs; other calls (queue management) have none
OPERATION_TYPES = {
    "SendMessage": "send",
    "SendMessageBatch": "send",
    "ReceiveMessage": "receive",
    "DeleteMessage": "settle",
    "DeleteMessageBatch": "settle",
    "ChangeMessageVisibility": "settle",
    "ChangeMessageVisibilityBatch": "settle",
}


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


class RecordEncoder:
    """Encodes the records of one log sink, with its redaction rules and its caches."""

    def __init__(
        self, cfg: LogsConfig, redact: Redactor, builder: wire.RequestBuilder, batch_records: int, batch_bytes: int
    ) -> None:
        self.redact = redact
        self.ratio = cfg.sample_ratio
        self.record_field = builder.record_field
        # the C encoder (exporter._native.LogEncoder) when built and not turned off (CTSQS_NATIVE=0)
        self.encoder: Any = None
        if LogEncoder is not None:
            self.encoder = LogEncoder(encoder_settings(cfg, redact, batch_records, batch_bytes))
        self.native: Callable[[bytes], tuple[bytes, bytes]] | None = self.encoder.body if self.encoder else None
        self.native_record: Callable[..., bytes] | None = self.encoder.record if self.encoder else None
        # (top-level key, raw JSON) → (encoded KeyValue element, redacted value); see body()
        self._field_cache: dict[tuple[str, bytes], tuple[bytes, Any]] = {}
        # (labels, error, queue) → (attributes up to the error type, severity, event name, is a batch call);
        # batch size → messaging.batch.message_count; principal → user.id. The encoder's
        # own caches when it is built: its encode() reads them.
        enc = self.encoder
        self._kind_cache: BoundedCache[Any, tuple[Any, ...]] = enc.kinds if enc else BoundedCache(65_536)
        self._batch_attrs: BoundedCache[int, bytes] = enc.batch_sizes if enc else BoundedCache(4096)
        self._principal_cache: BoundedCache[str, bytes] = enc.principals if enc else BoundedCache(65_536)
        self._part_cache: dict[tuple[Any, ...], Any] = {}  # see _call_kind

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
                parts.append(wire.kv_element(k, v))
                continue
            rb = bytes(r)
            hit = cache.get((k, rb))
            if hit is None:
                one = {k: _decode(rb)}
                self.redact(one)
                hit = (wire.kv_element(k, one[k]), one[k]) if k in one else (b"", _DROPPED)
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
        attr = wire.attribute
        extra = b"".join(attr(k, v, False) for k, v in zip(_RECORD_ATTRS, values, strict=True) if v is not None)
        return body, extra

    def encode(self, raw: bytes, ev: SqsEvent, observed: float, sampled: bool) -> bytes:
        """The LogRecord, as an element of ScopeLogs.log_records (tag and length included)."""
        e = ev
        kind = ((e.account_id, e.region, e.queue, e.event_name, e.category), e.error_code, (e.queue_url, e.queue_arn))
        attrs, head, tail = self.attributes(kind, e.batch_entries, e.principal_arn)
        if e.event_name in POLICY_EVENTS:
            attrs += access_attributes(raw, e.event_name, e.error_code, e.account_id)
        if sampled:
            attrs += wire.attribute(SAMPLING_ATTR, self.ratio)
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
        return self.record_field(wire.log_record(t_ns, o_ns, number, text, body, attrs + extra, event_name))

    def attributes(self, kind: tuple[Any, ...], entries: int, principal: str | None) -> tuple[bytes, bytes, bytes]:
        """(attributes, severity fields, event-name field) of a call: the part that repeats for every call
        of one kind on a queue, the batch size and the principal, each cached (LogEncoder.encode reads the same
        caches). `kind` is (labels, error, queue) of a Call."""
        hit = self._kind_cache.get(kind)
        if hit is None:
            hit = self._kind_cache.put(kind, self._call_kind(*kind))
        attrs, head, tail, batch = hit[0], hit[1], hit[2], hit[3]
        if batch:
            b = self._batch_attrs.get(entries)
            if b is None:
                b = wire.attribute("messaging.batch.message_count", entries)
                if type(entries) is int:
                    self._batch_attrs.put(entries, b)
            attrs += b
        if principal:
            p = self._principal_cache.get(principal)
            attrs += p if p is not None else self._principal_attributes(principal)
        return attrs, head, tail

    def _principal_attributes(self, principal: str) -> bytes:
        p = wire.attribute("user.id", principal, False)
        if len(principal) <= 256:
            self._principal_cache.put(principal, p)
        return p

    def _call_kind(
        self, labels: tuple[Any, ...], error: str | None, urls: tuple[str | None, str | None]
    ) -> tuple[Any, ...]:
        """(attributes up to the error type, severity fields, event-name field, whether a batch call[, the
        function of the raw record giving the exposure/encryption attributes of a call that sets them]), from
        parts cached per account and region, per event name and category, per queue and per error: a
        trail touching thousands of queues has as many kinds of call, but few of each part."""
        account, region, queue, name, category = labels
        url, arn = urls
        parts = self._part_cache
        if len(parts) >= 65_536:
            parts.clear()
        attr = wire.attribute
        where = parts.get(("where", account, region))
        if where is None:
            where = parts[("where", account, region)] = (
                attr("cloud.account.id", account) + attr("cloud.region", region) + _CONSTANT_ATTRS
            )
        what = parts.get(("what", name, category))
        if what is None:
            op = OPERATION_TYPES.get(name)
            what = parts[("what", name, category)] = (
                attr("rpc.method", "SQS." + name)
                + attr("aws.cloudtrail.event_category", category)
                + attr("messaging.operation.name", name)
                + (attr("messaging.operation.type", op) if op is not None else b"")
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
                wire.severity_fields(number, text),
                wire.event_name_field("aws.cloudtrail.sqs." + name),
                name.endswith("Batch"),
            )
        attrs = where + what + target + outcome[0]
        if error is None and name in POLICY_EVENTS:
            # a call that may change a queue's exposure or encryption carries attributes read from its
            # record: LogEncoder.encode asks this function for them (the Python path: access_attributes)
            return attrs, outcome[1], outcome[2], outcome[3], _change_attributes(name, account)
        return attrs, outcome[1], outcome[2], outcome[3]


def _change_attributes(event_name: str, owner: str) -> Callable[[Any], bytes]:
    return lambda raw: access_attributes(raw, event_name, None, owner)


def access_attributes(raw: Any, event_name: str, error: str | None, owner: str) -> bytes:
    """`aws.cloudtrail.sqs.exposure` / `aws.cloudtrail.sqs.encryption` of a successful call that sets a
    queue's policy or encryption (exporter.access, as the metrics count them), else nothing."""
    if error is not None or event_name not in POLICY_EVENTS or raw is None:
        return b""
    exposure, encryption = record_changes(raw, event_name, owner)
    out = wire.attribute(EXPOSURE_ATTR, exposure) if exposure is not None else b""
    return out + (wire.attribute(ENCRYPTION_ATTR, encryption) if encryption is not None else b"")
