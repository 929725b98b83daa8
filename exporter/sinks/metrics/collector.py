"""The prometheus_client Collector of the metrics sink: the aggregate's families, the exporter's own
counters (exporter.selfmetrics) and build_info, built at scrape time under the pipeline lock."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric

from ...buildinfo import labels as build_labels
from ...selfmetrics import SelfMetrics
from .aggregate import LAG_BUCKETS, Aggregate
from .exposition import TextFamily


class AggregateCollector:
    """prometheus_client Collector that renders an Aggregate, and the exporter's own counters, at scrape time."""

    def __init__(self, agg: Aggregate, lock: Any = None, counters: SelfMetrics | None = None) -> None:
        self.agg = agg
        self.lock = lock
        self.counters = counters if counters is not None else SelfMetrics()
        # family → label values → rendered `name{labels} `; bounded by the series there have been
        self._cache: dict[str, dict[Any, str]] = {}

    def describe(self) -> list[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        if self.lock is not None:
            with self.lock:
                yield from self._render()
        else:
            yield from self._render()

    def _render(self) -> list[Metric]:
        a = self.agg
        p = "cloudtrail_sqs_"
        out: list[Metric] = []

        def counter(name: str, doc: str, labels: list[str], items: Iterable[tuple[Any, Any]]) -> None:
            m = CounterMetricFamily(p + name, doc, labels=labels)
            for k, v in items:
                m.add_metric(k if isinstance(k, tuple) else (k,), v)
            out.append(m)

        def big(name: str, doc: str, typ: str, labels: list[str], table: dict[Any, Any]) -> None:
            # the per-queue families: rendered straight to text, rows copied while the lock is held
            cache = self._cache.setdefault(name, {})
            out.append(TextFamily(p + name, doc, typ, labels, list(table.items()), cache))

        q3 = ["account_id", "region", "queue"]
        big(
            "api_calls",
            "SQS API calls seen in CloudTrail, failed or not.",
            "counter",
            [*q3, "event_name", "event_category"],
            a.calls,
        )
        big(
            "api_errors",
            "SQS API calls whose CloudTrail record carries an errorCode.",
            "counter",
            [*q3, "event_name", "error_code"],
            a.errors,
        )
        big("batch_entries", "Entries in SQS *Batch calls (messages touched).", "counter", [*q3, "event_name"], a.batch)
        big(
            "distinct_principals",
            "Distinct principals calling the queue within the window (by event time, ending at the "
            "newest event time seen for the account/region).",
            "gauge",
            [*q3, "window"],
            a.distinct_principals(),
        )
        am = a.access
        if am.enabled:
            big(
                "principal_calls",
                "SQS API calls per principal (configured granularity); a queue's first principals keep series "
                'of their own, later ones count under principal="(other)".',
                "counter",
                [*q3, "principal", "outcome"],
                am.principal_calls,
            )
        big(
            "cross_account_calls",
            "SQS API calls whose caller account differs from the queue's account (AWS services excluded).",
            "counter",
            [*q3, "caller_account", "event_name"],
            am.cross_account,
        )
        big(
            "queue_policy_changes",
            "Successful calls that set or change a queue's access policy, by the exposure they leave.",
            "counter",
            [*q3, "exposure"],
            am.policy_changes,
        )
        big(
            "queue_encryption_changes",
            "Successful calls that set a queue's encryption, by the encryption they leave.",
            "counter",
            [*q3, "encryption"],
            am.encryption_changes,
        )
        h = HistogramMetricFamily(p + "delivery_lag_seconds", "Processing time minus eventTime.", labels=["source"])
        for source, counts in a.lag.items():
            cum = 0.0
            buckets = []
            for le, c in zip((*LAG_BUCKETS, float("inf")), counts[:-1], strict=True):
                cum += c
                buckets.append((_le(le), cum))
            h.add_metric([source], buckets, counts[-1])
        out.append(h)
        g = GaugeMetricFamily(
            p + "last_event_timestamp_seconds", "Newest eventTime processed.", labels=["account_id", "region"]
        )
        for k, v in a.newest.items():
            g.add_metric(k, v)
        out.append(g)
        c = self.counters.counts()
        counter("exporter_records", "CloudTrail records read, by outcome.", ["source", "outcome"], c.records)
        counter(
            "exporter_objects",
            "Files, objects or log batches read, by outcome.",
            ["source", "outcome"],
            c.objects,
        )
        counter("exporter_source_errors", "Failed calls to AWS, by kind.", ["source", "kind"], c.source_errors)
        counter("exporter_log_records", "OTel log records, by outcome.", ["outcome"], c.log_records)
        counter("exporter_checkpoint_errors", "Failed attempts to save the state.", [], [((), c.checkpoint_errors)])
        for name, (doc, labels) in EXTRA_COUNTERS.items():
            if name in c.extra:
                counter(name, doc, labels, c.extra[name])
        info = build_labels()
        g = GaugeMetricFamily(p + "exporter_build_info", "Always 1; version, revision, Python.", labels=list(info))
        g.add_metric(list(info.values()), 1)
        out.append(g)
        return out


# Counters other parts of the exporter add (name without prefix → help, labels).
EXTRA_COUNTERS: dict[str, tuple[str, list[str]]] = {
    "exporter_late_events": (
        "Log events that arrived after the late-arrival window had passed them (not counted as calls).",
        ["source"],
    ),
    "exporter_duplicate_events": ("SQS calls not counted: their eventID was counted within dedupe_window.", ["source"]),
}


def _le(v: float) -> str:
    return "+Inf" if v == float("inf") else repr(float(v))
