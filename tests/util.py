"""Helpers shared by the tests: ports, processes, scraping, ground truth."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

import msgspec
from prometheus_client.parser import text_string_to_metric_families

ROOT = Path(__file__).resolve().parent.parent
# copied from ../shared/fixtures with their provenance (tests/fixtures/README.md)
FIXTURES = ROOT / "tests" / "fixtures"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for(check: Callable[[], Any], timeout: float = 30.0, interval: float = 0.1, what: str = "") -> Any:
    """Poll `check` until it returns something truthy; fail with `what` after `timeout`."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
            if last:
                return last
        except Exception as exc:  # not up yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out waiting for {what or check}: last={last!r}")


def http_get(url: str, headers: dict[str, str] | None = None, timeout: float = 5.0) -> tuple[int, str, dict]:
    req = urllib.request.Request(url, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read().decode(), dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode(), dict(e.headers)


def parse_metrics(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """Exposition text → {(sample name, sorted label items): value}."""
    out = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def series(metrics: dict, name: str, *label_names: str) -> dict[tuple[str, ...], float]:
    """{label values in the given order: value} for one sample name, summed over the other labels."""
    out: dict[tuple[str, ...], float] = {}
    for (n, labels), v in metrics.items():
        if n == name:
            d = dict(labels)
            key = tuple(d[k] for k in label_names)
            out[key] = out.get(key, 0.0) + v
    return out


def load_truth(path: Path) -> dict[str, Any]:
    t = msgspec.json.decode(Path(path).read_bytes())
    return {
        "calls": {tuple(r[:-1]): r[-1] for r in t["calls"]},
        "errors": {tuple(r[:-1]): r[-1] for r in t["errors"]},
        "batch": {tuple(r[:-1]): r[-1] for r in t["batch"]},
        "principals": {g: {tuple(r[:-1]): r[-1] for r in rows} for g, rows in t["principals"].items()},
        "records": t["records"],
        "objects": t["objects"],
        "files": t["files"],
    }


def assert_matches_truth(metrics: dict, truth: dict, granularity: str = "role") -> None:
    """The exporter's series equal the generator's ground truth exactly."""
    q = ("account_id", "region", "queue")
    calls = series(metrics, "cloudtrail_sqs_api_calls_total", *q, "event_name", "event_category")
    assert {k: int(v) for k, v in calls.items() if v} == truth["calls"]
    errors = series(metrics, "cloudtrail_sqs_api_errors_total", *q, "event_name", "error_code")
    assert {k: int(v) for k, v in errors.items() if v} == truth["errors"]
    batch = series(metrics, "cloudtrail_sqs_batch_entries_total", *q, "event_name")
    assert {k: int(v) for k, v in batch.items() if v} == truth["batch"]
    principals = series(metrics, "cloudtrail_sqs_distinct_principals", *q, "window")
    assert {k: int(v) for k, v in principals.items()} == truth["principals"][granularity]


def generate(out: Path, files: int = 20, seed: int = 1, records: int = 100, **kw: Any) -> dict[str, Any]:
    """Generated trail files under `out` and their ground truth (see exporter.generator)."""
    from exporter.generator import Generator

    gen = Generator(seed=seed, **kw)
    truth = gen.write(out, files, records)
    tp = out.with_name(out.name + ".truth.json")
    tp.write_bytes(msgspec.json.encode(truth.to_json()))
    return load_truth(tp)


class Exporter:
    """`cloudtrail-sqs-exporter run` as a child process on a free port; stopped by `stop()`."""

    def __init__(
        self,
        config: Path,
        cwd: Path,
        env: dict[str, str] | None = None,
        port: int | None = None,
        wrap: Callable[[list[str]], list[str]] | None = None,
    ):
        self.wrap = wrap or (lambda cmd: cmd)
        self.port = port or free_port()
        self.config = config
        self.cwd = cwd
        self.env = {**os.environ, **(env or {}), "CTSQS_LISTEN": f"127.0.0.1:{self.port}"}
        self.proc: subprocess.Popen | None = None
        self.log = cwd / f"exporter-{self.port}.log"

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(
        self, wait_ready: bool = True, timeout: float = 30.0, check: Callable[[], bool] | None = None
    ) -> Exporter:
        """Start and wait for /readyz (or /healthz, or `check`); raise at once if the process exits."""
        self._logf = open(self.log, "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            self.wrap([sys.executable, "-m", "exporter", "run", "--config", str(self.config)]),
            cwd=self.cwd,
            env=self.env,
            stdout=self._logf,
            stderr=subprocess.STDOUT,
        )
        if check is None:
            path = "/readyz" if wait_ready else "/healthz"
            check = lambda: http_get(self.url + path)[0] == 200  # noqa: E731
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                rc = self.proc.returncode
                self.stop()
                raise RuntimeError(f"exporter exited {rc}:\n{self.log.read_text()[-4000:]}")
            try:
                if check():
                    return self
            except Exception:  # not listening yet
                pass
            if time.monotonic() > deadline:
                self.stop()
                raise TimeoutError(f"exporter did not start; log:\n{self.log.read_text()[-4000:]}")
            time.sleep(0.1)

    def metrics(self) -> dict:
        code, body, _ = http_get(self.url + "/metrics")
        assert code == 200, body
        return parse_metrics(body)

    def stop(self, sig: int | None = None, timeout: float = 30.0) -> int | None:
        if self.proc is None:
            return None
        if self.proc.poll() is None:
            if sig is None:
                self.proc.terminate()
            else:
                self.proc.send_signal(sig)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._logf.close()
        rc = self.proc.returncode
        self.proc = None
        return rc
