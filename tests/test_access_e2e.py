"""The access and security series end to end: generated trails replayed through the exporter, every new
series against the generator's ground truth, on both decoders (the C scanner and record by record)."""

from __future__ import annotations

import gzip
import json
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from exporter import app
from exporter.config import Settings
from exporter.decode import scan
from exporter.generator import Generator
from exporter.sinks.metrics import Aggregate, sections

LABELS = ("account_id", "region", "queue", "principal", "caller_account", "event_name", "exposure", "encryption")
P = "cloudtrail_sqs_"


def replayed(targets: list[Path], **metrics: Any) -> dict[str, Counter]:
    """`replay` of the targets with these metrics settings: samples by family, keyed by label tuple in
    the SPEC's label order (outcome last)."""
    settings = Settings.model_validate({"metrics": metrics})
    text, failed = app.replay([str(t) for t in targets], settings, progress=False)
    assert failed == 0
    out: dict[str, Counter] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            key = tuple(s.labels[k] for k in LABELS if k in s.labels)
            if "outcome" in s.labels and s.name.startswith(P + "principal_calls"):
                key += (s.labels["outcome"],)
            out.setdefault(s.name, Counter())[key] = int(s.value)
    return out


@pytest.fixture(params=["native", "python"])
def decoder(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    if request.param == "python":
        monkeypatch.setattr(scan, "scanner", None)
    elif scan.scanner is None:
        pytest.skip("the C extension is not built")
    return str(request.param)


@pytest.fixture(scope="module")
def trail(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Any]:
    out = tmp_path_factory.mktemp("access") / "trail"
    truth = Generator(seed=7, accounts=3).write(out, 36, 300, extras=True)
    return out, truth


@pytest.mark.parametrize("granularity", ["role", "arn"])
def test_series_equal_ground_truth(trail: tuple[Path, Any], decoder: str, granularity: str) -> None:
    out, truth = trail
    got = replayed([out], principal_granularity=granularity, max_principals_per_queue_series=100_000)
    want = Counter(dict(truth.principal_calls[granularity]))
    assert got[P + "principal_calls_total"] == want
    assert len({k[3] for k in want}) > 20  # the trail has many principals, from several accounts
    assert got[P + "cross_account_calls_total"] == Counter(dict(truth.cross_account))
    assert got[P + "queue_policy_changes_total"] == Counter(dict(truth.policy_changes))
    assert got[P + "queue_encryption_changes_total"] == Counter(dict(truth.encryption_changes))
    # the trail exercises every exposure and encryption, and cross-account callers
    assert {k[3] for k in truth.policy_changes} >= {"public", "cross_account", "account", "removed"}
    assert {k[3] for k in truth.encryption_changes} == {"sse_kms", "sse_sqs", "none"}
    assert truth.cross_account


def test_zero_switches_the_access_map_off(trail: tuple[Path, Any]) -> None:
    out, truth = trail
    got = replayed([out], max_principals_per_queue_series=0)
    assert P + "principal_calls_total" not in got
    assert got[P + "cross_account_calls_total"] == Counter(dict(truth.cross_account))


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(json.dumps({"Records": records}).encode()))
    return path


def crowded_queue(out: Path, principals: int = 40) -> tuple[Path, Counter]:
    """One queue called by `principals` IAM users (user i calls i + 1 times, one in five fails), and
    ground truth: calls per user and outcome."""
    acct, region, queue = "111122223333", "us-east-1", "crowded"
    url = f"https://sqs.{region}.amazonaws.com/{acct}/{queue}"
    records, truth = [], Counter()
    n = 0
    for i in range(principals):
        arn = f"arn:aws:iam::{acct}:user/u{i:02d}"
        for _ in range(i + 1):
            n += 1
            rec: dict[str, Any] = {
                "eventVersion": "1.09",
                "userIdentity": {"type": "IAMUser", "arn": arn, "accountId": acct, "principalId": f"AIDA{i}"},
                "eventTime": f"2026-11-01T00:{n // 60 % 60:02d}:{n % 60:02d}Z",
                "eventSource": "sqs.amazonaws.com",
                "eventName": "SendMessage",
                "awsRegion": region,
                "requestParameters": {"queueUrl": url, "messageBody": "x"},
                "eventID": f"e-{n}",
                "eventType": "AwsApiCall",
                "recipientAccountId": acct,
                "eventCategory": "Data",
            }
            outcome = "success"
            if n % 5 == 0:
                rec["errorCode"], rec["errorMessage"] = "AccessDenied", "no"
                outcome = "error"
            records.append(rec)
            truth[(acct, region, queue, arn, outcome)] += 1
    return _write(out / f"AWSLogs/{acct}/CloudTrail/{region}/2026/11/01/crowded.json.gz", records), truth


def test_cap_folds_later_principals_into_other(tmp_path: Path, decoder: str) -> None:
    path, truth = crowded_queue(tmp_path)
    got = replayed([path], max_principals_per_queue_series=3)[P + "principal_calls_total"]
    named = {k[3] for k in got} - {"(other)"}
    assert len(named) == 3 and "(other)" in {k[3] for k in got}
    assert sum(got.values()) == sum(truth.values()) == 820
    for key, v in got.items():  # each named principal's series is exact
        if key[3] != "(other)":
            assert v == truth[key]
    other = sum(v for k, v in truth.items() if k[3] not in named)
    assert sum(v for k, v in got.items() if k[3] == "(other)") == other


def test_cap_holds_across_restarts(tmp_path: Path) -> None:
    path, _ = crowded_queue(tmp_path, principals=6)
    data = path.read_bytes()
    first = Aggregate(max_principal_series=3)
    first.consume(*_decoded(data), 0.0, "t")
    snap = json.loads(json.dumps(first.snapshot()))
    again = Aggregate(max_principal_series=3)
    again.restore(snap)
    again.consume(*_decoded(data), 0.0, "t")
    names = {k[3] for k in again.access.principal_calls}
    assert names == {k[3] for k in first.access.principal_calls}
    assert sum(again.access.principal_calls.values()) == 2 * sum(first.access.principal_calls.values())
    # a snapshot from before the access map (a single blob, as the aggregate was saved then)
    old = {k: v for k, v in sections.join(snap).items() if k != "access"}
    fresh = Aggregate(max_principal_series=3)
    fresh.restore(old)
    assert fresh.access.principal_calls == {} and fresh.calls == first.calls


def _decoded(data: bytes) -> tuple[list[Any], list[Any]]:
    from exporter.decode.delivery import decode

    d = decode(data, keep_raw=False)
    return d.calls, d.raws


def test_changes_need_no_raw_records(tmp_path: Path, decoder: str) -> None:
    """Without a sink that wants raw records, the decoders keep the raw JSON of policy/encryption calls
    only: raws aligned with calls, None elsewhere; empty when the delivery has none."""
    from exporter.decode.delivery import decode

    gen = Generator(seed=3)
    gen.write(tmp_path / "t", 8, 400, extras=False)
    for path in sorted((tmp_path / "t").rglob("*.json.gz")):
        d = decode(path.read_bytes(), keep_raw=False)
        changes = [c for c in d.calls if c.labels.event_name in scan.RAW_EVENTS]
        if not changes:
            assert d.raws == []
            continue
        assert len(d.raws) == len(d.calls)
        for call, raw in zip(d.calls, d.raws, strict=True):
            assert (raw is not None) == (call.labels.event_name in scan.RAW_EVENTS)
            if raw is not None:
                assert json.loads(raw)["eventName"] == call.labels.event_name


def test_scanner_raw_events_option() -> None:
    if scan.scanner is None:
        pytest.skip("the C extension is not built")
    from exporter._native import Scanner

    with pytest.raises(TypeError):
        Scanner(scan.derived, scan.principals_of, scan.parse_time, raw_events={"CreateQueue"})
    plain = Scanner(scan.derived, scan.principals_of, scan.parse_time, raw_events=frozenset())
    rec = {
        "eventSource": "sqs.amazonaws.com",
        "eventName": "CreateQueue",
        "awsRegion": "us-east-1",
        "recipientAccountId": "111122223333",
        "requestParameters": {"queueName": "q"},
    }
    data = json.dumps({"Records": [rec, {**rec, "eventName": "GetQueueUrl"}]}).encode()
    assert plain.scan(data, False)[2] == []
    calls, _, raws = scan.scanner.scan(data, False)
    assert len(calls) == 2 and raws[1] is None and json.loads(raws[0]) == rec
