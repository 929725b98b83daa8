"""The metrics-only decode (one typed pass per file) must count exactly what the general path counts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.pipeline import Pipeline, extract
from exporter.sinks.metrics import Aggregate

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).parents[1] / "exporter" / "sample"


class _NoSink:
    def emit(self, raw: object, ev: object, observed: float) -> None:
        pass


def _counted(data: bytes, general: bool) -> dict:
    """The aggregate after one object: a sink makes the pipeline take the general path, event by event."""
    agg = Aggregate(max_queues=2)
    Pipeline(agg, _NoSink() if general else None, clock=lambda: 1.8e9).process(data, "test")
    return agg.snapshot()


def _same(data: bytes) -> None:
    want, want_events = extract(data)
    got, got_events = extract(data, keep_raw=False)
    assert got == want
    assert [ev for _, ev in got_events] == [ev for _, ev in want_events]
    assert _counted(data, general=False) == _counted(data, general=True)


def test_fixtures_and_sample() -> None:
    files = [p for root in (FIXTURES, SAMPLE) for p in sorted(root.rglob("*")) if p.is_file()]
    assert files
    for p in files:
        _same(p.read_bytes())


record = st.fixed_dictionaries(
    {"eventSource": st.sampled_from(["sqs.amazonaws.com", "s3.amazonaws.com", 7, None])},
    optional={
        "eventName": st.sampled_from(["SendMessage", "SendMessageBatch", "ListQueues", 3]),
        "eventType": st.sampled_from(["AwsApiCall", "AwsCloudTrailInsight", []]),
        "awsRegion": st.sampled_from(["eu-west-1", None, {}]),
        "recipientAccountId": st.sampled_from(["111122223333", 5]),
        "eventTime": st.sampled_from(["2026-11-01T00:00:00Z", "nonsense", 1]),
        "requestParameters": st.sampled_from(
            [None, {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/1/q"}, {"entries": [1, 2]}, {"entries": 3}, []]
        ),
        "resources": st.sampled_from([None, [{"ARN": "arn:aws:sqs:eu-west-1:1:q"}], [None], "x"]),
        "userIdentity": st.sampled_from([None, {"type": "AWSService", "invokedBy": "sqs.amazonaws.com"}, 1]),
    },
)


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(record | st.integers() | st.text(max_size=3), max_size=6))
def test_random_records(records: list[object]) -> None:
    doc = json.dumps({"Records": records}).encode()
    _same(doc)
    _same(gzip.compress(doc))
