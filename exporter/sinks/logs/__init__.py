"""The OTel log sink: one OTLP LogRecord per SQS call.

    settings    the OTel environment and the export settings (OTEL_* over the config file)
    wire        the OTLP protobuf wire format, written by hand (docs/adr/0001-hand-written-otlp-encoder.md)
    redaction   `logs.redact`: keep, drop or hash
    encoding    record → LogRecord bytes, its attribute caches, the bridge to the C LogEncoder
    queue       the bounded queue of encoded records and the export thread
    transport   one attempt over OTLP/gRPC, OTLP/HTTP or the console; retry: backoff with jitter
    console     the console exporter's JSON lines
    sink        LogSink: filters, sampling, emit, lifecycle

The names below load their module on first use: `settings` alone decides whether logs are on, without the
encoders and transports.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .encoding import SAMPLING_ATTR, EncoderSettings, LogEncoder, RecordEncoder, encoder_settings, severity
    from .queue import ExportQueue
    from .redaction import Redactor
    from .settings import ExportSettings, export_settings, parse_headers, resource_attributes
    from .sink import SCOPE_NAME, LogSink, build_log_sink
    from .transport import GRPC_METHOD, SendResult, Transport

_EXPORTS = {
    "LogSink": "sink",
    "build_log_sink": "sink",
    "SCOPE_NAME": "sink",
    "RecordEncoder": "encoding",
    "LogEncoder": "encoding",
    "EncoderSettings": "encoding",
    "encoder_settings": "encoding",
    "severity": "encoding",
    "SAMPLING_ATTR": "encoding",
    "Redactor": "redaction",
    "ExportQueue": "queue",
    "ExportSettings": "settings",
    "export_settings": "settings",
    "parse_headers": "settings",
    "resource_attributes": "settings",
    "GRPC_METHOD": "transport",
    "SendResult": "transport",
    "Transport": "transport",
}

__all__ = [
    "GRPC_METHOD",
    "SAMPLING_ATTR",
    "SCOPE_NAME",
    "EncoderSettings",
    "ExportQueue",
    "ExportSettings",
    "LogEncoder",
    "LogSink",
    "RecordEncoder",
    "Redactor",
    "SendResult",
    "Transport",
    "build_log_sink",
    "encoder_settings",
    "export_settings",
    "parse_headers",
    "resource_attributes",
    "severity",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
