"""Memory bounds of reading: the object cap (plain and gzip), S3 bodies refused by size, the download budget."""

from __future__ import annotations

import gzip
import io
import json
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pytest
from awsfixtures import MotoServer, aws_env, counted, wait_metric, write_config
from util import Exporter, parse_metrics, series

from exporter.config import Settings
from exporter.decode import reader
from exporter.sources.download import Downloads, get_capped


@pytest.fixture
def cap() -> Any:
    old = reader.MAX_DECOMPRESSED
    reader.set_limit(1 << 20)
    yield 1 << 20
    reader.set_limit(old)


def doc(n: int) -> bytes:
    rec = {"eventSource": "sqs.amazonaws.com", "eventName": "SendMessage", "pad": "x" * 200}
    return json.dumps({"Records": [rec] * n}).encode()


def test_defaults_fit_the_chart() -> None:
    s = Settings()
    assert s.logs.queue_max_bytes == 64 << 20
    assert s.limits.max_object_bytes == 64 << 20
    assert s.limits.max_download_bytes == 32 << 20
    assert s.metrics.max_series == 50_000
    assert s.metrics.max_principals * 400 < 64 << 20  # ~400 bytes per principal tracked


def test_plain_and_gzip_objects_above_the_cap_fail(cap: int) -> None:
    small, big = doc(100), doc(6000)
    assert len(big) > cap
    assert reader.read_delivery(small).outcome == "ok"
    d = reader.read_delivery(big)
    assert d.outcome == "failed" and "max_object_bytes" in (d.reason or "")
    for scratch in (False, True):
        d = reader.read_delivery(gzip.compress(big), scratch=scratch)
        assert d.outcome == "failed" and "uncompressed" in (d.reason or "")
        assert reader.read_delivery(gzip.compress(small), scratch=scratch).outcome == "ok"
    assert reader.inflate(big) is None


def test_a_file_above_the_cap_is_refused_unread(cap: int, tmp_path: Path) -> None:
    f = tmp_path / "big.json"
    f.write_bytes(b" " * (cap + 1))
    with pytest.raises(reader.TooLarge, match="max_object_bytes"):
        reader.read_file(f)
    f.write_bytes(b"{}")
    assert reader.read_file(f) == b"{}"


class Body(io.BytesIO):
    def __init__(self, data: bytes, log: list[str]) -> None:
        super().__init__(data)
        self.log = log

    def read(self, n: int | None = -1) -> bytes:  # type: ignore[override]
        self.log.append("read")
        time.sleep(0.01)
        return super().read(n)


class FakeS3:
    """Unit-test double of a boto3 S3 client's get_object."""

    def __init__(self, objects: dict[str, bytes]) -> None:
        self.objects = objects
        self.log: list[str] = []

    def get_object(self, Bucket: str, Key: str) -> dict[str, Any]:
        data = self.objects[Key]
        return {"Body": Body(data, self.log), "ContentLength": len(data), "ETag": '"e"'}


def test_an_s3_object_above_the_cap_is_refused_by_its_length(cap: int) -> None:
    s3 = FakeS3({"big": b"x" * (cap + 1), "ok": b"{}"})
    with pytest.raises(reader.TooLarge, match="s3://b/big"):
        get_capped(s3, "b", "big")
    assert s3.log == []  # the body was never read
    assert get_capped(s3, "b", "ok")[:2] == (b"{}", "e")


def test_download_budget_holds_and_never_deadlocks(cap: int) -> None:
    sizes = [300_000, 900_000, 100_000, 1_000_000, 50_000, 700_000, 600_000, 20_000] * 3
    s3 = FakeS3({f"k{i}": b"x" * n for i, n in enumerate(sizes)})
    pool = ThreadPoolExecutor(4)
    dl = Downloads(pool, s3, limit=1_000_000)
    peak = 0
    stop = threading.Event()

    def watch() -> None:
        nonlocal peak
        while not stop.is_set():
            peak = max(peak, dl.used)
            time.sleep(0.001)

    w = threading.Thread(target=watch)
    w.start()
    futs = [dl.submit("b", f"k{i}") for i in range(len(sizes))]
    got = []
    for fut in futs:
        data, _ = dl.take(fut)
        got.append(len(data))
        time.sleep(0.005)  # counting takes a while; downloads run ahead within the budget
        dl.release(fut)
        assert fut.result() == []  # the body is not kept by the future
    stop.set()
    w.join()
    pool.shutdown()
    assert got == sizes
    assert dl.used == 0
    assert peak <= 1_000_000 + max(sizes)
    assert peak > max(sizes)  # several bodies were held at once: the budget, not a queue of one


def test_abandoned_downloads_release_their_budget(cap: int) -> None:
    s3 = FakeS3({f"k{i}": b"x" * 400_000 for i in range(6)})
    pool = ThreadPoolExecutor(2)
    dl = Downloads(pool, s3, limit=500_000)
    futs = [dl.submit("b", f"k{i}") for i in range(6)]
    dl.take(futs[0])
    dl.abandon_open()
    pool.shutdown(wait=True)
    assert dl.used == 0


def replay_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTSQS_", "OTEL_"))}
    return subprocess.run(
        [sys.executable, "-m", "exporter", "replay", *args], capture_output=True, text=True, timeout=300, env=env
    )


def test_replay_fails_objects_above_the_configured_cap_and_keeps_the_rest(tmp_path: Path) -> None:
    d = tmp_path / "in"
    d.mkdir()
    (d / "big.json").write_bytes(doc(6000))  # 1.4 MB plain
    (d / "bomb.json.gz").write_bytes(gzip.compress(bytes(8 << 20)))  # 8 MiB of zeros
    good = json.loads(doc(0))
    good["Records"] = [json.loads(doc(1))["Records"][0] | {"awsRegion": "eu-west-1", "recipientAccountId": "1"}]
    (d / "good.json").write_text(json.dumps(good))
    cfg = tmp_path / "c.yaml"
    cfg.write_text("limits:\n  max_object_bytes: 1048576\n")
    r = replay_cli(str(d), "--config", str(cfg))
    assert r.returncode == 1, r.stderr  # some inputs failed: what was read is still printed
    m = parse_metrics(r.stdout)
    assert series(m, "cloudtrail_sqs_exporter_objects_total", "outcome") == {
        ("ok",): 1,
        ("skipped",): 0,
        ("failed",): 2,
    }
    assert "big.json" in r.stderr and "max_object_bytes" in r.stderr
    assert "bomb.json.gz" in r.stderr and "uncompressed" in r.stderr
    assert sum(series(m, "cloudtrail_sqs_api_calls_total", "queue").values()) == 1


@pytest.mark.slow
def test_s3_object_above_the_cap_fails_once_and_the_rest_is_counted(
    moto: MotoServer, tmp_path: Path, exporter_proc: list[Exporter]
) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="trail")
    prefix = "AWSLogs/111122223333/CloudTrail/eu-west-1/2026/11/01/"
    name = "111122223333_CloudTrail_eu-west-1_20261101T00{:02d}Z_x.json"
    s3.put_object(Bucket="trail", Key=prefix + name.format(0), Body=json.dumps(json.loads(doc(3))).encode())
    s3.put_object(Bucket="trail", Key=prefix + name.format(5), Body=doc(6000))  # 1.4 MB, above the cap
    s3.put_object(Bucket="trail", Key=prefix + name.format(10), Body=gzip.compress(doc(5)))
    source = {"type": "s3", "name": "trail", "bucket": "trail", "region": "us-east-1", "endpoint_url": moto.url}
    cfg = write_config(
        tmp_path / "c.yaml", [{**source, "poll_interval": "500ms"}], limits={"max_object_bytes": 1 << 20}
    )
    exp = Exporter(cfg, tmp_path, env=aws_env())
    exporter_proc.append(exp)
    exp.start()
    m = wait_metric(exp, "cloudtrail_sqs_exporter_objects_total", 2, source="trail", outcome="ok")
    wait_metric(exp, "cloudtrail_sqs_exporter_objects_total", 1, source="trail", outcome="failed")
    time.sleep(1.5)  # more polls: the refused object is not retried or counted again
    m = exp.metrics()
    assert counted(m, "cloudtrail_sqs_exporter_objects_total", source="trail", outcome="failed") == 1
    assert counted(m, "cloudtrail_sqs_exporter_records_total", source="trail", outcome="sqs") == 8
    assert counted(m, "cloudtrail_sqs_exporter_source_errors_total", source="trail") == 0
    assert "max_object_bytes" in exp.log.read_text()


def test_the_cap_holds_with_a_large_kept_scratch_buffer(cap: int) -> None:
    # a thread that inflated a big file keeps its buffer (up to 64 MiB): a lower cap must still hold
    old = reader.MAX_DECOMPRESSED
    reader.set_limit(8 << 20)
    assert reader.read_delivery(gzip.compress(b" " * (6 << 20) + doc(1)), scratch=True).outcome == "ok"
    reader.set_limit(old)
    d = reader.read_delivery(gzip.compress(doc(6000)), scratch=True)
    assert d.outcome == "failed" and "uncompressed" in (d.reason or "")


def test_a_consumer_taking_out_of_order_is_never_stuck(cap: int) -> None:
    s3 = FakeS3({f"k{i}": b"x" * 400_000 for i in range(4)})
    pool = ThreadPoolExecutor(4)
    dl = Downloads(pool, s3, limit=500_000)
    futs = [dl.submit("b", f"k{i}") for i in range(4)]
    # the oldest is left untaken (held); the others must still come through, one at a time
    for fut in futs[1:]:
        data, _ = dl.take(fut)
        assert len(data) == 400_000
        dl.release(fut)
    dl.abandon_open()
    pool.shutdown(wait=True)
    assert dl.used == 0
