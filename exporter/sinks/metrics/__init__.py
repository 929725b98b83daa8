"""The metrics sink: the aggregate (aggregate), its scrape-time Collector (collector), and the fenced
rendering that relies on prometheus_client's internals (exposition)."""

from __future__ import annotations

from .aggregate import LAG_BUCKETS, LONGEST_WINDOW, OTHER_QUEUE, WINDOWS, Aggregate
from .collector import EXTRA_COUNTERS, AggregateCollector
from .exposition import TextFamily, exposition

__all__ = [
    "EXTRA_COUNTERS",
    "LAG_BUCKETS",
    "LONGEST_WINDOW",
    "OTHER_QUEUE",
    "WINDOWS",
    "Aggregate",
    "AggregateCollector",
    "TextFamily",
    "exposition",
]
