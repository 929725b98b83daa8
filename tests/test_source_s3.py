"""`s3` source against moto_server over HTTP: a trail bucket polled in key order, counts exact."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from awsfixtures import MotoServer, aws_env, counted, upload_tree, wait_metric, write_batch, write_config
from util import ROOT, Exporter, assert_matches_truth, parse_metrics

from exporter.generator import Generator

pytestmark = pytest.mark.slow

OBJECTS = "cloudtrail_sqs_exporter_objects_total"


def s3_source(moto: MotoServer, bucket: str, **kw: object) -> dict:
    return {
        "type": "s3",
        "name": "trail",
        "bucket": bucket,
        "region": "us-east-1",
        "endpoint_url": moto.url,
        "start": "2026-11-01",
        "poll_interval": "500ms",
        **kw,
    }


def test_s3_polling_counts_match_truth_and_follow_new_files(moto: MotoServer, tmp_path: Path, exporter_proc) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="trail")
    gen = Generator(seed=11)
    out = tmp_path / "trail"
    truth = write_batch(gen, out, 24)  # 2 accounts × 2 regions, + a digest and an Insight file each
    keys = upload_tree(s3, "trail", out)
    cfg = write_config(tmp_path / "c.yaml", [s3_source(moto, "trail")])
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    m = wait_metric(exp, OBJECTS, 24, source="trail", outcome="ok")
    assert_matches_truth(m, truth)
    assert counted(m, "cloudtrail_sqs_exporter_records_total", source="trail", outcome="sqs") == truth["records"]["sqs"]
    # Digest and Insight objects live outside CloudTrail/<region>/: never listed, never downloaded
    assert counted(m, OBJECTS, source="trail", outcome="failed") == 0

    # later deliveries (a later time in the key): picked up by the next poll, nothing counted twice
    truth = write_batch(gen, out, 12, start=datetime(2026, 11, 1, 8, tzinfo=UTC))
    upload_tree(s3, "trail", out, only_new=set(keys))
    m = wait_metric(exp, OBJECTS, 36, source="trail", outcome="ok")
    assert_matches_truth(m, truth)

    # a restart resumes from the saved last keys and restores the counters: still exact
    exp.stop()
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    m = exp.metrics()
    assert counted(m, OBJECTS, source="trail", outcome="ok") == 36
    assert_matches_truth(m, truth)


def _filter(truth: dict, accounts: set[str], regions: set[str]) -> dict:
    def keep(d: dict) -> dict:
        return {k: v for k, v in d.items() if k[0] in accounts and k[1] in regions}

    return {**truth, **{n: keep(truth[n]) for n in ("calls", "errors", "batch")},
            "principals": {g: keep(p) for g, p in truth["principals"].items()}}  # fmt: skip


def test_s3_org_trail_filters_and_assumed_role(moto: MotoServer, tmp_path: Path, exporter_proc) -> None:
    """Organization trail layout (AWSLogs/o-…/<account>/…), a custom prefix above it, account and
    region filters, and credentials from an assumed role (STS on moto)."""
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="org-trail")
    gen = Generator(seed=12)
    out = tmp_path / "trail"
    truth = write_batch(gen, out, 8)
    upload_tree(s3, "org-trail", out / "AWSLogs", prefix="audit/AWSLogs/o-abcd123456/")
    acct = gen.accounts[1]
    src = s3_source(moto, "org-trail", prefix="audit/", accounts=[acct], regions=["eu-west-1"])
    src["role_arn"] = "arn:aws:iam::111122223333:role/trail-reader"
    cfg = write_config(tmp_path / "c.yaml", [src])
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    m = wait_metric(exp, OBJECTS, 2, source="trail", outcome="ok")  # 8 files / 4 slots
    assert_matches_truth(m, _filter(truth, {acct}, {"eu-west-1"}))


def test_replay_s3_url_honours_aws_endpoint_url(moto: MotoServer, tmp_path: Path) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="replay")
    out = tmp_path / "trail"
    truth = write_batch(Generator(seed=13), out, 8)
    upload_tree(s3, "replay", out)
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", "s3://replay/AWSLogs/"],
        cwd=ROOT,
        env=aws_env(AWS_ENDPOINT_URL=moto.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    assert_matches_truth(m, truth)
    assert counted(m, OBJECTS, outcome="skipped") == 8  # digests and Insight files, by key
    assert counted(m, OBJECTS, outcome="failed") == 0
