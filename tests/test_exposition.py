"""The fenced exposition module renders exactly what prometheus_client's own encoders render.

Every family here goes through `exporter.sinks.metrics.exposition` (TextFamily.exposition, and `exposition`
for a registry mixing self-rendered and generic families) and through
`prometheus_client.exposition.generate_latest` and `prometheus_client.openmetrics.exposition.generate_latest`;
the bytes must be equal. An upgrade of prometheus_client that moves any internal the module relies on fails
here."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.exposition import generate_latest as text_latest
from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.openmetrics.exposition import generate_latest as om_latest

from exporter.sinks.metrics.exposition import TextFamily, exposition

LABEL_VALUES = [
    ("111122223333", "eu-west-1", "orders"),
    ("111122223333", "eu-west-1", 'we"ird\\q\nname'),  # every escape the format has
    ("111122223333", "us-east-1", "ünïcode-q"),
    ("", "eu-west-1", "back\\slash\\\\twice"),
    ("444455556666", "eu-west-1", 'quote"only'),
    ("444455556666", "eu-west-1", "new\nline\n"),
]
PLAIN = [
    ("111122223333", "eu-west-1", "orders"),
    ("111122223333", "us-east-1", "payments.fifo"),
    ("444455556666", "eu-west-1", "ünïcode-q"),
    ("444455556666", "ap-southeast-2", "(other)"),
]
SMALL_INTS = [0, 999_999, -999_999, 7]
LARGE_INTS = [1_000_000, 5, 12_345_678, 2**70]
VALUES: list[float] = [0, 1, 7, -1, 999_999, 1_000_000, 12_345_678, -5_000_000, 2.5, 1e-7, 1e21, float("inf")]


def rows(offset: int = 0) -> list[tuple[tuple[str, ...], float]]:
    return [(k, VALUES[(i + offset) % len(VALUES)]) for i, k in enumerate(LABEL_VALUES)]


def text_families() -> list[TextFamily]:
    """Counters and gauges of several shapes, with their label names out of order (they render sorted)."""
    return [
        TextFamily(
            "t_calls",
            "Calls, with a help text that\nspans two lines and a \\ backslash.",
            "counter",
            ["account_id", "region", "queue"],
            rows(),
            {},
        ),
        TextFamily(
            "t_principals",
            'Distinct "principals".',
            "gauge",
            ["region", "queue", "account_id"],
            [((r, q, a), v) for (a, r, q), v in rows(3)],
            {},
        ),
        TextFamily(
            "t_one_label",
            "One label.",
            "counter",
            ["queue"],
            [((k[2],), float(i)) for i, k in enumerate(LABEL_VALUES)],
            {},
        ),
        TextFamily("t_empty_counter", "No series yet.", "counter", ["queue"], [], {}),
        TextFamily("t_empty_gauge", "No series yet.", "gauge", ["queue"], [], {}),
        # no value to escape, every value a small int: the family-at-once paths
        TextFamily(
            "t_plain",
            "Plain label values, small integers.",
            "counter",
            ["queue", "account_id", "region"],
            [((q, a, r), v) for (a, r, q), v in zip(PLAIN, SMALL_INTS, strict=True)],
            {},
        ),
        # plain values, integers past the exponent switch among small ones
        TextFamily(
            "t_plain_large",
            "Plain label values, large integers.",
            "gauge",
            ["region", "account_id"],
            [((r, a), v) for (a, r, _), v in zip(PLAIN, LARGE_INTS, strict=True)],
            {},
        ),
        TextFamily("t_no_labels", "No labels.", "counter", [], [((), 41)], {}),
    ]


def generic_families() -> list[Metric]:
    """What the collector leaves to prometheus_client's encoder: histograms, counters without _created,
    gauges, and empty families."""
    h = HistogramMetricFamily("t_lag_seconds", "Lag.", labels=["source"])
    h.add_metric(["file"], [("60.0", 1.0), ("300.0", 4.0), ("+Inf", 6.0)], 1234.5)
    h.add_metric(['s3"x\\y'], [("60.0", 0.0), ("300.0", 0.0), ("+Inf", 0.0)], 0.0)
    c = CounterMetricFamily("t_records", "Records, by outcome.", labels=["source", "outcome"])
    for i, outcome in enumerate(("sqs", "other", "invalid")):
        c.add_metric(["file", outcome], i * 1_000_003)
    g = GaugeMetricFamily("t_newest_seconds", "Newest eventTime.", labels=["account_id", "region"])
    g.add_metric(["111122223333", "eu-west-1"], 1.8e9 + 0.25)
    info = GaugeMetricFamily("t_build_info", "Always 1.", labels=["version", "python_version"])
    info.add_metric(["1.0.0", "3.11.7"], 1)
    empty_counter = CounterMetricFamily("t_nothing", "Nothing counted.", labels=["outcome"])
    empty_hist = HistogramMetricFamily("t_no_lag_seconds", "No lag observed.", labels=["source"])
    return [h, c, g, info, empty_counter, empty_hist]


class Families:
    def __init__(self, families: list[Any]) -> None:
        self.families = families

    def collect(self) -> Iterator[Any]:
        return iter(self.families)


def registry_of(families: list[Any]) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(Families(families))
    return registry


@pytest.mark.parametrize("index", range(len(text_families())))
def test_text_family_renders_as_prometheus_client(index: int) -> None:
    fam = text_families()[index]
    want_text = text_latest(registry_of([text_families()[index]]))
    want_om = om_latest(registry_of([text_families()[index]]))
    for _ in range(2):  # cold and warm label cache
        assert fam.exposition(False).encode() == want_text
        assert fam.exposition(True).encode() + b"# EOF\n" == want_om


def test_samples_are_what_a_generic_consumer_reads() -> None:
    fam = text_families()[0]
    samples = fam.samples
    assert [s.name for s in samples] == ["t_calls_total"] * len(LABEL_VALUES)
    assert [s.labels["queue"] for s in samples] == [k[2] for k in LABEL_VALUES]
    assert [s.value for s in samples] == [v for _, v in rows()]


@pytest.mark.parametrize(
    "accept, oracle",
    [
        ("", text_latest),
        ("text/plain; version=0.0.4", text_latest),
        ("application/openmetrics-text; version=1.0.0", om_latest),
        ("application/openmetrics-text", om_latest),
    ],
)
def test_mixed_registry_is_byte_identical(accept: str, oracle: Any) -> None:
    """Self-rendered families between generic ones, in collection order."""

    def mixed() -> list[Any]:
        t, g = text_families(), generic_families()
        return [g[0], t[0], t[1], g[1], g[2], t[3], t[4], g[3], g[4], t[2], g[5]]

    want = oracle(registry_of(mixed()))
    body, ctype = exposition(registry_of(mixed()), accept)
    assert body == want
    assert ctype.startswith("application/openmetrics-text" if oracle is om_latest else "text/plain")


def test_a_difference_would_show() -> None:
    """The comparison can fail: a family whose text differs from its samples is caught."""
    fam = text_families()[0]
    fam.rows = [(k, v + 1) for k, v in fam.rows]
    fam.samples = [s._replace(value=s.value) for s in text_families()[0].samples]
    assert fam.exposition(False).encode() != text_latest(registry_of([fam]))


@pytest.mark.parametrize("labels", [PLAIN, LABEL_VALUES])
def test_series_new_since_the_last_scrape(labels: list[tuple[str, ...]]) -> None:
    """A warm label cache with new series among the known ones renders as a cold one."""

    def family(n: int, cache: dict[Any, str]) -> TextFamily:
        return TextFamily(
            "t_grow",
            "Growing.",
            "counter",
            ["queue", "account_id"],
            [((q, a), i + n) for i, (a, _, q) in enumerate(labels[: n + 1])],
            cache,
        )

    cache: dict[Any, str] = {}
    for n in range(1, len(labels)):
        family(n - 1, cache).exposition(False)
        want = text_latest(registry_of([family(n, {})]))
        assert family(n, cache).exposition(False).encode() == want
