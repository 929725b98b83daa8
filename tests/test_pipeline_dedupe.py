"""The pipeline's dedupe stage: with metrics.dedupe_window, a call whose eventID was counted within the
window is dropped before every sink, whichever source brings it and across restarts; replicas share
their claims through Redis (a real redis-server) and fall back to their own store while it is away."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from test_scaleout import RedisServer

from exporter.dedupe import Dedupe
from exporter.generator import Generator
from exporter.pipeline import Pipeline
from exporter.selfmetrics import DUPLICATE_EVENTS, SelfMetrics
from exporter.shared import SharedState
from exporter.sinks.metrics import Aggregate
from exporter.state import StateStore

T0 = datetime(2026, 11, 1, tzinfo=UTC)


def delivery(tmp_path: Path, seed: int, n: int = 300) -> tuple[bytes, int]:
    g = Generator(seed=seed, queues_per_account=4)
    path = tmp_path / f"d{seed}.json.gz"
    g.write_file(path, g.accounts[0], g.regions[0], T0, timedelta(minutes=5), n)
    data = path.read_bytes()
    recs = json.loads(gzip.decompress(data))["Records"]
    return data, sum(1 for r in recs if r["eventSource"] == "sqs.amazonaws.com")


def pipeline(store: StateStore | None, window: float | None) -> tuple[Pipeline, Aggregate, SelfMetrics]:
    agg, counters = Aggregate(), SelfMetrics()
    dedupe = Dedupe(window, store) if window else None
    p = Pipeline([agg], store, counters, dedupe=dedupe)
    p.register("fresh")
    p.register("complete")
    return p, agg, counters


def total(agg: Aggregate) -> int:
    return sum(agg.calls.values())


def duplicates(counters: SelfMetrics, source: str) -> int:
    return counters.extra.get(DUPLICATE_EVENTS, {}).get((source,), -1)


def test_the_same_events_from_two_sources_count_once(tmp_path: Path) -> None:
    data, sqs = delivery(tmp_path, 1)
    assert sqs > 50
    p, agg, counters = pipeline(StateStore(tmp_path / "s.db"), 7200)
    p.process(data, "fresh")
    once = dict(agg.calls)
    assert total(agg) == sqs
    p.process(data, "complete")
    assert agg.calls == once
    assert duplicates(counters, "fresh") == 0
    assert duplicates(counters, "complete") == sqs


def test_without_a_window_both_are_counted(tmp_path: Path) -> None:
    data, sqs = delivery(tmp_path, 2)
    p, agg, counters = pipeline(StateStore(tmp_path / "s.db"), None)
    p.process(data, "fresh")
    p.process(data, "complete")
    assert total(agg) == 2 * sqs
    assert DUPLICATE_EVENTS not in counters.extra


def test_remembered_across_a_restart_only_through_a_checkpoint(tmp_path: Path) -> None:
    a, sqs_a = delivery(tmp_path, 3)
    b, sqs_b = delivery(tmp_path, 4)
    path = tmp_path / "s.db"
    store = StateStore(path)
    p, agg, _ = pipeline(store, 7200)
    p.process(a, "fresh")
    p.checkpoint(force=True)
    p.process(b, "fresh")  # counted, never checkpointed: lost with its ids in a crash
    store.close()

    store = StateStore(path)
    p, agg, counters = pipeline(store, 7200)
    assert total(agg) == sqs_a  # the counts of the checkpoint
    p.process(a, "complete")
    p.process(b, "complete")
    assert total(agg) == sqs_a + sqs_b  # a not again, b now
    assert duplicates(counters, "complete") == sqs_a
    store.close()


def test_duplicates_counter_survives_a_restart(tmp_path: Path) -> None:
    data, sqs = delivery(tmp_path, 5)
    path = tmp_path / "s.db"
    store = StateStore(path)
    p, _, _ = pipeline(store, 7200)
    p.process(data, "fresh")
    p.process(data, "complete")
    p.checkpoint(force=True)
    store.close()
    store = StateStore(path)
    _, _, counters = pipeline(store, 7200)
    assert duplicates(counters, "complete") == sqs
    store.close()


@pytest.fixture
def redis_server(tmp_path: Path):  # type: ignore[no-untyped-def]
    r = RedisServer(tmp_path / "redis").start()
    yield r
    r.stop()


def test_replicas_share_claims_through_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    data, sqs = delivery(tmp_path, 6)
    shared_a = SharedState(redis_server.url)
    shared_b = SharedState(redis_server.url)
    pa, agg_a, _ = pipeline(StateStore(tmp_path / "a.db"), 7200)
    pb, agg_b, counters_b = pipeline(StateStore(tmp_path / "b.db"), 7200)
    assert pa.dedupe is not None and pb.dedupe is not None
    pa.dedupe.shared, pb.dedupe.shared = shared_a, shared_b
    pa.process(data, "fresh")
    pa.checkpoint(force=True)  # claimed in Redis once committed
    pb.process(data, "complete")
    assert total(agg_a) == sqs and total(agg_b) == 0
    assert duplicates(counters_b, "complete") == sqs
    ttl = shared_a.r.ttl(next(iter(shared_a.r.scan_iter("ctsqs:ev|*"))))
    assert 7000 < ttl <= 7200  # Redis holds one window of ids


def test_redis_away_means_local_only(tmp_path: Path, redis_server: RedisServer) -> None:
    data, sqs = delivery(tmp_path, 7)
    shared = SharedState(redis_server.url)
    p, agg, counters = pipeline(StateStore(tmp_path / "a.db"), 7200)
    assert p.dedupe is not None
    p.dedupe.shared = shared
    redis_server.stop()
    assert shared.seen_events(["x"]) == set()  # notices the outage, answers from nothing
    assert not shared.up
    p.process(data, "fresh")
    p.checkpoint(force=True)
    p.process(data, "complete")  # the local store still knows them
    assert total(agg) == sqs
    assert duplicates(counters, "complete") == sqs


def test_the_app_wires_the_window_and_redis(tmp_path: Path, redis_server: RedisServer) -> None:
    from exporter.app import App
    from exporter.config import load

    (tmp_path / "in").mkdir()
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        json.dumps(
            {
                "listen": "127.0.0.1:0",
                "state": {"path": str(tmp_path / "s.db"), "redis_url": redis_server.url},
                "metrics": {"dedupe_window": "2h"},
                "sources": [{"type": "file", "path": str(tmp_path / "in")}],
            }
        )
    )
    app = App(load(cfg))
    app.start()
    try:
        assert app.pipeline.dedupe is not None
        assert app.pipeline.dedupe.window == 7200
        assert app.pipeline.dedupe.store is app.store
        assert app.pipeline.dedupe.shared is app.shared is not None
    finally:
        app.shutdown(grace=5)


def test_a_restart_claims_the_last_checkpoint_again(tmp_path: Path, redis_server: RedisServer) -> None:
    """A crash between the SQLite commit and the Redis claim: the next start claims those ids again."""
    path = tmp_path / "a.db"
    store = StateStore(path)
    d = Dedupe(7200, store)  # no Redis yet: committed locally, never claimed
    d.new(["old-1", "old-2"])
    store.commit(d.ops())
    d.committed()
    store.close()
    shared = SharedState(redis_server.url)
    assert shared.seen_events(["old-1", "old-2"]) == set()
    d = Dedupe(7200, StateStore(path), shared)
    assert d.reclaim() == 2
    assert shared.seen_events(["old-1", "old-2", "other"]) == {"old-1", "old-2"}
