"""`s3-sqs` source against moto_server over HTTP: S3 notifications (plain, SNS, EventBridge) from a
real queue; duplicates count once; a message naming a missing object stays, is retried and counted."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote_plus

import pytest
from awsfixtures import MotoServer, aws_env, counted, upload_tree, wait_metric, wait_until, write_batch, write_config
from util import Exporter, assert_matches_truth

from exporter.generator import Generator
from exporter.sources.s3sqs import parse_message

OBJECTS = "cloudtrail_sqs_exporter_objects_total"
ERRORS = "cloudtrail_sqs_exporter_source_errors_total"


def make_queue(moto: MotoServer, name: str) -> tuple[str, str]:
    sqs = moto.client("sqs")
    url = sqs.create_queue(QueueName=name, Attributes={"VisibilityTimeout": "30"})["QueueUrl"]
    arn = sqs.get_queue_attributes(QueueUrl=url, AttributeNames=["QueueArn"])["Attributes"]["QueueArn"]
    return url, arn


def notifying_bucket(moto: MotoServer, bucket: str = "trail", queue: str = "trail-notes") -> str:
    """A bucket whose object-created events go to a new queue; the queue URL."""
    url, arn = make_queue(moto, queue)
    s3 = moto.client("s3")
    s3.create_bucket(Bucket=bucket)
    s3.put_bucket_notification_configuration(  # moto sends an s3:TestEvent first, as S3 does
        Bucket=bucket,
        NotificationConfiguration={"QueueConfigurations": [{"QueueArn": arn, "Events": ["s3:ObjectCreated:*"]}]},
    )
    return url


def queue_depth(moto: MotoServer, url: str) -> int:
    a = moto.client("sqs").get_queue_attributes(
        QueueUrl=url, AttributeNames=["ApproximateNumberOfMessages", "ApproximateNumberOfMessagesNotVisible"]
    )["Attributes"]
    return int(a["ApproximateNumberOfMessages"]) + int(a["ApproximateNumberOfMessagesNotVisible"])


def source(moto: MotoServer, url: str) -> dict[str, Any]:
    return {
        "type": "s3-sqs",
        "name": "notes",
        "queue_url": url,
        "region": "us-east-1",
        "endpoint_url": moto.url,
        "wait_time": "1s",
        "visibility_timeout": "30s",
        "retry_visibility": "1s",
    }


def peek_kinds(moto: MotoServer, url: str) -> set[str]:
    """The envelope kinds of the messages waiting in a queue (left visible)."""
    r = moto.client("sqs").receive_message(QueueUrl=url, MaxNumberOfMessages=10, VisibilityTimeout=0)
    return {parse_message(m["Body"]).kind for m in r.get("Messages", ())} - {"test"}


def s3_event(bucket: str, key: str, etag: str) -> dict[str, Any]:
    return {
        "Records": [
            {
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": "ObjectCreated:Put",
                "s3": {"bucket": {"name": bucket}, "object": {"key": quote_plus(key), "eTag": etag}},
            }
        ]
    }


def start(cfg: Path, tmp_path: Path, exporter_proc: list) -> Exporter:
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    return exp.start()


@pytest.mark.slow
def test_notifications_match_truth_follow_and_count_duplicates_once(
    moto: MotoServer, tmp_path: Path, exporter_proc
) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    url = notifying_bucket(moto)
    gen = Generator(seed=21)
    out = tmp_path / "trail"
    truth = write_batch(gen, out, 24)
    keys = upload_tree(s3, "trail", out)
    exp = start(write_config(tmp_path / "c.yaml", [source(moto, url)]), tmp_path, exporter_proc)
    m = wait_metric(exp, OBJECTS, 24, source="notes", outcome="ok")
    assert_matches_truth(m, truth)
    wait_until(lambda: queue_depth(moto, url) == 0, what="queue drained")
    m = wait_metric(exp, OBJECTS, 8, source="notes", outcome="skipped")  # digests + Insight, by key
    assert counted(m, OBJECTS, source="notes", outcome="failed") == 0

    # more deliveries follow
    truth = write_batch(gen, out, 8, start=datetime(2026, 11, 1, 9, tzinfo=UTC), extras=False)
    new = upload_tree(s3, "trail", out, only_new=set(keys))
    wait_metric(exp, OBJECTS, 32, source="notes", outcome="ok")

    # the same objects notified again (plain, SNS-wrapped, EventBridge): counted once, messages deleted
    for key in new[:3]:
        etag = s3.head_object(Bucket="trail", Key=key)["ETag"].strip('"')
        plain = s3_event("trail", key, etag)
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(plain))
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps({"Type": "Notification", "Message": json.dumps(plain)}))
        bridge = {
            "version": "0",
            "detail-type": "Object Created",
            "source": "aws.s3",
            "detail": {"bucket": {"name": "trail"}, "object": {"key": key, "etag": etag}},
        }
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(bridge))
    wait_until(lambda: queue_depth(moto, url) == 0, what="duplicates deleted")
    m = exp.metrics()
    assert counted(m, OBJECTS, source="notes", outcome="ok") == 32
    assert_matches_truth(m, truth)


@pytest.mark.slow
def test_sns_eventbridge_envelopes_and_missing_object_retried(moto: MotoServer, tmp_path: Path, exporter_proc) -> None:
    s3, sqs = moto.client("s3"), moto.client("sqs")
    url, arn = make_queue(moto, "trail-notes")
    # bucket 1 → SNS topic → queue (the queue gets SNS envelopes)
    sns = moto.client("sns")
    topic = sns.create_topic(Name="trail-topic")["TopicArn"]
    sns.subscribe(TopicArn=topic, Protocol="sqs", Endpoint=arn)
    s3.create_bucket(Bucket="trail-sns")
    s3.put_bucket_notification_configuration(
        Bucket="trail-sns",
        NotificationConfiguration={"TopicConfigurations": [{"TopicArn": topic, "Events": ["s3:ObjectCreated:*"]}]},
    )
    # bucket 2 → EventBridge rule → a second queue, read by a second source in the same process
    url_eb, arn_eb = make_queue(moto, "trail-events")
    events = moto.client("events")
    events.put_rule(Name="trail-objects", EventPattern=json.dumps({"source": ["aws.s3"]}))
    events.put_targets(Rule="trail-objects", Targets=[{"Id": "q", "Arn": arn_eb}])
    s3.create_bucket(Bucket="trail-eb")
    s3.put_bucket_notification_configuration(
        Bucket="trail-eb", NotificationConfiguration={"EventBridgeConfiguration": {}}
    )
    gen = Generator(seed=22)
    truth = write_batch(gen, tmp_path / "a", 20, extras=False)
    upload_tree(s3, "trail-sns", tmp_path / "a")
    truth = write_batch(gen, tmp_path / "b", 20, start=datetime(2026, 11, 1, 8, tzinfo=UTC), extras=False)
    upload_tree(s3, "trail-eb", tmp_path / "b")
    assert peek_kinds(moto, url) == {"sns"}
    assert "eventbridge" in peek_kinds(moto, url_eb) <= {"eventbridge", "ignored"}  # + other S3 events
    eb_source = {**source(moto, url_eb), "name": "events"}
    exp = start(write_config(tmp_path / "c.yaml", [source(moto, url), eb_source]), tmp_path, exporter_proc)
    wait_metric(exp, OBJECTS, 20, source="events", outcome="ok")
    m = wait_metric(exp, OBJECTS, 20, source="notes", outcome="ok")
    assert_matches_truth(m, truth)

    # a notification for an object that is not there: NoSuchKey is poison (tests/test_poison.py); this
    # queue has no DLQ, so it is counted failed once and the message deleted
    missing = "AWSLogs/111122220000/CloudTrail/us-east-1/2026/11/01/late object.json.gz"
    sqs.send_message(QueueUrl=url, MessageBody=json.dumps(s3_event("trail-eb", missing, "")))
    objects_ok = 20
    wait_until(lambda: counted(exp.metrics(), ERRORS, source="notes", kind="notfound") >= 1, what="the attempt")
    wait_until(lambda: queue_depth(moto, url) == 0, what="poison deleted")
    m = exp.metrics()
    assert counted(m, OBJECTS, source="notes", outcome="failed") == 1
    assert counted(m, OBJECTS, source="notes", outcome="ok") == objects_ok
    # the object arrives: its own EventBridge notification counts it, once
    truth = write_batch(gen, tmp_path / "c", 1, start=datetime(2026, 11, 1, 10, tzinfo=UTC), extras=False)
    (only,) = [p for p in (tmp_path / "c").rglob("*.json.gz")]
    s3.put_object(Bucket="trail-eb", Key=missing, Body=only.read_bytes())
    wait_until(lambda: counted(exp.metrics(), OBJECTS, outcome="ok") == 2 * objects_ok + 1, what="late object")
    wait_until(lambda: queue_depth(moto, url) == 0 and queue_depth(moto, url_eb) == 0, what="queues drained")
    m = exp.metrics()
    # counted once, by the object's own EventBridge notification
    assert counted(m, OBJECTS, outcome="ok") == 41
    assert_matches_truth(m, truth)


def test_parse_message_shapes() -> None:
    plain = s3_event("b", "AWSLogs/1/x y+z.json.gz", "abc")
    n = parse_message(json.dumps(plain))
    assert (n.kind, n.objects[0].key, n.objects[0].etag) == ("s3", "AWSLogs/1/x y+z.json.gz", "abc")
    n = parse_message(json.dumps({"Type": "Notification", "Message": json.dumps(plain)}))
    assert (n.kind, n.objects[0].bucket) == ("sns", "b")
    n = parse_message(json.dumps({"Service": "Amazon S3", "Event": "s3:TestEvent", "Bucket": "b"}))
    assert n.kind == "test" and not n.objects
    bridge = {
        "detail-type": "Object Created",
        "source": "aws.s3",
        "detail": {"bucket": {"name": "b"}, "object": {"key": "k+1"}},
    }
    n = parse_message(json.dumps(bridge))
    assert (n.kind, n.objects[0].key) == ("eventbridge", "k+1")  # EventBridge keys are not URL-encoded
    assert parse_message("not json").kind == "invalid"
    assert parse_message(json.dumps({"Records": [{"eventName": "ObjectRemoved:Delete"}]})).kind == "ignored"


def test_error_kinds_and_shared_rate_limit() -> None:
    from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

    from exporter.sources.aws import RateLimiter, error_kind

    def client_error(code: str, status: int) -> ClientError:
        return ClientError({"Error": {"Code": code}, "ResponseMetadata": {"HTTPStatusCode": status}}, "GetObject")

    assert error_kind(exc=client_error("SlowDown", 503)) == "throttled"
    assert error_kind(exc=client_error("ThrottlingException", 400)) == "throttled"
    assert error_kind(exc=client_error("AccessDenied", 403)) == "denied"
    assert error_kind(exc=client_error("NoSuchKey", 404)) == "notfound"
    assert error_kind(exc=client_error("InternalError", 500)) == "server"
    assert error_kind(exc=client_error("InvalidParameterValue", 400)) == "client"
    assert error_kind(exc=EndpointConnectionError(endpoint_url="http://127.0.0.1:1")) == "network"
    assert error_kind(exc=NoCredentialsError()) == "credentials"

    clock = [0.0]
    lim = RateLimiter(5.0, clock=lambda: clock[0])
    took = 0
    while lim.tokens >= 1:  # the burst
        assert lim.acquire()
        took += 1
    assert took == 5
    clock[0] += 0.2  # one more token after 1/5 s, not before
    assert lim.acquire()
    assert RateLimiter.shared(("logs", "x"), 5.0) is RateLimiter.shared(("logs", "x"), 3.0)
    assert RateLimiter.shared(("logs", "x"), 5.0).rate == 3.0  # the strictest limit wins
