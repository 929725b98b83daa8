"""A real Prometheus server (Debian's package) on 127.0.0.1, scraping given targets."""

from __future__ import annotations

import json
import shutil
import subprocess
import urllib.parse
from pathlib import Path
from typing import Any

from util import free_port, http_get, wait_for

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


class Prometheus:
    def __init__(self, workdir: Path, targets: list[str], rule_files: list[Path] | None = None) -> None:
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        cfg = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(p) for p in rule_files or []],
            "scrape_configs": [{"job_name": "cloudtrail-sqs-exporter", "static_configs": [{"targets": targets}]}],
        }
        (self.dir / "prometheus.yml").write_text(json.dumps(cfg))  # JSON is YAML
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Prometheus:
        self._log = open(self.dir / "prometheus.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen(
            [
                PROMETHEUS,
                f"--config.file={self.dir / 'prometheus.yml'}",
                f"--storage.tsdb.path={self.dir / 'data'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--web.enable-lifecycle",
            ],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: http_get(self.url + "/-/ready")[0] == 200, 60, what="prometheus ready")
        return self

    def query(self, expr: str) -> list[dict[str, Any]]:
        code, body, _ = http_get(self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        doc = json.loads(body)
        if code != 200 or doc.get("status") != "success":
            raise AssertionError(f"query {expr!r} failed: {body[:500]}")
        return doc["data"]["result"]

    def scalar(self, expr: str) -> float | None:
        res = self.query(expr)
        return float(res[0]["value"][1]) if res else None

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
            self._log.close()
            self.proc = None
