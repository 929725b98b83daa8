"""TLS and basic auth from a web-config file; a real Prometheus scrapes through both."""

from __future__ import annotations

import base64
import json
import ssl
import subprocess
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import bcrypt
import pytest
from promserver import Prometheus
from test_run import write_config
from util import Exporter, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow


@pytest.fixture
def tls_dir(tmp_path: Path) -> Path:
    d = tmp_path / "tls"
    d.mkdir()
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-addext",
            "subjectAltName=IP:127.0.0.1",
            "-keyout",
            str(d / "server.key"),
            "-out",
            str(d / "server.crt"),
        ],
        check=True,
        capture_output=True,
    )
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=6)).decode()
    (d / "web.yml").write_text(
        json.dumps(
            {
                "tls_server_config": {"cert_file": "server.crt", "key_file": "server.key"},
                "basic_auth_users": {"prom": hashed},
            }
        )
    )
    return d


def get(url: str, ca: Path, user: str | None = None, password: str = "") -> int:
    ctx = ssl.create_default_context(cafile=str(ca))
    req = urllib.request.Request(url)
    if user:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            return r.status
    except urllib.error.HTTPError as e:
        return e.code


@pytest.fixture
def prom() -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for p in started:
        p.stop()


def test_tls_and_basic_auth(
    tmp_path: Path, tls_dir: Path, exporter_proc: list[Exporter], prom: list[Prometheus]
) -> None:
    trail = tmp_path / "trail"
    Generator(seed=5).write(trail, 4, 20)
    cfg = write_config(tmp_path, trail, f"web_config_file: {tls_dir / 'web.yml'}\n")
    exp = Exporter(cfg, tmp_path)
    exporter_proc.append(exp)
    https = f"https://127.0.0.1:{exp.port}"
    ca = tls_dir / "server.crt"
    exp.start(check=lambda: get(https + "/healthz", ca) == 200)
    assert get(https + "/metrics", ca) == 401
    assert get(https + "/metrics", ca, "prom", "wrong") == 401
    assert get(https + "/metrics", ca, "nobody", "s3cret") == 401
    assert get(https + "/metrics", ca, "prom", "s3cret") == 200
    with pytest.raises(Exception):  # noqa: B017 - plain HTTP to a TLS port fails one way or another
        urllib.request.urlopen(f"http://127.0.0.1:{exp.port}/metrics", timeout=5).read()

    p = Prometheus(tmp_path / "prom", [f"127.0.0.1:{exp.port}"])
    cfg_doc = json.loads((p.dir / "prometheus.yml").read_text())
    cfg_doc["scrape_configs"][0].update(
        {
            "scheme": "https",
            "tls_config": {"ca_file": str(ca)},
            "basic_auth": {"username": "prom", "password": "s3cret"},
        }
    )
    (p.dir / "prometheus.yml").write_text(json.dumps(cfg_doc))
    prom.append(p.start())
    wait_for(lambda: p.scalar('up{job="cloudtrail-sqs-exporter"}') == 1, 60, what="prometheus scrapes over TLS")
    assert (p.scalar("sum(cloudtrail_sqs_api_calls_total)") or 0) > 0


def test_bad_web_config_fails_at_start(tmp_path: Path) -> None:
    bad = tmp_path / "web.yml"
    bad.write_text("tls_server_config:\n  cert_file: missing.crt\n  key_file: missing.key\n")
    cfg = write_config(tmp_path, tmp_path, f"web_config_file: {bad}\n")
    exp = Exporter(cfg, tmp_path)
    with pytest.raises(RuntimeError, match="cannot start"):
        exp.start(wait_ready=False, timeout=20)
    exp.stop()
