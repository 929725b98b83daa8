"""Label caps: every label of the per-queue families bounded, folding to `(other)`."""

from __future__ import annotations

import gzip
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from util import parse_metrics, series

from exporter.config import MetricsConfig
from exporter.model import NO_REF, Call, Labels
from exporter.sinks.metrics.aggregate import Aggregate
from exporter.sinks.metrics.caps import OTHER, LabelCaps, category_of


def test_category_only_management_or_data() -> None:
    assert category_of("SendMessage", "Data") == "Data"
    assert category_of("CreateQueue", "Management") == "Management"
    # anything else: the SQS guide's table for the event name
    assert category_of("SendMessage", "Insight") == "Data"
    assert category_of("DeleteMessageBatch", "") == "Data"
    assert category_of("CreateQueue", "data") == "Management"
    assert category_of("NoSuchApi", "x" * 300) == "Management"


def test_each_label_admits_its_first_values_then_other() -> None:
    caps = LabelCaps(max_event_names=3, max_error_codes=2, max_accounts=2, max_regions=2)
    got = [caps.labels(f"acct{i}", f"region{i}", f"Name{i}", "Management") for i in range(5)]
    assert [g[0] for g in got] == ["acct0", "acct1", OTHER, OTHER, OTHER]
    assert [g[1] for g in got] == ["region0", "region1", OTHER, OTHER, OTHER]
    assert [g[2] for g in got] == ["Name0", "Name1", "Name2", OTHER, OTHER]
    # an admitted value stays admitted
    assert caps.labels("acct1", "region0", "Name2", "Management") == ("acct1", "region0", "Name2", "Management")
    codes = [caps.error_key(("a", "r", "q", "N", f"Code{i}"))[4] for i in range(4)]
    assert codes == ["Code0", "Code1", OTHER, OTHER]


def test_series_cap_folds_queue_and_name_then_everything() -> None:
    caps = LabelCaps(max_series=100)
    keys = [caps.call_key(("a", "r", f"q{i}", "SendMessage", "Data")) for i in range(200)]
    assert keys[:90] == [("a", "r", f"q{i}", "SendMessage", "Data") for i in range(90)]
    # past 90 %: account, region and category kept, the rest folded
    assert set(keys[90:]) == {("a", "r", OTHER, OTHER, "Data")}
    # the same label set lands in the same series every time
    assert caps.call_key(("a", "r", "q5", "SendMessage", "Data")) == ("a", "r", "q5", "SendMessage", "Data")
    # new accounts/regions fold into their own (other) series until the hard cap, then all of it
    more = {caps.call_key((f"acct{i}", "r", "q", "SendMessage", "Management")) for i in range(50)}
    assert len(caps.series) == 100
    assert (OTHER, OTHER, OTHER, OTHER, "Management") in more
    errs = {caps.error_key((f"acct{i}", "r", "q", "SendMessage", "AccessDenied")) for i in range(50)}
    assert errs == {(OTHER, OTHER, OTHER, OTHER, OTHER)}
    assert len(caps.series) == 100
    assert caps.folded > 0


def test_total_bounded_whatever_varies() -> None:
    caps = LabelCaps(max_event_names=50, max_error_codes=50, max_accounts=50, max_regions=20, max_series=1000)
    out = set()
    for i in range(20_000):
        acct, region, name, cat = caps.labels(f"{i:012d}", f"r-{i % 97}", f"Api{i}", f"cat{i}")
        assert cat in ("Management", "Data")
        out.add(caps.call_key((acct, region, f"q{i}", name, cat)))
        out.add(caps.error_key((acct, region, f"q{i}", name, f"E{i}")))
    assert len(out) <= 1000 + 3


def test_learn_readmits_a_restored_checkpoint() -> None:
    caps = LabelCaps(max_event_names=2, max_series=10)
    caps.learn([("a", "r", "q", "N1", "Data"), ("a", "r", "q", "N2", "Data")], [("a", "r", "q", "N1", "E")])
    assert caps.labels("a", "r", "N3", "Data")[2] == OTHER
    assert caps.labels("a", "r", "N2", "Data")[2] == "N2"
    assert len(caps.series) == 3


def label_attack(n: int) -> list[dict]:
    """Records each new in every label field but the queue."""
    return [
        {
            "eventVersion": "1.09",
            "eventSource": "sqs.amazonaws.com",
            "eventName": f"Api{i}",
            "eventCategory": f"Cat{i}",
            "errorCode": f"Err{i}",
            "recipientAccountId": f"{i:012d}",
            "awsRegion": f"xx-{i}-1",
            "eventTime": "2026-11-01T00:00:00Z",
            "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::1:user/u"},
            "requestParameters": {"queueUrl": "https://sqs.eu-west-1.amazonaws.com/111122223333/q"},
        }
        for i in range(n)
    ]


@pytest.mark.parametrize(
    "caps",
    [
        {},  # the defaults
        {"max_event_names": 30, "max_error_codes": 20, "max_accounts": 300, "max_regions": 40, "max_series": 1000},
    ],
)
def test_20k_records_varying_every_label_stay_within_the_caps(tmp_path: Path, caps: dict[str, int]) -> None:
    d = tmp_path / "in"
    d.mkdir()
    recs = label_attack(20_000)
    for part in range(4):
        body = json.dumps({"Records": recs[part * 5000 : (part + 1) * 5000]}).encode()
        (d / f"labels-{part}.json.gz").write_bytes(gzip.compress(body))
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump({"metrics": caps}))
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(d), "--config", str(cfg)],
        capture_output=True,
        text=True,
        timeout=300,
        env={k: v for k, v in os.environ.items() if not k.startswith(("CTSQS_", "OTEL_"))},
    )
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    limits = {**MetricsConfig().model_dump(), **caps}
    calls = series(m, "cloudtrail_sqs_api_calls_total", "account_id", "region", "queue", "event_name", "event_category")
    errors = series(m, "cloudtrail_sqs_api_errors_total", "account_id", "region", "queue", "event_name", "error_code")
    assert sum(calls.values()) == 20_000 and sum(errors.values()) == 20_000  # folded, never dropped
    assert len(calls) + len(errors) <= limits["max_series"] + 3
    assert {k[4] for k in calls} <= {"Management", "Data"}
    for i, cap in ((0, "max_accounts"), (1, "max_regions"), (3, "max_event_names")):
        assert len({k[i] for k in calls} - {OTHER}) <= limits[cap], cap
    assert len({k[4] for k in errors} - {OTHER}) <= limits["max_error_codes"]
    assert OTHER in {k[3] for k in calls}  # the caps were reached, not merely unneeded
    newest = series(m, "cloudtrail_sqs_last_event_timestamp_seconds", "account_id", "region")
    assert len(newest) <= len({k[:2] for k in calls})


def call(name: str, principal: str = "arn:aws:iam::1:user/u", t: float = 1.0) -> Call:
    return Call(Labels("111122223333", "eu-west-1", "q", name, "Data"), None, 0, t, principal, principal, NO_REF)


def test_caps_survive_a_checkpoint_restore() -> None:
    agg = Aggregate(caps=LabelCaps(max_event_names=2))
    agg.add_calls([call("A"), call("B"), call("C")], 2.0, "s")
    snap = json.loads(json.dumps(agg.snapshot()))
    again = Aggregate(caps=LabelCaps(max_event_names=2))
    again.restore(snap)
    again.add_calls([call("B"), call("D")], 2.0, "s")
    names = {k[3]: v for k, v in again.calls.items()}
    assert names == {"A": 1, "B": 2, OTHER: 2}  # C before the restart, D after: both folded


def test_principals_capped_across_all_queues() -> None:
    agg = Aggregate(max_principals_per_queue=1000, max_principals=500)
    calls = [
        Call(Labels("1", "r", f"q{i % 50}", "SendMessage", "Data"), None, 0, 1000.0 + i, f"p{i}", f"p{i}", NO_REF)
        for i in range(2000)
    ]
    agg.add_calls(calls, 5000.0, "s")
    held = sum(len(s) for s in agg.principals.values())
    assert held <= 500 and held == agg.principal_count
    assert all(len(s) <= 1000 for s in agg.principals.values())
    # the newest are the ones kept
    assert "p1999" in agg.principals[("1", "r", "q49")]
