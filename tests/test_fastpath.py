"""The metrics-only decode (one typed pass per file) must count exactly what the general path counts."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from exporter.decode.delivery import extract
from exporter.pipeline import Pipeline
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.metrics import Aggregate

FIXTURES = Path(__file__).parent / "fixtures"
SAMPLE = Path(__file__).parents[1] / "exporter" / "sample"


@pytest.fixture(autouse=True, params=["c-scanner", "msgspec"])
def fast_path(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every test runs with the C scanner, and again with the msgspec typed decode it replaces where the
    module is not built."""
    from exporter.decode import scan

    if request.param == "msgspec":
        monkeypatch.setattr(scan, "scanner", None)
    elif scan.scanner is None:
        pytest.skip("the C scanner is not built")
    return str(request.param)


class _NoSink:
    wants_raw = True  # as the log sink: the scanner with raw records, or the general path

    def consume(self, calls: object, raws: object, observed: float, source: str) -> None:
        return None


def _counted(data: bytes, general: bool) -> dict:
    """The aggregate after one object, counted with a log sink (the scanner with raw records, or the general
    path event by event) or without one (the fast path)."""
    agg = Aggregate(max_queues=2)
    counters = SelfMetrics()
    sinks = [agg, _NoSink()] if general else [agg]
    Pipeline(sinks, counters=counters, clock=lambda: 1.8e9).process(data, "test")
    return {**agg.snapshot(), **counters.snapshot()}


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


def test_c_scanner_takes_the_sample_and_agrees_with_raw_records() -> None:
    """The scanner must actually handle ordinary trail files (not decline them all), and its raw
    records for the log sink are the general path's, in order."""
    from exporter.decode import scan
    from exporter.decode.delivery import scanned
    from exporter.decode.record import call_event

    if scan.scanner is None:
        pytest.skip("the C scanner is not built, or this run is the msgspec one")
    files = [p for p in sorted(SAMPLE.rglob("*.json.gz")) if "CloudTrail-Digest" not in p.parts]
    assert files
    for p in files:
        data = p.read_bytes()
        got = scanned(data, True)
        assert got is not None, p
        want, events = extract(data)
        assert got[0] == want
        assert got[2] == [raw for raw, _ in events]
        assert [call_event(c) for c in got[1]] == [ev for _, ev in events]


@pytest.mark.parametrize(
    "doc",
    [
        # escapes the scanner must read as msgspec does
        b'{"Records":[{"eventSource":"sqs.amazonaws.co\\u006d","eventName":"Send\\u004dessage","awsRegion":"r",'
        b'"recipientAccountId":"1","requestParameters":{"queueUrl":"https://h/1/q\\/x"}}]}',
        # duplicate keys: msgspec keeps the last; the scanner declines and the general path decides
        b'{"Records":[{"eventSource":"s3.amazonaws.com","eventSource":"sqs.amazonaws.com","eventName":"X"}]}',
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","userIdentity":{"arn":"a","arn":"b"}}]}',
        # types SqsRecord refuses, on SQS and on other records
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","managementEvent":"yes"}]}',
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","requestParameters":{"entries":3}}]}',
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","resources":[{"ARN":1}]}]}',
        b'{"Records":[{"eventSource":7,"x":"sqs.amazonaws.com"}]}',
        b'{"Records":[{"eventSource":"s3.amazonaws.com","eventType":5}]}',
        b'{"Records":[{"eventSource":"s3.amazonaws.com","awsRegion":5,"x":"sqs.amazonaws.com"}]}',
        b'{"Records":[1, {"eventSource":"sqs.amazonaws.com"}]}',
        b'{"Records":null}',
        b'{"Records":[]} x',
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","eventType":"AwsCloudTrailInsight"}]}',
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","userIdentity":{"sessionContext":{"sessionIssuer":null}},'
        b'"requestParameters":null,"resources":[null,{"ARN":null},{"ARN":"arn:aws:sqs:r:1:q"}]}]}',
        # keys one byte off those the scanner reads, at each short length (its key match loads them whole)
        b'{"Records":[{"eventSource":"sqs.amazonaws.com","eventName":"SendMessage","awsRegion":"r",'
        b'"recipientAccountId":"1","userIdentity":{"tyPe":"x","aRn":"y","sessionContext":{"sessionIssuer":'
        b'{"aRn":"z","ARN":"w"}}},"requestParameters":{"queueUrl":"https://h/1/q","entrIes":[1,2]},'
        b'"resources":[{"ARn":"arn:aws:sqs:r:1:q"}]}]}',
    ],
)
def test_edge_cases_agree(doc: bytes) -> None:
    _same(doc)
    _same(gzip.compress(doc))
