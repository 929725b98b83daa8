"""`cloudwatch` source against moto_server over HTTP: trail records as log events in a log group,
tailed with FilterLogEvents; late events inside the window count once, older ones count as late."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
import pytest
from awsfixtures import MotoServer, aws_env, counted, wait_metric, write_config
from util import Exporter, assert_matches_truth, load_truth

from exporter.generator import Generator

pytestmark = pytest.mark.slow

GROUP = "aws-cloudtrail-logs-111122220000"
CALLS = "cloudtrail_sqs_api_calls_total"
LATE = "cloudtrail_sqs_exporter_late_events_total"


def ms(rec: dict[str, Any]) -> int:
    return int(datetime.strptime(rec["eventTime"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC).timestamp() * 1000)


def put(logs: Any, stream: str, records: list[dict[str, Any]]) -> None:
    logs.put_log_events(
        logGroupName=GROUP,
        logStreamName=stream,
        logEvents=[{"timestamp": ms(r), "message": json.dumps(r)} for r in sorted(records, key=ms)],
    )


def stream_of(acct: str, region: str) -> str:
    return f"{acct}_CloudTrail_{region}"  # how CloudTrail names its streams


def batches(logs: Any, gen: Generator, t0: datetime, n: int, span: timedelta) -> None:
    """n batches of records (SQS and not) spread over the account/region streams from t0."""
    slots = [(a, r) for a in gen.accounts for r in gen.regions]
    for i in range(n):
        acct, region = slots[i % len(slots)]
        start = t0 + span * (i // len(slots))
        put(logs, stream_of(acct, region), gen.records(acct, region, start, span, 40))


def truth_of(gen: Generator, tmp_path: Path) -> dict[str, Any]:
    tp = tmp_path / "cw.truth.json"
    tp.write_bytes(msgspec.json.encode(gen.truth.to_json()))
    return load_truth(tp)


def test_cloudwatch_tail_counts_late_window_and_too_late(moto: MotoServer, tmp_path: Path, exporter_proc) -> None:
    logs = moto.client("logs")
    logs.create_log_group(logGroupName=GROUP)
    now = datetime.now(UTC).replace(microsecond=0)
    gen = Generator(seed=31, start=now - timedelta(minutes=45))
    for a in gen.accounts:
        for r in gen.regions:
            logs.create_log_stream(logGroupName=GROUP, logStreamName=stream_of(a, r))
    # a stream outside the configured prefix: its SQS events must not count (moto ignores the prefix)
    logs.create_log_stream(logGroupName=GROUP, logStreamName="decoy")
    put(
        logs,
        "decoy",
        [Generator(seed=98, start=now).sqs_record(gen.accounts[0], "us-east-1", now - timedelta(minutes=20))],
    )
    batches(logs, gen, now - timedelta(minutes=45), 20, timedelta(minutes=7))  # 5 per stream, ≈ 35 min
    truth = truth_of(gen, tmp_path)
    src = {
        "type": "cloudwatch",
        "name": "cw",
        "log_group": GROUP,
        "log_stream_prefix": "1111",
        "region": "us-east-1",
        "endpoint_url": moto.url,
        "start": (now - timedelta(hours=1)).isoformat(),
        "late_window": "5m",
        "late_scan": "5m",
        "poll_interval": "500ms",
    }
    exp = Exporter(write_config(tmp_path / "c.yaml", [src]), tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    total = sum(truth["calls"].values())
    m = wait_metric(exp, CALLS, total)
    assert_matches_truth(m, truth)
    assert counted(m, "cloudtrail_sqs_exporter_records_total", source="cw", outcome="other") == 0  # filtered

    # newer events follow
    batches(logs, gen, now - timedelta(minutes=10), 8, timedelta(minutes=4))
    truth = truth_of(gen, tmp_path)
    m = wait_metric(exp, CALLS, sum(truth["calls"].values()))
    assert_matches_truth(m, truth)

    # the watermark is the newest event time counted
    watermark = max(gen.truth.newest.values())
    acct, region = gen.accounts[1], "eu-west-1"
    # late, but inside the 5 minute window: counted once, though every poll reads the window again
    inside = gen.sqs_record(acct, region, datetime.fromtimestamp(watermark - 120, UTC))
    put(logs, stream_of(acct, region), [inside])
    truth = truth_of(gen, tmp_path)
    m = wait_metric(exp, CALLS, sum(truth["calls"].values()))
    time.sleep(2.5)  # several more polls over the same window
    m = exp.metrics()
    assert_matches_truth(m, truth)
    assert counted(m, LATE, source="cw") == 0
    # too late: before the window when it arrives → the late counter, not the call counters
    other = Generator(seed=99)
    too_late = [other.sqs_record(acct, region, datetime.fromtimestamp(watermark - 300 - s, UTC)) for s in (60, 90)]
    put(logs, stream_of(acct, region), too_late)
    m = wait_metric(exp, LATE, 2, source="cw")
    time.sleep(2)
    m = exp.metrics()
    assert counted(m, LATE, source="cw") == 2
    assert_matches_truth(m, truth)

    # after a restart the window's ids and the watermark are restored: nothing counted twice
    exp.stop()
    exp = Exporter(write_config(tmp_path / "c.yaml", [src]), tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    time.sleep(2)
    m = exp.metrics()
    assert_matches_truth(m, truth)
    assert counted(m, LATE, source="cw") == 2
