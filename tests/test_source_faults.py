"""Faults between the exporter and AWS: S3 answering 503 SlowDown for a while, then the whole
endpoint gone for 30 s and back with its data restored. The daemon recovers by itself, /readyz tells
the truth meanwhile, the failures show by kind, and the final counts are exact."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from pathlib import Path

import pytest
from awsfixtures import (
    FaultProxy,
    MotoServer,
    aws_env,
    counted,
    upload_tree,
    wait_metric,
    wait_until,
    write_batch,
    write_config,
)
from util import Exporter, assert_matches_truth, http_get

from exporter.generator import Generator

pytestmark = pytest.mark.slow

OBJECTS = "cloudtrail_sqs_exporter_objects_total"
ERRORS = "cloudtrail_sqs_exporter_source_errors_total"
OUTAGE = 30.0


def test_s3_source_recovers_from_slowdown_and_outage(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path, exporter_proc
) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="trail")
    gen = Generator(seed=41)
    out = tmp_path / "trail"
    truth = write_batch(gen, out, 20)
    upload_tree(s3, "trail", out)
    src = {
        "type": "s3",
        "name": "trail",
        "bucket": "trail",
        "region": "us-east-1",
        "endpoint_url": fault_proxy.url,
        "start": "2026-11-01",
        "poll_interval": "500ms",
        "max_attempts": 3,
        "connect_timeout": "1s",
    }
    cfg = write_config(tmp_path / "c.yaml", [src], unready_after="4s")
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)

    # 1. S3 throttles everything: counted as throttled, nothing read, not ready
    fault_proxy.failing.set()
    exp.start(wait_ready=False)
    wait_until(lambda: counted(exp.metrics(), ERRORS, source="trail", kind="throttled") >= 3, what="throttling seen")
    assert http_get(exp.url + "/readyz")[0] == 503
    assert counted(exp.metrics(), OBJECTS, source="trail", outcome="ok") == 0
    time.sleep(2)
    fault_proxy.failing.clear()
    m = wait_metric(exp, OBJECTS, 20, source="trail", outcome="ok")
    assert_matches_truth(m, truth)
    wait_until(lambda: http_get(exp.url + "/readyz")[0] == 200, what="ready after throttling")
    assert fault_proxy.refused > 0

    # 2. the endpoint goes away for 30 s; new deliveries wait for it
    network_before = counted(exp.metrics(), ERRORS, source="trail", kind="network")
    moto.stop()
    down = time.monotonic()
    truth = write_batch(gen, out, 8, start=datetime(2026, 11, 1, 9, tzinfo=UTC), extras=False)
    wait_until(lambda: http_get(exp.url + "/readyz")[0] == 503, timeout=20, what="unready during outage")
    assert counted(exp.metrics(), ERRORS, source="trail", kind="network") > network_before
    time.sleep(max(0.0, OUTAGE - (time.monotonic() - down)))
    assert exp.proc is not None and exp.proc.poll() is None  # never gave up

    # 3. back, with its data restored (the same objects, so the same ETags) plus the new ones
    moto.start()
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="trail")
    upload_tree(s3, "trail", out)
    m = wait_metric(exp, OBJECTS, 28, source="trail", outcome="ok", timeout=90)
    assert_matches_truth(m, truth)
    assert counted(m, OBJECTS, source="trail", outcome="failed") == 0
    wait_until(lambda: http_get(exp.url + "/readyz")[0] == 200, what="ready after the outage")
