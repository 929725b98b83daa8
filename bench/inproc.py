"""Measurements made inside the bench process: the gunzip floor, the naive baseline, one /metrics scrape."""

from __future__ import annotations

import gzip
import http.client
import io
import json
import shutil
import statistics
import subprocess
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

from isal import isal_zlib
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from exporter.decode.record import SqsEvent
from exporter.generator import SQS_EVENTS
from exporter.selfmetrics import SelfMetrics
from exporter.server import MetricsServer
from exporter.sinks.metrics import Aggregate, AggregateCollector

CHUNK = 1 << 20


def timed(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """(cpu seconds, wall seconds, result) of one call."""
    c0, w0 = time.process_time(), time.perf_counter()
    out = fn()
    return time.process_time() - c0, time.perf_counter() - w0, out


def floor_reader(blobs: list[bytes]) -> int:
    """isal's C gzip reader streaming every member into one reused 1 MiB buffer."""
    buf = bytearray(CHUNK)
    total = 0
    for data in blobs:
        reader = isal_zlib._GzipReader(io.BytesIO(data))
        while n := reader.readinto(buf):
            total += n
    return total


def floor_decompressobj(blobs: list[bytes]) -> int:
    """isal_zlib.decompressobj in bounded chunks (the allocator hands the same blocks back)."""
    total = 0
    for data in blobs:
        while data:
            d = isal_zlib.decompressobj(wbits=31)
            while data:
                total += len(d.decompress(data, CHUNK))
                data = d.unconsumed_tail
                if d.eof:
                    break
            total += len(d.flush())
            data = d.unused_data  # next gzip member, if any
    return total


def naive(blobs: list[bytes]) -> Counter[tuple[str, str]]:
    """What one would write first: stdlib gzip, json.loads, a filter and a Counter."""
    counts: Counter[tuple[str, str]] = Counter()
    for data in blobs:
        doc = json.loads(gzip.decompress(data))
        for rec in doc.get("Records") or ():
            if rec.get("eventSource") != "sqs.amazonaws.com":
                continue
            params = rec.get("requestParameters") or {}
            url = params.get("queueUrl")
            queue = url.rsplit("/", 1)[-1] if url else params.get("queueName") or "(none)"
            counts[(queue, rec.get("eventName"))] += 1
    return counts


# -- scrape --------------------------------------------------------------------------------------------------


def scrape_aggregate(queues: int = 1000, names: int = 25) -> Aggregate:
    """An aggregate shaped like a busy deployment: `queues` × `names` call series, errors, batches, principals."""
    agg = Aggregate(max_queues=queues)
    event_names = [*SQS_EVENTS, *(f"FutureApi{i}" for i in range(max(0, names - len(SQS_EVENTS))))][:names]
    t = 1.8e9
    for q in range(queues):
        account = f"{111122220000 + q % 4:012d}"
        region = ("us-east-1", "eu-west-1")[q % 2]
        queue = f"service-{q:04d}-events"
        for i, name in enumerate(event_names):
            for p in range(2 if i < 5 else 1):
                role = f"arn:aws:iam::{account}:role/app-{(q + p + i) % 7}"
                agg.add(
                    SqsEvent(
                        account_id=account,
                        region=region,
                        queue=queue,
                        event_name=name,
                        category="Data" if i < 7 else "Management",
                        error_code="AccessDenied" if i in (1, 9) else None,
                        principal_role=role,
                        principal_arn=role + "/s",
                        event_time=t - (q + i) * 30.0,
                        batch_entries=3 if name.endswith("Batch") else 0,
                        queue_url=None,
                        queue_arn=None,
                    ),
                    t + 120.0,
                    "s3",
                )
    return agg


def scrape(agg: Aggregate, repeats: int = 15) -> dict[str, Any]:
    """Median wall time of GET /metrics against the real server, as text, text+gzip and OpenMetrics."""
    registry = CollectorRegistry(auto_describe=False)
    counters = SelfMetrics()
    counters.register_source("s3")  # the zero series of one source, as the daemon shows them
    registry.register(AggregateCollector(agg, counters=counters))
    ProcessCollector(registry=registry)
    PlatformCollector(registry=registry)
    server = MetricsServer("127.0.0.1", 0, registry, lambda: (True, "ok"))
    server.start()
    out: dict[str, Any] = {}
    try:
        variants = {
            "text": {"Accept": "text/plain"},
            "text_gzip": {"Accept": "text/plain", "Accept-Encoding": "gzip"},
            "openmetrics": {"Accept": "application/openmetrics-text; version=1.0.0"},
        }
        for label, headers in variants.items():
            times = []
            body = b""
            for i in range(repeats + 1):
                conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=30)
                t0 = time.perf_counter()
                conn.request("GET", "/metrics", headers=headers)
                resp = conn.getresponse()
                body = resp.read()
                dt = time.perf_counter() - t0
                conn.close()
                if i:  # the first one warms up
                    times.append(dt)
            out[label] = {"ms": statistics.median(times) * 1000, "min_ms": min(times) * 1000, "bytes": len(body)}
            if label == "text":
                out["series"] = sum(1 for line in body.splitlines() if line and not line.startswith(b"#"))
                out["promtool"] = promtool_check(body)
    finally:
        server.stop()
    return out


def promtool_check(body: bytes) -> str:
    exe = shutil.which("promtool")
    if exe is None:
        return "not installed"
    p = subprocess.run([exe, "check", "metrics"], input=body, capture_output=True, timeout=60)
    text = (p.stdout + p.stderr).decode(errors="replace").strip()
    return "ok" if p.returncode == 0 and not text else f"rc={p.returncode} {text[:300]}"
