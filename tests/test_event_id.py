"""Every call carries its record's eventID, the same on the C scanner and the record-by-record path:
dedupe across sources matches events by it."""

from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from exporter.decode import scan
from exporter.decode.delivery import records, scanned

SAMPLE = Path(__file__).parents[1] / "exporter" / "sample"


def _rec(**kw: object) -> dict[str, object]:
    base: dict[str, object] = {
        "eventSource": "sqs.amazonaws.com",
        "eventName": "SendMessage",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333",
        "eventTime": "2026-11-01T00:00:00Z",
        "requestParameters": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/q"},
    }
    base.update(kw)
    return base


def _both(doc: dict[str, object]) -> tuple[list[object] | None, list[object]]:
    data = json.dumps(doc).encode()
    fast = scanned(data, False)
    general = records(data, False)[1]
    return (None if fast is None else list(fast[1])), list(general)


def test_sample_calls_carry_their_event_ids_on_both_paths() -> None:
    if scan.scanner is None:
        pytest.skip("the C scanner is not built")
    files = [p for p in sorted(SAMPLE.rglob("*.json.gz")) if "CloudTrail-Digest" not in p.parts]
    assert files
    ids: list[str | None] = []
    for p in files:
        data = p.read_bytes()
        fast = scanned(data, False)
        assert fast is not None, p
        general = records(data, False)[1]
        assert fast[1] == general  # every field, event_id included
        ids.extend(c.event_id for c in general)
    assert ids and all(ids)
    assert len(set(ids)) == len(ids)


@pytest.mark.parametrize(
    ("extra", "want"),
    [
        ({"eventID": "3f1e6a2c-0000-4000-8000-000000000001"}, "3f1e6a2c-0000-4000-8000-000000000001"),
        ({"eventID": "e\u00e9\\/x"}, "e\u00e9\\/x"),  # non-ASCII and escapes decode as msgspec does
        ({"eventID": None}, None),
        ({}, None),
        ({"eventID": ""}, ""),
    ],
)
def test_event_id_values(extra: dict[str, object], want: object) -> None:
    fast, general = _both({"Records": [_rec(**extra)]})
    assert [c.event_id for c in general] == [want]
    if scan.scanner is not None:
        assert fast == general


def test_event_id_before_event_source_is_read_too() -> None:
    rec = {"eventID": "early", **_rec()}
    fast, general = _both({"Records": [rec]})
    assert [c.event_id for c in general] == ["early"]
    if scan.scanner is not None:
        assert fast == general


def test_a_non_string_event_id_is_left_to_the_general_path() -> None:
    fast, general = _both({"Records": [_rec(eventID=5)]})
    assert general == []  # SqsRecord refuses it: an invalid record
    if scan.scanner is not None:
        assert fast is None  # declined, not read differently


def test_event_ids_are_not_interned() -> None:
    """They never repeat: the scanner's table of handed-out strings is kept for values that do."""
    if scan.scanner is None:
        pytest.skip("the C scanner is not built")
    data = json.dumps({"Records": [_rec(eventID="same-id")]}).encode()
    a, b = scanned(data, False), scanned(data, False)
    assert a is not None and b is not None
    assert a[1][0].event_id == b[1][0].event_id == "same-id"
    assert a[1][0].event_id is not b[1][0].event_id
    assert a[1][0].labels.region is b[1][0].labels.region  # repeated values are still one object


native_only = pytest.mark.skipif(scan.scanner is None, reason="the C scanner is not built")


@native_only
@pytest.mark.parametrize("keep_raw", [False, True])
def test_without_event_ids_the_calls_are_the_same_but_for_event_id(keep_raw: bool) -> None:
    """Dedupe off: the scanner skips eventID (a new string per call); nothing else changes."""
    files = [p for p in sorted(SAMPLE.rglob("*.json.gz")) if "CloudTrail-Digest" not in p.parts]
    for p in files:
        data = p.read_bytes()
        full, lean = scanned(data, keep_raw, True), scanned(data, keep_raw, False)
        assert full is not None and lean is not None, p
        assert lean[0] == full[0] and lean[2] == full[2]
        assert [c.event_id for c in lean[1]] == [None] * len(full[1])
        assert lean[1] == [msgspec.structs.replace(c, event_id=None) for c in full[1]]


@native_only
@pytest.mark.parametrize(
    "value",
    [b"5", b'{"a": 1}', b'["x"]', b"true", b'"bad \\x escape"', b'"lone \\ud800 surrogate"', b'"\xff\xfe"'],
)
def test_without_event_ids_a_bad_event_id_is_still_declined(value: bytes) -> None:
    """Skipping the value must not accept what SqsRecord refuses: the file takes the same path either way."""
    data = json.dumps({"Records": [_rec(eventID="PLACEHOLDER")]}).encode().replace(b'"PLACEHOLDER"', value)
    assert scanned(data, False, True) is None
    assert scanned(data, False, False) is None
    assert records(data, False)[1] == []


@native_only
def test_the_pipeline_reads_event_ids_only_with_dedupe(monkeypatch: pytest.MonkeyPatch) -> None:
    from exporter import pipeline
    from exporter.dedupe import Dedupe
    from exporter.selfmetrics import SelfMetrics

    seen: list[bool] = []
    real = pipeline.decode

    def spy(data: bytes, keep_raw: bool, event_ids: bool = True) -> object:
        seen.append(event_ids)
        return real(data, keep_raw, event_ids)

    monkeypatch.setattr(pipeline, "decode", spy)
    data = json.dumps({"Records": [_rec(eventID="one")]}).encode()
    pipeline.Pipeline([], counters=SelfMetrics()).process(data, "file")
    pipeline.Pipeline([], counters=SelfMetrics(), dedupe=Dedupe(3600.0)).process(data, "file")
    assert seen == [False, True]
