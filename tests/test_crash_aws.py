"""Crash safety for the AWS sources: kill -9 the daemon at ten random moments while it works through a
generated corpus from moto_server, restart it on the same state each time; the final counts are exact."""

from __future__ import annotations

import random
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from awsfixtures import MotoServer, aws_env, counted, upload_tree, wait_until, write_batch, write_config
from test_crash import kill_9_along_the_work
from test_source_cloudwatch import GROUP, batches, stream_of
from test_source_cloudwatch import truth_of as cw_truth
from test_source_s3 import s3_source
from test_source_s3sqs import notifying_bucket, queue_depth
from util import Exporter, assert_matches_truth, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow
CALLS = "cloudtrail_sqs_api_calls_total"


def setup_s3(moto: MotoServer, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="trail")
    truth = write_batch(Generator(seed=51), tmp_path / "trail", 160, records=150, extras=False)
    upload_tree(s3, "trail", tmp_path / "trail")
    return s3_source(moto, "trail"), truth


def setup_s3sqs(moto: MotoServer, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    s3 = moto.client("s3")
    url = notifying_bucket(moto)
    # enough objects that the kills land while it works (the C scanner made 48 take well under a second)
    truth = write_batch(Generator(seed=52), tmp_path / "trail", 160, records=150, extras=False)
    upload_tree(s3, "trail", tmp_path / "trail")
    src = {
        "type": "s3-sqs",
        "name": "trail",
        "queue_url": url,
        "region": "us-east-1",
        "endpoint_url": moto.url,
        "wait_time": "1s",
        "max_messages": 4,
        "visibility_timeout": "3s",
        "retry_visibility": "1s",
    }
    return src, truth


def setup_cloudwatch(moto: MotoServer, tmp_path: Path) -> tuple[dict[str, Any], dict[str, Any]]:
    logs = moto.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    now = datetime.now(UTC).replace(microsecond=0)
    gen = Generator(seed=53, start=now - timedelta(minutes=50))
    for a in gen.accounts:
        for r in gen.regions:
            logs.create_log_stream(logGroupName=GROUP, logStreamName=stream_of(a, r))
    batches(logs, gen, now - timedelta(minutes=50), 240, timedelta(seconds=48))
    src = {
        "type": "cloudwatch",
        "name": "trail",
        "log_group": GROUP,
        "region": "us-east-1",
        "endpoint_url": moto.url,
        "start": (now - timedelta(hours=1)).isoformat(),
        "late_window": "5m",
        "late_scan": "0s",
        "page_size": 400,  # many pages, so a kill can land between two of them
        "poll_interval": "300ms",
    }
    return src, cw_truth(gen, tmp_path)


SETUPS = {"s3": setup_s3, "s3-sqs": setup_s3sqs, "cloudwatch": setup_cloudwatch}


@pytest.mark.parametrize("kind", sorted(SETUPS))
def test_kill_9_at_random_moments(kind: str, moto: MotoServer, tmp_path: Path, exporter_proc) -> None:
    src, truth = SETUPS[kind](moto, tmp_path)
    cfg = write_config(tmp_path / "c.yaml", [src])
    cfg.write_text(cfg.read_text().replace("commit_interval: 200ms", "commit_interval: 50ms"))
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    want = sum(truth["calls"].values())
    seen = kill_9_along_the_work(exp, lambda e: counted(e.metrics(), CALLS), want, 10, random.Random(kind))
    assert any(0 < s < want for s in seen), seen  # some kills landed mid-work
    exp.start(wait_ready=False)
    wait_for(lambda: counted(exp.metrics(), CALLS) == want, 120, what=f"{kind}: all calls counted")
    if kind == "s3-sqs":
        wait_until(lambda: queue_depth(moto, src["queue_url"]) == 0, 60, what="queue drained")
    time.sleep(1.5)  # a few more polls: nothing may be added twice
    assert_matches_truth(exp.metrics(), truth)
