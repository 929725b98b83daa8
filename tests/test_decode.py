"""Golden tests: every SQS record in the shared fixtures is counted right; everything else lands in the
right outcome. The expectations were written by reading each record, not by running the decoder."""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import msgspec
import pytest
from util import FIXTURES

from exporter.decode.delivery import extract
from exporter.decode.reader import read_delivery
from exporter.decode.record import parse_time

TP = FIXTURES / "third_party"
SEED = FIXTURES / "seed" / "sqs-cloudtrail-logging-guide.txt"


def seed_records() -> list[dict]:
    """The JSON examples embedded in the SQS guide's prose. The SendMessage example is printed without
    its final brace: repair by adding closing braces until it parses (and say so in the test)."""
    text = SEED.read_text()
    blocks = re.split(r"^- [A-Za-z]+\n-\n", text, flags=re.M)
    out = []
    for block in blocks:
        start = block.find("\n{\n")
        if start < 0:
            continue
        body = block[start + 1 :]
        end = body.find("\n- ")
        body = body[: end if end >= 0 else None]
        body = body[: body.rfind("}") + 1]
        for extra in ("", "}", "}}"):
            try:
                doc = json.loads(body + extra)
                break
            except json.JSONDecodeError:
                continue
        else:
            raise AssertionError(f"cannot parse a seed example: {body[:80]}")
        out.extend(doc.get("Records", [doc]))
    return out


MGMT = ("123456789012", "us-east-2", "MyQueue")
DATA = ("123456789012", "ap-southeast-4", "MyQueue")
ROLE = "arn:aws:sts::123456789012:assumed-role/RoleToBeAssumed"  # the guide's sessionIssuer, as printed
SESSION = ROLE + "/SessionName"

# eventName → (account, region, queue, category, errorCode, batch entries, role principal, arn principal)
SEED_EXPECTED = {
    "AddPermission": (*MGMT, "Management", None, 0, "arn:aws:iam::123456789012:user/Alice", None),
    "CreateQueue": (*MGMT, "Management", None, 0, "arn:aws:iam::123456789012:user/Alejandro", None),
    "DeleteQueue": (*MGMT, "Management", None, 0, "arn:aws:iam::123456789012:user/Carlos", None),
    "RemovePermission": (*MGMT, "Management", None, 0, "arn:aws:iam::123456789012:user/Jane", None),
    "SetQueueAttributes": (*MGMT, "Management", None, 0, "arn:aws:iam::123456789012:user/Maria", None),
    "SendMessage": (*DATA, "Data", None, 0, ROLE, SESSION),
    "ReceiveMessage": (*DATA, "Data", None, 0, ROLE, SESSION),
    "DeleteMessageBatch": (*DATA, "Data", None, 1, ROLE, SESSION),
    "ChangeMessageVisibilityBatch": (*DATA, "Data", None, 1, ROLE, SESSION),
}


def test_seed_examples_all_found() -> None:
    names = sorted(r["eventName"] for r in seed_records())
    assert names == sorted(SEED_EXPECTED)


@pytest.mark.parametrize("record", seed_records(), ids=lambda r: r["eventName"])
@pytest.mark.parametrize("shape", ["single", "records", "records-gzip", "ndjson"])
def test_seed_record(record: dict, shape: str) -> None:
    body = json.dumps(record).encode()
    data = {
        "single": json.dumps(record, indent=2).encode(),
        "records": json.dumps({"Records": [record]}).encode(),
        "records-gzip": gzip.compress(json.dumps({"Records": [record]}).encode()),
        "ndjson": body + b"\n" + body + b"\n",
    }[shape]
    res, events = extract(data)
    assert res.outcome == "ok"
    assert res.sqs == (2 if shape == "ndjson" else 1)
    ev = events[0][1]
    acct, region, queue, cat, err, batch, role, arn = SEED_EXPECTED[record["eventName"]]
    assert (ev.account_id, ev.region, ev.queue, ev.category, ev.error_code, ev.batch_entries) == (
        acct,
        region,
        queue,
        cat,
        err,
        batch,
    )
    assert ev.principal_role == role
    assert ev.principal_arn == (arn or role)
    assert ev.event_time == parse_time(record["eventTime"])
    assert msgspec.json.decode(events[0][0]) == record


SQS_GUIDE = "awsdocs__amazon-sqs-developer-guide/doc_source__sqs-logging-using-cloudtrail.md__"

# file → (outcome, sqs, other, invalid, [(account, region, queue, event_name, category, error_code)])
THIRD_PARTY = {
    SQS_GUIDE + "add-permission.json": ("ok", 1, 0, 0, [(*MGMT, "AddPermission", "Management", None)]),
    SQS_GUIDE + "create-queue.json": ("ok", 1, 0, 0, [(*MGMT, "CreateQueue", "Management", None)]),
    SQS_GUIDE + "delete-queue.json": ("ok", 1, 0, 0, [(*MGMT, "DeleteQueue", "Management", None)]),
    SQS_GUIDE + "removepermission.json": ("ok", 1, 0, 0, [(*MGMT, "RemovePermission", "Management", None)]),
    SQS_GUIDE + "set-queue-attributes.json": ("ok", 1, 0, 0, [(*MGMT, "SetQueueAttributes", "Management", None)]),
    "docs.aws.amazon.com__SQSDeveloperGuide/logging-using-cloudtrail__SendMessage-data-event.repaired.json": (
        "ok",
        1,
        0,
        0,
        [(*DATA, "SendMessage", "Data", None)],
    ),
    # the page as published lacks its last brace: a corrupt object, counted as failed
    "docs.aws.amazon.com__SQSDeveloperGuide/logging-using-cloudtrail__SendMessage-data-event"
    ".as-published-truncated.json": ("failed", 0, 0, 0, []),
    # line 1 is an S3 call that mentions a queue URL; line 2 an SQS call with no queue, account or
    # recipient, and a space-separated eventTime
    "panther-labs__panther-analysis/rules__aws_cloudtrail_rules__aws_resource_made_public.yml"
    ".sqs_tests.extracted.ndjson": (
        "ok",
        1,
        1,
        0,
        [("unknown", "us-west-2", "(none)", "SetQueueAttributes", "Management", None)],
    ),
}
PROC_LIB = "aws__aws-cloudtrail-processing-library/src__test__resources__resources__"
OTEL = "open-telemetry__opentelemetry-collector-contrib/extension__encoding__awslogsencodingextension__internal__unmarshaler__cloudtraillog__testdata__"  # noqa: E501
NON_SQS = {
    PROC_LIB + "SerializerAllFieldsNull.json": ("ok", 2),
    PROC_LIB + "SerializerTestFile.json": ("ok", 6),
    PROC_LIB + "SerializerTestFileBadJsonFormat.json": ("failed", 0),
    PROC_LIB + "SerializerTestFileCompact.json.gz": ("ok", 6),
    PROC_LIB + "SerializerTestFileMissField.json": ("ok", 4),
    PROC_LIB + "SerializerTestFileNewFieldAtRandomPlaces.json": ("ok", 2),
    PROC_LIB + "SerializerTestFileNewFieldsInRoot.json": ("ok", 2),
    PROC_LIB + "SerializerTestFileNewFieldsInUserIdentity.json": ("ok", 2),
    PROC_LIB + "SerializerVariousUserIdentityTestFile.json": ("ok", 1),
    OTEL + "cloudtrail_digest.json": ("skipped", 0),
    OTEL + "cloudtrail_log.json": ("ok", 7),  # includes an Insight event and a userIdentity without type
    OTEL + "cloudtrail_log_cw.json": ("ok", 1),  # CloudWatch Logs subscription envelope
}


def test_every_fixture_has_an_expectation() -> None:
    names = {str(p.relative_to(TP)) for p in TP.glob("*/*")}
    user_guide = {n for n in names if n.startswith("awsdocs__aws-cloudtrail-user-guide/")}
    assert names - user_guide == set(THIRD_PARTY) | set(NON_SQS)


@pytest.mark.parametrize("name", sorted(THIRD_PARTY))
def test_third_party_sqs(name: str) -> None:
    outcome, sqs, other, invalid, expected = THIRD_PARTY[name]
    res, events = extract((TP / name).read_bytes())
    assert (res.outcome, res.sqs, res.other, res.invalid) == (outcome, sqs, other, invalid)
    got = [(e.account_id, e.region, e.queue, e.event_name, e.category, e.error_code) for _, e in events]
    assert got == expected


@pytest.mark.parametrize("name", sorted(NON_SQS))
def test_third_party_non_sqs(name: str) -> None:
    outcome, other = NON_SQS[name]
    res, events = extract((TP / name).read_bytes())
    assert (res.outcome, res.sqs, res.other, res.invalid) == (outcome, 0, other, 0)
    assert events == []


@pytest.mark.parametrize("path", sorted(TP.glob("awsdocs__aws-cloudtrail-user-guide/*")), ids=lambda p: p.name[-50:])
def test_user_guide_records_are_other(path: Path) -> None:
    """Console sign-in, EC2, IAM, error and Insights examples: read fine, none of them SQS."""
    res, _events = extract(path.read_bytes())
    assert res.outcome == "ok" and res.sqs == 0 and res.other >= 1 and res.invalid == 0


def test_insight_events_naming_sqs_are_not_counted() -> None:
    rec = {
        "eventVersion": "1.08",
        "eventType": "AwsCloudTrailInsight",
        "eventSource": "sqs.amazonaws.com",
        "eventName": "SendMessage",
        "awsRegion": "us-east-1",
        "eventTime": "2026-11-01T00:00:00Z",
    }
    res, _events = extract(json.dumps({"Records": [rec]}).encode())
    assert (res.sqs, res.other) == (0, 1)


def test_kms_call_made_by_sqs_is_other() -> None:
    rec = {
        "eventSource": "kms.amazonaws.com",
        "eventName": "Decrypt",
        "userIdentity": {"type": "AWSService", "invokedBy": "sqs.amazonaws.com"},
    }
    res, _ = extract(json.dumps({"Records": [rec]}).encode())
    assert (res.sqs, res.other) == (0, 1)


def _sqs(**kw: object) -> dict:
    base: dict = {
        "eventSource": "sqs.amazonaws.com",
        "eventName": "SendMessage",
        "awsRegion": "eu-west-1",
        "eventTime": "2026-11-01T00:00:00Z",
    }
    base.update(kw)
    return base


def _one(rec: dict):
    res, events = extract(json.dumps({"Records": [rec]}).encode())
    assert res.sqs == 1, res
    return events[0][1]


@pytest.mark.parametrize(
    ("url", "account", "queue"),
    [
        ("https://sqs.us-east-1.amazonaws.com/111122223333/orders", "111122223333", "orders"),
        ("https://queue.amazonaws.com/111122223333/orders.fifo", "111122223333", "orders.fifo"),
        ("https://eu-west-1.queue.amazonaws.com/111122223333/q1", "111122223333", "q1"),
        ("https://sqs.us-east-2.amazon.com/123456789012/MyQueue", "123456789012", "MyQueue"),
        ("https://vpce-0a1b-xyz.sqs.eu-west-1.vpce.amazonaws.com/111122223333/q2", "111122223333", "q2"),
        ("http://localhost:4566/000000000000/local-q/", "000000000000", "local-q"),
    ],
)
def test_queue_url_hosts(url: str, account: str, queue: str) -> None:
    ev = _one(_sqs(requestParameters={"queueUrl": url}))
    assert (ev.account_id, ev.queue) == (account, queue)


def test_queue_from_resources_then_queue_name_then_none() -> None:
    arn = "arn:aws:sqs:eu-west-1:444455556666:from-arn"
    assert _one(_sqs(resources=[{"type": "AWS::SQS::Queue", "ARN": arn}])).queue == "from-arn"
    assert _one(_sqs(resources=[{"type": "AWS::SQS::Queue", "ARN": arn}])).account_id == "444455556666"
    assert _one(_sqs(eventName="GetQueueUrl", requestParameters={"queueName": "by-name"})).queue == "by-name"
    assert _one(_sqs(eventName="ListQueues", requestParameters=None)).queue == "(none)"
    assert _one(_sqs(eventName="ListMessageMoveTasks", requestParameters={})).queue == "(none)"
    src = {"sourceArn": "arn:aws:sqs:eu-west-1:1:dlq"}
    assert _one(_sqs(eventName="ListMessageMoveTasks", requestParameters=src)).queue == "dlq"


def test_category_from_record_then_management_flag_then_table() -> None:
    assert _one(_sqs(eventCategory="Management")).category == "Management"
    assert _one(_sqs(managementEvent=True)).category == "Management"
    assert _one(_sqs(eventName="PurgeQueue", managementEvent=False)).category == "Data"
    assert _one(_sqs(eventName="DeleteMessage")).category == "Data"
    assert _one(_sqs(eventName="PurgeQueue")).category == "Management"


def test_principals() -> None:
    session = "arn:aws:sts::111122223333:assumed-role/worker/i-0abc"
    ev = _one(_sqs(userIdentity={"type": "AssumedRole", "arn": session}))  # no sessionContext
    assert (ev.principal_role, ev.principal_arn) == ("arn:aws:iam::111122223333:role/worker", session)
    ev = _one(_sqs(userIdentity={"type": "AWSService", "invokedBy": "sns.amazonaws.com"}))
    assert (ev.principal_role, ev.principal_arn) == ("sns.amazonaws.com", "sns.amazonaws.com")
    ev = _one(_sqs(userIdentity={"arn": "arn:aws:iam::1:user/u"}))  # no type
    assert ev.principal_role == "arn:aws:iam::1:user/u"
    assert _one(_sqs(userIdentity=None)).principal_role is None


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("2026-11-01T00:00:00Z", 1793491200.0),
        ("2026-11-01T00:00:00.250Z", 1793491200.25),
        ("2026-11-01T01:00:00+01:00", 1793491200.0),
        ("2026-11-01 00:00:00.000", 1793491200.0),
        ("2026-11-01T00:00:00", 1793491200.0),
        ("yesterday", None),
        ("", None),
    ],
)
def test_event_time_formats(value: str, expected: float | None) -> None:
    assert parse_time(value) == expected


def test_cloudwatch_envelope_gzip() -> None:
    recs = [_sqs(requestParameters={"queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/a"}), {"eventSource": "x"}]
    env = {
        "messageType": "DATA_MESSAGE",
        "logGroup": "g",
        "logStream": "s",
        "logEvents": [{"id": str(i), "timestamp": 0, "message": json.dumps(r)} for i, r in enumerate(recs)],
    }
    res, _events = extract(gzip.compress(json.dumps(env).encode()))
    assert (res.outcome, res.sqs, res.other) == ("ok", 1, 1)


@pytest.mark.parametrize(
    ("data", "outcome"),
    [
        (b"", "skipped"),
        (b"   \n", "skipped"),
        (b"[1, 2]", "skipped"),
        (b"42", "skipped"),
        (b'{"digestStartTime": "x"}', "skipped"),
        (b'{"Records": 5}', "failed"),
        (b'{"Records": [', "failed"),
        (b"\x1f\x8b\x08\x00garbage", "failed"),
        (gzip.compress(b'{"Records": []}')[:-6], "failed"),
        (b'{"eventSource": "sqs.amazonaws.com", "eventName": "\xff\xfe"}', "failed"),
        (b"not json at all", "failed"),
    ],
)
def test_bad_objects(data: bytes, outcome: str) -> None:
    assert read_delivery(data).outcome == outcome


def test_bad_records_are_counted_and_the_rest_kept() -> None:
    good = _sqs(requestParameters={"queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/a"})
    bad_types = _sqs(eventName=5)
    doc = {"Records": [good, 7, "str", None, bad_types, {"eventSource": "s3.amazonaws.com"}, good]}
    res, _events = extract(json.dumps(doc).encode())
    assert (res.outcome, res.sqs, res.other, res.invalid) == ("ok", 2, 1, 4)


def test_invalid_utf8_record_is_invalid_and_the_rest_kept() -> None:
    good = json.dumps(_sqs()).encode()
    bad = b'{"eventSource": "sqs.amazonaws.com", "eventName": "\xff\xfe"}'
    res, _ = extract(b'{"Records": [' + good + b"," + bad + b"," + good + b"]}")
    assert (res.outcome, res.sqs, res.invalid) == ("ok", 2, 1)


def test_ndjson_bad_lines_counted() -> None:
    good = json.dumps(_sqs()).encode()
    res, _events = extract(good + b"\n{broken\n" + good + b"\n")
    assert (res.outcome, res.sqs, res.invalid) == ("ok", 2, 1)
