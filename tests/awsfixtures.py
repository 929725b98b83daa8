"""AWS peers for the source tests: `moto_server` over real HTTP on 127.0.0.1 (started and stopped by
the fixtures), a fault-injecting proxy in front of it, and helpers to seed trail data."""

from __future__ import annotations

import http.client
import http.server
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import boto3
import msgspec
import pytest
import yaml
from botocore.config import Config
from util import free_port, http_get, load_truth, wait_for

CREDS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}
# what the exporter child process must not inherit (real credentials, proxies, profiles)
SCRUB = (
    "AWS_PROFILE",
    "AWS_SESSION_TOKEN",
    "AWS_ENDPOINT_URL",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "http_proxy",
    "https_proxy",
)


def aws_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SCRUB}
    return {**env, **CREDS, **extra}


class MotoServer:
    """`moto_server` as a child process; `stop()` / `start()` again on the same port (state is lost)."""

    def __init__(self, workdir: Path, port: int | None = None) -> None:
        self.port = port or free_port()
        self.workdir = workdir
        self.proc: subprocess.Popen | None = None
        self.log = workdir / f"moto-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> MotoServer:
        exe = shutil.which("moto_server")
        cmd = [exe] if exe else [sys.executable, "-m", "moto.server"]
        self._logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [*cmd, "-H", "127.0.0.1", "-p", str(self.port)],
            stdout=self._logf,
            stderr=subprocess.STDOUT,
            env=aws_env(),
        )
        wait_for(lambda: self._alive() and http_get(self.url + "/moto-api/data.json")[0] == 200, 30, what="moto_server")
        return self

    def _alive(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"moto_server exited:\n{self.log.read_text()[-3000:]}")
        return True

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        self.proc = None

    def client(self, service: str, region: str = "us-east-1") -> Any:
        return boto3.client(
            service,
            endpoint_url=self.url,
            region_name=region,
            aws_access_key_id="testing",
            aws_secret_access_key="testing",
            config=Config(retries={"mode": "standard", "max_attempts": 3}),
        )


@pytest.fixture
def moto(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[MotoServer]:
    for k in SCRUB:
        monkeypatch.delenv(k, raising=False)
    for k, v in CREDS.items():
        monkeypatch.setenv(k, v)
    server = MotoServer(tmp_path).start()
    yield server
    server.stop()


class FaultProxy:
    """An HTTP proxy in front of moto: passes requests through, or answers 503 SlowDown while
    `failing` is set (as S3 does under load). Counts what it refused."""

    SLOWDOWN = (
        b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
        b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>"
    )

    def __init__(self, upstream_port: int) -> None:
        self.upstream_port = upstream_port
        self.failing = threading.Event()
        # refuse only some requests: a predicate on (headers, body), e.g. one SQS operation
        self.refuse_when: Callable[[dict[str, str], bytes], bool] | None = None
        self.refused = 0
        self.passed = 0
        proxy = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *a: Any) -> None:
                pass

            def _any(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = self.rfile.read(n) if n else b""
                if proxy.failing.is_set() or (
                    proxy.refuse_when is not None and proxy.refuse_when(dict(self.headers), body)
                ):
                    proxy.refused += 1
                    self._reply(503, {"Content-Type": "application/xml"}, FaultProxy.SLOWDOWN)
                    return
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", proxy.upstream_port, timeout=60)
                    headers = {k: v for k, v in self.headers.items() if k.lower() not in ("connection", "keep-alive")}
                    conn.request(self.command, self.path, body=body, headers=headers)
                    r = conn.getresponse()
                    data = r.read()
                    conn.close()
                except OSError:  # upstream down: drop the connection, as a dead peer would
                    proxy.refused += 1
                    self.close_connection = True
                    return
                proxy.passed += 1
                hop = ("connection", "keep-alive", "transfer-encoding", "content-length")
                self._reply(r.status, {k: v for k, v in r.getheaders() if k.lower() not in hop}, data)

            def _reply(self, status: int, headers: dict[str, str], data: bytes) -> None:
                self.send_response(status)
                for k, v in headers.items():
                    self.send_header(k, v)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _any

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, name="fault-proxy", daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> FaultProxy:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(5)


@pytest.fixture
def fault_proxy(moto: MotoServer) -> Iterator[FaultProxy]:
    proxy = FaultProxy(moto.port).start()
    yield proxy
    proxy.stop()


# -- data ------------------------------------------------------------------------------------------
def write_batch(
    gen: Any, out: Path, files: int, start: datetime | None = None, records: int = 60, extras: bool = True
) -> dict[str, Any]:
    """Write `files` more trail files with `gen` (its truth keeps growing); the cumulative truth."""
    if start is not None:
        gen.start = start
    truth = gen.write(out, files, records, extras=extras)
    tp = out.with_name(out.name + ".truth.json")
    tp.write_bytes(msgspec.json.encode(truth.to_json()))
    return load_truth(tp)


def upload_tree(s3: Any, bucket: str, root: Path, prefix: str = "", only_new: set[str] | None = None) -> list[str]:
    """Put every file under `root` into the bucket (key = prefix + relative path); the keys put."""
    keys = []
    for path in sorted(root.rglob("*")):
        if not path.is_file():
            continue
        key = prefix + path.relative_to(root).as_posix()
        if only_new is not None and key in only_new:
            continue
        s3.put_object(Bucket=bucket, Key=key, Body=path.read_bytes())
        keys.append(key)
    return keys


def write_config(path: Path, sources: list[dict[str, Any]], **top: Any) -> Path:
    doc = {"state": {"path": str(path.parent / "state" / "exporter.db"), "commit_interval": "200ms"}, **top}
    doc["sources"] = sources
    path.write_text(yaml.safe_dump(doc))
    return path


def counted(metrics: dict, name: str, **labels: str) -> float:
    """Sum of the samples of `name` whose labels include `labels`."""
    total = 0.0
    for (n, lab), v in metrics.items():
        if n == name and all(dict(lab).get(k) == val for k, val in labels.items()):
            total += v
    return total


def wait_metric(exp: Any, name: str, want: float, timeout: float = 60.0, **labels: str) -> dict:
    """Scrape until counted(name, labels) == want; the last scrape."""

    def check() -> dict | None:
        m = exp.metrics()
        return m if counted(m, name, **labels) == want else None

    try:
        return wait_for(check, timeout, interval=0.3, what=f"{name}{labels} == {want}")
    except TimeoutError:
        got = counted(exp.metrics(), name, **labels)
        raise AssertionError(f"{name}{labels}: want {want}, got {got}; log:\n{exp.log.read_text()[-3000:]}") from None


def wait_until(check: Any, timeout: float = 30.0, what: str = "") -> Any:
    return wait_for(check, timeout, interval=0.3, what=what)


def sleep(seconds: float) -> None:
    time.sleep(seconds)
