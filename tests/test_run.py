"""`run` with the file source: a real daemon, a real Prometheus scraping it, restarts."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from promserver import PROMTOOL, Prometheus
from util import Exporter, assert_matches_truth, http_get, load_truth, parse_metrics, series, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow


def write_config(tmp: Path, trail: Path, extra: str = "") -> Path:
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"""
state:
  path: {tmp / "state" / "exporter.db"}
  commit_interval: 0.2s
sources:
  - type: file
    path: {trail}
    poll_interval: 0.5s
    settle: 0.2s
{extra}
"""
    )
    return cfg


def truth_of(gen: Generator, tmp: Path) -> dict:
    p = tmp / "truth.json"
    p.write_bytes(msgspec.json.encode(gen.truth.to_json()))
    return load_truth(p)


def matches(exp: Exporter, truth: dict) -> bool:
    try:
        assert_matches_truth(exp.metrics(), truth)
    except AssertionError:
        return False
    return True


def counters(exp: Exporter) -> dict:
    """Every cloudtrail_sqs_* sample (the exporter's own state, not process_* figures)."""
    return {k: v for k, v in exp.metrics().items() if k[0].startswith("cloudtrail_sqs_")}


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[list[Prometheus]]:
    started: list[Prometheus] = []
    yield started
    for p in started:
        p.stop()


def test_run_follows_new_files_and_survives_restarts(
    tmp_path: Path, exporter_proc: list[Exporter], prometheus: list[Prometheus]
) -> None:
    trail = tmp_path / "trail"
    gen = Generator(seed=11)
    gen.write(trail, 20, 80)
    exp = Exporter(write_config(tmp_path, trail), tmp_path)
    exporter_proc.append(exp)
    exp.start()
    truth = truth_of(gen, tmp_path)
    wait_for(lambda: matches(exp, truth), 30, what="first batch counted")

    # more files arrive while it runs
    gen.write(trail, 8, 80, extras=False)
    truth = truth_of(gen, tmp_path)
    wait_for(lambda: matches(exp, truth), 30, what="second batch counted")
    m = exp.metrics()
    objects = series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")
    assert objects == {("ok",): truth["objects"]["ok"], ("skipped",): truth["objects"]["skipped"], ("failed",): 0}

    # a real Prometheus scrapes it and sees the same numbers
    prom = Prometheus(tmp_path / "prom", [f"127.0.0.1:{exp.port}"]).start()
    prometheus.append(prom)
    total = sum(truth["calls"].values())
    wait_for(lambda: prom.scalar("sum(cloudtrail_sqs_api_calls_total)") == total, 60, what="prometheus total")
    (acct, region, queue, name, cat), value = max(truth["calls"].items(), key=lambda kv: kv[1])
    q = (
        f'cloudtrail_sqs_api_calls_total{{account_id="{acct}",region="{region}",queue="{queue}",'
        f'event_name="{name}",event_category="{cat}"}}'
    )
    assert prom.scalar(q) == value
    errors = sum(truth["errors"].values())
    assert prom.scalar("sum(cloudtrail_sqs_api_errors_total)") == errors
    key, principals = max(truth["principals"]["role"].items(), key=lambda kv: kv[1])
    q = (
        f'cloudtrail_sqs_distinct_principals{{account_id="{key[0]}",region="{key[1]}",queue="{key[2]}",'
        f'window="{key[3]}"}}'
    )
    assert prom.scalar(q) == principals
    assert prom.scalar("cloudtrail_sqs_exporter_build_info") == 1
    assert prom.scalar('up{job="cloudtrail-sqs-exporter"}') == 1

    # promtool accepts the exposition
    _, body, _ = http_get(exp.url + "/metrics")
    chk = subprocess.run([PROMTOOL, "check", "metrics"], input=body, capture_output=True, text=True)
    assert chk.returncode == 0, chk.stdout + chk.stderr

    # a clean restart on the same state: every counter where it was
    before = counters(exp)
    assert exp.stop() == 0
    exp.start()
    assert counters(exp) == before
    # a crash (SIGKILL) after the last checkpoint: the same
    exp.stop(signal.SIGKILL)
    exp.start()
    assert counters(exp) == before
    # and new files after the restart still count exactly once
    gen.write(trail, 4, 80, extras=False)
    truth = truth_of(gen, tmp_path)
    wait_for(lambda: matches(exp, truth), 30, what="batch after restart counted")
    # Prometheus saw no counter reset across the restarts
    assert prom.scalar("sum(resets(cloudtrail_sqs_api_calls_total[5m]))") in (0.0, None)


def test_endpoints_and_content_negotiation(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail = tmp_path / "trail"
    Generator(seed=3).write(trail, 4, 20)
    exp = Exporter(write_config(tmp_path, trail), tmp_path)
    exporter_proc.append(exp)
    exp.start()
    assert http_get(exp.url + "/healthz")[0] == 200
    code, body, _ = http_get(exp.url + "/readyz")
    assert code == 200 and "file: ok" in body
    code, body, headers = http_get(exp.url + "/metrics")
    assert headers["Content-Type"].startswith("text/plain")
    om = {"Accept": "application/openmetrics-text; version=1.0.0; charset=utf-8"}
    # ready means one poll done; files younger than `settle` wait for the next one
    wait_for(lambda: "cloudtrail_sqs_api_calls_total{" in http_get(exp.url + "/metrics", om)[1], 10, what="counted")
    code, body, headers = http_get(exp.url + "/metrics", om)
    assert headers["Content-Type"].startswith("application/openmetrics-text")
    assert body.rstrip().endswith("# EOF")
    assert "cloudtrail_sqs_api_calls_total{" in body
    assert http_get(exp.url + "/nope")[0] == 404
    parse_metrics(http_get(exp.url + "/metrics")[1])


def test_readyz_fails_while_the_source_is_missing(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail = tmp_path / "not-yet"
    exp = Exporter(write_config(tmp_path, trail), tmp_path)
    exporter_proc.append(exp)
    exp.start(wait_ready=False)
    code, body, _ = http_get(exp.url + "/readyz")
    assert code == 503 and "does not exist" in body
    Generator(seed=4).write(trail, 4, 20)
    wait_for(lambda: http_get(exp.url + "/readyz")[0] == 200, 20, what="ready once the directory exists")


def test_bad_config_exits_2_naming_the_key(tmp_path: Path) -> None:
    cfg = tmp_path / "bad.yaml"
    cfg.write_text("metrics:\n  max_queues: lots\nsources:\n  - type: file\n")
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "run", "--config", str(cfg)], capture_output=True, text=True, timeout=60
    )
    assert r.returncode == 2
    assert "metrics.max_queues" in r.stderr and "sources[0].path" in r.stderr
