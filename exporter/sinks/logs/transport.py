"""Sending a ready ExportLogsServiceRequest: OTLP/gRPC, OTLP/HTTP (protobuf), or the console.

Each transport makes one attempt per `send` and says what happened in a SendResult: acknowledged (with
the partial-success count), or failed and whether the OTLP spec calls the failure retryable, with the
delay the server asked for (gRPC RetryInfo in the status details, HTTP Retry-After). Retrying is
exporter.sinks.logs.retry's job. The request bytes are encoded by exporter.sinks.logs.wire; the SDK's exporters
take SDK log records, not bytes (docs/adr/0005-otlp-transport.md).
"""

from __future__ import annotations

import email.utils
import gzip
import logging
import sys
import time
from typing import IO, Any, NamedTuple, Protocol
from urllib.parse import urlsplit

from . import wire
from .settings import ExportSettings

log = logging.getLogger(__name__)

GRPC_METHOD = "/opentelemetry.proto.collector.logs.v1.LogsService/Export"
RETRY_INFO_TYPE = "type.googleapis.com/google.rpc.RetryInfo"


class SendResult(NamedTuple):
    """What one attempt did. A tuple, so a plain (ok, retryable, rejected, message) from a test's fake
    transport reads as one."""

    ok: bool
    retryable: bool = False
    rejected: int = 0  # records the collector refused in a partial success
    message: str = ""
    retry_after: float | None = None  # seconds the server asked the client to wait before the next attempt


class Transport(Protocol):
    def send(self, body: bytes, timeout: float) -> SendResult: ...

    def close(self) -> None: ...


# -- google.rpc.Status / RetryInfo, read with the wire-format reader of exporter.sinks.logs.wire -------------------


def _duration(data: bytes | memoryview) -> float:
    """google.protobuf.Duration → seconds (seconds = 1, nanos = 2)."""
    seconds = nanos = 0
    for num, val in wire.fields(data):
        if num == 1 and isinstance(val, int):
            seconds = val
        elif num == 2 and isinstance(val, int):
            nanos = val
    return max(0.0, seconds + nanos / 1e9)


def retry_info_delay(data: bytes | memoryview) -> float | None:
    """google.rpc.RetryInfo (retry_delay = 1) → seconds, None when absent."""
    for num, val in wire.fields(data):
        if num == 1 and not isinstance(val, int):
            return _duration(val)
    return None


def parse_status(data: bytes | memoryview) -> tuple[str, float | None]:
    """google.rpc.Status (code 1, message 2, details 3 as Any{type_url 1, value 2}) → (message, RetryInfo delay)."""
    message, delay = "", None
    for num, val in wire.fields(data):
        if num == 2 and not isinstance(val, int):
            message = bytes(val).decode("utf-8", "replace")
        elif num == 3 and not isinstance(val, int):
            type_url, value = "", b""
            for n2, v2 in wire.fields(val):
                if n2 == 1 and not isinstance(v2, int):
                    type_url = bytes(v2).decode("utf-8", "replace")
                elif n2 == 2 and not isinstance(v2, int):
                    value = bytes(v2)
            if type_url == RETRY_INFO_TYPE:
                delay = retry_info_delay(value)
    return message, delay


# -- gRPC -------------------------------------------------------------------------------------------------------


class GrpcTransport:
    """Unary LogsService/Export with pre-encoded bytes over a grpcio channel, re-created after UNAVAILABLE."""

    # the OTLP spec's retryable codes; RESOURCE_EXHAUSTED only when the server sends RetryInfo
    RETRYABLE = frozenset({"CANCELLED", "DEADLINE_EXCEEDED", "ABORTED", "OUT_OF_RANGE", "UNAVAILABLE", "DATA_LOSS"})

    def __init__(self, s: ExportSettings) -> None:
        import grpc

        self.grpc = grpc
        url = s.endpoint
        parts = urlsplit(url if "://" in url else "//" + url)
        self.target = parts.netloc or url
        secure = parts.scheme == "https" or (parts.scheme == "" and not s.insecure)
        self.options = [
            ("grpc.max_send_message_length", 64 << 20),
            ("grpc.max_receive_message_length", 16 << 20),
            # reconnect soon after a collector outage (grpc's default backoff grows to 120 s)
            ("grpc.initial_reconnect_backoff_ms", 500),
            ("grpc.max_reconnect_backoff_ms", 5000),
            # a new channel gets new connections, not the shared subchannel still in its reconnect backoff
            ("grpc.use_local_subchannel_pool", 1),
        ]
        self.compression = grpc.Compression.Gzip if s.compression == "gzip" else grpc.Compression.NoCompression
        self.credentials = None
        if secure:
            root = _read(s.certificate)
            key = _read(s.client_key)
            chain = _read(s.client_certificate)
            self.credentials = grpc.ssl_channel_credentials(root, key, chain)
        self.metadata = tuple(s.headers.items())
        self.reconnects = 0
        self._connect()

    def _connect(self) -> None:
        grpc = self.grpc
        if self.credentials is not None:
            self.channel = grpc.secure_channel(
                self.target, self.credentials, options=self.options, compression=self.compression
            )
        else:
            self.channel = grpc.insecure_channel(self.target, options=self.options, compression=self.compression)
        self.call = self.channel.unary_unary(GRPC_METHOD)

    def reconnect(self) -> None:
        """A fresh channel: grpc's own reconnect backoff would otherwise delay the first call after an outage."""
        try:
            self.channel.close()
        except Exception:
            log.debug("closing the gRPC channel failed", exc_info=True)
        self.reconnects += 1
        self._connect()

    def send(self, body: bytes, timeout: float) -> SendResult:
        try:
            resp = self.call(body, timeout=timeout, metadata=self.metadata)
        except self.grpc.RpcError as exc:
            return self._failure(exc)
        rejected, msg = wire.parse_partial_success(resp or b"")
        return SendResult(True, rejected=rejected, message=msg)

    def _failure(self, exc: Any) -> SendResult:
        code = exc.code() if hasattr(exc, "code") else None
        name = code.name if code is not None else "UNKNOWN"
        details = exc.details() if hasattr(exc, "details") else str(exc)
        delay = None
        try:
            trailers = exc.trailing_metadata() or ()
        except Exception:
            trailers = ()
        for key, value in trailers:
            if key == "grpc-status-details-bin" and isinstance(value, bytes):
                delay = parse_status(value)[1]
            elif key == "google.rpc.retryinfo-bin" and isinstance(value, bytes) and delay is None:
                delay = retry_info_delay(value)  # what the Python SDK's exporter reads
        retryable = name in self.RETRYABLE or (name == "RESOURCE_EXHAUSTED" and delay is not None)
        if name == "UNAVAILABLE":
            self.reconnect()
        return SendResult(False, retryable, 0, f"{name}: {details}", delay)

    def close(self) -> None:
        self.channel.close()


def _read(path: str | None) -> bytes | None:
    if not path:
        return None
    with open(path, "rb") as f:
        return f.read()


# -- HTTP -------------------------------------------------------------------------------------------------------


def retry_after(value: str | None, now: float | None = None) -> float | None:
    """An HTTP Retry-After value (delay-seconds or an HTTP-date) → seconds from now; None when absent or bad."""
    if not value or not value.strip():
        return None
    v = value.strip()
    if v.isdigit():
        return float(v)
    try:
        when = email.utils.parsedate_to_datetime(v)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


class HttpTransport:
    """POST application/x-protobuf with requests, as the SDK's OTLP/HTTP exporter does."""

    RETRYABLE = frozenset({429, 502, 503, 504})

    def __init__(self, s: ExportSettings) -> None:
        import requests

        self.requests = requests
        self.url = s.endpoint
        self.session = requests.Session()
        self.session.headers.update({"Content-Type": "application/x-protobuf", **s.headers})
        self.gzip = s.compression == "gzip"
        if self.gzip:
            self.session.headers["Content-Encoding"] = "gzip"
        self.verify: bool | str = s.certificate or True
        self.cert = (s.client_certificate, s.client_key) if s.client_certificate and s.client_key else None

    def send(self, body: bytes, timeout: float) -> SendResult:
        data = gzip.compress(body, 1) if self.gzip else body
        try:
            r = self.session.post(self.url, data=data, timeout=timeout, verify=self.verify, cert=self.cert)
        except self.requests.RequestException as exc:
            return SendResult(False, True, 0, f"{type(exc).__name__}: {exc}")
        if 200 <= r.status_code < 300:
            rejected, msg = wire.parse_partial_success(r.content or b"")
            return SendResult(True, rejected=rejected, message=msg)
        # the OTLP spec: error bodies are a google.rpc.Status in the request's encoding
        text = parse_status(r.content)[0] if "protobuf" in r.headers.get("Content-Type", "") else r.text[:200]
        delay = retry_after(r.headers.get("Retry-After"))
        return SendResult(False, r.status_code in self.RETRYABLE, 0, f"HTTP {r.status_code}: {text}", delay)

    def close(self) -> None:
        self.session.close()


# -- console and both -----------------------------------------------------------------------------------------------


class ConsoleTransport:
    """OTEL_LOGS_EXPORTER=console: every record as one JSON line on stdout (exporter.sinks.logs.console)."""

    def __init__(self, stream: IO[str] | None = None) -> None:
        self.stream = stream

    def send(self, body: bytes, timeout: float) -> SendResult:
        from .console import json_lines

        out = self.stream or sys.stdout
        out.write(json_lines(body))
        out.flush()
        return SendResult(True)

    def close(self) -> None:
        pass


class TeeTransport:
    """OTEL_LOGS_EXPORTER=otlp,console: the request printed once, then sent (and retried) over OTLP."""

    def __init__(self, primary: Transport, echo: Transport) -> None:
        self.primary, self.echo = primary, echo
        self._last: bytes | None = None

    def send(self, body: bytes, timeout: float) -> SendResult:
        if body is not self._last:  # a retry passes the same object: print it once
            self._last = body
            self.echo.send(body, timeout)
        return self.primary.send(body, timeout)

    def close(self) -> None:
        self.primary.close()
        self.echo.close()


def make_transport(s: ExportSettings) -> Transport:
    otlp_t: Transport | None = None
    if "otlp" in s.exporters:
        otlp_t = GrpcTransport(s) if s.protocol == "grpc" else HttpTransport(s)
    if "console" not in s.exporters:
        assert otlp_t is not None
        return otlp_t
    return ConsoleTransport() if otlp_t is None else TeeTransport(otlp_t, ConsoleTransport())
