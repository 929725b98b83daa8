"""Scale-out: three replicas on one notification queue with shared state in Redis (Debian's
redis-server) and moto_server: exact summed counters, one global distinct-principal figure, no object
counted twice when a replica is killed mid-work, and a Redis outage survived."""

from __future__ import annotations

import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from awsfixtures import MotoServer, aws_env, counted, upload_tree, wait_until, write_batch, write_config
from test_source_s3sqs import notifying_bucket, queue_depth
from util import Exporter, free_port, http_get, series, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow
OBJECTS = "cloudtrail_sqs_exporter_objects_total"
REDIS = shutil.which("redis-server") or "/usr/bin/redis-server"


class RedisServer:
    def __init__(self, workdir: Path) -> None:
        self.port = free_port()
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.proc = subprocess.Popen(
            [
                REDIS,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.dir),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        import redis

        wait_for(lambda: redis.Redis(port=self.port).ping(), 20, what="redis-server")
        return self

    def stop(self) -> None:
        if self.proc is not None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.terminate()
            self.proc.wait(10)
            self.proc = None


@pytest.fixture
def redis_server(tmp_path: Path) -> Iterator[RedisServer]:
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def replica(i: int, tmp_path: Path, moto: MotoServer, url: str, redis_url: str) -> Exporter:
    d = tmp_path / f"replica-{i}"
    d.mkdir(exist_ok=True)
    src = {
        "type": "s3-sqs",
        "name": "notes",
        "queue_url": url,
        "region": "us-east-1",
        "endpoint_url": moto.url,
        "wait_time": "1s",
        "max_messages": 2,
        "visibility_timeout": "6s",
        "retry_visibility": "1s",
    }
    cfg = write_config(d / "c.yaml", [src], unready_after="2s")
    text = cfg.read_text().replace("state:\n", f"state:\n  redis_url: {redis_url}\n  redis_lease: 6s\n")
    cfg.write_text(text)
    return Exporter(cfg, d, env=aws_env())


def total(exps: list[Exporter]) -> dict:
    """Counters summed over the replicas, as `sum without (instance)` would."""
    out: dict = {}
    for e in exps:
        for k, v in e.metrics().items():
            if k[0].endswith("_total"):
                out[k] = out.get(k, 0.0) + v
    return out


def test_three_replicas_one_queue(
    moto: MotoServer, redis_server: RedisServer, tmp_path: Path, exporter_proc: list[Exporter]
) -> None:
    s3 = moto.client("s3")
    url = notifying_bucket(moto)
    gen = Generator(seed=41)
    truth = write_batch(gen, tmp_path / "trail", 60, extras=False)
    upload_tree(s3, "trail", tmp_path / "trail")
    files = len(truth["files"])

    exps = [replica(i, tmp_path, moto, url, redis_server.url) for i in range(3)]
    exporter_proc.extend(exps)
    for e in exps:
        e.start(wait_ready=False)
    # kill replica 0 once it is in the thick of it; its leases expire and the others take over
    wait_for(lambda: counted(exps[0].metrics(), OBJECTS, outcome="ok") >= 2, 60, what="replica 0 working")
    exps[0].stop(signal.SIGKILL)
    # Redis unreachable for a while: the others keep counting and say they are not ready
    redis_server.proc.send_signal(signal.SIGSTOP)  # type: ignore[union-attr]
    try:
        wait_for(lambda: http_get(exps[1].url + "/readyz")[0] == 503, 30, what="not ready without redis")
        assert exps[1].metrics()[("cloudtrail_sqs_exporter_redis_up", ())] == 0
    finally:
        redis_server.proc.send_signal(signal.SIGCONT)  # type: ignore[union-attr]
    exps[0].start(wait_ready=False)
    wait_until(lambda: queue_depth(moto, url) == 0, 120, what="queue drained")
    wait_for(lambda: counted(total(exps), OBJECTS, outcome="ok") == files, 60, what="every object counted")
    for e in exps:
        wait_for(lambda e=e: http_get(e.url + "/readyz")[0] == 200, 30, what="ready again")
        wait_for(lambda e=e: e.metrics()[("cloudtrail_sqs_exporter_redis_backlog", ())] == 0, 30, what="backlog")

    m = total(exps)
    assert counted(m, OBJECTS, outcome="ok") == files  # not one object twice
    q = ("account_id", "region", "queue")
    calls = series(m, "cloudtrail_sqs_api_calls_total", *q, "event_name", "event_category")
    assert {k: int(v) for k, v in calls.items() if v} == truth["calls"]
    errors = series(m, "cloudtrail_sqs_api_errors_total", *q, "event_name", "error_code")
    assert {k: int(v) for k, v in errors.items() if v} == truth["errors"]
    batch = series(m, "cloudtrail_sqs_batch_entries_total", *q, "event_name")
    assert {k: int(v) for k, v in batch.items() if v} == truth["batch"]
    # the work was shared (replica 0 may have lost all it had counted since its last checkpoint)
    assert sum(counted(e.metrics(), OBJECTS, outcome="ok") > 0 for e in exps) >= 2

    # every replica reports the same global distinct-principal figures, close to the truth
    time.sleep(6)  # past the 5 s cache of the last figures
    views = [series(e.metrics(), "cloudtrail_sqs_distinct_principals", *q, "window") for e in exps]
    assert views[0] == views[1] == views[2]
    want = truth["principals"]["role"]
    assert set(views[0]) == set(want)
    for window in ("15m", "1h", "24h"):
        got = sum(v for k, v in views[0].items() if k[3] == window)
        exp_ = sum(v for k, v in want.items() if k[3] == window)
        print(f"distinct principals, window {window}: replicas {got:.0f}, truth {exp_} ({got / exp_ - 1:+.2%})")
        assert abs(got - exp_) <= 0.02 * exp_, (window, got, exp_)
    for k, v in want.items():
        if k[3] == "24h":
            assert abs(views[0][k] - v) <= max(1, 0.02 * v), (k, views[0][k], v)
