"""OTLP log encoding, three ways, on the same SQS records: the OTel SDK, the project's Python encoder, its C encoder.

    python bench/otlp_encoders.py                 # 20,000 records, batches of 2,048, median of 3
    python bench/otlp_encoders.py --records 5000 --repeats 5

Each encoder turns the same (raw CloudTrail JSON, decoded event) pairs into ExportLogsServiceRequest bytes
with the same body (the record as a key/value map), attributes, severity and event name; redaction is off
(every field kept) so all three do the same work. The figure is records per CPU second (process time),
median of the repeats; the encoders take turns within each repeat so the machine's drift hits them alike.
Before timing, the first request of each is decoded with opentelemetry-proto and compared with the SDK's.

Each encoder is one small adapter function below (`sdk_encoder`, `python_encoder`, `c_encoder`): when the
log sink's interface changes, only those change. docs/adr/0001-hand-written-otlp-encoder.md has the figures.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from exporter import config, generator
from exporter.decode.record import SqsRecord, to_event

# (raw JSON of one CloudTrail record, its decoded event): what every encoder gets
Item = tuple[bytes, Any]
# encoder: one batch of items → ExportLogsServiceRequest bytes
Encode = Callable[[Sequence[Item]], bytes]
OBSERVED_NS = 1_795_000_000_000_000_000
KEEP_ALL = {"source_ip": "keep", "user_agent": "keep", "access_key_id": "keep", "parameters": {}}
# messaging.operation.type of the message APIs (semantic conventions: send, receive, settle)
OPERATION_TYPES = {
    "SendMessage": "send",
    "SendMessageBatch": "send",
    "ReceiveMessage": "receive",
    "DeleteMessage": "settle",
    "DeleteMessageBatch": "settle",
    "ChangeMessageVisibility": "settle",
    "ChangeMessageVisibilityBatch": "settle",
}


def make_items(n: int, seed: int = 1) -> list[Item]:
    """n SQS API call records from the project's generator, as raw JSON and decoded events."""
    gen = generator.Generator(seed=seed, accounts=4, queues_per_account=12)
    rng = random.Random(seed)
    slots = [(a, r) for a in gen.accounts for r in gen.regions]
    items = []
    for i in range(n):
        acct, region = rng.choice(slots)
        raw = msgspec.json.encode(gen.sqs_record(acct, region, gen.start + timedelta(seconds=i // 10)))
        items.append((raw, event_of(raw)))
    return items


def event_of(raw: bytes) -> Any:
    return to_event(msgspec.json.decode(raw, type=SqsRecord))


# -- the project's log sink (Python and C encoders) -----------------------------------------------------------------


class NotBuilt(Exception):
    pass


class _NoTransport:
    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        return True, False, 0, ""

    def close(self) -> None:
        pass


@contextmanager
def project_sink() -> Iterator[Any]:
    from exporter.selfmetrics import SelfMetrics
    from exporter.sinks.logs import LogSink

    cfg = config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9", redact=config.LogsRedactConfig(**KEEP_ALL))
    sink = LogSink(cfg, SelfMetrics(), transport=_NoTransport(), env={})
    try:
        yield sink
    finally:
        sink.shutdown(1.0)


def python_encoder(sink: Any) -> Encode:
    """The pure-Python path of the sink: LogSink.encode with the C encoder switched off."""
    sink.encoding.native = sink.encoding.native_record = None

    def encode(batch: Sequence[Item]) -> bytes:
        enc = sink.encoding.encode
        return sink.builder.request([enc(raw, ev, OBSERVED_NS / 1e9, False) for raw, ev in batch])

    return encode


def c_encoder(sink: Any) -> Encode:
    """The C path of the same sink: LogSink.encode, which hands each record to exporter._native."""
    if sink.encoding.native_record is None:
        raise NotBuilt("the C extension is not built (python setup.py build_ext --inplace) or CTSQS_NATIVE=0")

    def encode(batch: Sequence[Item]) -> bytes:
        enc = sink.encoding.encode
        return sink.builder.request([enc(raw, ev, OBSERVED_NS / 1e9, False) for raw, ev in batch])

    return encode


# -- the OTel SDK -------------------------------------------------------------------------------------------------


def sdk_encoder() -> Encode:
    """What the SDK's log pipeline does per record: the API LogRecord, the SDK's ReadWriteLogRecord (bounded
    attributes) that Logger.emit builds, the ReadableLogRecord the batch processor hands the exporter, and
    the OTLP exporter's encode_logs(...).SerializeToString() per batch. The processor's queue and thread
    are left out (they only add to the SDK's cost)."""
    from opentelemetry._logs import LogRecord, SeverityNumber
    from opentelemetry.exporter.otlp.proto.common._log_encoder import encode_logs
    from opentelemetry.sdk._logs import ReadableLogRecord, ReadWriteLogRecord
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.util.instrumentation import InstrumentationScope

    from exporter import __version__
    from exporter.sinks.logs.encoding import SCHEMA_URL

    resource = Resource.create({"service.name": "cloudtrail-sqs-exporter"})
    scope = InstrumentationScope("cloudtrail-sqs-exporter", __version__, SCHEMA_URL)
    decode = msgspec.json.decode
    # the sink's severity rule: ERROR for authentication / authorization failures, WARN for other errors
    auth = re.compile(
        r"AccessDenied|Unauthori[sz]ed|NotAuthorized|AuthFailure|Forbidden|InvalidClientTokenId|"
        r"SignatureDoesNotMatch|ExpiredToken|IncompleteSignature|MissingAuthenticationToken|InvalidSecurity|"
        r"InvalidAccessKeyId|RequestExpired",
        re.I,
    )

    def record(raw: bytes, ev: Any) -> ReadableLogRecord:
        body = decode(raw)
        ident = body.get("userIdentity")
        attrs: dict[str, Any] = {
            "cloud.account.id": ev.account_id,
            "cloud.region": ev.region,
            "cloud.provider": "aws",
            "rpc.system.name": "aws-api",
            "messaging.system": "aws_sqs",
            "rpc.method": "SQS." + ev.event_name,
            "aws.cloudtrail.event_category": ev.category,
            "messaging.operation.name": ev.event_name,
        }
        if ev.event_name in OPERATION_TYPES:
            attrs["messaging.operation.type"] = OPERATION_TYPES[ev.event_name]
        if ev.queue_arn:
            attrs["cloud.resource_id"] = ev.queue_arn
        if ev.queue_url:
            attrs["aws.sqs.queue.url"] = ev.queue_url
        if ev.queue != "(none)":
            attrs["messaging.destination.name"] = ev.queue
        if ev.error_code is not None:
            attrs["error.type"] = ev.error_code
        if ev.event_name.endswith("Batch"):
            attrs["messaging.batch.message_count"] = ev.batch_entries
        if ev.principal_arn:
            attrs["user.id"] = ev.principal_arn
        for key, value in (
            ("client.address", body.get("sourceIPAddress")),
            ("user_agent.original", body.get("userAgent")),
            ("aws.cloudtrail.read_only", body.get("readOnly")),
            ("aws.cloudtrail.user_identity.type", ident.get("type") if type(ident) is dict else None),
            ("aws.request_id", body.get("requestID")),
            ("aws.cloudtrail.event_id", body.get("eventID")),
        ):
            if value is not None:
                attrs[key] = value
        if ev.error_code is None:
            number, text = SeverityNumber.INFO, "INFO"
        elif auth.search(ev.error_code):
            number, text = SeverityNumber.ERROR, "ERROR"
        else:
            number, text = SeverityNumber.WARN, "WARN"
        t = ev.event_time
        api = LogRecord(
            timestamp=int(t * 1e9) if t is not None else 0,
            observed_timestamp=OBSERVED_NS,
            severity_number=number,
            severity_text=text,
            body=body,
            attributes=attrs,
            event_name="aws.cloudtrail.sqs." + ev.event_name,
        )
        rw = ReadWriteLogRecord._from_api_log_record(record=api, resource=resource, instrumentation_scope=scope)
        return ReadableLogRecord(
            log_record=rw.log_record, resource=resource, instrumentation_scope=scope, limits=rw.limits
        )

    def encode(batch: Sequence[Item]) -> bytes:
        return encode_logs([record(raw, ev) for raw, ev in batch]).SerializeToString()

    return encode


# -- checking and timing ------------------------------------------------------------------------------------------


def log_records(request: bytes) -> list[tuple[Any, ...]]:
    """Each LogRecord of a request as comparable values (attributes as a sorted list: order is free)."""
    from google.protobuf.json_format import MessageToDict
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    out = []
    for rl in ExportLogsServiceRequest.FromString(request).resource_logs:
        for sl in rl.scope_logs:
            for r in sl.log_records:
                attrs = sorted((a.key, a.value.SerializeToString(deterministic=True)) for a in r.attributes)
                body = MessageToDict(r.body)
                out.append((r.time_unix_nano, r.severity_number, r.severity_text, r.event_name, body, attrs))
    return out


def check(want: list[tuple[Any, ...]], name: str, got: list[tuple[Any, ...]]) -> None:
    """The same log records as the SDK's (the resource may differ: the SDK adds its own attributes)."""
    if len(got) != len(want):
        raise SystemExit(f"{name}: {len(got)} log records, the SDK {len(want)}")
    for i, (a, b) in enumerate(zip(want, got, strict=True)):
        if a != b:
            raise SystemExit(f"{name} differs from the SDK at record {i}:\n{a}\n{b}")


def cpu_seconds(encode: Encode, batches: Sequence[Sequence[Item]]) -> tuple[float, int]:
    t0 = time.process_time()
    nbytes = sum(len(encode(b)) for b in batches)
    return time.process_time() - t0, nbytes


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--records", type=int, default=20_000)
    ap.add_argument("--batch", type=int, default=2048, help="records per request (logs.batch_size)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args(argv)

    items = make_items(args.records)
    batches = [items[i : i + args.batch] for i in range(0, len(items), args.batch)]
    encoders = dict(ENCODERS)
    with _sdk() as sdk:
        want = log_records(sdk(batches[0]))
    for name, make in list(encoders.items())[1:]:
        try:
            with make() as encode:
                check(want, name, log_records(encode(batches[0])))
        except NotBuilt as e:
            print(f"{name}: left out, {e}")
            del encoders[name]
    times: dict[str, list[float]] = {}
    sizes: dict[str, int] = {}
    for _ in range(args.repeats):
        # a fresh encoder per repeat: every repeat starts with cold caches, as a new process would
        for name, make in encoders.items():
            with make() as encode:
                seconds, nbytes = cpu_seconds(encode, batches)
            times.setdefault(name, []).append(seconds)
            sizes[name] = nbytes

    print(f"{len(items):,} SQS records in {len(batches)} requests of up to {args.batch:,}")
    print(f"records per CPU second, median of {args.repeats}:")
    base = len(items) / statistics.median(times["SDK"])
    for name, ts in times.items():
        rate = len(items) / statistics.median(ts)
        runs = ", ".join(f"{t:.3f}" for t in ts)
        print(f"  {name:<7} {rate:>10,.0f} records/s  {rate / base:5.1f}× the SDK  ({runs} s; {sizes[name]:,} bytes)")
    print(f"python {sys.version.split()[0]}, CTSQS_NATIVE={os.environ.get('CTSQS_NATIVE', '(unset)')}")
    return 0


@contextmanager
def _sdk() -> Iterator[Encode]:
    yield sdk_encoder()


@contextmanager
def _python() -> Iterator[Encode]:
    with project_sink() as sink:
        yield python_encoder(sink)


@contextmanager
def _c() -> Iterator[Encode]:
    with project_sink() as sink:
        yield c_encoder(sink)


ENCODERS: dict[str, Callable[[], Any]] = {"SDK": _sdk, "Python": _python, "C": _c}

if __name__ == "__main__":
    raise SystemExit(main())
