"""OTel logs sink: real OTLP receivers (grpcio + opentelemetry-proto; rotel in the middle), real daemon."""

from __future__ import annotations

import gzip
import hashlib
import hmac
import subprocess
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest
from otlp_receiver import Receiver, attributes, to_python
from util import Exporter, free_port, generate, http_get, parse_metrics, series, wait_for

from exporter import access, app, config
from exporter.generator import Generator
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.logs import LogSink, export_settings, resource_attributes, severity

SQS = "sqs.amazonaws.com"
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


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


def trail_records(files: list[str]) -> dict[str, dict[str, Any]]:
    """eventID → original SQS record, read straight from the generated files."""
    out = {}
    for f in files:
        doc = msgspec.json.decode(gzip.decompress(Path(f).read_bytes()))
        for rec in doc.get("Records", []):
            if rec.get("eventSource") == SQS and rec.get("eventType") != "AwsCloudTrailInsight":
                out[rec["eventID"]] = rec
    return out


def sha(value: str, key: bytes | None = None) -> str:
    d = hmac.new(key, value.encode(), hashlib.sha256) if key else hashlib.sha256(value.encode())
    return "sha256:" + d.hexdigest()[:32]


def default_redaction(rec: dict[str, Any]) -> dict[str, Any]:
    """The documented defaults, written independently: accessKeyId and receiptHandle hashed."""
    rec = msgspec.json.decode(msgspec.json.encode(rec))
    ident = rec.get("userIdentity") or {}
    if "accessKeyId" in ident:
        ident["accessKeyId"] = sha(ident["accessKeyId"])

    def walk(node: Any) -> None:
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "receiptHandle" and isinstance(v, str):
                    node[k] = sha(v)
                else:
                    walk(v)
        elif isinstance(node, list):
            for x in node:
                walk(x)

    walk(rec.get("requestParameters"))
    walk(rec.get("responseElements"))
    return rec


def expected_attributes(rec: dict[str, Any]) -> dict[str, Any]:
    """Every SPEC attribute, derived from the original record by the test's own reading of the SPEC."""
    name = rec["eventName"]
    params = rec.get("requestParameters") or {}
    arn = next((r["ARN"] for r in rec.get("resources") or []), None)
    url = params.get("queueUrl")
    queue = None
    if url:
        queue = url.rstrip("/").split("/")[-1]
    elif arn:
        queue = arn.split(":")[-1]
    elif params.get("queueName"):
        queue = params["queueName"]
    elif params.get("sourceArn"):
        queue = params["sourceArn"].split(":")[-1]
    acct, region = rec["recipientAccountId"], rec["awsRegion"]
    if arn is None and queue is not None:
        arn = f"arn:aws:sqs:{region}:{acct}:{queue}"
    ident = rec["userIdentity"]
    principal = ident.get("arn") or ident.get("invokedBy")
    category = rec.get("eventCategory") or (
        "Data"
        if name
        in {
            "SendMessage",
            "SendMessageBatch",
            "ReceiveMessage",
            "DeleteMessage",
            "DeleteMessageBatch",
            "ChangeMessageVisibility",
            "ChangeMessageVisibilityBatch",
        }
        else "Management"
    )
    want: dict[str, Any] = {
        "cloud.provider": "aws",
        "cloud.account.id": acct,
        "cloud.region": region,
        "rpc.system.name": "aws-api",
        "rpc.method": "SQS." + name,
        "aws.request_id": rec["requestID"],
        "messaging.system": "aws_sqs",
        "messaging.operation.name": name,
        "user.id": principal,
        "client.address": rec["sourceIPAddress"],
        "user_agent.original": rec["userAgent"],
        "aws.cloudtrail.event_id": rec["eventID"],
        "aws.cloudtrail.event_category": category,
        "aws.cloudtrail.user_identity.type": ident["type"],
    }
    if arn is not None:
        want["cloud.resource_id"] = arn
    if url:
        want["aws.sqs.queue.url"] = url
    if queue is not None:
        want["messaging.destination.name"] = queue
    if name.endswith("Batch"):
        want["messaging.batch.message_count"] = len(params["entries"])
    operation = OPERATION_TYPES.get(name)
    if operation is not None:
        want["messaging.operation.type"] = operation
    if "errorCode" in rec:
        want["error.type"] = rec["errorCode"]
    if "readOnly" in rec:
        want["aws.cloudtrail.read_only"] = rec["readOnly"]
    if "errorCode" not in rec:  # the queue changes that matter to security name what they leave
        exposure = access.change_exposure(name, rec.get("requestParameters"), acct)
        encryption = access.change_encryption(name, rec.get("requestParameters"))
        if exposure is not None:
            want["aws.cloudtrail.sqs.exposure"] = exposure
        if encryption is not None:
            want["aws.cloudtrail.sqs.encryption"] = encryption
    return want


def epoch_ns(s: str) -> int:
    return int(datetime.fromisoformat(s.replace("Z", "+00:00")).timestamp()) * 1_000_000_000


def check_records(rx: Receiver, originals: dict[str, dict[str, Any]], started: float) -> None:
    got = rx.records()
    assert len(got) == len(originals)
    by_id = {attributes(lr)["aws.cloudtrail.event_id"]: (res, lr) for res, lr in got}
    assert by_id.keys() == originals.keys()  # every event exactly once
    severities = set()
    for eid, rec in originals.items():
        res, lr = by_id[eid]
        assert res["service.name"] == "cloudtrail-sqs-exporter"
        assert to_python(lr.body) == default_redaction(rec)
        assert attributes(lr) == expected_attributes(rec)
        assert lr.time_unix_nano == epoch_ns(rec["eventTime"])
        assert started * 1e9 <= lr.observed_time_unix_nano <= time.time() * 1e9
        assert lr.event_name == "aws.cloudtrail.sqs." + rec["eventName"]
        code = rec.get("errorCode")
        want = (9, "INFO") if code is None else (17, "ERROR") if "AccessDenied" in code else (13, "WARN")
        assert (lr.severity_number, lr.severity_text) == want, code
        severities.add(want[1])
    assert severities == {"INFO", "WARN", "ERROR"}  # the sample exercises the whole mapping


@pytest.mark.slow
def test_replay_exports_every_sqs_event_to_grpc_receiver(
    tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    truth = generate(tmp_path / "trail", files=12, records=250, seed=11)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)  # the standard variable
    monkeypatch.setenv("OTEL_RESOURCE_ATTRIBUTES", "deployment.environment=test")
    started = time.time()
    text, failed = app.replay([str(tmp_path / "trail")], config.load(None, **{"logs.enabled": True}))
    assert failed == 0
    originals = trail_records(truth["files"])
    assert len(originals) == truth["records"]["sqs"]
    # replay returns only after the flush: everything is already at the receiver
    assert receiver.count == truth["records"]["sqs"]
    check_records(receiver, originals, started)
    assert receiver.records()[0][0]["deployment.environment"] == "test"
    m = series(parse_metrics(text), "cloudtrail_sqs_exporter_log_records_total", "outcome")
    assert m == {("exported",): truth["records"]["sqs"], ("dropped",): 0, ("failed",): 0}


def test_filters_sampling_and_redaction(tmp_path: Path, receiver: Receiver) -> None:
    truth = generate(tmp_path / "trail", files=8, records=250, seed=5, error_rate=0.2)
    originals = trail_records(truth["files"])
    names = {"SendMessage", "ReceiveMessage", "DeleteMessageBatch", "GetQueueUrl"}
    settings = config.load(
        None,
        **{
            "logs.enabled": True,
            "logs.endpoint": receiver.endpoint,
            "logs.include_events": sorted(names),
            "logs.exclude_events": ["GetQueueUrl"],
            "logs.sample_ratio": 0.5,
            "logs.redact": {
                "source_ip": "drop",
                "user_agent": "hash",
                "access_key_id": "drop",
                "parameters": {"receiptHandle": "drop", "queueUrl": "keep"},
                "hash_key": "s3cret",
            },
        },
    )
    app.replay([str(tmp_path / "trail")], settings)
    got = {attributes(lr)["aws.cloudtrail.event_id"]: lr for _, lr in receiver.records()}
    eligible = {k: r for k, r in originals.items() if r["eventName"] in names - {"GetQueueUrl"}}
    assert set(got) <= set(eligible)
    errors = {k for k, r in eligible.items() if "errorCode" in r}
    assert errors and errors <= set(got)  # errors are never sampled out
    data = [k for k in eligible if k not in errors]
    kept = [k for k in data if k in got]
    assert 0.4 * len(data) < len(kept) < 0.6 * len(data)  # ~half, by the ratio (n > 500)
    for k, lr in got.items():
        a = attributes(lr)
        assert a.get("cloudtrail_sqs.sampling.ratio") == (0.5 if k in kept else None)
        assert "client.address" not in a
        body = to_python(lr.body)
        rec = originals[k]
        assert "sourceIPAddress" not in body
        assert body["userAgent"] == a["user_agent.original"] == sha(rec["userAgent"], b"s3cret")
        assert "accessKeyId" not in body["userIdentity"]
        for e in (body["requestParameters"] or {}).get("entries", []):
            assert "receiptHandle" not in e
        assert body["requestParameters"]["queueUrl"] == rec["requestParameters"]["queueUrl"]


def test_settings_from_standard_env_overridden_by_config() -> None:
    env = {
        "OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318",
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
        "OTEL_EXPORTER_OTLP_HEADERS": "api-key=a%20b,X-Tenant=t1",
        "OTEL_EXPORTER_OTLP_LOGS_HEADERS": "x-logs=1",
        "OTEL_EXPORTER_OTLP_COMPRESSION": "gzip",
        "OTEL_EXPORTER_OTLP_TIMEOUT": "2500",
        "OTEL_EXPORTER_OTLP_CERTIFICATE": "/etc/ca.pem",
    }
    s = export_settings(config.LogsConfig(enabled=True), env)
    assert (s.protocol, s.endpoint, s.compression, s.timeout, s.certificate) == (
        "http/protobuf",
        "http://collector:4318/v1/logs",
        "gzip",
        2.5,
        "/etc/ca.pem",
    )
    assert s.headers == {"x-logs": "1"}  # the signal-specific variable wins, as in the OTel spec
    cfg = config.LogsConfig(enabled=True, endpoint="otel:4317", protocol="grpc", headers={"A": "b"}, timeout=3)
    s = export_settings(cfg, env)
    assert (s.protocol, s.endpoint, s.timeout, s.headers["a"]) == ("grpc", "otel:4317", 3.0, "b")
    assert resource_attributes({})["service.name"] == "cloudtrail-sqs-exporter"
    r = resource_attributes({"OTEL_SERVICE_NAME": "ct", "OTEL_RESOURCE_ATTRIBUTES": "k8s.namespace.name=obs"})
    assert (r["service.name"], r["k8s.namespace.name"]) == ("ct", "obs")
    assert severity(None) == (9, "INFO")
    assert severity("AccessDenied") == severity("KMS.AccessDeniedException") == (17, "ERROR")
    assert severity("AWS.SimpleQueueService.NonExistentQueue") == (13, "WARN")


def burst_events(tmp_path: Path, n: int) -> list[tuple[Any, Any]]:
    from exporter.decode.delivery import extract

    gen = Generator(seed=3)
    gen.write(tmp_path / "b", files=4, records_per_file=1000, extras=False)
    events: list[tuple[Any, Any]] = []
    for f in gen.truth.files:
        events += extract(Path(f).read_bytes())[1]
    return (events * (n // len(events) + 1))[:n]


@pytest.mark.slow
def test_burst_of_200k_with_collector_up_drops_nothing(tmp_path: Path, receiver: Receiver) -> None:
    events = burst_events(tmp_path, 200_000)
    counters = SelfMetrics()
    # a queue sized for the burst (~2 KB a record with its attributes); the default 64 MiB holds ~35k (README,
    # "Memory budget")
    cfg = config.LogsConfig(enabled=True, endpoint=receiver.endpoint, queue_max_bytes=512 << 20)
    sink = LogSink(cfg, counters)
    t0 = time.perf_counter()
    try:
        for raw, ev in events:  # as fast as the producer can go: far faster than any export
            sink.emit(raw, ev, 1.0)
        emitted = time.perf_counter() - t0
    finally:
        sink.shutdown(timeout=120)
    took = time.perf_counter() - t0
    print(f"200k burst: emit {emitted:.2f}s, exported in {took:.2f}s = {200_000 / took:.0f} records/s")
    assert counters.log_records == {"exported": 200_000, "dropped": 0, "failed": 0}
    assert receiver.count == 200_000


def rotel_binary() -> Path | None:
    try:
        import rotel
    except ImportError:
        return None
    p = Path(rotel.__file__).parent / "rotel-agent"
    return p if p.exists() else None


@pytest.mark.slow
@pytest.mark.skipif(rotel_binary() is None, reason="pip install rotel")
def test_through_rotel_over_otlp_http(tmp_path: Path, receiver: Receiver) -> None:
    truth = generate(tmp_path / "trail", files=6, records=200, seed=21)
    grpc_port, http_port = free_port(), free_port()
    cmd = [
        str(rotel_binary()),
        "start",
        "--pid-file",
        str(tmp_path / "rotel.pid"),
        "--log-file",
        str(tmp_path / "rotel.log"),
        "--otlp-grpc-endpoint",
        f"127.0.0.1:{grpc_port}",
        "--otlp-http-endpoint",
        f"127.0.0.1:{http_port}",
        "--exporter",
        "otlp",
        "--otlp-exporter-endpoint",
        receiver.endpoint,
        "--otlp-exporter-protocol",
        "grpc",
    ]
    log = open(tmp_path / "rotel.out", "wb")  # noqa: SIM115
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: http_get(f"http://127.0.0.1:{http_port}/v1/logs")[0] > 0, 20, what="rotel http")
        settings = config.load(
            None,
            **{
                "logs.enabled": True,
                "logs.protocol": "http/protobuf",
                "logs.endpoint": f"http://127.0.0.1:{http_port}",
            },
        )
        started = time.time()
        text, _ = app.replay([str(tmp_path / "trail")], settings)
        assert f'cloudtrail_sqs_exporter_log_records_total{{outcome="exported"}} {truth["records"]["sqs"]}.0' in text
        wait_for(lambda: receiver.count >= truth["records"]["sqs"], 30, what="records through rotel")
        time.sleep(0.5)
        check_records(receiver, trail_records(truth["files"]), started)
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


@pytest.mark.slow
def test_receiver_down_20s_during_run(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail = tmp_path / "trail"
    gen = Generator(seed=9)
    gen.write(trail, files=4, records_per_file=300, extras=False)
    port = free_port()
    rx = Receiver(port).start()
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"""
state: {{path: {tmp_path / "state.db"}}}
sources:
  - {{type: file, path: {trail}, poll_interval: 0.2s, settle: 0.1s}}
logs:
  enabled: true
  endpoint: http://127.0.0.1:{port}
  queue_size: 2000
  timeout: 1s
  retry_max_elapsed: 4s
  flush_interval: 0.2s
"""
    )
    exp = Exporter(cfg, tmp_path)
    exporter_proc.append(exp)
    try:
        exp.start()

        def outcomes() -> dict[str, float]:
            m = series(exp.metrics(), "cloudtrail_sqs_exporter_log_records_total", "outcome")
            return {k[0]: v for k, v in m.items()}

        total = lambda: gen.truth.records["sqs"]  # noqa: E731
        wait_for(lambda: outcomes().get("exported") == total(), 30, what="first files exported")
        rx.stop()
        rss_start = rss_kib(exp.proc.pid)
        rss_max, slowest = rss_start, 0.0
        end = time.monotonic() + 20
        while time.monotonic() < end:
            gen.write(trail, files=2, records_per_file=400, extras=False)
            t = time.monotonic()
            code, _, _ = http_get(exp.url + "/metrics", timeout=5)
            slowest = max(slowest, time.monotonic() - t)
            assert code == 200
            rss_max = max(rss_max, rss_kib(exp.proc.pid))
            time.sleep(0.5)
        during = outcomes()
        assert during["dropped"] > 0  # the queue (2000) filled while the receiver was away
        rx = Receiver(port).start()
        gen.write(trail, files=2, records_per_file=300, extras=False)
        wait_for(
            lambda: sum(outcomes().values()) == total() and outcomes()["exported"] > during["exported"],
            60,
            what="every record accounted for after the outage",
        )
        final = outcomes()
        assert final["exported"] + final["dropped"] + final["failed"] == total()
        assert final["dropped"] >= during["dropped"] > 0
        assert slowest < 2.0, f"/metrics took {slowest:.2f}s during the outage"
        assert rss_max - rss_start < 80 * 1024, f"RSS grew {(rss_max - rss_start) // 1024} MiB"
        assert rx.count > 0  # the new receiver got the records made after it came back
    finally:
        rx.stop()
        exp.stop()
