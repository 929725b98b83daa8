"""Helpers for the deployment tests (Helm chart, rules, dashboard, packaging).

Real tools only: helm-python-sdk (Helm v4 engine), kubernetes-validate, promtool, prometheus,
hadolint, and the exporter's own CLI. Every process started here is owned by a context manager
or fixture that stops it.
"""

from __future__ import annotations

import importlib.metadata
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import kubernetes_validate.utils
import util
import yaml
from util import free_port

ROOT = Path(__file__).resolve().parent.parent
CHART = ROOT / "helm" / "cloudtrail-sqs-exporter"
SIDECAR_HOST = ROOT / "helm" / "examples" / "sidecar-host"
RULES = ROOT / "config" / "prometheus" / "rules.yml"
RULES_TEST = ROOT / "config" / "prometheus" / "rules.test.yml"
DASHBOARD = ROOT / "config" / "grafana" / "cloudtrail-sqs.json"
DOCKERFILE = ROOT / "Dockerfile"
RUNBOOK = ROOT / "docs" / "runbook.md"

# kubernetes-validate's newest schema set: "a current Kubernetes version" for the rendered manifests.
KUBERNETES_VERSION: str = kubernetes_validate.utils.latest_version()
assert tuple(int(x) for x in KUBERNETES_VERSION.split(".")[:2]) >= (1, 33), KUBERNETES_VERSION

PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
PROMTOOL = shutil.which("promtool") or "/usr/bin/promtool"


def tool(name: str) -> str:
    """Path of an executable installed with the test dependencies (same bin dir as python first)."""
    here = Path(sys.executable).parent / name
    found = str(here) if here.exists() else shutil.which(name)
    if not found:
        raise AssertionError(f"{name} is not installed (see the test dependencies in docs/deploy.md)")
    return found


def wait_for(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `check` until it returns something truthy (util.wait_for, with `what` third)."""
    return util.wait_for(check, timeout, interval=interval, what=what)


def http_get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return int(r.status), r.read().decode()
    except urllib.error.HTTPError as e:
        return int(e.code), e.read().decode()


# ---------------------------------------------------------------------------- processes


@contextmanager
def process(args: list[str], log: Path, **kwargs: Any) -> Iterator[subprocess.Popen[bytes]]:
    """Run a process for the duration of the block; SIGTERM (then SIGKILL) on exit."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, **kwargs)
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(20)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait(10)


def tail(path: Path, n: int = 3000) -> str:
    try:
        return path.read_text(errors="replace")[-n:]
    except OSError:
        return ""


class Prometheus:
    """Client for a Prometheus started by `prometheus_server`."""

    def __init__(self, url: str) -> None:
        self.url = url

    def api(self, path: str, params: dict[str, str] | list[tuple[str, str]]) -> Any:
        code, body = http_get(f"{self.url}/api/v1/{path}?{urllib.parse.urlencode(params)}", timeout=30)
        doc = json.loads(body)
        if code != 200 or doc.get("status") != "success":
            raise AssertionError(f"{path} {params!r} failed ({code}): {body[:800]}")
        return doc["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        data = self.api("query", {"query": expr})
        assert data["resultType"] in ("vector", "matrix", "scalar", "string"), data
        if data["resultType"] in ("scalar", "string"):
            return [{"metric": {}, "value": data["result"]}]
        return list(data["result"])


@contextmanager
def prometheus_server(
    workdir: Path, targets: list[str], rule_files: list[Path], job: str = "cloudtrail-sqs-exporter"
) -> Iterator[Prometheus]:
    """A real Prometheus on 127.0.0.1, scraping `targets` every second and evaluating `rule_files`."""
    workdir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    config = {
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(p) for p in rule_files],
        "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}],
    }
    (workdir / "prometheus.yml").write_text(yaml.safe_dump(config))
    log = workdir / "prometheus.log"
    args = [
        PROMETHEUS,
        f"--config.file={workdir / 'prometheus.yml'}",
        f"--storage.tsdb.path={workdir / 'tsdb'}",
        f"--web.listen-address=127.0.0.1:{port}",
    ]
    with process(args, log) as proc:
        url = f"http://127.0.0.1:{port}"

        def ready() -> bool:
            if proc.poll() is not None:
                raise AssertionError(f"prometheus exited {proc.returncode}:\n{tail(log)}")
            return http_get(url + "/-/ready")[0] == 200

        wait_for(ready, 60, "prometheus /-/ready")
        yield Prometheus(url)


# ---------------------------------------------------------------------------- generated data


def generate_trail(out: Path, files: int, seed: int) -> Path:
    """Realistic CloudTrail files from the exporter's own generator (exporter.generator)."""
    subprocess.run(
        [sys.executable, "-m", "exporter.generator", "--out", str(out), "--files", str(files), "--seed", str(seed)],
        check=True,
        capture_output=True,
        cwd=ROOT,
    )
    assert any(out.rglob("*.json.gz")), f"the generator wrote no trail files under {out}"
    return out


# ---------------------------------------------------------------------------- helm


def load_values(path: Path) -> dict[str, Any]:
    doc = yaml.safe_load(path.read_text()) or {}
    assert isinstance(doc, dict)
    return doc


def render(
    chart: Path, values: dict[str, Any] | None = None, name: str = "ctsqs", namespace: str = "monitoring"
) -> dict[str, str]:
    """helm template, through the Helm v4 SDK: {template path: manifest text}."""
    import helm_python as helm

    with helm.Chart.load(chart) as c:
        return c.render(values=values, name=name, namespace=namespace, is_install=True)


def manifests(rendered: dict[str, str]) -> list[dict[str, Any]]:
    """All Kubernetes objects of a render (NOTES.txt and empty documents left out)."""
    out: list[dict[str, Any]] = []
    for path, text in sorted(rendered.items()):
        if path.endswith("NOTES.txt"):
            continue
        for doc in yaml.safe_load_all(text):
            if doc:
                out.append(doc)
    return out


def by_kind(objs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [o for o in objs if o.get("kind") == kind]


def kubernetes_validate(objs: list[dict[str, Any]], workdir: Path) -> subprocess.CompletedProcess[str]:
    """kubernetes-validate --strict over every object, one file each."""
    workdir.mkdir(parents=True, exist_ok=True)
    files = []
    for i, obj in enumerate(objs):
        f = workdir / f"{i:02d}-{obj['kind']}.yaml"
        f.write_text(yaml.safe_dump(obj))
        files.append(str(f))
    return subprocess.run(
        [tool("kubernetes-validate"), "--strict", "-k", KUBERNETES_VERSION, *files],
        capture_output=True,
        text=True,
        env={**os.environ, "NO_COLOR": "1"},
    )


# ---------------------------------------------------------------------------- wheels, offline


def _dist_name(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def runtime_closure(requirements: list[str]) -> list[importlib.metadata.Distribution]:
    """The installed distributions `requirements` pull in (markers evaluated, no extras), transitively."""
    from packaging.requirements import Requirement

    seen: dict[str, importlib.metadata.Distribution] = {}
    todo = [Requirement(r) for r in requirements]
    while todo:
        req = todo.pop()
        if req.marker is not None and not req.marker.evaluate({"extra": ""}):
            continue
        key = _dist_name(req.name)
        if key in seen:
            continue
        dist = importlib.metadata.distribution(req.name)
        seen[key] = dist
        todo += [Requirement(r) for r in dist.requires or []]
    return list(seen.values())


def repack_wheel(dist: importlib.metadata.Distribution, out: Path) -> Path:
    """A wheel rebuilt from an installed distribution (its RECORD lists the files; WHEEL has its tag).

    Tests stay offline: the image's builder stage downloads these wheels from the index, this builds the
    same set from what the test environment already installed, and pip then resolves the project's
    dependencies from them exactly as `--no-index --find-links` does in the Dockerfile."""
    wheel_meta = dist.read_text("WHEEL") or ""
    tags = [line.split(":", 1)[1].strip() for line in wheel_meta.splitlines() if line.startswith("Tag:")]
    assert tags, f"{dist.metadata['Name']}: no Tag in WHEEL"
    pys, abis, plats = (sorted({t.split("-")[i] for t in tags}) for i in range(3))
    tag = "-".join(".".join(x) for x in (pys, abis, plats))
    name = re.sub(r"[-.]+", "_", dist.metadata["Name"])
    target = out / f"{name}-{dist.version}-{tag}.whl"
    root = Path(str(dist.locate_file("")))
    with zipfile.ZipFile(target, "w", zipfile.ZIP_STORED) as zf:
        for f in dist.files or []:
            path = root / f
            if f.suffix == ".pyc" or not path.is_file() or ".." in f.parts:
                continue
            zf.write(path, f.as_posix())
    return target


def wheelhouse(out: Path, requirements: list[str]) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    for dist in runtime_closure(requirements):
        repack_wheel(dist, out)
    return out
