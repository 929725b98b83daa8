"""Dockerfile (hadolint, the facts the issue asks for), .dockerignore, and the wheel installed into a
fresh venv the way the Dockerfile's runtime stage does it.

No container engine or base image exists here, so the image itself is not built; the steps are
repeated outside it instead. Offline: the build uses --no-build-isolation (setuptools and wheel
from this environment) and the venv sees this environment's site-packages for the dependencies,
where the Dockerfile builds wheels for them; the project wheel itself is installed with the
Dockerfile's exact pip flags (--no-index --find-links) into a venv made with --without-pip.
"""

from __future__ import annotations

import fnmatch
import importlib.metadata
import os
import platform
import re
import subprocess
import sys
import tomllib
import zipfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from deploytools import (
    DOCKERFILE,
    ROOT,
    free_port,
    generate_trail,
    http_get,
    process,
    tail,
    tool,
    wait_for,
    wheelhouse,
)

import exporter

# ---------------------------------------------------------------------------- Dockerfile


def test_hadolint_is_clean() -> None:
    result = subprocess.run([tool("hadolint"), str(DOCKERFILE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_hadolint_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN pip install requests\n")
    result = subprocess.run([tool("hadolint"), str(bad)], capture_output=True, text=True)
    assert result.returncode != 0 and "DL3006" in result.stdout


def test_hadolint_ignores_are_justified() -> None:
    for line in DOCKERFILE.read_text().splitlines():
        if "hadolint ignore" in line:
            assert re.search(r"hadolint ignore=\S+\s+#?\s*\S.{10,}", line), f"unjustified: {line}"


def _stages() -> list[list[str]]:
    """Instructions per stage, continuation lines joined, comments dropped."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    stages: list[list[str]] = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if line.upper().startswith("FROM "):
            stages.append([])
        if stages:
            stages[-1].append(line)
    return stages


def test_dockerfile_is_multi_stage_slim_non_root() -> None:
    text = DOCKERFILE.read_text()
    base = re.search(r"^ARG PYTHON_IMAGE=(\S+)$", text, re.M)
    assert base and re.fullmatch(r"python:3\.1[1-9]-slim(-\w+)?(@sha256:[0-9a-f]{64})?", base.group(1))
    stages = _stages()
    assert len(stages) == 2
    assert stages[0][0] == "FROM ${PYTHON_IMAGE} AS builder"
    assert stages[1][0] == "FROM ${PYTHON_IMAGE} AS runtime"
    final = "\n".join(stages[1])
    assert re.search(r"^USER 10001:10001$", final, re.M)
    assert re.search(r"^EXPOSE 10355$", final, re.M)
    assert 'ENTRYPOINT ["cloudtrail-sqs-exporter"]' in final
    assert 'CMD ["run"]' in final
    # no build tools in the final image: no apt, no compiler, no wheel cache layer
    for word in ("apt-get", "gcc", "build-essential", "COPY --from=builder"):
        assert word not in final, word
    assert "--mount=type=bind,from=builder,source=/wheels,target=/wheels" in final
    assert "/var/lib/cloudtrail-sqs-exporter" in final


def test_dockerfile_install_steps_are_the_ones_this_test_repeats() -> None:
    final = "\n".join(_stages()[1])
    assert "python -m venv --without-pip /opt/venv" in final
    assert (
        "python -m pip --python /opt/venv/bin/python install --no-cache-dir --no-index "
        "--find-links /wheels /wheels/cloudtrail_sqs_exporter-*.whl" in " ".join(final.split())
    )
    builder = "\n".join(_stages()[0])
    assert "python -m pip wheel --no-cache-dir --constraint constraints.txt --wheel-dir /wheels ." in builder


def _dockerignored(path: str, patterns: list[str]) -> bool:
    """Docker's rule: the last pattern matching the path or one of its parents decides."""
    parts = path.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    ignored = False
    for pat in patterns:
        negate = pat.startswith("!")
        pat = pat.lstrip("!").rstrip("/")
        if any(fnmatch.fnmatchcase(c, pat) for c in candidates):
            ignored = not negate
    return ignored


def test_dockerignore_sends_only_what_the_build_needs() -> None:
    patterns = [
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    copied = re.findall(r"^COPY (?!--)(.+) \S+$", DOCKERFILE.read_text(), re.M)
    needed = [p for line in copied for p in line.split()]
    assert needed, "no COPY in the Dockerfile?"
    for p in needed:
        assert (ROOT / p).exists(), p
        assert not _dockerignored(p, patterns), f"{p} is ignored but COPY needs it"
    # what pyproject.toml names (readme, license files) must reach the build, or the wheel build fails
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    for p in [project["readme"], *project.get("license-files", [])]:
        assert p in needed and not _dockerignored(p, patterns), p
    for p in ("exporter/cli.py", "exporter/sample/trail", "exporter/_native.c", "setup.py"):
        assert not _dockerignored(p, patterns), p
    for p in (
        "exporter/_native.cpython-311-x86_64-linux-gnu.so",  # built in place by `pip install -e`
        ".git/HEAD",
        "tests/test_helm.py",
        "helm/cloudtrail-sqs-exporter/Chart.yaml",
        "exporter/__pycache__/x.pyc",
    ):
        assert _dockerignored(p, patterns), p


# ---------------------------------------------------------------------------- wheel + venv


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    for need, minimum in (("setuptools", 68), ("wheel", 0)):
        try:
            have = int(importlib.metadata.version(need).split(".")[0])
        except importlib.metadata.PackageNotFoundError:
            have = -1
        assert have >= minimum, f"the offline wheel build needs {need}>={minimum} in the test environment"
    out = tmp_path_factory.mktemp("wheels")
    offline = ["--no-deps", "--no-build-isolation"]  # the Dockerfile: build isolation, deps as wheels
    result = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "-v", "--no-cache-dir", *offline, "--wheel-dir", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        env={**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    # SPDX `license = "Apache-2.0"`: no setuptools deprecation warning (a TOML table printed one per build)
    build_log = result.stdout + result.stderr
    assert not re.search(r"(?i)deprecat|BuildBackendWarning", build_log), build_log[-3000:]
    (whl,) = out.glob("cloudtrail_sqs_exporter-*.whl")
    return whl


@pytest.fixture(scope="module")
def venv(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m venv --without-pip` + `pip --python … install --no-cache-dir --no-index --find-links` of the
    project wheel, as the Dockerfile's runtime stage does: no extras, nothing from an index, the dependencies
    resolved by pip from the wheel directory (rebuilt offline from this environment's installed copies,
    where the image's builder downloads them) — so a runtime dependency missing from pyproject.toml is
    missing here too."""
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    wheelhouse(wheel.parent, deps)
    root = tmp_path_factory.mktemp("venv") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(root)], check=True)
    dockerfile_flags = ["install", "--no-cache-dir", "--no-index", "--find-links", str(wheel.parent)]
    pip = [sys.executable, "-m", "pip", "--python", str(root / "bin" / "python")]
    result = subprocess.run(
        [*pip, *dockerfile_flags, str(wheel)],
        capture_output=True,
        text=True,
        # no PYTHONPATH: the target venv must not see this checkout (or its egg-info) as installed
        env={**_outside_repo_env(), "PIP_DISABLE_PIP_VERSION_CHECK": "1"},
    )
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    return root


def _outside_repo_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTSQS_", "PYTHON"))}
    return env


def run_installed(venv: Path) -> Any:
    """An `Exporter.wrap` that runs the venv's console script instead of this checkout's `python -m exporter`."""
    exe = str(venv / "bin" / "cloudtrail-sqs-exporter")
    return lambda cmd: ["env", "-u", "PYTHONPATH", exe, *cmd[cmd.index("run") :]]


@pytest.mark.slow
def test_wheel_contents(wheel: Path) -> None:
    names = zipfile.ZipFile(wheel).namelist()
    assert "exporter/__init__.py" in names and "exporter/py.typed" in names
    # the C accelerator is compiled into the wheel where there is a compiler (this machine has one)
    assert any(n.startswith("exporter/_native.") and n.endswith(".so") for n in names), names
    # the embedded default config reads sample trail files shipped in the package
    assert any(n.startswith("exporter/sample/") and n.endswith(".json.gz") for n in names)
    assert not any(n.startswith(("tests/", "helm/", "config/")) for n in names)
    # the image builds its dependency wheels with --constraint constraints.txt: every one is pinned
    meta = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    required = {
        re.split(r"[\s\[<>=!~;]", line.split(":", 1)[1].strip())[0].lower().replace("_", "-")
        for line in meta.splitlines()
        if line.startswith("Requires-Dist:") and "extra ==" not in line
    }
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==", (ROOT / "constraints.txt").read_text(), re.M)
    assert required and required <= {p.lower().replace("_", "-") for p in pins}
    entry = next(n for n in names if n.endswith(".dist-info/entry_points.txt"))
    assert "cloudtrail-sqs-exporter = exporter.cli:main" in zipfile.ZipFile(wheel).read(entry).decode()


@pytest.mark.slow
def test_venv_runs_the_installed_package(venv: Path, tmp_path: Path) -> None:
    exe = venv / "bin" / "cloudtrail-sqs-exporter"
    assert exe.exists()
    env = _outside_repo_env()
    where = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import exporter; print(exporter.__file__)"],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=env,
        check=True,
    ).stdout.strip()
    assert Path(where).is_relative_to(venv), f"imported {where}, not the venv's copy"
    subprocess.run([str(venv / "bin" / "python"), "-c", "import exporter._native"], cwd=tmp_path, env=env, check=True)

    version = subprocess.run([str(exe), "--version"], capture_output=True, text=True, cwd=tmp_path, env=env)
    assert version.returncode == 0 and exporter.__version__ in version.stdout + version.stderr

    check = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "check"], capture_output=True, text=True
    )
    assert check.returncode == 0, check.stdout + check.stderr


@pytest.mark.slow
def test_venv_replays_generated_trail(venv: Path, tmp_path: Path) -> None:
    trail = generate_trail(tmp_path / "trail", files=3, seed=7)
    result = subprocess.run(
        [str(venv / "bin" / "cloudtrail-sqs-exporter"), "replay", str(trail)],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=_outside_repo_env(),
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    calls = [line for line in result.stdout.splitlines() if line.startswith("cloudtrail_sqs_api_calls_total{")]
    assert calls and sum(float(line.rsplit(" ", 1)[1]) for line in calls) > 0
    info = next(x for x in result.stdout.splitlines() if x.startswith("cloudtrail_sqs_exporter_build_info{"))
    assert f'version="{exporter.__version__}"' in info and f'python_version="{platform.python_version()}"' in info
    # the wheel was built in a git checkout: the commit is stamped into the package
    head = subprocess.run(["git", "rev-parse", "HEAD"], cwd=ROOT, capture_output=True, text=True).stdout.strip()
    assert f'revision="{head}"' in info, info


@pytest.fixture
def image_like_run(venv: Path, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """`run` with no config (the image's CMD) in a state dir as working directory (the image's WORKDIR)."""
    workdir = tmp_path / "var-lib-cloudtrail-sqs-exporter"
    workdir.mkdir()
    port = free_port()
    env = {**_outside_repo_env(), "CTSQS_LISTEN": f"127.0.0.1:{port}"}
    log = tmp_path / "run.log"
    with process([str(venv / "bin" / "cloudtrail-sqs-exporter"), "run"], log, cwd=workdir, env=env) as proc:
        yield f"http://127.0.0.1:{port}", workdir
        assert proc.poll() is None, tail(log)


@pytest.mark.slow
def test_venv_runs_the_embedded_default_like_the_image(image_like_run: tuple[str, Path]) -> None:
    url, workdir = image_like_run
    wait_for(lambda: http_get(url + "/healthz")[0] == 200, 60, "/healthz")
    wait_for(lambda: http_get(url + "/readyz")[0] == 200, 60, "/readyz")
    body = wait_for(
        lambda: (b := http_get(url + "/metrics")[1]) and "cloudtrail_sqs_api_calls_total{" in b and b,
        60,
        "metrics from the embedded sample",
    )
    assert "cloudtrail_sqs_exporter_build_info" in body
    # the default state path is relative: it lands in the working directory (the image's volume)
    assert (workdir / "state").is_dir()


def test_dockerfile_oci_labels_and_revision() -> None:
    final = "\n".join(_stages()[1])
    labels = dict(re.findall(r'(org\.opencontainers\.image\.\w+)="([^"]*)"', final))
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.version"] == "${VERSION}"
    assert labels["org.opencontainers.image.revision"] == "${REVISION}"
    assert labels["org.opencontainers.image.source"] == "${SOURCE_URL}"
    assert re.search(rf"^ARG VERSION={re.escape(exporter.__version__)}$", final, re.M)
    builder = "\n".join(_stages()[0])
    assert 'SOURCE_REVISION="${REVISION}"' in builder  # build_info's revision inside the image
    assert (ROOT / "LICENSE").read_text().lstrip().startswith("Apache License")


# ---------------------------------------------------------------------------- every mode of docs/deploy.md,
# from the installed wheel (no extras)


@pytest.mark.slow
def test_venv_scale_out_three_replicas(venv: Path, moto: Any, tmp_path: Path, exporter_proc: list[Any]) -> None:
    from awsfixtures import counted, upload_tree, wait_until, write_batch
    from test_scaleout import OBJECTS, RedisServer, replica, total
    from test_source_s3sqs import notifying_bucket, queue_depth
    from util import series

    from exporter.generator import Generator

    redis = RedisServer(tmp_path / "redis").start()
    try:
        url = notifying_bucket(moto)
        truth = write_batch(Generator(seed=43), tmp_path / "trail", 24, extras=False)
        upload_tree(moto.client("s3"), "trail", tmp_path / "trail")
        exps = [replica(i, tmp_path, moto, url, redis.url) for i in range(3)]
        for e in exps:
            e.wrap = run_installed(venv)
            exporter_proc.append(e)
            e.start(wait_ready=False)
        wait_until(lambda: queue_depth(moto, url) == 0, 120, what="queue drained")
        files = len(truth["files"])
        wait_for(lambda: counted(total(exps), OBJECTS, outcome="ok") == files, 60, "every object counted once")
        m = total(exps)
        q = ("account_id", "region", "queue")
        calls = series(m, "cloudtrail_sqs_api_calls_total", *q, "event_name", "event_category")
        assert {k: int(v) for k, v in calls.items() if v} == truth["calls"]
        errors = series(m, "cloudtrail_sqs_api_errors_total", *q, "event_name", "error_code")
        assert {k: int(v) for k, v in errors.items() if v} == truth["errors"]

        def views() -> list[dict]:
            return [series(e.metrics(), "cloudtrail_sqs_distinct_principals", *q, "window") for e in exps]

        # identical on every replica once each has refreshed its 5 s cache of the global figures
        wait_for(lambda: (v := views()) and v[0] and v[0] == v[1] == v[2], 30, "identical principal gauges")
        for e in exps:
            assert "exporter/" not in e.log.read_text()  # tracebacks would name the package's files
    finally:
        redis.stop()


@pytest.mark.slow
def test_venv_logs_on(venv: Path, tmp_path: Path, exporter_proc: list[Any]) -> None:
    from otlp_receiver import Receiver
    from test_run import write_config
    from util import Exporter

    from exporter.generator import Generator

    rx = Receiver(free_port()).start()
    try:
        trail = tmp_path / "trail"
        Generator(seed=44).write(trail, 2, 20)
        cfg = write_config(tmp_path, trail, f"logs:\n  enabled: true\n  endpoint: {rx.endpoint}\n")
        exp = Exporter(cfg, tmp_path, env=_outside_repo_env(), wrap=run_installed(venv))
        exporter_proc.append(exp)
        exp.start()
        wait_for(lambda: rx.count > 0, 60, "log records at the OTLP receiver")
    finally:
        rx.stop()


@pytest.mark.slow
def test_venv_tls_and_basic_auth(venv: Path, tmp_path: Path, exporter_proc: list[Any]) -> None:
    import bcrypt
    from test_run import write_config
    from test_webconfig import _status
    from util import Exporter

    from exporter.generator import Generator

    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-days", "2", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(tmp_path / "tls.key"), "-out", str(tmp_path / "tls.crt")),
        ],
        check=True,
        capture_output=True,
    )
    hashed = bcrypt.hashpw(b"s3cret", bcrypt.gensalt(rounds=4)).decode()
    web = tmp_path / "web.yml"
    web.write_text(
        "tls_server_config:\n  cert_file: tls.crt\n  key_file: tls.key\n  min_version: TLS12\n"
        f"basic_auth_users:\n  prom: '{hashed}'\n"
    )
    trail = tmp_path / "trail"
    Generator(seed=45).write(trail, 2, 20)
    cfg = write_config(tmp_path, trail, f"web_config_file: {web}\n")
    exp = Exporter(cfg, tmp_path, env=_outside_repo_env(), wrap=run_installed(venv))
    exporter_proc.append(exp)
    ctx = __import__("ssl").create_default_context(cafile=str(tmp_path / "tls.crt"))
    https = f"https://127.0.0.1:{exp.port}"
    exp.start(check=lambda: _status(https + "/healthz", ctx)[0] == 200)
    assert _status(https + "/metrics", ctx)[0] == 401
    assert _status(https + "/metrics", ctx, ("prom", "s3cret"))[0] == 200
