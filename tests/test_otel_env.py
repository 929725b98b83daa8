"""The OTel environment as the SDK defines it: OTEL_SDK_DISABLED, OTEL_LOGS_EXPORTER (otlp, console, none),
OTEL_EXPORTER_OTLP_PROTOCOL values, and the resource from OTEL_RESOURCE_ATTRIBUTES / OTEL_SERVICE_NAME."""

from __future__ import annotations

import io
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest
from otlp_receiver import Receiver, attributes, to_python
from util import ROOT, Exporter, free_port, generate, series, wait_for

from exporter import app, config
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.logs import LogSink
from exporter.sinks.logs import settings as otel_env
from exporter.sinks.logs.console import json_lines
from exporter.sinks.logs.transport import ConsoleTransport, SendResult


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


# -- which exporter --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "enabled,env,want",
    [
        (False, {}, ()),
        (True, {}, ("otlp",)),
        (True, {"OTEL_SDK_DISABLED": "true"}, ()),
        (True, {"OTEL_SDK_DISABLED": "TRUE", "OTEL_LOGS_EXPORTER": "otlp"}, ()),
        (True, {"OTEL_SDK_DISABLED": "false"}, ("otlp",)),
        (True, {"OTEL_LOGS_EXPORTER": "none"}, ()),
        (False, {"OTEL_LOGS_EXPORTER": "otlp"}, ("otlp",)),
        (False, {"OTEL_LOGS_EXPORTER": "console"}, ("console",)),
        (False, {"OTEL_LOGS_EXPORTER": " console , otlp "}, ("otlp", "console")),
        (True, {"OTEL_LOGS_EXPORTER": ""}, ("otlp",)),
    ],
)
def test_logs_exporters(enabled: bool, env: dict[str, str], want: tuple[str, ...]) -> None:
    assert otel_env.logs_exporters(enabled, env) == want


def test_unsupported_values_are_refused_naming_the_variable() -> None:
    cfg = config.LogsConfig(enabled=True)
    cases = {
        "OTEL_EXPORTER_OTLP_PROTOCOL": ("http/json", "grpc or http/protobuf"),
        "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL": ("http/json", "grpc or http/protobuf"),
        "OTEL_EXPORTER_OTLP_COMPRESSION": ("zstd", "gzip or none"),
        "OTEL_EXPORTER_OTLP_LOGS_TIMEOUT": ("soon", "milliseconds"),
    }
    for var, (value, hint) in cases.items():
        with pytest.raises(otel_env.OtelEnvError) as e:
            otel_env.export_settings(cfg, {var: value})
        msg = str(e.value)
        assert f"{var}={value}" in msg and hint in msg and "\n" not in msg
    with pytest.raises(otel_env.OtelEnvError, match=r"OTEL_LOGS_EXPORTER=zipkin.*otlp, console or none"):
        otel_env.logs_exporters(True, {"OTEL_LOGS_EXPORTER": "zipkin"})
    # the config file's value wins over the variable, so nothing is refused
    ok = otel_env.export_settings(config.LogsConfig(protocol="grpc"), {"OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert ok.protocol == "grpc"
    # console only: the OTLP variables do not apply
    s = otel_env.export_settings(cfg, {"OTEL_LOGS_EXPORTER": "console", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"})
    assert (s.protocol, s.exporters) == ("console", ("console",))


# -- resource ---------------------------------------------------------------------------------------------------------


def test_resource_attributes_per_spec_without_touching_environ() -> None:
    before = dict(os.environ)
    r = otel_env.resource_attributes(
        {
            "OTEL_RESOURCE_ATTRIBUTES": " service.name = from-attrs , team=a%2Cb%3Dc ,, note=caf%C3%A9%20bar,empty=",
            "OTEL_SERVICE_NAME": "from-name",
        }
    )
    assert dict(os.environ) == before
    assert r["service.name"] == "from-name"  # OTEL_SERVICE_NAME takes precedence
    assert (r["team"], r["note"], r["empty"]) == ("a,b=c", "café bar", "")
    assert r["telemetry.sdk.language"] == "python"
    r = otel_env.resource_attributes({"OTEL_RESOURCE_ATTRIBUTES": "service.name=from-attrs,k8s.pod.name=p"})
    assert (r["service.name"], r["k8s.pod.name"]) == ("from-attrs", "p")
    assert otel_env.resource_attributes({})["service.name"] == "cloudtrail-sqs-exporter"
    # one bad pair: the whole value is discarded, as the spec says
    for bad in ("a=1,novalue,b=2", "a=1,=x", "a=%FF"):
        r = otel_env.resource_attributes({"OTEL_RESOURCE_ATTRIBUTES": bad})
        assert "a" not in r and "b" not in r, bad
        assert r["service.name"] == "cloudtrail-sqs-exporter"


# -- console -----------------------------------------------------------------------------------------------------------


class Collecting:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []

    def send(self, body: bytes, timeout: float) -> SendResult:
        self.bodies.append(body)
        return SendResult(True)

    def close(self) -> None:
        pass


def sink_requests(tmp_path: Path, transport: Any) -> dict[str, Any]:
    truth = generate(tmp_path / "trail", files=3, records=120, seed=8, error_rate=0.2)
    from exporter.decode.delivery import extract

    sink = LogSink(config.LogsConfig(enabled=True, batch_size=64), SelfMetrics(), transport=transport, env={})
    for f in truth["files"]:
        for raw, ev in extract(Path(f).read_bytes())[1]:
            sink.emit(raw, ev, 1_700_000_000.5)
    sink.shutdown(10)
    return truth


def test_console_lines_match_the_protobuf(tmp_path: Path) -> None:
    t = Collecting()
    truth = sink_requests(tmp_path, t)
    n = 0
    for body in t.bodies:
        lines = json_lines(body).splitlines()
        req = ExportLogsServiceRequest.FromString(body)
        protos = [(rl, lr) for rl in req.resource_logs for sl in rl.scope_logs for lr in sl.log_records]
        assert len(lines) == len(protos)
        for line, (rl, lr) in zip(lines, protos, strict=True):
            got = msgspec.json.decode(line)
            assert got["body"] == to_python(lr.body)
            assert got["attributes"] == attributes(lr)
            assert (got["severity_number"], got["severity_text"]) == (lr.severity_number, lr.severity_text)
            assert got["event_name"] == lr.event_name
            assert got["observed_timestamp"] == "2023-11-14T22:13:20.500000+00:00"
            assert got["timestamp"].endswith("+00:00")
            assert got["resource"]["attributes"] == {kv.key: to_python(kv.value) for kv in rl.resource.attributes}
            n += 1
    assert n == truth["records"]["sqs"]


def test_console_transport_writes_one_line_per_record(tmp_path: Path) -> None:
    out = io.StringIO()
    truth = sink_requests(tmp_path, ConsoleTransport(out))
    lines = out.getvalue().splitlines()
    assert len(lines) == truth["records"]["sqs"]
    ids = {msgspec.json.decode(x)["attributes"]["aws.cloudtrail.event_id"] for x in lines}
    assert len(ids) == len(lines)


def cli(args: list[str], env: dict[str, str], cwd: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("OTEL_", "CTSQS_"))}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env={**base, "PYTHONPATH": str(ROOT), **env},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_replay_with_console_exporter_prints_json_lines(tmp_path: Path) -> None:
    truth = generate(tmp_path / "trail", files=4, records=100, seed=12)
    p = cli(["replay", str(tmp_path / "trail")], {"OTEL_LOGS_EXPORTER": "console"}, tmp_path)
    assert p.returncode == 0, p.stderr
    lines = [x for x in p.stdout.splitlines() if x.startswith("{")]
    assert len(lines) == truth["records"]["sqs"]
    recs = [msgspec.json.decode(x) for x in lines]
    assert all(r["body"]["eventID"] == r["attributes"]["aws.cloudtrail.event_id"] for r in recs)
    assert {r["resource"]["attributes"]["service.name"] for r in recs} == {"cloudtrail-sqs-exporter"}
    assert "cloudtrail_sqs_api_calls_total" in p.stdout  # the metrics follow


@pytest.mark.parametrize("var", ["OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_EXPORTER_OTLP_LOGS_PROTOCOL"])
@pytest.mark.parametrize("command", ["run", "replay"])
def test_http_json_is_refused_in_one_line(tmp_path: Path, var: str, command: str) -> None:
    env = {var: "http/json", "OTEL_LOGS_EXPORTER": "otlp", "CTSQS_LISTEN": f"127.0.0.1:{free_port()}"}
    env["CTSQS_STATE__PATH"] = str(tmp_path / "state.db")
    args = ["run"] if command == "run" else ["replay", str(ROOT / "exporter" / "sample" / "trail")]
    p = cli(args, env, tmp_path, timeout=30)
    assert p.returncode == 2, (p.stdout, p.stderr)
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert f"{var}=http/json" in lines[0] and "grpc or http/protobuf" in lines[0]
    assert "Traceback" not in p.stderr


# -- on / off -----------------------------------------------------------------------------------------------------


def test_otel_logs_exporter_otlp_turns_export_on(tmp_path: Path, receiver: Receiver, monkeypatch: Any) -> None:
    truth = generate(tmp_path / "trail", files=3, records=100, seed=2)
    monkeypatch.setenv("OTEL_LOGS_EXPORTER", "otlp")
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", receiver.endpoint)
    settings = config.load(None)
    assert not settings.logs.enabled
    app.replay([str(tmp_path / "trail")], settings)
    assert receiver.count == truth["records"]["sqs"]


@pytest.mark.slow
@pytest.mark.parametrize("var,value", [("OTEL_SDK_DISABLED", "true"), ("OTEL_LOGS_EXPORTER", "none")])
def test_export_off_by_env_receiver_gets_nothing_metrics_unchanged(
    tmp_path: Path, receiver: Receiver, exporter_proc: list[Exporter], var: str, value: str
) -> None:
    from util import assert_matches_truth

    truth = generate(tmp_path / "trail", files=4, records=150, seed=6)
    cfg = tmp_path / "config.yaml"
    cfg.write_text(
        f"""
state: {{path: {tmp_path / "state.db"}}}
sources:
  - {{type: file, path: {tmp_path / "trail"}, poll_interval: 0.2s, settle: 0.1s}}
logs:
  enabled: true
  endpoint: {receiver.endpoint}
  flush_interval: 0.1s
"""
    )
    exp = Exporter(cfg, tmp_path, env={var: value})
    exporter_proc.append(exp)
    exp.start()
    want = truth["records"]["sqs"]
    wait_for(
        lambda: series(exp.metrics(), "cloudtrail_sqs_exporter_records_total", "outcome").get(("sqs",)) == want, 30
    )
    m = exp.metrics()
    assert_matches_truth(m, truth)
    outcomes = series(m, "cloudtrail_sqs_exporter_log_records_total", "outcome")
    assert sum(outcomes.values()) == 0
    assert receiver.count == 0
    exp.stop()
    log = exp.log.read_text()
    assert log.count(f"OTel logs: export off ({var}={value})") == 1, log
