"""Hostile input and cardinality attacks: right outcome counters, the rest kept, memory bounded."""

from __future__ import annotations

import gzip
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from util import parse_metrics, series

pytestmark = pytest.mark.slow

RSS_PROBE = """
import resource, subprocess, sys
r = subprocess.run(sys.argv[1:], capture_output=True, text=True)
sys.stderr.write(r.stderr)
sys.stdout.write(r.stdout)
print("MAXRSS_KB", resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r.returncode, file=sys.stderr)
"""


def replay_rss(*args: str, code: int = 0) -> tuple[str, str, int]:
    """Run `replay` in a fresh child; return stdout, stderr and its peak RSS in MB. `code`: the exit code
    expected (1 when some inputs fail)."""
    r = subprocess.run(
        [sys.executable, "-c", RSS_PROBE, sys.executable, "-m", "exporter", "replay", *args],
        capture_output=True,
        text=True,
        timeout=600,
    )
    line = [ln for ln in r.stderr.splitlines() if ln.startswith("MAXRSS_KB")][-1]
    _, kb, rc = line.split()
    assert rc == str(code), r.stderr
    return r.stdout, r.stderr, int(kb) // 1024


def sqs(queue: str, principal: str, **kw: object) -> dict:
    rec = {
        "eventVersion": "1.09",
        "eventSource": "sqs.amazonaws.com",
        "eventName": "SendMessage",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333",
        "eventTime": "2026-11-01T00:00:00Z",
        "userIdentity": {"type": "IAMUser", "arn": principal},
        "requestParameters": {"queueUrl": f"https://sqs.eu-west-1.amazonaws.com/111122223333/{queue}"},
    }
    rec.update(kw)
    return rec


def test_hostile_files(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    good = sqs("good", "arn:aws:iam::1:user/a")
    (d / "zero.json").write_bytes(b"")
    (d / "truncated.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [good] * 50}).encode())[:-40])
    # random bytes, fixed: a digit or a `\n{` in them once made this flaky; tests/test_shapes.py covers junk
    (d / "garbage.json.gz").write_bytes(gzip.compress(random.Random(62).randbytes(4096)))
    (d / "not-gzip-despite-name.json.gz").write_text(json.dumps({"Records": [good]}))
    (d / "gzip-despite-name.json").write_bytes(gzip.compress(json.dumps({"Records": [good]}).encode()))
    (d / "bad-utf8.json").write_bytes(
        b'{"Records": [' + json.dumps(good).encode() + b', {"eventSource": "sqs.amazonaws.com", "eventName": "\xff"}]}'
    )
    (d / "list.json").write_text("[1, 2, 3]")
    (d / "records-not-list.json").write_text('{"Records": {"a": 1}}')
    (d / "nested.json").write_text('{"Records": [' + "[" * 50_000 + "]" * 50_000 + "]}")
    (d / "digest.json.gz").write_bytes(gzip.compress(b'{"awsAccountId": "1", "digestStartTime": "x"}'))
    big = sqs(
        "big",
        "arn:aws:iam::1:user/b",
        requestParameters={
            "queueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/big",
            "messageBody": "x" * 262_144,
        },
    )
    (d / "256k-record.json").write_text(json.dumps({"Records": [big, good]}))
    odd = d / "odd keys" / "ünï cødé + %2F & =.json"
    odd.parent.mkdir()
    odd.write_text(json.dumps({"Records": [good]}))
    wrong = [
        dict(good, **{f: v})
        for f, v in [
            ("eventName", 5),
            ("awsRegion", []),
            ("errorCode", {}),
            ("userIdentity", "x"),
            ("requestParameters", 7),
            ("resources", "r"),
            ("eventTime", 1.5),
            ("managementEvent", "yes"),
            ("recipientAccountId", 12),
        ]
    ]
    (d / "wrong-types.json").write_text(json.dumps({"Records": [good, *wrong, good]}))

    out, err, rss = replay_rss(str(d), code=1)
    m = parse_metrics(out)
    objects = series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")
    records = series(m, "cloudtrail_sqs_exporter_records_total", "outcome")
    calls = series(m, "cloudtrail_sqs_api_calls_total", "queue")
    # failed: truncated, garbage gzip, records-not-list; nested-too-deep costs its one record, not the file
    assert objects == {("ok",): 7, ("skipped",): 3, ("failed",): 3}, err
    # good: gzip-despite-name, not-gzip-despite-name, bad-utf8 (1 of 2), 256k (+1 big), odd keys, wrong-types (2)
    assert calls == {("good",): 7, ("big",): 1}
    assert records == {("sqs",): 8, ("other",): 0, ("invalid",): 1 + len(wrong) + 1}
    for name in ("truncated.json.gz", "garbage.json.gz", "records-not-list.json"):
        assert name in err
    assert rss < 300, rss


def test_50mb_compressed_and_gzip_bomb(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    with open(d / "random-50mb.json.gz", "wb") as f:  # incompressible: 50 MB compressed
        gz = gzip.GzipFile(fileobj=f, mode="wb", compresslevel=1)
        for _ in range(50):
            gz.write(os.urandom(1 << 20))
        gz.close()
    with open(d / "bomb.json.gz", "wb") as f:  # 2 GiB of zeros in about 2 MB
        gz = gzip.GzipFile(fileobj=f, mode="wb", compresslevel=9)
        zeros = bytes(1 << 24)
        for _ in range(128):
            gz.write(zeros)
        gz.close()
    (d / "good.json").write_text(json.dumps({"Records": [sqs("q", "arn:aws:iam::1:user/a")]}))
    out, err, rss = replay_rss(str(d), code=1)
    m = parse_metrics(out)
    assert series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")[("failed",)] == 2
    assert series(m, "cloudtrail_sqs_api_calls_total", "queue") == {("q",): 1}
    assert "bomb.json.gz" in err and "uncompressed" in err
    assert rss < 600, rss


def test_cardinality_attack(tmp_path: Path) -> None:
    """100k random queue names (NonExistentQueue) and 100k principals: series stay under the caps."""
    d = tmp_path / "in"
    d.mkdir()
    for part in range(10):
        recs = [
            sqs(
                f"q-{part}-{i:05d}-{os.urandom(4).hex()}",
                f"arn:aws:iam::1:user/u{part}-{i}",
                errorCode="AWS.SimpleQueueService.NonExistentQueue",
            )
            for i in range(10_000)
        ]
        (d / f"attack-{part}.json.gz").write_bytes(gzip.compress(json.dumps({"Records": recs}).encode(), 1))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("metrics:\n  max_queues: 500\n  max_principals_per_queue: 5000\n")
    out, _, rss = replay_rss(str(d), "--config", str(cfg))
    m = parse_metrics(out)
    calls = series(m, "cloudtrail_sqs_api_calls_total", "queue")
    assert len(calls) == 501 and calls[("(other)",)] == 100_000 - 500
    errors = series(m, "cloudtrail_sqs_api_errors_total", "queue")
    assert len(errors) == 501
    principals = series(m, "cloudtrail_sqs_distinct_principals", "queue", "window")
    assert len(principals) == 501 * 3
    assert principals[("(other)", "24h")] <= 5000
    assert len(out.splitlines()) < 10_000
    assert rss < 400, rss
