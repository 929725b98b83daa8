"""The Helm chart, through the Helm v4 SDK (helm-python-sdk) and kubernetes-validate --strict."""

from __future__ import annotations

import hashlib
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import helm_python as helm
import pytest
import yaml
from deploytools import (
    CHART,
    DASHBOARD,
    DOCKERFILE,
    KUBERNETES_VERSION,
    PROMTOOL,
    ROOT,
    RULES,
    SIDECAR_HOST,
    by_kind,
    kubernetes_validate,
    load_values,
    manifests,
    render,
)

import exporter

CI_VALUES = sorted((CHART / "ci").glob("*-values.yaml"))
VALUE_SETS: dict[str, dict[str, Any]] = {"default": {}} | {p.stem: load_values(p) for p in CI_VALUES}


def test_ci_values_files_cover_everything() -> None:
    """The values files linted below turn on every optional part, sidecar mode included."""
    everything = load_values(CHART / "ci" / "all-values.yaml")
    assert everything["mode"] == "sidecar"
    for part in ("serviceMonitor", "podMonitor", "prometheusRule", "dashboard", "persistence"):
        assert everything[part]["enabled"] is True, part
    assert {"all-values", "scaleout-values"} <= set(VALUE_SETS)


# ---------------------------------------------------------------------------- lint


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_lint_strict_is_clean(name: str) -> None:
    report = helm.lint(CHART, VALUE_SETS[name] or None, strict=True, kube_version=f"v{KUBERNETES_VERSION}")
    assert report["errors"] == [], report
    # severity 1 is INFO (e.g. "icon is recommended"); 2 WARNING and 3 ERROR fail strict lint
    assert [m for m in report["messages"] if m["severity"] >= 2] == [], report["messages"]


def test_lint_catches_a_broken_template(tmp_path: Path) -> None:
    """The lint check above can fail: a chart copy with a bad template is reported."""
    broken = tmp_path / "cloudtrail-sqs-exporter"
    shutil.copytree(CHART, broken)
    (broken / "templates" / "broken.yaml").write_text("kind: ConfigMap\n{{ .Values.nope.deeper }}\n")
    report = helm.lint(broken, None, strict=True)
    assert report["errors"] or [m for m in report["messages"] if m["severity"] >= 2]


# ---------------------------------------------------------------------------- render + validate


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_render_passes_kubernetes_validate_strict(name: str, tmp_path: Path) -> None:
    objs = manifests(render(CHART, VALUE_SETS[name]))
    assert objs
    result = kubernetes_validate(objs, tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    # every built-in object was checked against a schema (CRDs only warn: no schema shipped)
    passed = result.stdout.count(" passed for resource ")
    builtin = [o for o in objs if not o["apiVersion"].startswith("monitoring.coreos.com/")]
    assert passed == len(builtin), result.stdout


def test_kubernetes_validate_rejects_an_unknown_field(tmp_path: Path) -> None:
    """The validation above can fail: --strict rejects a field Kubernetes does not know."""
    dep = by_kind(manifests(render(CHART, {})), "Deployment")[0]
    dep["spec"]["template"]["spec"]["containers"][0]["imagePullPolicyy"] = "Always"
    result = kubernetes_validate([dep], tmp_path)
    assert result.returncode != 0, result.stdout


def test_sidecar_host_chart_renders_and_validates(tmp_path: Path) -> None:
    """helm/examples/sidecar-host adds the exporter container to its own pod via the named templates."""
    host = tmp_path / "sidecar-host"
    shutil.copytree(SIDECAR_HOST, host)
    shutil.copytree(CHART, host / "charts" / "cloudtrail-sqs-exporter")
    report = helm.lint(host, None, strict=True, with_subcharts=True)
    assert report["errors"] == [] and [m for m in report["messages"] if m["severity"] >= 2] == [], report

    objs = manifests(render(host, None, name="orders", namespace="apps"))
    result = kubernetes_validate(objs, tmp_path / "kv")
    assert result.returncode == 0, result.stdout + result.stderr

    (dep,) = by_kind(objs, "Deployment")  # the host's only; the exporter renders none in sidecar mode
    pod = dep["spec"]["template"]
    containers = {c["name"]: c for c in pod["spec"]["containers"]}
    assert set(containers) == {"orders-worker", "cloudtrail-sqs-exporter"}
    side = containers["cloudtrail-sqs-exporter"]
    assert side["args"] == ["run", "--config", "/etc/cloudtrail-sqs-exporter/config.yaml"]
    assert side["securityContext"]["readOnlyRootFilesystem"] is True

    (cm,) = [c for c in by_kind(objs, "ConfigMap") if "config.yaml" in c["data"]]
    volumes = {v["name"]: v for v in pod["spec"]["volumes"]}
    assert volumes["cloudtrail-sqs-exporter-config"]["configMap"]["name"] == cm["metadata"]["name"]
    mounts = {m["name"] for m in side["volumeMounts"]}
    assert mounts <= set(volumes)
    # the host pod rolls when the exporter's configuration changes
    digest = hashlib.sha256(cm["data"]["config.yaml"].rstrip("\n").encode()).hexdigest()
    assert pod["metadata"]["annotations"]["checksum/config"] == digest
    # the PodMonitor selects the host pods
    (pm,) = by_kind(objs, "PodMonitor")
    labels = pod["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert pm["spec"]["podMetricsEndpoints"][0]["port"] in {p["name"] for p in side["ports"]}


# ---------------------------------------------------------------------------- schema


def test_schema_rejects_a_wrong_type_with_a_readable_message() -> None:
    with pytest.raises(helm.HelmError) as err:
        render(CHART, {"replicaCount": "two"})
    message = str(err.value)
    assert "replicaCount" in message and "integer" in message, message
    assert len(message) < 600, message


@pytest.mark.parametrize(
    ("values", "words"),
    [
        ({"mode": "daemonset"}, ["mode", "deployment", "sidecar"]),
        ({"port": 70000}, ["port", "maximum"]),
        ({"serviceMonitor": {"enabled": "yes"}}, ["serviceMonitor", "enabled", "boolean"]),
        ({"config": {"sources": [{"type": "s3"}]}}, ["sources", "bucket"]),
        ({"config": {"sources": [{"type": "kinesis"}]}}, ["type", "s3-sqs"]),
        ({"persistence": {"enabled": True, "size": "lots"}}, ["size"]),
        ({"replicasCount": 2}, ["replicasCount"]),
    ],
)
def test_schema_rejects_bad_values(values: dict[str, Any], words: list[str]) -> None:
    with helm.Chart.load(CHART) as chart, pytest.raises(helm.HelmValuesError) as err:
        chart.validate_schema(chart.merge_values(values))
    for word in words:
        assert word in str(err.value), str(err.value)


def test_schema_accepts_every_shipped_values_file() -> None:
    with helm.Chart.load(CHART) as chart:
        for values in VALUE_SETS.values():
            chart.validate_schema(chart.merge_values(values))


# ---------------------------------------------------------------------------- replicas / scale-out


def _scaleout(**overrides: Any) -> dict[str, Any]:
    values: dict[str, Any] = {
        "replicaCount": 2,
        "config": {"sources": [{"type": "s3-sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"}]},
        "redis": {"existingSecret": "ctsqs-redis"},
    }
    values.update(overrides)
    return values


@pytest.mark.parametrize(
    "values",
    [
        {"replicaCount": 2},  # the embedded demo source
        _scaleout(redis={"existingSecret": ""}),  # no shared store
        _scaleout(config={"sources": [{"type": "s3", "bucket": "b"}]}),  # s3 cannot split work
        _scaleout(
            config={
                "sources": [
                    {"type": "s3-sqs", "queue_url": "https://sqs.us-east-1.amazonaws.com/1/q"},
                    {"type": "cloudwatch", "log_group": "g"},
                ]
            }
        ),
    ],
)
def test_several_replicas_need_s3_sqs_and_redis(values: dict[str, Any]) -> None:
    with pytest.raises(helm.HelmError) as err:
        render(CHART, values)
    message = str(err.value)
    assert "replicaCount=2" in message and "s3-sqs" in message and "redis" in message.lower(), message


@pytest.mark.parametrize(
    "values",
    [
        _scaleout(),
        _scaleout(
            redis={"existingSecret": ""}, config={**_scaleout()["config"], "state": {"redis_url": "redis://r:6379/0"}}
        ),
    ],
)
def test_several_replicas_render_with_s3_sqs_and_redis(values: dict[str, Any]) -> None:
    (dep,) = by_kind(manifests(render(CHART, values)), "Deployment")
    assert dep["spec"]["replicas"] == 2
    env = {e["name"]: e for e in dep["spec"]["template"]["spec"]["containers"][0].get("env", [])}
    if values["redis"]["existingSecret"]:
        ref = env["CTSQS_STATE__REDIS_URL"]["valueFrom"]["secretKeyRef"]
        assert ref == {"name": "ctsqs-redis", "key": "redis-url"}


def test_several_replicas_refuse_a_shared_pvc() -> None:
    with pytest.raises(helm.HelmError, match=r"persistence\.enabled"):
        render(CHART, _scaleout(persistence={"enabled": True}))


# ---------------------------------------------------------------------------- the objects


def _deployment(values: dict[str, Any] | None = None) -> dict[str, Any]:
    (dep,) = by_kind(manifests(render(CHART, values or {})), "Deployment")
    return dep


def test_pod_is_locked_down_and_probed() -> None:
    dep = _deployment()
    spec = dep["spec"]["template"]["spec"]
    (c,) = spec["containers"]
    sc = c["securityContext"]
    assert sc["runAsNonRoot"] is True and sc["readOnlyRootFilesystem"] is True
    assert sc["allowPrivilegeEscalation"] is False and sc["capabilities"]["drop"] == ["ALL"]
    assert sc["seccompProfile"]["type"] == "RuntimeDefault"
    assert spec["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
    # the UID is the image's (Dockerfile USER)
    user = re.search(r"^USER (\d+)", DOCKERFILE.read_text(), re.M)
    assert user and sc["runAsUser"] == int(user.group(1)) == spec["securityContext"]["runAsUser"]
    assert c["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert c["readinessProbe"]["httpGet"]["path"] == "/readyz"
    assert c["resources"]["requests"] and c["resources"]["limits"]
    ports = {p["name"]: p["containerPort"] for p in c["ports"]}
    assert ports == {"http-metrics": 10355, "http-health": 10356}
    assert c["livenessProbe"]["httpGet"]["port"] == c["readinessProbe"]["httpGet"]["port"] == "http-health"
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert "emptyDir" in volumes["cloudtrail-sqs-exporter-state"]
    state_mount = next(m for m in c["volumeMounts"] if m["name"] == "cloudtrail-sqs-exporter-state")
    assert state_mount["mountPath"] == "/var/lib/cloudtrail-sqs-exporter"


def test_persistence_uses_a_pvc() -> None:
    objs = manifests(render(CHART, {"persistence": {"enabled": True, "size": "5Gi", "storageClass": "gp3"}}))
    (pvc,) = by_kind(objs, "PersistentVolumeClaim")
    assert pvc["spec"]["resources"]["requests"]["storage"] == "5Gi"
    (dep,) = by_kind(objs, "Deployment")
    vol = next(v for v in dep["spec"]["template"]["spec"]["volumes"] if v["name"] == "cloudtrail-sqs-exporter-state")
    assert vol["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"]


def test_config_change_rolls_the_pods() -> None:
    a = _deployment()["spec"]["template"]["metadata"]["annotations"]["checksum/config"]
    b = _deployment({"config": {"metrics": {"max_queues": 10}}})["spec"]["template"]["metadata"]["annotations"]
    assert re.fullmatch(r"[0-9a-f]{64}", a) and b["checksum/config"] != a


def test_service_account_carries_irsa_annotations() -> None:
    role = "arn:aws:iam::111122223333:role/ctsqs"
    objs = manifests(render(CHART, {"aws": {"irsaRoleArn": role}}))
    (sa,) = by_kind(objs, "ServiceAccount")
    assert sa["metadata"]["annotations"]["eks.amazonaws.com/role-arn"] == role
    (dep,) = by_kind(objs, "Deployment")
    assert dep["spec"]["template"]["spec"]["serviceAccountName"] == sa["metadata"]["name"]


def test_monitors_select_the_service_and_pods() -> None:
    objs = manifests(render(CHART, VALUE_SETS["scaleout-values"]))
    (svc,) = by_kind(objs, "Service")
    (sm,) = by_kind(objs, "ServiceMonitor")
    (pm,) = by_kind(objs, "PodMonitor")
    (dep,) = by_kind(objs, "Deployment")
    assert sm["spec"]["selector"]["matchLabels"].items() <= svc["metadata"]["labels"].items()
    assert sm["spec"]["endpoints"][0]["port"] in {p["name"] for p in svc["spec"]["ports"]}
    pod_labels = dep["spec"]["template"]["metadata"]["labels"]
    assert pm["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert svc["spec"]["selector"].items() <= pod_labels.items()


def test_prometheus_rule_has_the_groups_of_rules_yml() -> None:
    objs = manifests(render(CHART, {"prometheusRule": {"enabled": True}}))
    (rule,) = by_kind(objs, "PrometheusRule")
    assert rule["spec"]["groups"] == yaml.safe_load(RULES.read_text())["groups"]
    assert (CHART / "files" / "rules.yml").read_text() == RULES.read_text(), "copy config/prometheus/rules.yml"


def test_rendered_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    (rule,) = by_kind(manifests(render(CHART, VALUE_SETS["all-values"])), "PrometheusRule")
    path = tmp_path / "rendered-rules.yml"
    path.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = subprocess.run([PROMTOOL, "check", "rules", str(path)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_configmap_has_the_dashboard() -> None:
    objs = manifests(render(CHART, {"dashboard": {"enabled": True}}))
    (cm,) = [c for c in by_kind(objs, "ConfigMap") if "cloudtrail-sqs.json" in c["data"]]
    assert cm["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert cm["data"]["cloudtrail-sqs.json"].strip() == DASHBOARD.read_text().strip()
    assert (CHART / "files" / "cloudtrail-sqs.json").read_text() == DASHBOARD.read_text(), "copy the dashboard"


def test_versions_agree() -> None:
    meta = yaml.safe_load((CHART / "Chart.yaml").read_text())
    dep = _deployment()
    assert meta["appVersion"] == exporter.__version__
    assert dep["metadata"]["labels"]["app.kubernetes.io/version"] == exporter.__version__
    assert dep["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":" + exporter.__version__)


def test_notes_tell_how_to_reach_metrics() -> None:
    notes = render(CHART, {})["cloudtrail-sqs-exporter/templates/NOTES.txt"]
    assert "port-forward service/ctsqs-cloudtrail-sqs-exporter 10355:10355" in notes
    assert "/metrics" in notes and "/readyz" in notes


@pytest.mark.parametrize("name", sorted(VALUE_SETS))
def test_rendered_config_is_accepted_by_the_exporter(name: str, tmp_path: Path) -> None:
    """The ConfigMap's config.yaml passes the exporter's own `check-config`."""
    objs = manifests(render(CHART, VALUE_SETS[name]))
    (cm,) = [c for c in by_kind(objs, "ConfigMap") if "config.yaml" in c["data"]]
    path = tmp_path / "config.yaml"
    path.write_text(cm["data"]["config.yaml"])
    result = subprocess.run(
        [sys.executable, "-m", "exporter", "check-config", str(path)], capture_output=True, text=True, cwd=ROOT
    )
    assert result.returncode == 0, result.stdout + result.stderr
    effective = yaml.safe_load(result.stdout)
    assert effective["listen"] == "0.0.0.0:10355"
    assert effective["state"]["path"] == "/var/lib/cloudtrail-sqs-exporter/cloudtrail-sqs-exporter.db"


# ---------------------------------------------------------------------------- TLS, auth, probes as kubelet runs them


def _kubelet_probe(probe: dict[str, Any], ports: dict[str | int, int]) -> bool:
    """One probe, as the kubelet performs it: httpGet (scheme, headers, named port; 200-399 passes and
    certificates are not verified), tcpSocket (connect), exec (exit 0)."""
    import ssl
    import urllib.error
    import urllib.request

    if "httpGet" in probe:
        h = probe["httpGet"]
        scheme = h.get("scheme", "HTTP").lower()
        req = urllib.request.Request(f"{scheme}://127.0.0.1:{ports[h['port']]}{h.get('path', '/')}")
        for header in h.get("httpHeaders", []):
            req.add_header(header["name"], header["value"])
        ctx = ssl._create_unverified_context() if scheme == "https" else None
        try:
            with urllib.request.urlopen(req, timeout=probe.get("timeoutSeconds", 1), context=ctx) as r:
                return 200 <= r.status < 400
        except (urllib.error.URLError, OSError):
            return False
    if "tcpSocket" in probe:
        import socket

        try:
            socket.create_connection(("127.0.0.1", ports[probe["tcpSocket"]["port"]]), timeout=1).close()
            return True
        except OSError:
            return False
    if "exec" in probe:
        return subprocess.run(probe["exec"]["command"], capture_output=True, timeout=10).returncode == 0
    raise AssertionError(f"unknown probe {probe}")


def test_probes_pass_with_tls_and_auth_as_the_chart_configures_it(tmp_path: Path) -> None:
    """Render with TLS + basic auth; start the exporter with the container's args, env, ConfigMap and
    Secrets (paths under /etc and /var/lib mapped into a temp dir); every rendered probe passes, while
    /metrics itself requires TLS and the credentials."""
    import base64
    import json
    import os
    import ssl
    import urllib.error
    import urllib.request

    from util import free_port, wait_for

    objs = manifests(render(CHART, VALUE_SETS["secure-values"]))
    (dep,) = by_kind(objs, "Deployment")
    (c,) = dep["spec"]["template"]["spec"]["containers"]
    (cm,) = [o for o in by_kind(objs, "ConfigMap") if "config.yaml" in o.get("data", {})]
    (secret,) = [s for s in by_kind(objs, "Secret") if s["metadata"]["name"].endswith("-web")]
    volumes = {v["name"]: v for v in dep["spec"]["template"]["spec"]["volumes"]}
    assert volumes["cloudtrail-sqs-exporter-tls"]["secret"]["secretName"] == "ctsqs-tls"

    root = tmp_path / "pod"
    mounts = {m["mountPath"]: root / m["mountPath"].strip("/") for m in c["volumeMounts"]}
    for d in mounts.values():
        d.mkdir(parents=True, exist_ok=True)

    pattern = re.compile("|".join(re.escape(p) for p in sorted(mounts, key=len, reverse=True)))

    def here(text: str) -> str:  # one pass, longest mount path first
        return pattern.sub(lambda m: str(mounts[m.group(0)]), text)

    ports = {p["name"]: free_port() for p in c["ports"]}
    config = yaml.safe_load(here(cm["data"]["config.yaml"]))
    assert config["listen"] == "0.0.0.0:10355" and config["health_listen"] == "0.0.0.0:10356"
    config["listen"] = f"127.0.0.1:{ports['http-metrics']}"  # the pod's ports, on free local ones
    config["health_listen"] = f"127.0.0.1:{ports['http-health']}"
    (mounts["/etc/cloudtrail-sqs-exporter"] / "config.yaml").write_text(yaml.safe_dump(config))
    (mounts["/etc/cloudtrail-sqs-exporter/web"] / "web-config.yml").write_text(
        here(secret["stringData"]["web-config.yml"])
    )
    tls = mounts["/etc/cloudtrail-sqs-exporter/tls"]
    subprocess.run(
        [
            *("openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-days", "2", "-subj", "/CN=ctsqs", "-addext", "subjectAltName=IP:127.0.0.1"),
            *("-keyout", str(tls / "tls.key"), "-out", str(tls / "tls.crt")),
        ],
        check=True,
        capture_output=True,
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("CTSQS_")}
    env.update({e["name"]: e["value"] for e in c.get("env", []) if "value" in e})
    args = [here(a) for a in c["args"]]
    log = tmp_path / "exporter.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "exporter", *args], stdout=out, stderr=subprocess.STDOUT, env=env,
            cwd=mounts["/var/lib/cloudtrail-sqs-exporter"],
        )  # fmt: skip
    try:
        probes = {k: c[k] for k in ("startupProbe", "livenessProbe", "readinessProbe")}
        for name, probe in probes.items():
            try:
                wait_for(lambda p=probe: _kubelet_probe(p, ports), 60, what=f"{name} passes")
            except TimeoutError as exc:
                raise AssertionError(f"{exc}\n{log.read_text()[-3000:]}") from None
        # /metrics itself: TLS and the credentials, as the monitors are told
        ctx = ssl.create_default_context(cafile=str(tls / "tls.crt"))
        url = f"https://127.0.0.1:{ports['http-metrics']}/metrics"
        with pytest.raises(urllib.error.HTTPError) as err:
            urllib.request.urlopen(url, context=ctx, timeout=5)
        assert err.value.code == 401
        req = urllib.request.Request(url)
        req.add_header("Authorization", "Basic " + base64.b64encode(b"prometheus:scrape-secret").decode())
        with urllib.request.urlopen(req, context=ctx, timeout=5) as r:
            assert r.status == 200 and r.headers["Strict-Transport-Security"] == "max-age=31536000"
        assert proc.poll() is None
    finally:
        proc.terminate()
        proc.wait(20)
    for mon, ep in (("ServiceMonitor", "endpoints"), ("PodMonitor", "podMetricsEndpoints")):
        (m,) = by_kind(objs, mon)
        e = m["spec"][ep][0]
        assert e["scheme"] == "https" and e["tlsConfig"]["ca"]["secret"]["name"] == "ctsqs-tls"
        assert e["basicAuth"]["password"]["key"] == "password", json.dumps(e)


def test_sidecar_never_gates_the_host_pod(tmp_path: Path) -> None:
    host = tmp_path / "sidecar-host"
    shutil.copytree(SIDECAR_HOST, host)
    shutil.copytree(CHART, host / "charts" / "cloudtrail-sqs-exporter")
    objs = manifests(render(host, None, name="orders", namespace="apps"))
    (dep,) = by_kind(objs, "Deployment")
    side = next(c for c in dep["spec"]["template"]["spec"]["containers"] if c["name"] == "cloudtrail-sqs-exporter")
    assert "readinessProbe" not in side
    assert side["livenessProbe"]["httpGet"]["path"] == "/healthz"  # only: is the process alive


def test_pdb_for_several_replicas_and_rule_values() -> None:
    objs = manifests(render(CHART, VALUE_SETS["scaleout-values"]))
    (pdb,) = by_kind(objs, "PodDisruptionBudget")
    (dep,) = by_kind(objs, "Deployment")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= dep["spec"]["template"]["metadata"]["labels"].items()
    assert not by_kind(manifests(render(CHART, {})), "PodDisruptionBudget")
    (rule,) = by_kind(manifests(render(CHART, VALUE_SETS["secure-values"])), "PrometheusRule")
    alerts = {r["alert"]: r for g in rule["spec"]["groups"] for r in g["rules"] if "alert" in r}
    assert ") > 0.1" in alerts["CloudtrailSqsErrorRatioHigh"]["expr"]
    assert ") >= 25" in alerts["CloudtrailSqsAccessDeniedBurst"]["expr"]
    assert ") > 3600" in alerts["CloudtrailSqsDeliveryLagHigh"]["expr"]
    assert "CloudtrailSqsPurgeSeen" in alerts
    url = alerts["CloudtrailSqsExporterDown"]["annotations"]["runbook_url"]
    assert url == "https://wiki.example.com/cloudtrail-sqs-exporter/runbook#cloudtrailsqsexporterdown"
