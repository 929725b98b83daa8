"""OTLP transports and their retries against real receivers on 127.0.0.1: a grpcio LogsService that can
answer errors with google.rpc.RetryInfo in its status details, and an http.server OTLP/HTTP endpoint."""

from __future__ import annotations

import email.utils
import http.server
import itertools
import logging
import threading
import time
from collections.abc import Iterator
from concurrent import futures
from pathlib import Path
from typing import Any

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2, logs_service_pb2_grpc
from otlp_receiver import Receiver
from util import free_port

from exporter import config
from exporter.decode.delivery import extract
from exporter.generator import Generator
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.logs import LogSink
from exporter.sinks.logs.retry import Backoff, Retrier
from exporter.sinks.logs.settings import export_settings
from exporter.sinks.logs.transport import GrpcTransport, HttpTransport, SendResult, parse_status, retry_after
from exporter.sinks.logs.wire import RequestBuilder, kv_list, log_record

INF = float("inf")


def request_bytes(n: int = 1) -> bytes:
    """A valid ExportLogsServiceRequest of n records, as the sink builds one."""
    b = RequestBuilder({"service.name": "t"}, "t", "0")
    recs = [b.record_field(log_record(1, 2, 9, "INFO", kv_list({"i": i}), b"", "e")) for i in range(n)]
    return b.request(recs)


class FaultyReceiver:
    """OTLP/gRPC LogsService that fails while `fail` is set: (status code, RetryInfo delay or None).
    Notes (monotonic time, x-id header) of every attempt."""

    def __init__(self, port: int | None = None) -> None:
        self.port = port or free_port()
        self.fail: tuple[grpc.StatusCode, float | None] | None = None
        self.lock = threading.Lock()
        self.attempts: list[tuple[float, str | None]] = []
        self.accepted = 0
        owner = self

        class Servicer(logs_service_pb2_grpc.LogsServiceServicer):
            def Export(self, request: Any, context: Any) -> Any:
                return owner._export(request, context)

        self.server = grpc.server(futures.ThreadPoolExecutor(max_workers=8))
        logs_service_pb2_grpc.add_LogsServiceServicer_to_server(Servicer(), self.server)
        assert self.server.add_insecure_port(f"127.0.0.1:{self.port}") == self.port
        self.server.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def _export(self, request: Any, context: Any) -> Any:
        who = dict(context.invocation_metadata()).get("x-id")
        with self.lock:
            self.attempts.append((time.monotonic(), who))
            fail = self.fail
        if fail is not None:
            code, delay = fail
            if delay is not None:
                status = status_pb2.Status(code=code.value[0], message="try later")
                info = error_details_pb2.RetryInfo()
                info.retry_delay.seconds = int(delay)
                info.retry_delay.nanos = int((delay - int(delay)) * 1e9)
                status.details.add().Pack(info)
                context.set_trailing_metadata((("grpc-status-details-bin", status.SerializeToString()),))
            context.abort(code, "try later")
        with self.lock:
            self.accepted += 1
        return logs_service_pb2.ExportLogsServiceResponse()

    def times(self, who: str | None = None) -> list[float]:
        with self.lock:
            return [t for t, w in self.attempts if who is None or w == who]

    def stop(self) -> None:
        self.server.stop(grace=None).wait(5)


@pytest.fixture
def faulty() -> Iterator[FaultyReceiver]:
    r = FaultyReceiver()
    yield r
    r.stop()


def grpc_transport(endpoint: str, **headers: str) -> GrpcTransport:
    cfg = config.LogsConfig(enabled=True, endpoint=endpoint, headers=headers or None)
    return GrpcTransport(export_settings(cfg, {}))


def gaps(times: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(times)]


# -- gRPC RetryInfo ------------------------------------------------------------------------------------------------


def test_grpc_retry_info_delay_is_honoured(faulty: FaultyReceiver) -> None:
    faulty.fail = (grpc.StatusCode.UNAVAILABLE, 0.8)
    t = grpc_transport(faulty.endpoint)
    body = request_bytes()
    stopping = threading.Event()

    def send(timeout: float) -> SendResult:
        r = t.send(body, timeout)
        if len(faulty.times()) >= 3:
            faulty.fail = None  # the third attempt was refused: the fourth is accepted
        return r

    try:
        res = Retrier(timeout=2.0, max_elapsed=20.0).run(send, stopping, lambda: INF)
    finally:
        t.close()
    assert res.ok
    g = gaps(faulty.times())
    assert len(g) == 3
    # never earlier than the server asked, and not much later (the backoff alone would be < 0.5 s, then < 1 s)
    assert all(0.8 <= x < 0.8 * 1.1 + 0.3 for x in g), g


def test_grpc_status_details_parsed_and_resource_exhausted_needs_retry_info(faulty: FaultyReceiver) -> None:
    t = grpc_transport(faulty.endpoint)
    try:
        faulty.fail = (grpc.StatusCode.RESOURCE_EXHAUSTED, 2.5)
        r = t.send(request_bytes(), 2.0)
        assert (r.ok, r.retryable, r.retry_after) == (False, True, 2.5)
        assert r.message.startswith("RESOURCE_EXHAUSTED")
        faulty.fail = (grpc.StatusCode.RESOURCE_EXHAUSTED, None)  # no RetryInfo: the OTLP spec says do not retry
        r = t.send(request_bytes(), 2.0)
        assert (r.ok, r.retryable, r.retry_after) == (False, False, None)
        faulty.fail = (grpc.StatusCode.INVALID_ARGUMENT, None)
        assert not t.send(request_bytes(), 2.0).retryable
        faulty.fail = None
        assert t.send(request_bytes(), 2.0).ok
    finally:
        t.close()
    st = status_pb2.Status(code=14, message="m")
    info = error_details_pb2.RetryInfo()
    info.retry_delay.seconds, info.retry_delay.nanos = 3, 250_000_000
    st.details.add().Pack(error_details_pb2.DebugInfo(detail="x"))
    st.details.add().Pack(info)
    assert parse_status(st.SerializeToString()) == ("m", 3.25)


# -- jitter ----------------------------------------------------------------------------------------------------------


def test_retries_of_several_exporters_do_not_line_up(faulty: FaultyReceiver) -> None:
    faulty.fail = (grpc.StatusCode.UNAVAILABLE, None)
    n = 5
    start = threading.Barrier(n)
    body = request_bytes()

    def exporter(i: int) -> None:
        t = grpc_transport(faulty.endpoint, **{"x-id": str(i)})
        try:
            start.wait()
            Retrier(timeout=1.0, max_elapsed=3.0).run(
                lambda timeout: t.send(body, timeout), threading.Event(), lambda: INF
            )
        finally:
            t.close()

    threads = [threading.Thread(target=exporter, args=(i,)) for i in range(n)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(30)
    per = [faulty.times(str(i)) for i in range(n)]
    assert all(len(ts) >= 3 for ts in per), [len(ts) for ts in per]
    firsts = [ts[0] for ts in per]
    assert max(firsts) - min(firsts) < 0.2  # they started together…
    for k in (1, 2):  # …and their retries are spread, not in lock-step
        kth = sorted(ts[k] for ts in per)
        assert kth[-1] - kth[0] > 0.05, f"retry {k} of {n} exporters within 50 ms: {kth}"
    # the first wait is full-jitter uniform(0, 0.5 s)
    assert all(0 <= ts[1] - ts[0] < 0.5 + 0.2 for ts in per)


def test_backoff_is_full_jitter_and_capped() -> None:
    b = Backoff(base=0.5, cap=10.0, rng=lambda: 1.0)
    assert [b.delay(i) for i in range(7)] == [0.5, 1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert Backoff(rng=lambda: 0.0).delay(5) == 0.0
    assert Backoff(rng=lambda: 0.5).delay(0, server_delay=3.0) == 3.0 + 0.15  # never below the server's delay
    assert Backoff(rng=lambda: 0.5).delay(0, server_delay=0.0) == 0.25  # a zero delay is no excuse to spin


# -- HTTP Retry-After ------------------------------------------------------------------------------------------------


class HttpCollector:
    """OTLP/HTTP endpoint: answers the first `fail` requests with 503 and `Retry-After`, then 200."""

    def __init__(self, retry_after: str | None, fail: int = 1) -> None:
        self.times: list[float] = []
        self.fail = fail
        self.retry_after = retry_after
        owner = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                owner.times.append(time.monotonic())
                if owner.fail > 0:
                    owner.fail -= 1
                    body = status_pb2.Status(code=14, message="overloaded").SerializeToString()
                    self.send_response(503)
                    if owner.retry_after is not None:
                        self.send_header("Retry-After", owner.retry_after)
                else:
                    body = b""
                    self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1/logs"

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.mark.parametrize("kind", ["seconds", "http-date"])
def test_http_503_retry_after_is_honoured(kind: str) -> None:
    value = "1" if kind == "seconds" else email.utils.formatdate(time.time() + 2.0, usegmt=True)
    c = HttpCollector(value)
    cfg = config.LogsConfig(enabled=True, endpoint=c.url, protocol="http/protobuf")
    t = HttpTransport(export_settings(cfg, {}))
    try:
        first = t.send(request_bytes(), 2.0)
        assert (first.ok, first.retryable, first.message) == (False, True, "HTTP 503: overloaded")
        assert first.retry_after is not None and 1.0 <= first.retry_after <= 2.0
        c.fail = 1
        res = Retrier(timeout=2.0, max_elapsed=10.0).run(
            lambda to: t.send(request_bytes(), to), threading.Event(), lambda: INF
        )
    finally:
        t.close()
        c.stop()
    assert res.ok
    assert c.times[-1] - c.times[-2] >= (first.retry_after if kind == "http-date" else 1.0) - 0.01


def test_retry_after_values() -> None:
    assert retry_after("120") == 120.0
    assert retry_after(None) is None and retry_after("soon") is None and retry_after("-3") is None
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412490.0) == 0.0


# -- channel re-created after UNAVAILABLE -----------------------------------------------------------------------------


def test_grpc_channel_recreated_after_unavailable_export_resumes() -> None:
    port = free_port()
    rx = Receiver(port).start()
    t = grpc_transport(rx.endpoint)
    try:
        assert t.send(request_bytes(), 2.0).ok
        rx.stop()
        end = time.monotonic() + 6.0  # long enough for grpc's own reconnect backoff to reach its 5 s cap
        while time.monotonic() < end:
            r = t.send(request_bytes(), 1.0)
            assert not r.ok and r.retryable and r.message.startswith("UNAVAILABLE"), r
            time.sleep(0.2)
        assert t.reconnects > 0
        rx = Receiver(port).start()
        # the first attempt after the restart goes through: a fresh channel does not sit out a backoff
        assert t.send(request_bytes(3), 2.0).ok
        assert rx.count == 3
    finally:
        t.close()
        rx.stop()


# -- shutdown against a failing collector --------------------------------------------------------------------------


def events(tmp_path: Path, n: int) -> list[tuple[Any, Any]]:
    gen = Generator(seed=4)
    gen.write(tmp_path / "b", files=2, records_per_file=400, extras=False)
    out: list[tuple[Any, Any]] = []
    for f in gen.truth.files:
        out += extract(Path(f).read_bytes())[1]
    return (out * (n // len(out) + 1))[:n]


@pytest.mark.parametrize("retry_delay", [None, 0.3])
def test_shutdown_against_failing_collector_is_bounded(
    tmp_path: Path, faulty: FaultyReceiver, caplog: pytest.LogCaptureFixture, retry_delay: float | None
) -> None:
    faulty.fail = (grpc.StatusCode.UNAVAILABLE, retry_delay)
    cfg = config.LogsConfig(
        enabled=True, endpoint=faulty.endpoint, batch_size=50, flush_interval=0.05, timeout=1.0, retry_max_elapsed=60.0
    )
    counters = SelfMetrics()
    sink = LogSink(cfg, counters, env={})
    n = 1000  # 20 batches
    for raw, ev in events(tmp_path, n):
        sink.emit(raw, ev, 1.0)
    time.sleep(1.5)  # the first batch is in its backoff
    before = len(faulty.times())
    assert before >= 2
    caplog.clear()
    caplog.set_level(logging.DEBUG)
    bound = 2.0
    t0 = time.monotonic()
    sink.shutdown(timeout=bound)
    took = time.monotonic() - t0
    during = len(faulty.times()) - before
    assert took < bound + 0.5, f"shutdown took {took:.2f}s"
    batches = n // cfg.batch_size
    # at most one per batch, and paced: not the whole queue at once
    assert during <= min(batches, 10), f"{during} attempts for {batches} batches during shutdown"
    assert sum(counters.log_records.values()) == n and counters.log_records["exported"] == 0
    noisy = [r for r in caplog.records if r.levelno >= logging.INFO and r.name.startswith("exporter.sinks")]
    assert len(noisy) <= 2, [r.getMessage() for r in noisy]  # no line per attempt, nor per batch given up


def test_retry_gives_up_at_max_elapsed(faulty: FaultyReceiver) -> None:
    faulty.fail = (grpc.StatusCode.UNAVAILABLE, None)
    t = grpc_transport(faulty.endpoint)
    t0 = time.monotonic()
    try:
        res = Retrier(timeout=1.0, max_elapsed=1.5).run(
            lambda to: t.send(request_bytes(), to), threading.Event(), lambda: INF
        )
    finally:
        t.close()
    assert not res.ok and res.retryable
    assert time.monotonic() - t0 < 1.5 + 0.5
    assert 2 <= len(faulty.times()) < 20
