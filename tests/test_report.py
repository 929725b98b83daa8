"""The replay summary and exit codes, as pure functions (the CLI tests run them end to end)."""

from __future__ import annotations

import io

import pytest

from exporter.report import ReplayReport, render, summarize


@pytest.mark.parametrize(
    ("read", "skipped", "failed", "code"),
    [(3, 0, 0, 0), (2, 1, 0, 0), (0, 2, 0, 0), (2, 0, 1, 1), (0, 0, 3, 3), (0, 0, 0, 3), (0, 1, 1, 1)],
)
def test_exit_codes(read: int, skipped: int, failed: int, code: int) -> None:
    r = ReplayReport(read=read, skipped=skipped)
    for i in range(failed):
        r.add_failure(f"f{i}", "bad gzip")
    assert r.exit_code() == code


def test_summary_names_counts_failures_and_top_queues() -> None:
    r = ReplayReport(read=2, seconds=1.25)
    for i in range(7):
        r.add_failure(f"/trail/bad-{i}.json.gz", "gzip: invalid header")
    r.records.update(sqs=40, other=10, invalid=1)
    calls = {("1111", "eu-west-1", "orders", "SendMessage", "Data"): 30, ("1111", "eu-west-1", "jobs", "X", "Data"): 10}
    errors = {("1111", "eu-west-1", "jobs", "X", "AccessDenied"): 4}
    summarize(r, calls, errors)
    out = io.StringIO()
    render(r, out)
    text = out.getvalue()
    assert "9 inputs: 2 read, 0 skipped, 7 failed" in text
    assert "40 SQS, 10 other, 1 invalid" in text
    assert "40 SQS calls counted" in text
    assert "failed: /trail/bad-0.json.gz: gzip: invalid header" in text
    assert "and 2 more failed inputs" in text
    assert text.index("orders (1111, eu-west-1)") < text.index("jobs (1111, eu-west-1)")
    assert "top queues by errors" in text
