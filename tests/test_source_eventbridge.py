"""The `eventbridge-sqs` source against moto_server: EventBridge "AWS API Call via CloudTrail" events
(plain and SNS-wrapped) on an SQS queue, counted exactly, redelivered messages counted once, exact after
kill -9 at random moments."""

from __future__ import annotations

import contextlib
import gzip
import json
import random
import signal
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from awsfixtures import FaultProxy, MotoServer, aws_env, counted, wait_until, write_batch, write_config
from util import Exporter, assert_matches_truth, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow
CALLS = "cloudtrail_sqs_api_calls_total"


def eventbridge_event(record: dict[str, Any]) -> dict[str, Any]:
    """The event EventBridge makes of a CloudTrail record (shape from the EventBridge user guide)."""
    return {
        "version": "0",
        "id": str(uuid.UUID(int=random.getrandbits(128))),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws." + record["eventSource"].split(".")[0],
        "account": record.get("recipientAccountId", "111122223333"),
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    }


def sns_wrapped(event: dict[str, Any]) -> dict[str, Any]:
    return {
        "Type": "Notification",
        "MessageId": str(uuid.uuid4()),
        "TopicArn": "arn:aws:sns:us-east-1:111122223333:cloudtrail-events",
        "Message": json.dumps(event),
        "Timestamp": "2026-11-01T00:00:00.000Z",
        "SignatureVersion": "1",
    }


def records_of(truth: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for f in truth["files"]:
        out.extend(json.loads(gzip.decompress(Path(f).read_bytes()))["Records"])
    return out


def fill_queue(moto: MotoServer, tmp_path: Path, files: int, seed: int) -> tuple[str, dict[str, Any]]:
    """A queue holding every generated record (SQS and other services) as one EventBridge event per
    message, one in five SNS-wrapped."""
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=f"ct-events-{seed}")["QueueUrl"]
    truth = write_batch(Generator(seed=seed), tmp_path / "trail", files, records=100, extras=False)
    rng = random.Random(seed)
    bodies = []
    for rec in records_of(truth):
        ev = eventbridge_event(rec)
        bodies.append(json.dumps(sns_wrapped(ev) if rng.random() < 0.2 else ev))
    for i in range(0, len(bodies), 10):
        entries = [{"Id": str(j), "MessageBody": b} for j, b in enumerate(bodies[i : i + 10])]
        sqs.send_message_batch(QueueUrl=url, Entries=entries)
    return url, truth


def source(url: str, endpoint: str, **kw: Any) -> dict[str, Any]:
    return {
        "type": "eventbridge-sqs",
        "name": "events",
        "queue_url": url,
        "region": "us-east-1",
        "endpoint_url": endpoint,
        "wait_time": "1s",
        **kw,
    }


def depth(moto: MotoServer, url: str) -> int:
    a = moto.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def test_events_counted_exactly_and_deleted(moto: MotoServer, tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    url, truth = fill_queue(moto, tmp_path, files=8, seed=71)
    cfg = write_config(tmp_path / "c.yaml", [source(url, moto.url)])
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    want = sum(truth["calls"].values())
    wait_for(lambda: counted(exp.metrics(), CALLS) == want, 60, what="all calls counted")
    wait_until(lambda: depth(moto, url) == 0, 30, what="queue drained")
    m = exp.metrics()
    assert_matches_truth(m, truth)
    assert (
        counted(m, "cloudtrail_sqs_exporter_records_total", source="events", outcome="sqs") == truth["records"]["sqs"]
    )
    assert (
        counted(m, "cloudtrail_sqs_exporter_records_total", source="events", outcome="other")
        == truth["records"]["other"]
    )
    assert counted(m, "cloudtrail_sqs_exporter_objects_total", source="events", outcome="failed") == 0


def test_redelivered_messages_count_once(
    moto: MotoServer, fault_proxy: FaultProxy, tmp_path: Path, exporter_proc: list[Exporter]
) -> None:
    url, truth = fill_queue(moto, tmp_path, files=1, seed=72)
    sqs = moto.client("sqs")
    sqs.send_message(QueueUrl=url, MessageBody="{not json")  # a poison body: counted failed once, deleted
    # every delete refused at first: each message comes back after its visibility timeout
    fault_proxy.refuse_when = lambda headers, body: "DeleteMessage" in headers.get("X-Amz-Target", "")
    src = source(url, fault_proxy.url, visibility_timeout="1s", max_attempts=1)  # a refused delete is not retried
    cfg = write_config(tmp_path / "c.yaml", [src])
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    want = sum(truth["calls"].values())
    # while deletes fail, the same messages come back every second: never counted twice
    deadline = time.monotonic() + 4.0
    while time.monotonic() < deadline or fault_proxy.refused < 20:
        assert counted(exp.metrics(), CALLS) <= want
        time.sleep(0.2)
    fault_proxy.refuse_when = None
    wait_for(lambda: counted(exp.metrics(), CALLS) == want, 90, what="all calls counted")
    wait_until(lambda: depth(moto, url) == 0, 60, what="queue drained once deletes pass")
    time.sleep(1.5)  # a few more polls: nothing may be added twice
    m = exp.metrics()
    assert_matches_truth(m, truth)
    assert counted(m, "cloudtrail_sqs_exporter_objects_total", source="events", outcome="failed") == 1


def test_kill_9_at_random_moments(moto: MotoServer, tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    # moto_server's receive and delete take time in proportion to the queue's length (~0.65 s a poll at
    # 3,000 messages, ~0.2 s at 1,000): a thousand messages keep the run within its timeouts
    url, truth = fill_queue(moto, tmp_path, files=10, seed=73)
    cfg = write_config(tmp_path / "c.yaml", [source(url, moto.url, max_messages=5, visibility_timeout="2s")])
    cfg.write_text(cfg.read_text().replace("commit_interval: 200ms", "commit_interval: 50ms"))
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    want = sum(truth["calls"].values())
    rng = random.Random(73)
    seen = []
    for _ in range(10):
        exp.start(wait_ready=False)
        # paced by progress, not by the clock: each kill lands once this run has counted something new
        before = seen[-1] if seen and seen[-1] > 0 else 0
        with contextlib.suppress(TimeoutError):  # all done already: this kill lands after the work
            wait_for(lambda b=before: counted(exp.metrics(), CALLS) > b, 30, interval=0.02, what="progress")
        time.sleep(rng.uniform(0.0, 0.2))
        try:
            seen.append(counted(exp.metrics(), CALLS))
        except OSError:
            seen.append(-1)
        exp.stop(signal.SIGKILL)
    assert any(0 < s < want for s in seen), seen
    exp.start(wait_ready=False)
    wait_for(lambda: counted(exp.metrics(), CALLS) == want, 120, what="all calls counted")
    wait_until(lambda: depth(moto, url) == 0, 60, what="queue drained")
    time.sleep(1.5)  # a few more polls: nothing may be added twice
    assert_matches_truth(exp.metrics(), truth)
