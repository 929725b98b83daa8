"""Aggregated metric state, updated per event in plain dicts and rendered at scrape time."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from typing import Any, Literal

from prometheus_client.metrics_core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

from ..buildinfo import labels as build_labels
from ..cache import BoundedCache
from ..decode.record import SqsEvent
from ..model import NO_QUEUE, NO_REF, Call, Labels
from ..selfmetrics import SelfMetrics

_bisect_left = bisect.bisect_left
OTHER_QUEUE = "(other)"
WINDOWS: tuple[tuple[str, float], ...] = (("15m", 900.0), ("1h", 3600.0), ("24h", 86400.0))
LONGEST_WINDOW = WINDOWS[-1][1]
LAG_BUCKETS: tuple[float, ...] = (
    60,
    120,
    300,
    600,
    900,
    1800,
    3600,
    7200,
    21600,
    43200,
    86400,
    604800,
)
RECORD_OUTCOMES = ("sqs", "other", "invalid")
OBJECT_OUTCOMES = ("ok", "skipped", "failed")
LOG_OUTCOMES = ("exported", "dropped", "failed")
_MAX_SLOTS = 50_000
# an event's keys in the calls, principals and newest tables (see Aggregate._slot)
_Slot = tuple[tuple[str, str, str, str, str], tuple[str, str, str], tuple[str, str]]


class Aggregate:
    """Everything the metrics show, as plain dicts keyed by label tuples. Not thread-safe: callers
    hold the pipeline lock per object (never per event). A `Sink` of the pipeline, checkpointed with it."""

    wants_raw = False
    state_key = "aggregate"

    def __init__(
        self,
        max_queues: int = 1000,
        granularity: str = "role",
        max_principals_per_queue: int = 100_000,
    ) -> None:
        self.max_queues = max_queues
        self.by_arn = granularity == "arn"
        self.max_principals = max_principals_per_queue
        self.calls: dict[tuple[str, str, str, str, str], int] = {}
        self.errors: dict[tuple[str, str, str, str, str], int] = {}
        self.batch: dict[tuple[str, str, str, str], int] = {}
        # (account, region, queue) → principal → newest event time it was seen at
        self.principals: dict[tuple[str, str, str], dict[str, float]] = {}
        self.newest: dict[tuple[str, str], float] = {}
        self.queues: set[tuple[str, str, str]] = set()
        # source → [bucket counts..., +Inf count], sum
        self.lag: dict[str, list[float]] = {}
        # several replicas: distinct principals go to Redis too (exporter.shared.SharedState)
        self.shared: Any = None
        # labels → table keys (see _slot); cleared on restore, which replaces the admitted queues
        self._slots: BoundedCache[Labels, _Slot | Literal[False]] = BoundedCache(_MAX_SLOTS)

    # -- as a sink ---------------------------------------------------------------------------------
    def consume(self, calls: list[Call], raws: list[Any], observed: float, source: str) -> Callable[[], None] | None:
        """Count one object's calls; with several replicas, what goes to Redis is sent once the pipeline
        lock is released."""
        self.add_calls(calls, observed, source)
        shared = self.shared
        if shared is None:
            return None
        batch = shared.take()  # under the pipeline lock, like every `add`
        return lambda: shared.send(batch)

    # -- per event ---------------------------------------------------------------------------------
    def add(self, ev: SqsEvent, now: float, source: str) -> bool:
        """Count one SQS event."""
        labels = Labels(ev.account_id, ev.region, ev.queue, ev.event_name, ev.category)
        call = Call(labels, ev.error_code, ev.batch_entries, ev.event_time, ev.principal_role, ev.principal_arn, NO_REF)
        return self.add_calls((call,), now, source) == 1

    def add_calls(self, calls: Iterable[Call], now: float, source: str, kept_flags: list[bool] | None = None) -> int:
        """Count SQS calls; returns how many the filters kept, and appends to `kept_flags` whether each one was."""
        slots_get = self._slots.get
        table = self.calls
        table_get = table.get
        newest = self.newest
        newest_get = newest.get
        principals = self.principals
        by_arn = self.by_arn
        shared = self.shared
        buckets = LAG_BUCKETS
        lag_counts = self.lag.get(source)
        flag = kept_flags.append if kept_flags is not None else None
        kept = 0
        for call in calls:
            slot = slots_get(call.labels)
            if slot is None:
                slot = self._slot(call.labels)
            if slot is False:
                if flag is not None:
                    flag(False)
                continue
            kept += 1
            if flag is not None:
                flag(True)
            key, qkey, akey = slot
            table[key] = table_get(key, 0) + 1
            if call.error is not None:
                ekey = (*qkey, key[3], call.error)
                self.errors[ekey] = self.errors.get(ekey, 0) + 1
            if call.entries:
                bkey = key[:4]
                self.batch[bkey] = self.batch.get(bkey, 0) + call.entries
            t = call.time
            if t is None:
                continue
            if t > newest_get(akey, 0.0):
                newest[akey] = t
            principal = call.principal_arn if by_arn else call.principal_role
            if principal is not None:
                if shared is not None:
                    shared.add(*qkey, t, principal)
                seen = principals.get(qkey)
                if seen is None:
                    seen = principals[qkey] = {}
                old = seen.get(principal)
                if old is None:
                    if len(seen) >= self.max_principals:
                        self._prune_principals(qkey, seen)
                    seen[principal] = t
                elif t > old:
                    seen[principal] = t
            # observe_lag, inlined: this runs once per event
            lag = now - t
            if lag_counts is None:
                lag_counts = self.lag[source] = [0.0] * (len(buckets) + 2)
            lag_counts[_bisect_left(buckets, lag)] += 1
            lag_counts[-1] += lag
        return kept

    def _slot(self, labels: Labels) -> _Slot | Literal[False]:
        """The table keys of calls with these labels (queue capped to OTHER_QUEUE). The answer is
        remembered: a queue, once admitted or refused, stays so. (The pipeline applies the filters.)"""
        account, region, queue, name, category = labels
        if queue != NO_QUEUE:
            qkey = (account, region, queue)
            if qkey not in self.queues:
                if len(self.queues) < self.max_queues:
                    self.queues.add(qkey)
                else:
                    queue = OTHER_QUEUE
        slot: _Slot = ((account, region, queue, name, category), (account, region, queue), (account, region))
        if all(len(v) <= 256 for v in labels):  # hostile long names are not remembered
            self._slots.put(labels, slot)
        return slot

    def observe_lag(self, source: str, lag: float) -> None:
        h = self.lag.get(source)
        if h is None:
            h = self.lag[source] = [0.0] * (len(LAG_BUCKETS) + 2)
        h[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        h[-1] += lag

    def _prune_principals(self, pkey: tuple[str, str, str], seen: dict[str, float]) -> None:
        """Keep a queue's principal map bounded: forget what left the longest window, then the oldest."""
        horizon = self.newest.get(pkey[:2], 0.0) - LONGEST_WINDOW
        for p in [p for p, t in seen.items() if t <= horizon]:
            del seen[p]
        if len(seen) >= self.max_principals:
            oldest = sorted(seen.items(), key=lambda kv: kv[1])[: len(seen) // 10 or 1]
            for p, _ in oldest:
                del seen[p]

    def prune(self) -> None:
        """Drop principals older than the longest window behind their account/region's newest event."""
        for pkey, seen in list(self.principals.items()):
            horizon = self.newest.get(pkey[:2], 0.0) - LONGEST_WINDOW
            stale = [p for p, t in seen.items() if t <= horizon]
            for p in stale:
                del seen[p]
            # an emptied queue keeps its key: its gauge reads 0 rather than vanishing (queues are capped)

    # -- views -------------------------------------------------------------------------------------
    def distinct_principals(self) -> dict[tuple[str, str, str, str], int]:
        if self.shared is not None:  # the global figure, the same on every replica
            shared = self.shared.distinct()
            if shared is not None:
                return shared
        out: dict[tuple[str, str, str, str], int] = {}
        for (account, region, queue), seen in self.principals.items():
            newest = self.newest.get((account, region))
            if newest is None:
                continue
            times = list(seen.values())
            for label, width in WINDOWS:
                start = newest - width
                out[(account, region, queue, label)] = sum(1 for t in times if t > start)
        return out

    # -- persistence -------------------------------------------------------------------------------
    def snapshot(self) -> dict[str, Any]:
        self.prune()
        return {
            "v": 1,
            "calls": [[*k, v] for k, v in self.calls.items()],
            "errors": [[*k, v] for k, v in self.errors.items()],
            "batch": [[*k, v] for k, v in self.batch.items()],
            "principals": [[*k, seen] for k, seen in self.principals.items()],
            "newest": [[*k, v] for k, v in self.newest.items()],
            "queues": [list(q) for q in self.queues],
            "lag": self.lag,
        }

    def restore(self, snap: dict[str, Any]) -> None:
        def rows(name: str) -> Iterator[tuple[tuple[Any, ...], Any]]:
            for row in snap.get(name, ()):
                yield tuple(row[:-1]), row[-1]

        self._slots.clear()
        self.calls = dict(rows("calls"))  # type: ignore[arg-type]
        self.errors = dict(rows("errors"))  # type: ignore[arg-type]
        self.batch = dict(rows("batch"))  # type: ignore[arg-type]
        self.principals = {k: dict(v) for k, v in rows("principals")}  # type: ignore[misc]
        self.newest = dict(rows("newest"))  # type: ignore[arg-type]
        self.queues = {tuple(q) for q in snap.get("queues", ())}  # type: ignore[misc]
        self.lag = {k: list(v) for k, v in snap.get("lag", {}).items()}


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
}


def _le(v: float) -> str:
    return "+Inf" if v == float("inf") else repr(float(v))


class TextFamily(Metric):
    """A label-heavy family that renders its own exposition text (`exposition`), in the exact format of
    prometheus_client's encoders: 25k series through Sample objects and the generic encoder take close
    to a second, this takes milliseconds. `samples` are built only when a generic consumer asks."""

    def __init__(
        self,
        name: str,
        documentation: str,
        typ: str,
        labels: list[str],
        rows: list[tuple[tuple[str, ...], float]],
        cache: dict[Any, str],
    ) -> None:
        self._built: list[Sample] | None = None
        super().__init__(name, documentation, typ)
        self.labels = labels
        self.rows = rows
        self.cache = cache

    @property  # type: ignore[override]
    def samples(self) -> list[Sample]:
        if self._built is None:
            name = self.name + "_total" if self.type == "counter" else self.name
            labels = self.labels
            self._built = [Sample(name, dict(zip(labels, k, strict=True)), v, None, None) for k, v in self.rows]
        return self._built

    @samples.setter
    def samples(self, value: list[Sample]) -> None:
        self._built = value or None

    def exposition(self, openmetrics: bool) -> str:
        """HELP, TYPE and sample lines, as prometheus_client renders them (labels sorted by name)."""
        name = sample = self.name
        if self.type == "counter":
            sample = name + "_total"
            if not openmetrics:
                name = sample
        doc = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        if openmetrics:
            doc = doc.replace('"', r"\"")
        get = self.cache.get
        for key, _ in self.rows:
            if get(key) is None:
                self._head(sample, key)
        cache = self.cache
        # floatToGoString of a small int is repr(float(v)); larger ones switch to exponents
        lines = [
            f"{cache[k]}{v}.0\n"
            if type(v) is int and -1_000_000 < v < 1_000_000
            else f"{cache[k]}{floatToGoString(v)}\n"
            for k, v in self.rows
        ]
        return f"# HELP {name} {doc}\n# TYPE {name} {self.type}\n" + "".join(lines)

    def _head(self, sample: str, key: tuple[str, ...]) -> None:
        labels = self.labels
        pairs = ",".join(f'{labels[i]}="{_escape(key[i])}"' for i in sorted(range(len(labels)), key=labels.__getitem__))
        self.cache[key] = f"{sample}{{{pairs}}} "


def _escape(v: str) -> str:
    if "\\" in v or "\n" in v or '"' in v:
        return v.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return v
