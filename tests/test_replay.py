"""`replay` against the generator's ground truth, through the real command line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from util import assert_matches_truth, generate, parse_metrics, series


def replay(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", "replay", *args], capture_output=True, text=True, timeout=300, env=env
    )


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    out = tmp_path_factory.mktemp("corpus") / "trail"
    truth = generate(out, files=24, seed=7, records=150)
    return out, truth


@pytest.mark.parametrize("granularity", ["role", "arn"])
def test_replay_matches_ground_truth(corpus: tuple[Path, dict], granularity: str, tmp_path: Path) -> None:
    out, truth = corpus
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"metrics:\n  principal_granularity: {granularity}\n")
    r = replay(str(out), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    assert_matches_truth(m, truth, granularity)
    records = series(m, "cloudtrail_sqs_exporter_records_total", "outcome")
    assert records == {("sqs",): truth["records"]["sqs"], ("other",): truth["records"]["other"], ("invalid",): 0}
    objects = series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")
    assert objects == {("ok",): truth["objects"]["ok"], ("skipped",): truth["objects"]["skipped"], ("failed",): 0}
    info = {lab: v for (n, lab), v in m.items() if n == "cloudtrail_sqs_exporter_build_info"}
    assert len(info) == 1
    labels, value = next(iter(info.items()))
    assert value == 1 and dict(labels)["version"] == "0.1.0"
    assert set(dict(labels)) == {"version", "revision", "python_version"}


def test_role_and_arn_granularities_differ(corpus: tuple[Path, dict]) -> None:
    """The generator's assumed roles have several sessions, so the arn figures must be larger somewhere."""
    _, truth = corpus
    role, arn = truth["principals"]["role"], truth["principals"]["arn"]
    assert any(arn[k] > role[k] for k in role)
    assert all(arn[k] >= role[k] for k in role)


def test_replay_json_output(corpus: tuple[Path, dict]) -> None:
    out, truth = corpus
    r = replay(str(out), "--output", "json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    fams = {f["name"]: f for f in doc["metrics"]}
    calls = {
        tuple(s["labels"][k] for k in ("account_id", "region", "queue", "event_name", "event_category")): s["value"]
        for s in fams["cloudtrail_sqs_api_calls"]["samples"]
    }
    assert calls == truth["calls"]
    assert fams["cloudtrail_sqs_api_calls"]["type"] == "counter"


def test_bad_files_reported_and_good_data_kept(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = corpus
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "truncated.json.gz").write_bytes(b"\x1f\x8b\x08\x00\x00\x00")
    (bad / "broken.json").write_text('{"Records": [')
    r = replay(str(out), str(bad), str(tmp_path / "missing.json"))
    assert r.returncode == 1  # some inputs failed; what was read is still printed
    assert "truncated.json.gz" in r.stderr and "broken.json" in r.stderr and "missing.json" in r.stderr
    m = parse_metrics(r.stdout)
    assert_matches_truth(m, truth)
    assert series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")[("failed",)] == 3


def test_queue_cap_folds_into_other(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = corpus
    cfg = tmp_path / "c.yaml"
    cfg.write_text("metrics:\n  max_queues: 5\n")
    r = replay(str(out), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    calls = series(m, "cloudtrail_sqs_api_calls_total", "account_id", "region", "queue")
    named = {k for k in calls if k[2] not in ("(other)", "(none)")}
    assert len(named) == 5
    assert any(k[2] == "(other)" for k in calls)
    assert sum(calls.values()) == sum(truth["calls"].values())  # nothing lost, only folded


def test_filters(corpus: tuple[Path, dict], tmp_path: Path) -> None:
    out, truth = corpus
    acct = sorted({k[0] for k in truth["calls"]})[0]
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"metrics:\n  include_queues: '^orders'\n  exclude_queues: 'dlq$'\n  include_accounts: ['{acct}']\n")
    r = replay(str(out), "--config", str(cfg))
    assert r.returncode == 0, r.stderr
    calls = series(parse_metrics(r.stdout), "cloudtrail_sqs_api_calls_total", "account_id", "queue", "event_name")
    want: dict = {}
    for (a, _r, q, n, _c), v in truth["calls"].items():
        if a == acct and (q == "(none)" or (q.startswith("orders") and not q.endswith("dlq"))):
            want[(a, q, n)] = want.get((a, q, n), 0) + v
    assert calls == want
    assert any(q.startswith("orders") for _, q, _ in calls)


def test_shipped_sample_replays() -> None:
    from exporter.config import SAMPLE_DIR

    r = replay(str(SAMPLE_DIR))
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    assert sum(series(m, "cloudtrail_sqs_api_calls_total", "queue").values()) > 100
    assert series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")[("failed",)] == 0
