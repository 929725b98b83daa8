"""Poison on an `s3-sqs` queue, against moto_server: a notified object that is gone or denied
(NoSuchKey, NoSuchBucket, AccessDenied) and a body that is no notification are counted once and logged
once; the message is deleted, or left for the dead-letter queue when the queue has a redrive policy."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest
from awsfixtures import MotoServer, aws_env, counted, upload_tree, wait_metric, wait_until, write_batch, write_config
from botocore.exceptions import ClientError
from test_source_s3sqs import make_queue, notifying_bucket, queue_depth, s3_event, source
from util import Exporter, assert_matches_truth

from exporter.config import S3SqsSourceConfig
from exporter.generator import Generator
from exporter.pipeline import Pipeline
from exporter.sources.base import Context
from exporter.sources.s3sqs import S3SqsSource

OBJECTS = "cloudtrail_sqs_exporter_objects_total"
ERRORS = "cloudtrail_sqs_exporter_source_errors_total"
MISSING = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/gone.json.gz"


def send_poison(moto: MotoServer, url: str) -> None:
    sqs = moto.client("sqs")
    for _ in range(2):  # the same missing object named by two messages: one failed object
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(s3_event("trail", MISSING, "abc")))
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(s3_event("no-such-bucket", "AWSLogs/x.json.gz", "abc")))
    sqs.send_message(QueueUrl=url, MessageBody="not json at all")
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"hello": "world"}))


def start(cfg: Path, tmp_path: Path, exporter_proc: list) -> Exporter:
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    return exp.start()


@pytest.mark.slow
def test_without_dlq_poison_is_counted_once_logged_once_and_deleted(
    moto: MotoServer, tmp_path: Path, exporter_proc: list
) -> None:
    url = notifying_bucket(moto)
    truth = write_batch(Generator(seed=51), tmp_path / "trail", 6, extras=False)
    upload_tree(moto.client("s3"), "trail", tmp_path / "trail")
    send_poison(moto, url)
    exp = start(write_config(tmp_path / "c.yaml", [source(moto, url)]), tmp_path, exporter_proc)
    m = wait_metric(exp, OBJECTS, 6, source="notes", outcome="ok")
    assert_matches_truth(m, truth)
    wait_until(lambda: queue_depth(moto, url) == 0, what="poison deleted")
    time.sleep(3)  # several retry_visibility periods: nothing comes back, nothing counts again
    m = exp.metrics()
    assert counted(m, OBJECTS, source="notes", outcome="failed") == 2  # the missing key, the missing bucket
    assert counted(m, ERRORS, source="notes", kind="message") == 2
    log = exp.log.read_text()
    assert log.count(f"s3://trail/{MISSING}: NoSuchKey; counted as failed, message deleted") == 1, log
    assert log.count("s3://no-such-bucket/AWSLogs/x.json.gz: NoSuchBucket") == 1, log
    assert log.count("is not an S3 notification") == 2, log
    assert "has no redrive policy" in log


@pytest.mark.slow
def test_with_dlq_poison_is_counted_once_and_left_for_the_dlq(
    moto: MotoServer, tmp_path: Path, exporter_proc: list
) -> None:
    sqs = moto.client("sqs")
    dlq_url, dlq_arn = make_queue(moto, "trail-notes-dlq")
    url = sqs.create_queue(
        QueueName="trail-notes",
        Attributes={
            "VisibilityTimeout": "30",
            "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": "3"}),
        },
    )["QueueUrl"]
    moto.client("s3").create_bucket(Bucket="trail")
    send_poison(moto, url)
    exp = start(write_config(tmp_path / "c.yaml", [source(moto, url)]), tmp_path, exporter_proc)
    wait_until(lambda: queue_depth(moto, url) == 0, timeout=60, what="poison moved to the DLQ")
    assert queue_depth(moto, dlq_url) == 5
    m = exp.metrics()
    assert counted(m, OBJECTS, source="notes", outcome="failed") == 2  # not once per receive
    assert counted(m, ERRORS, source="notes", kind="message") == 2
    log = exp.log.read_text()
    assert log.count(f"s3://trail/{MISSING}: NoSuchKey; counted as failed, left for the dead-letter queue") == 1
    assert log.count("is not an S3 notification") == 2, log
    assert "has a redrive policy" in log


class DeniedS3:
    """Stands in for the S3 client: every GetObject answers `code` (moto enforces no bucket policy)."""

    def __init__(self, code: str, status: int) -> None:
        self.code, self.status = code, status
        self.calls = 0

    def get_object(self, **kw: Any) -> Any:
        self.calls += 1
        raise ClientError(
            {"Error": {"Code": self.code, "Message": "no"}, "ResponseMetadata": {"HTTPStatusCode": self.status}},
            "GetObject",
        )


@pytest.mark.parametrize(("code", "status", "poison"), [("AccessDenied", 403, True), ("InternalError", 500, False)])
def test_access_denied_is_poison_a_server_error_is_not(moto: MotoServer, code: str, status: int, poison: bool) -> None:
    url, _ = make_queue(moto, "notes")
    moto.client("sqs").send_message(QueueUrl=url, MessageBody=json.dumps(s3_event("trail", MISSING, "abc")))
    cfg = S3SqsSourceConfig(
        type="s3-sqs",
        name="notes",
        queue_url=url,
        region="us-east-1",
        endpoint_url=moto.url,
        wait_time=0.2,
        retry_visibility=0.1,
    )
    pipeline = Pipeline([])
    src = S3SqsSource(cfg, Context(pipeline, None))
    src.s3 = src.downloads.s3 = DeniedS3(code, status)
    stop = threading.Event()
    for _ in range(4):
        src.poll(stop)
        pipeline.checkpoint()
        time.sleep(1.1)  # the retried message is visible again
    failed = dict(pipeline.counters.counts().objects)[("notes", "failed")]
    if poison:
        assert (src.redrive, src.s3.calls, failed, queue_depth(moto, url)) == (False, 1, 1, 0)
    else:  # may work next time: stays in the queue, each attempt counted as before
        assert src.redrive is False and src.s3.calls >= 2 and failed == src.s3.calls
        assert queue_depth(moto, url) == 1
