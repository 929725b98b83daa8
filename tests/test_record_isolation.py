"""Record-level isolation: one record the parser cannot take (a lone surrogate, a record nested 1,000 deep)
costs that record (`invalid`), not the valid records beside it."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import msgspec
import pytest
from util import parse_metrics, series

from exporter.decode.delivery import decode
from exporter.decode.reader import read_delivery, split_records


def sqs_record(i: int, source: str = "sqs.amazonaws.com") -> bytes:
    return json.dumps(
        {
            "eventVersion": "1.09",
            "eventSource": source,
            "eventName": "SendMessage",
            "eventCategory": "Data",
            "awsRegion": "eu-west-1",
            "eventTime": "2026-11-01T00:00:00Z",
            "recipientAccountId": "111122223333",
            "userIdentity": {"type": "IAMUser", "arn": f"arn:aws:iam::111122223333:user/u{i}"},
            "requestParameters": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/orders"},
        }
    ).encode()


LONE_SURROGATE = sqs_record(99)[:-1] + b', "note": "\\ud800"}'
DEEP = sqs_record(98)[:-1] + b', "nested": ' + b'{"a": ' * 1000 + b"1" + b"}" * 1000 + b"}"
BAD = {"lone surrogate": LONE_SURROGATE, "1000 deep": DEEP}


def trail(*records: bytes) -> bytes:
    return b'{"Records": [' + b", ".join(records) + b"]}"


@pytest.mark.parametrize("bad", sorted(BAD))
@pytest.mark.parametrize("keep_raw", [False, True])
@pytest.mark.parametrize("gz", [False, True])
def test_bad_record_costs_only_itself(bad: str, keep_raw: bool, gz: bool) -> None:
    doc = trail(sqs_record(1), BAD[bad], sqs_record(2, "s3.amazonaws.com"), sqs_record(3))
    if gz:
        doc = gzip.compress(doc)
    res = decode(doc, keep_raw).result
    assert (res.outcome, res.sqs, res.other, res.invalid) == ("ok", 2, 1, 1)


@pytest.mark.parametrize("bad", sorted(BAD))
def test_the_whole_document_parse_refuses_these_records(bad: str) -> None:
    """The premise: without taking the array apart, the whole file would be lost."""
    with pytest.raises((msgspec.DecodeError, RecursionError)):
        msgspec.json.decode(trail(sqs_record(1), BAD[bad]))


def test_split_records_takes_the_records_array_apart() -> None:
    doc = b' {"x": {"Records": [9]}, "Records" : [1, "a,]}\\"", {"b": [1, 2]} , [3] ], "z": {} } \n'
    assert split_records(doc) == [b"1", b'"a,]}\\""', b'{"b": [1, 2]}', b"[3]"]
    assert split_records(b'{"Records": []}') == []


@pytest.mark.parametrize(
    "doc",
    [
        b'{"Records": [{"a": 1}',  # truncated: the file may still be being written
        b'{"Records": [{"a": 1}]',
        b'{"Records": [{"a": "x}]}',  # a string never closed
        b'{"Records": [{"a": 1}]} trailing',
        b'{"Records": [1,, 2]}',
        b'{"Recs": [1]}',
        b"[1, 2]",
        b'{"Records": {"a": 1}}',
    ],
)
def test_split_records_declines_broken_documents(doc: bytes) -> None:
    assert split_records(doc) is None


def test_truncated_file_stays_failed() -> None:
    doc = trail(sqs_record(1), LONE_SURROGATE, sqs_record(2))[:-30]
    assert read_delivery(doc).outcome == "failed"


@pytest.mark.parametrize("native", ["1", "0"])
def test_replay_counts_the_valid_records_beside_a_lone_surrogate(tmp_path: Path, native: str) -> None:
    """End to end through the CLI, with and without the C scanner."""
    d = tmp_path / "AWSLogs"
    d.mkdir()
    (d / "a.json.gz").write_bytes(gzip.compress(trail(sqs_record(1), LONE_SURROGATE, sqs_record(2), DEEP)))
    (d / "b.json").write_bytes(trail(sqs_record(3), sqs_record(4)))
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(d)],
        capture_output=True,
        text=True,
        timeout=120,
        env={**os.environ, "CTSQS_NATIVE": native},
    )
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    assert series(m, "cloudtrail_sqs_exporter_records_total", "outcome") == {
        ("sqs",): 4,
        ("other",): 0,
        ("invalid",): 2,
    }
    assert series(m, "cloudtrail_sqs_exporter_objects_total", "outcome").get(("ok",)) == 2
    assert sum(series(m, "cloudtrail_sqs_api_calls_total", "queue").values()) == 4
