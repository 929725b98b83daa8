"""Property tests: whatever bytes or JSON arrive, the decoder returns an outcome and never raises."""

from __future__ import annotations

import gzip
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.decode.delivery import extract
from exporter.decode.reader import read_delivery
from exporter.pipeline import Pipeline
from exporter.sinks.metrics import Aggregate

FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=20),
    lambda children: st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5),
    max_leaves=30,
)
FIELDS = [
    "eventSource",
    "eventName",
    "eventTime",
    "awsRegion",
    "recipientAccountId",
    "errorCode",
    "eventCategory",
    "managementEvent",
    "userIdentity",
    "requestParameters",
    "resources",
    "eventType",
]
# records shaped like SQS calls, with any value in any field the decoder reads
sqs_like = st.fixed_dictionaries(
    {"eventSource": st.just("sqs.amazonaws.com")},
    optional={f: json_values for f in FIELDS[1:]}
    | {
        "requestParameters": st.fixed_dictionaries(
            {},
            optional={
                "queueUrl": json_values,
                "queueName": json_values,
                "entries": json_values,
                "sourceArn": json_values,
            },
        ),
        "userIdentity": st.fixed_dictionaries(
            {},
            optional={"type": json_values, "arn": json_values, "invokedBy": json_values, "sessionContext": json_values},
        ),
    },
)


def _check(data: bytes) -> None:
    res, events = extract(data)
    assert res.outcome in ("ok", "skipped", "failed")
    assert res.sqs == len(events)
    assert min(res.sqs, res.other, res.invalid) >= 0
    agg = Aggregate()
    Pipeline([agg]).process(data, "fuzz")
    assert sum(agg.calls.values()) == res.sqs


@FAST
@given(st.binary(max_size=2048))
def test_arbitrary_bytes(data: bytes) -> None:
    _check(data)
    _check(gzip.compress(data))


@FAST
@given(json_values)
def test_arbitrary_json(value: object) -> None:
    _check(json.dumps(value).encode())
    _check(json.dumps({"Records": value}).encode())
    _check(json.dumps({"logEvents": value}).encode())


@FAST
@given(st.lists(sqs_like | json_values, max_size=8))
def test_records_with_wrong_types_everywhere(records: list) -> None:
    data = json.dumps({"Records": records}).encode()
    res, _ = extract(data)
    assert res.outcome == "ok"
    assert res.sqs + res.other + res.invalid == len(records)
    _check(data)
    _check(b"\n".join(json.dumps(r).encode() for r in records))


@FAST
@given(st.binary(min_size=1, max_size=512))
def test_truncated_and_corrupted_gzip(data: bytes) -> None:
    blob = gzip.compress(json.dumps({"Records": [{"eventSource": "sqs.amazonaws.com"}]}).encode() + data)
    assert read_delivery(blob[: len(blob) // 2]).outcome == "failed"
    _check(blob[:10] + data)


def test_deeply_nested_json_is_contained() -> None:
    deep = b"[" * 100_000 + b"]" * 100_000
    assert read_delivery(deep).outcome in ("failed", "skipped")
    rec = b'{"Records": [{"eventSource": "sqs.amazonaws.com", "requestParameters": {"x": ' + deep + b"}}]}"
    _check(rec)
