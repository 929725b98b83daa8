"""The log records' attributes against the installed (pinned) opentelemetry-semantic-conventions: records go
to a real OTLP/gRPC receiver, and every attribute key they carry must be one the package does not mark
deprecated. The package marks a deprecated attribute with a docstring beginning "Deprecated" after its
constant (read here from the module source, the only place it lives), and a deprecated value enum with
typing_extensions' @deprecated (`__deprecated__` at run time). The incubating module's copy of a stable
attribute is marked "Deprecated in favor of stable …": that deprecates the Python name, not the key, which
the stable module defines unmarked."""

from __future__ import annotations

import ast
import enum
import gzip
import importlib
import inspect
import pkgutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
from otlp_receiver import Receiver, attributes
from util import free_port, generate

from exporter import app, config
from exporter.decode.delivery import extract
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.logs import LogSink

semconv = pytest.importorskip("opentelemetry.semconv")
from opentelemetry.semconv.schemas import Schemas  # noqa: E402

MESSAGE_APIS = {
    "SendMessage": "send",
    "SendMessageBatch": "send",
    "ReceiveMessage": "receive",
    "DeleteMessage": "settle",
    "DeleteMessageBatch": "settle",
    "ChangeMessageVisibility": "settle",
    "ChangeMessageVisibilityBatch": "settle",
}


def _attribute_modules() -> Iterator[Any]:
    for package in ("opentelemetry.semconv.attributes", "opentelemetry.semconv._incubating.attributes"):
        pkg = importlib.import_module(package)
        for info in pkgutil.iter_modules(pkg.__path__):
            yield importlib.import_module(f"{package}.{info.name}")


def _camel(constant: str) -> str:
    return "".join(part.capitalize() for part in constant.split("_"))


def deprecations() -> tuple[dict[str, str], dict[str, set[str]]]:
    """(attribute key → its deprecation note, attribute key → its deprecated values), over every attribute
    module of the installed package."""
    keys: dict[str, str] = {}
    values: dict[str, set[str]] = {}
    stable: set[str] = set()  # keys a module defines without a deprecation mark
    for module in _attribute_modules():
        body = ast.parse(inspect.getsource(module)).body
        constants: dict[str, str] = {}
        for node, after in zip(body, [*body[1:], None], strict=True):
            if not (isinstance(node, ast.AnnAssign) and isinstance(node.target, ast.Name)):
                continue
            if not (isinstance(node.value, ast.Constant) and isinstance(node.value.value, str)):
                continue
            key = node.value.value
            constants[node.target.id] = key
            doc = after.value.value if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant) else ""
            if isinstance(doc, str) and doc.strip().startswith("Deprecated"):
                keys[key] = doc.strip().splitlines()[0]
            else:
                stable.add(key)
        for name, key in constants.items():
            values_enum = getattr(module, _camel(name) + "Values", None)
            if not (inspect.isclass(values_enum) and issubclass(values_enum, enum.Enum)):
                continue
            if getattr(values_enum, "__deprecated__", None):
                keys.setdefault(key, str(values_enum.__deprecated__))
            source = ast.parse(inspect.getsource(values_enum)).body[0]
            assert isinstance(source, ast.ClassDef)
            members = source.body
            for node, after in zip(members, [*members[1:], None], strict=True):
                if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant):
                    doc = (
                        after.value.value
                        if isinstance(after, ast.Expr) and isinstance(after.value, ast.Constant)
                        else ""
                    )
                    if isinstance(doc, str) and doc.strip().startswith("Deprecated"):
                        values.setdefault(key, set()).add(str(node.value.value))
    return {k: note for k, note in keys.items() if k not in stable}, values


DEPRECATED, DEPRECATED_VALUES = deprecations()


def test_the_package_marks_what_the_issue_named() -> None:
    """The detector finds the markers: the keys this exporter used to write are known deprecated."""
    assert DEPRECATED["rpc.system"].startswith("Deprecated")
    assert "rpc.service" in DEPRECATED
    assert "rpc.system.name" not in DEPRECATED and "rpc.method" not in DEPRECATED
    assert "client.address" not in DEPRECATED  # stable: only its incubating copy is marked
    assert len(DEPRECATED) > 100


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    r = Receiver(free_port()).start()
    yield r
    r.stop()


def exported(receiver: Receiver, tmp_path: Path) -> list[Any]:
    """Records of a generated trail through replay (the C encoder when it is built), then the same events
    through a sink with the C encoder off (the Python encoder)."""
    generate(tmp_path / "trail", files=6, records=300, seed=16, error_rate=0.1)
    settings = config.load(None, **{"logs.enabled": True, "logs.endpoint": receiver.endpoint})
    _, failed = app.replay([str(tmp_path / "trail")], settings)
    assert failed == 0
    sink = LogSink(settings.logs, SelfMetrics(), env={})
    sink.encoding.native = sink.encoding.native_record = None
    sent = 0
    try:
        for f in sorted((tmp_path / "trail").rglob("*.json.gz")):
            _, events = extract(gzip.decompress(f.read_bytes()))
            for raw, ev in events:
                sink.emit(raw, ev, time.time())
                sent += 1
    finally:
        sink.shutdown(30.0)
    assert sent > 0 and receiver.count >= 2 * sent
    return receiver.requests


def test_no_deprecated_attribute_and_the_operation_types(receiver: Receiver, tmp_path: Path) -> None:
    requests = exported(receiver, tmp_path)
    newest = max(Schemas, key=lambda s: tuple(int(x) for x in s.value.rsplit("/", 1)[1].split(".")))
    keys: set[str] = set()
    by_event: dict[str, list[dict[str, Any]]] = {}
    for req in requests:
        for rl in req.resource_logs:
            keys.update(kv.key for kv in rl.resource.attributes)
            for sl in rl.scope_logs:
                assert sl.schema_url == newest.value  # the pinned conventions' schema
                for lr in sl.log_records:
                    attrs = attributes(lr)
                    keys.update(attrs)
                    name = lr.event_name.removeprefix("aws.cloudtrail.sqs.")
                    by_event.setdefault(name, []).append(attrs)
                    for key, value in attrs.items():
                        assert str(value) not in DEPRECATED_VALUES.get(key, ()), (key, value)
    bad = {k: DEPRECATED[k] for k in keys if k in DEPRECATED}
    assert not bad, f"deprecated attribute keys exported: {bad}"
    assert {"rpc.system.name", "rpc.method", "messaging.operation.name", "user.id"} <= keys
    assert not {"rpc.system", "rpc.service", "enduser.id"} & keys
    assert set(MESSAGE_APIS) <= by_event.keys(), sorted(by_event)
    assert any(name not in MESSAGE_APIS for name in by_event)  # management calls too
    for name, records in by_event.items():
        for attrs in records:
            assert attrs["rpc.system.name"] == "aws-api"
            assert attrs["rpc.method"] == "SQS." + name
            assert attrs["messaging.operation.name"] == name
            assert attrs.get("messaging.operation.type") == MESSAGE_APIS.get(name), name
    assert {a["messaging.operation.type"] for a in by_event["SendMessage"]} == {"send"}


def test_schema_url_is_in_the_requests_bytes() -> None:
    """The scope's schema_url travels in ScopeLogs (field 3), where the SDK's exporter writes it."""
    from opentelemetry.proto.collector.logs.v1.logs_service_pb2 import ExportLogsServiceRequest

    from exporter.sinks.logs.encoding import SCHEMA_URL
    from exporter.sinks.logs.wire import RequestBuilder

    req = ExportLogsServiceRequest.FromString(RequestBuilder({"service.name": "x"}, "s", "1", SCHEMA_URL).request([]))
    assert req.resource_logs[0].scope_logs[0].schema_url == SCHEMA_URL
    assert msgspec.json.encode(SCHEMA_URL).startswith(b'"https://opentelemetry.io/schemas/')
