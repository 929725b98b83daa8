"""HTTP endpoints: /metrics (Prometheus text or OpenMetrics, negotiated), /healthz, /readyz."""

from __future__ import annotations

import html
import logging
import socket
import ssl
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from isal import igzip
from prometheus_client import CollectorRegistry

from .sinks.metrics.exposition import exposition
from .webconfig import WebConfig

log = logging.getLogger(__name__)

Readiness = Callable[[], tuple[bool, str]]


def make_handler(
    registry: CollectorRegistry,
    ready: Readiness,
    web: WebConfig | None = None,
    telemetry_path: str = "/metrics",
    health_only: bool = False,
) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        server_version = "cloudtrail-sqs-exporter"
        timeout = 30  # seconds a client may take to send its request (and TLS handshake)

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if health_only:  # the probe listener: no TLS, no auth, no metrics, no detail
                if path == "/healthz":
                    self._send(200, b"ok\n", "text/plain; charset=utf-8")
                elif path == "/readyz":
                    ok, _detail = ready()
                    self._send(200 if ok else 503, b"ok\n" if ok else b"not ready\n", "text/plain; charset=utf-8")
                else:
                    self._send(404, b"not found\n", "text/plain; charset=utf-8")
                return
            self.extra: dict[str, str] = {}
            if web is not None:
                parsed = web.current()
                if parsed is None:
                    self._send(500, b"web config is invalid\n", "text/plain; charset=utf-8")
                    return
                self.extra = parsed.headers
                # /healthz stays open so liveness probes need no credentials; it tells nothing
                code = 200 if path == "/healthz" else web.authorize(parsed, self.headers.get("Authorization"))
                if code != 200:
                    self.send_response(code)
                    if code == 401:
                        self.send_header("WWW-Authenticate", 'Basic realm="cloudtrail-sqs-exporter"')
                    self._headers()
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
            if path == telemetry_path:
                body, ctype = exposition(registry, self.headers.get("Accept", ""))
                self._send(200, body, ctype)
            elif path == "/healthz":
                self._send(200, b"ok\n", "text/plain; charset=utf-8")
            elif path == "/readyz":
                ok, detail = ready()
                self._send(200 if ok else 503, (detail + "\n").encode(), "text/plain; charset=utf-8")
            elif path == "/":
                link = html.escape(telemetry_path, quote=True)
                body = f'<html><body><h1>cloudtrail-sqs-exporter</h1><a href="{link}">metrics</a></body></html>'
                self._send(200, body.encode(), "text/html; charset=utf-8")
            else:
                self._send(404, b"not found\n", "text/plain; charset=utf-8")

        def _headers(self) -> None:
            for name, value in getattr(self, "extra", {}).items():
                self.send_header(name, value)

        def _send(self, code: int, body: bytes, ctype: str) -> None:
            gz = "gzip" in self.headers.get("Accept-Encoding", "") and len(body) > 1024
            if gz:
                body = igzip.compress(body, compresslevel=1)  # isal: cheap enough to gzip every large scrape
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            if gz:
                self.send_header("Content-Encoding", "gzip")
            self._headers()
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: object) -> None:
            log.debug("%s %s", self.address_string(), format % args)

    return Handler


class _Server(ThreadingHTTPServer):
    """Wraps each accepted connection with the web-config's TLS context *as it is now*, so a rotated
    certificate is served from the next connection on; the handshake runs on the connection's own thread
    (a silent client cannot stall accept()), and a failed one is one log line, not a traceback."""

    daemon_threads = True
    allow_reuse_address = True
    web: WebConfig | None = None

    def finish_request(self, request: Any, client_address: Any) -> None:
        if self.web is not None and self.web.tls:
            parsed = self.web.current()
            if parsed is None or parsed.ssl is None:
                request.close()
                return
            try:
                request.settimeout(30)
                request = parsed.ssl.wrap_socket(request, server_side=True)
            except (ssl.SSLError, OSError) as exc:
                log.info("TLS handshake with %s failed: %s", client_address[0], _one_line(exc))
                request.close()
                return
        super().finish_request(request, client_address)

    def handle_error(self, request: Any, client_address: Any) -> None:
        exc = sys.exc_info()[1]
        log.info("connection from %s ended: %s", client_address[0], _one_line(exc))


def split_address(address: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all interfaces, as the exporter toolkit takes it)."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def _one_line(exc: BaseException | None) -> str:
    text = f"{type(exc).__name__}: {exc}" if exc is not None else "unknown error"
    return " ".join(text.split())


class MetricsServer:
    def __init__(
        self,
        host: str,
        port: int,
        registry: CollectorRegistry,
        ready: Readiness,
        web: WebConfig | None = None,
        telemetry_path: str = "/metrics",
        health_only: bool = False,
    ) -> None:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        server_cls = type("Server", (_Server,), {"address_family": family, "web": web})
        handler = make_handler(registry, ready, web, telemetry_path, health_only)
        self.httpd = server_cls((host or "0.0.0.0", port), handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="http", daemon=True)

    @property
    def port(self) -> int:
        return self.httpd.server_address[1]

    def start(self) -> None:
        self.thread.start()

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
