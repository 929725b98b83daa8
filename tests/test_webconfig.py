"""TLS and basic auth from a web-config file; a real Prometheus scrapes through both."""

from __future__ import annotations

import base64
import json
import os
import socket
import ssl
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import bcrypt
import pytest
from promserver import Prometheus
from test_run import write_config
from util import Exporter, free_port, wait_for

from exporter.generator import Generator
from exporter.server import MetricsServer
from exporter.webconfig import MAX_AUTH_WAITERS, WebConfig

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


# ---------------------------------------------------------------------------- the toolkit's schema and flags


def _openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True)


def make_cert(d: Path, name: str, ca: str | None, server: bool = True) -> tuple[Path, Path]:
    """A P-256 key and certificate `name`, signed by the CA files `ca`.key/.crt (self-signed if None)."""
    key, crt = d / f"{name}.key", d / f"{name}.crt"
    ext = "subjectAltName=IP:127.0.0.1" if server else "extendedKeyUsage=clientAuth"
    common = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", str(key)]
    if ca is None:
        _openssl("req", "-x509", *common, "-days", "2", "-subj", f"/CN={name}", "-addext", ext, "-out", str(crt))
        return key, crt
    csr = d / f"{name}.csr"
    _openssl("req", *common, "-subj", f"/CN={name}", "-out", str(csr))
    extfile = d / f"{name}.ext"
    extfile.write_text(ext + "\n")
    _openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(d / f"{ca}.crt"), "-CAkey", str(d / f"{ca}.key"),
        "-CAcreateserial", "-days", "2", "-extfile", str(extfile), "-out", str(crt),
    )  # fmt: skip
    return key, crt


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("pki")
    make_cert(d, "ca", None)
    make_cert(d, "other-ca", None)
    make_cert(d, "server", "ca")
    make_cert(d, "server2", "ca")
    make_cert(d, "client", "ca", server=False)
    make_cert(d, "stranger", "other-ca", server=False)
    return d


def _serve(web_file: Path, telemetry_path: str = "/metrics") -> MetricsServer:
    from prometheus_client import CollectorRegistry

    srv = MetricsServer("127.0.0.1", 0, CollectorRegistry(), lambda: (True, "ok"), WebConfig(web_file), telemetry_path)
    srv.start()
    return srv


def _client(pki: Path, version: ssl.TLSVersion | None = None, cert: str | None = None) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(pki / "ca.crt"))
    if version is not None:
        ctx.minimum_version = ctx.maximum_version = version
    if cert is not None:
        ctx.load_cert_chain(pki / f"{cert}.crt", pki / f"{cert}.key")
    return ctx


def _status(url: str, ctx: ssl.SSLContext | None = None, auth: tuple[str, str] | None = None) -> tuple[int, dict]:
    req = urllib.request.Request(url)
    if auth:
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{auth[0]}:{auth[1]}".encode()).decode())
    try:
        with urllib.request.urlopen(req, context=ctx, timeout=10) as r:
            r.read()
            return r.status, dict(r.headers)
    except urllib.error.HTTPError as e:
        return e.code, dict(e.headers)


def _web(d: Path, doc: dict) -> Path:
    p = d / "web.yml"
    p.write_text(json.dumps(doc))
    return p


TLS = {"cert_file": "server.crt", "key_file": "server.key"}


def test_toolkit_flags_and_tls13_only(pki: Path, tmp_path: Path) -> None:
    """`run --web.listen-address --web.config.file --web.telemetry-path`; min_version TLS13 refuses a TLS 1.2
    client (one log line, no traceback) and serves a TLS 1.3 one."""
    web = _web(pki, {"tls_server_config": {**TLS, "min_version": "TLS13"}})
    trail = tmp_path / "trail"
    Generator(seed=5).write(trail, 2, 10)
    cfg = write_config(tmp_path, trail)
    port = free_port()
    log = tmp_path / "run.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTSQS_")}
    cmd = [sys.executable, "-m", "exporter", "run", "--config", str(cfg), f"--web.listen-address=127.0.0.1:{port}"]
    cmd += [f"--web.config.file={web}", "--web.telemetry-path=/probe/metrics"]
    with open(log, "wb") as out:
        proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
    try:
        url = f"https://127.0.0.1:{port}"
        tls13 = _client(pki, ssl.TLSVersion.TLSv1_3)
        wait_for(lambda: _status(url + "/healthz", tls13)[0] == 200, 30, what="TLS 1.3 /healthz")
        assert _status(url + "/probe/metrics", tls13)[0] == 200
        assert _status(url + "/metrics", tls13)[0] == 404
        with pytest.raises((ssl.SSLError, urllib.error.URLError)):
            _status(url + "/healthz", _client(pki, ssl.TLSVersion.TLSv1_2))
        wait_for(lambda: "TLS handshake with 127.0.0.1 failed" in log.read_text(), 10, what="handshake error logged")
    finally:
        proc.terminate()
        proc.wait(20)
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    line = next(x for x in text.splitlines() if "TLS handshake" in x)
    assert "INFO exporter.server" in line  # through logging, one line


@pytest.mark.parametrize(
    ("doc", "named"),
    [
        ({"tls_server_config": {**TLS, "client_allowed_sans": ["x"]}}, "tls_server_config.client_allowed_sans"),
        ({"tls_server_config": {**TLS, "min_version": "TLS14"}}, "tls_server_config.min_version"),
        ({"tls_server_config": {**TLS, "client_auth_type": "RequestClientCert"}}, "client_auth_type"),
        ({"tls_server_config": {**TLS, "client_auth_type": "RequireAndVerifyClientCert"}}, "client_ca_file"),
        ({"tls_server_config": {**TLS, "cipher_suites": ["TLS_FOO"]}}, "tls_server_config.cipher_suites"),
        ({"tls_server_config": {**TLS, "curve_preferences": ["X25519", "CurveP256"]}}, "curve_preferences"),
        ({"http_server_config": {"http2": True}}, "http_server_config.http2"),
        ({"http_server_config": {"headers": {"X-Custom": "1"}}}, "http_server_config.headers.X-Custom"),
        ({"basic_auth_users": {"prom": "plain-text"}}, "basic_auth_users.prom"),
        ({"rate_limit": {"interval": "1s"}}, "rate_limit"),
    ],
)
def test_unsupported_key_stops_the_start_naming_it(pki: Path, tmp_path: Path, doc: dict, named: str) -> None:
    d = tmp_path / "w"
    d.mkdir()
    for f in ("server.crt", "server.key"):
        (d / f).write_bytes((pki / f).read_bytes())
    web = _web(d, doc)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTSQS_")}
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "exporter",
            "run",
            f"--web.listen-address=127.0.0.1:{free_port()}",
            f"--web.config.file={web}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        env=env,
        cwd=tmp_path,
    )
    assert r.returncode == 1 and named in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_client_auth_types_follow_go(pki: Path, tmp_path: Path) -> None:
    for auth, anonymous, trusted, stranger in (
        ("NoClientCert", True, True, True),
        ("VerifyClientCertIfGiven", True, True, False),
        ("RequireAndVerifyClientCert", False, True, False),
    ):
        tls = {**TLS, "client_auth_type": auth}
        if auth != "NoClientCert":
            tls["client_ca_file"] = "ca.crt"
        srv = _serve(_web(pki, {"tls_server_config": tls}))
        try:
            url = f"https://127.0.0.1:{srv.port}/healthz"
            for cert, expect in ((None, anonymous), ("client", trusted), ("stranger", stranger)):
                try:
                    ok = _status(url, _client(pki, cert=cert))[0] == 200
                except (ssl.SSLError, urllib.error.URLError, ConnectionError):
                    ok = False
                assert ok == expect, (auth, cert)
        finally:
            srv.stop()


def test_certificate_rotates_without_restart_and_headers(pki: Path, tmp_path: Path) -> None:
    d = tmp_path / "w"
    d.mkdir()
    for f in ("server.crt", "server.key"):
        (d / f).write_bytes((pki / f).read_bytes())
    hsts = "max-age=31536000"
    headers = {"headers": {"Strict-Transport-Security": hsts}}
    srv = _serve(_web(d, {"tls_server_config": TLS, "http_server_config": headers}))
    try:

        def served() -> bytes:
            raw = socket.create_connection(("127.0.0.1", srv.port), timeout=5)
            with _client(pki).wrap_socket(raw, server_hostname="127.0.0.1") as s:
                der = s.getpeercert(binary_form=True)
                assert der is not None
                return der

        first = served()
        code, headers = _status(f"https://127.0.0.1:{srv.port}/healthz", _client(pki))
        assert code == 200 and headers.get("Strict-Transport-Security") == hsts
        for f in ("server.crt", "server.key"):  # rotate: a new key pair, same names
            (d / f).write_bytes((pki / f.replace("server", "server2")).read_bytes())
        second = served()
        assert second != first
        assert ssl.DER_cert_to_PEM_cert(second).strip() == (pki / "server2.crt").read_text().strip()
        # an invalid edit fails closed until it is fixed
        (d / "web.yml").write_text("tls_server_config: {cert_file: server.crt, key_file: server.key, bogus: 1}\n")
        with pytest.raises((ssl.SSLError, urllib.error.URLError, ConnectionError)):
            _status(f"https://127.0.0.1:{srv.port}/healthz", _client(pki))
        _web(d, {"tls_server_config": TLS})
        assert _status(f"https://127.0.0.1:{srv.port}/healthz", _client(pki))[0] == 200
    finally:
        srv.stop()


def test_basic_auth_constant_time_and_bounded(tmp_path: Path) -> None:
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=10)).decode()
    srv = _serve(_web(tmp_path, {"basic_auth_users": {"prom": hashed}}))
    url = f"http://127.0.0.1:{srv.port}/metrics"
    try:

        def median(user: str) -> float:
            times = []
            for i in range(3):
                t = time.perf_counter()
                assert _status(url, auth=(user, f"wrong-{user}-{i}"))[0] == 401
                times.append(time.perf_counter() - t)
            return statistics.median(times)

        known, unknown = median("prom"), median("nobody")
        # the unknown user costs a bcrypt of the same cost (dummy hash): same order of time (it was 400x less)
        assert 0.33 < unknown / known < 3.0, (known, unknown)
        assert _status(url, auth=("prom", "right"))[0] == 200
        # 40 concurrent wrong passwords: one bcrypt at a time, at most MAX_AUTH_WAITERS waiting, the rest 429
        assert MAX_AUTH_WAITERS < 30
        with ThreadPoolExecutor(40) as pool:
            codes = list(pool.map(lambda i: _status(url, auth=("prom", f"guess-{i}"))[0], range(40)))
        assert set(codes) <= {401, 429} and codes.count(429) >= 10, codes
        assert _status(url, auth=("prom", "right"))[0] == 200  # cached: the flood does not lock out the scraper
    finally:
        srv.stop()


def test_health_listener_is_plain_and_open(tmp_path: Path) -> None:
    from prometheus_client import CollectorRegistry

    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=4)).decode()
    web = WebConfig(_web(tmp_path, {"basic_auth_users": {"prom": hashed}}))
    main = MetricsServer("127.0.0.1", 0, CollectorRegistry(), lambda: (False, "source s3: AccessDenied"), web)
    health = MetricsServer("127.0.0.1", 0, CollectorRegistry(), lambda: (False, "source s3: AccessDenied"), None,
                           health_only=True)  # fmt: skip
    main.start()
    health.start()
    try:
        assert _status(f"http://127.0.0.1:{main.port}/readyz")[0] == 401
        assert _status(f"http://127.0.0.1:{health.port}/healthz")[0] == 200
        assert _status(f"http://127.0.0.1:{health.port}/metrics")[0] == 404
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(f"http://127.0.0.1:{health.port}/readyz", timeout=5)
        assert err.value.code == 503 and err.value.read() == b"not ready\n"  # no source detail on the open port
    finally:
        main.stop()
        health.stop()
