"""The fresh path and the complete path on the same trail, in one exporter: the same generated events
through `eventbridge-sqs` (moto_server queue) and `file` at once. With `metrics.dedupe_window` every
counter equals the generator's ground truth; without it the SQS call counters are exactly double."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from awsfixtures import MotoServer, aws_env, counted, wait_until, write_config
from test_source_eventbridge import depth, eventbridge_event, fill_queue, records_of, source
from util import Exporter, assert_matches_truth, series, wait_for

pytestmark = pytest.mark.slow
CALLS = "cloudtrail_sqs_api_calls_total"
DUPLICATES = "cloudtrail_sqs_exporter_duplicate_events_total"
Q = ("account_id", "region", "queue")


def start(moto: MotoServer, tmp_path: Path, seed: int, window: str | None) -> tuple[Exporter, str, dict]:
    url, truth = fill_queue(moto, tmp_path, files=4, seed=seed)
    trail = {"type": "file", "name": "trail", "path": str(tmp_path / "trail"), "poll_interval": "1s", "settle": "0s"}
    metrics = {"dedupe_window": window} if window else {}
    cfg = write_config(tmp_path / "c.yaml", [source(url, moto.url), trail], metrics=metrics)
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exp.start()
    return exp, url, truth


def both_done(exp: Exporter, moto: MotoServer, url: str, truth: dict) -> dict:
    files = len(truth["files"])
    wait_for(
        lambda: counted(exp.metrics(), "cloudtrail_sqs_exporter_objects_total", source="trail", outcome="ok") == files,
        60,
        what="every trail file read",
    )
    wait_until(lambda: depth(moto, url) == 0, 60, what="queue drained")
    return exp.metrics()


def test_with_dedupe_window_every_counter_is_ground_truth(
    moto: MotoServer, tmp_path: Path, exporter_proc: list[Exporter]
) -> None:
    exp, url, truth = start(moto, tmp_path, 81, "2h")
    exporter_proc.append(exp)
    want = sum(truth["calls"].values())
    wait_for(lambda: counted(exp.metrics(), DUPLICATES) == want, 90, what="every call seen twice")
    m = both_done(exp, moto, url, truth)
    assert_matches_truth(m, truth)
    assert counted(m, CALLS) == want
    # each call was read twice, counted once: the second arrival, from either source, is a duplicate
    assert counted(m, DUPLICATES, source="events") + counted(m, DUPLICATES, source="trail") == want
    for src in ("events", "trail"):  # both read every SQS record
        assert counted(m, "cloudtrail_sqs_exporter_records_total", source=src, outcome="sqs") == truth["records"]["sqs"]

    # a restart remembers what was counted: the same events again add nothing
    exp.stop()
    exp.start()
    sqs = moto.client("sqs")
    recs = [r for r in records_of(truth) if r["eventSource"] == "sqs.amazonaws.com"][:20]
    for r in recs:
        sqs.send_message(QueueUrl=url, MessageBody=json.dumps(eventbridge_event(r)))
    wait_for(lambda: counted(exp.metrics(), DUPLICATES) == want + len(recs), 60, what="the resent events dropped")
    wait_until(lambda: depth(moto, url) == 0, 60, what="queue drained again")
    assert_matches_truth(exp.metrics(), truth)


def test_without_dedupe_window_the_overlap_counts_twice(
    moto: MotoServer, tmp_path: Path, exporter_proc: list[Exporter]
) -> None:
    exp, url, truth = start(moto, tmp_path, 82, None)
    exporter_proc.append(exp)
    want = sum(truth["calls"].values())
    wait_for(lambda: counted(exp.metrics(), CALLS) == 2 * want, 90, what="every call counted by both sources")
    m = both_done(exp, moto, url, truth)
    calls = series(m, CALLS, *Q, "event_name", "event_category")
    assert {k: int(v) for k, v in calls.items() if v} == {k: 2 * v for k, v in truth["calls"].items()}
    errors = series(m, "cloudtrail_sqs_api_errors_total", *Q, "event_name", "error_code")
    assert {k: int(v) for k, v in errors.items() if v} == {k: 2 * v for k, v in truth["errors"].items()}
    # distinct principals are a set: the same callers twice are still the same callers
    principals = series(m, "cloudtrail_sqs_distinct_principals", *Q, "window")
    assert {k: int(v) for k, v in principals.items()} == truth["principals"]["role"]
    assert counted(m, DUPLICATES) == 0
