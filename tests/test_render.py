"""/metrics renders the aggregate's label-heavy families itself: the bytes must equal prometheus_client's."""

from __future__ import annotations

import pytest
from prometheus_client import CollectorRegistry, PlatformCollector
from prometheus_client.exposition import choose_encoder
from prometheus_client.metrics_core import Metric

from exporter.decode.record import SqsEvent
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.metrics import Aggregate, AggregateCollector
from exporter.sinks.metrics.exposition import exposition


def _aggregate() -> Aggregate:
    agg = Aggregate(max_queues=3)
    for i, queue in enumerate(["orders", 'we"ird\\q\nname', "ünïcode-q", "beyond-cap", "(none)"]):
        for n in range(1 + i):
            agg.add(
                SqsEvent(
                    account_id="111122223333",
                    region="eu-west-1",
                    queue=queue,
                    event_name="SendMessageBatch" if n % 2 else "ListQueues",
                    category="Data",
                    error_code="AccessDenied" if n == 1 else None,
                    principal_role=f"arn:aws:iam::111122223333:role/r{n}",
                    principal_arn=f"arn:aws:sts::111122223333:assumed-role/r{n}/s",
                    event_time=1.8e9 + n,
                    batch_entries=3 if n % 2 else 0,
                    queue_url=None,
                    queue_arn=None,
                ),
                1.8e9 + 100,
                "file",
            )
    agg.calls[("1", "r", "big", "SendMessage", "Data")] = 12_345_678  # Go-style exponent
    agg.calls[("1", "r", "neg", "SendMessage", "Data")] = -1
    agg.batch[("1", "r", "q", "SendMessageBatch")] = 2.5
    return agg


def _counters() -> SelfMetrics:
    counters = SelfMetrics()
    counters.register_source("file")
    return counters


class _Generic:
    """The same families as plain prometheus_client Metrics (what the generic encoders see)."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry

    def collect(self) -> list[Metric]:
        out = []
        for fam in self.registry.collect():
            m = Metric(fam.name, fam.documentation, fam.type, fam.unit)
            m.samples = list(fam.samples)
            out.append(m)
        return out


@pytest.mark.parametrize(
    "accept",
    [
        "",
        "text/plain",
        "text/plain; version=1.0.0; escaping=allow-utf-8",
        "application/openmetrics-text",
        "application/openmetrics-text; version=1.0.0",
        "application/openmetrics-text; version=1.0.0; escaping=allow-utf-8",
        "application/openmetrics-text; version=1.0.0; escaping=dots",
    ],
)
def test_exposition_is_byte_identical(accept: str) -> None:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregateCollector(_aggregate(), counters=_counters()))
    PlatformCollector(registry=registry)
    encoder, ctype = choose_encoder(accept)
    want = encoder(_Generic(registry))
    for _ in range(2):  # cold and warm label cache
        body, got_ctype = exposition(registry, accept)
        assert got_ctype == ctype
        assert body == want
