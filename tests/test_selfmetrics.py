"""The exporter's own counters: exact under threads, and restored from state files of either layout."""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.proto.collector.logs.v1 import logs_service_pb2

from exporter import config
from exporter.decode.delivery import extract
from exporter.pipeline import Pipeline
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.logs import LogSink
from exporter.sinks.metrics import Aggregate
from exporter.state import StateStore

SAMPLE = Path(__file__).parent.parent / "exporter" / "sample" / "trail"


@pytest.fixture
def tiny_switch_interval() -> Iterator[None]:
    """Switch threads as often as the interpreter allows: an unlocked `+=` then loses updates."""
    old = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    try:
        yield
    finally:
        sys.setswitchinterval(old)


class SlowDict(dict):  # type: ignore[type-arg]
    """A counter table that yields the GIL between reading and writing an entry: an increment not
    under the counters' lock then loses updates at once (CPython never switches inside a plain `+=`)."""

    def __getitem__(self, key: Any) -> Any:
        value = super().__getitem__(key)
        time.sleep(0)
        return value

    def get(self, key: Any, default: Any = None) -> Any:
        value = super().get(key, default)
        time.sleep(0)
        return value


def slow(counters: SelfMetrics) -> SelfMetrics:
    counters.log_records = SlowDict(counters.log_records)
    counters.records, counters.objects, counters.source_errors = SlowDict(), SlowDict(), SlowDict()
    counters.extra = {"exporter_late_events": SlowDict()}
    return counters


def sample_events(n: int) -> list[tuple[Any, Any]]:
    events: list[tuple[Any, Any]] = []
    for f in sorted(SAMPLE.rglob("*_CloudTrail_*.json.gz")):
        events += extract(f.read_bytes())[1]
        if len(events) >= n:
            return events[:n]
    return events


class AlternatingTransport:
    """Accepts one request, refuses the next (not retryable), and counts the records of each kind; slowly."""

    def __init__(self) -> None:
        self.calls = 0
        self.accepted = 0
        self.refused = 0

    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        req = logs_service_pb2.ExportLogsServiceRequest()
        req.ParseFromString(body)
        n = sum(len(sl.log_records) for rl in req.resource_logs for sl in rl.scope_logs)
        self.calls += 1
        time.sleep(0.002)  # slower than the producers: the queue fills and records are dropped
        if self.calls % 2:
            self.accepted += n
            return True, False, 0, ""
        self.refused += n
        return False, False, 0, "refused"

    def close(self) -> None:
        pass


def test_log_outcomes_are_exact_under_both_threads(tiny_switch_interval: None) -> None:
    """Producers drop (small queue) and fail (an encoding error) while the export thread exports and fails:
    every record ends in exactly one outcome, and no increment is lost."""
    events = sample_events(400)
    assert len(events) >= 100
    cfg = config.LogsConfig(
        enabled=True, endpoint="http://127.0.0.1:9", queue_size=40, batch_size=8, flush_interval=0.01
    )
    counters = slow(SelfMetrics())
    transport = AlternatingTransport()
    sink = LogSink(cfg, counters, transport=transport)
    encode = sink.encoding.encode
    bad = {id(ev) for i, (_, ev) in enumerate(events) if i % 7 == 0}
    refused = [0]  # encodings that raised (only records that found room in the queue get that far)

    def failing_encode(raw: Any, ev: Any, observed: float, sampled: bool) -> bytes:
        if id(ev) in bad:
            refused[0] += 1  # under producer_lock
            raise ValueError("cannot encode")
        return encode(raw, ev, observed, sampled)

    sink.encoding.encode = failing_encode  # type: ignore[method-assign]
    producer_lock = threading.Lock()  # emit runs under the pipeline lock: one producer at a time
    threads, rounds = 6, 8
    start = threading.Barrier(threads)

    def produce() -> None:
        start.wait()
        for _ in range(rounds):
            for raw, ev in events:
                with producer_lock:
                    sink.emit(raw, ev, 1.8e9)

    workers = [threading.Thread(target=produce) for _ in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    sink.shutdown(timeout=30)
    emitted = threads * rounds * len(events)
    out = counters.log_records
    assert out["exported"] == transport.accepted
    assert out["failed"] == refused[0] + transport.refused
    assert out["dropped"] > 0 and refused[0] > 0 and transport.accepted > 0 and transport.refused > 0
    assert out["exported"] + out["dropped"] + out["failed"] == emitted


def test_counters_are_exact_from_many_threads(tiny_switch_interval: None) -> None:
    counters = slow(SelfMetrics())
    threads, rounds = 8, 1_000

    def hammer(i: int) -> None:
        for _ in range(rounds):
            counters.count_log("failed")
            counters.count_log("exported", 2)
            counters.count_object(f"s{i % 2}", "ok", sqs=3, other=1)
            counters.count_source_error("s", "throttled")
            counters.count_extra("exporter_late_events", ("s",))

    workers = [threading.Thread(target=hammer, args=(i,)) for i in range(threads)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    total = threads * rounds
    assert counters.log_records == {"exported": 2 * total, "dropped": 0, "failed": total}
    assert counters.objects == {("s0", "ok"): total // 2, ("s1", "ok"): total // 2}
    assert counters.records[("s0", "sqs")] + counters.records[("s1", "sqs")] == 3 * total
    assert counters.source_errors == {("s", "throttled"): total}
    assert counters.extra == {"exporter_late_events": {("s",): total}}


def test_restored_from_an_older_state_file(tmp_path: Path) -> None:
    """State files written when these counters lived in the aggregate's snapshot still restore them."""
    store = StateStore(tmp_path / "state.db")
    old = {
        "v": 1,
        "calls": [["1", "eu-west-1", "q", "SendMessage", "Data", 5]],
        "records": [["file", "sqs", 5], ["file", "other", 2]],
        "objects": [["file", "ok", 1]],
        "source_errors": [["s3", "throttled", 4]],
        "log_records": {"exported": 5, "dropped": 0, "failed": 0},
        "extra": {"exporter_late_events": [["cw", 3]]},
    }
    store.commit([StateStore.put_op("aggregate", old)])
    agg, counters = Aggregate(), SelfMetrics()
    pipeline = Pipeline([agg], store, counters)
    assert agg.calls == {("1", "eu-west-1", "q", "SendMessage", "Data"): 5}
    assert counters.records == {("file", "sqs"): 5, ("file", "other"): 2}
    assert counters.objects == {("file", "ok"): 1}
    assert counters.source_errors == {("s3", "throttled"): 4}
    assert counters.log_records == {"exported": 5, "dropped": 0, "failed": 0}
    assert counters.extra == {"exporter_late_events": {("cw",): 3}}
    # saved again in the new layout, and read back from it
    counters.count_object("file", "ok")
    pipeline.checkpoint(force=True)
    again = SelfMetrics()
    Pipeline([Aggregate()], store, again)
    assert again.objects == {("file", "ok"): 2}
    assert again.extra == {"exporter_late_events": {("cw",): 3}}
    store.close()
