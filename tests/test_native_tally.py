"""The metrics path against its plain Python references (tests/reference.py): the C calls_of against the
reference loop over the scanner's rows, and Aggregate.add_calls against the table-by-table reference:
the same rows and calls must leave the same state."""

from __future__ import annotations

import gzip
import random
from datetime import UTC, datetime, timedelta
from typing import Any

import msgspec
import pytest
import reference
from hypothesis import given, settings
from hypothesis import strategies as st

from exporter.decode import scan
from exporter.filters import Filters
from exporter.generator import Generator
from exporter.model import Call
from exporter.sinks import metrics
from exporter.sinks.metrics import Aggregate

pytestmark = pytest.mark.skipif(scan.scanner is None, reason="the C accelerator is not built")

STATE = ("calls", "errors", "batch", "principals", "newest", "queues", "lag")


def rows_of(seed: int, n: int = 3000, queues: int = 12) -> list[Any]:
    g = Generator(seed=seed, queues_per_account=queues, error_rate=0.2)
    recs = []
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    for i in range(n):
        acct, region = g.accounts[i % 2], g.regions[(i // 2) % 2]
        recs.append(g.sqs_record(acct, region, t0 + timedelta(seconds=i)))
    # a few odd ones: no eventTime, an unreadable one, an empty string, no recipient account
    recs[0].pop("eventTime")
    recs[1]["eventTime"] = "yesterday"
    recs[2]["eventTime"] = ""
    recs[3].pop("recipientAccountId")
    recs[4]["errorCode"] = ""  # no error, as for Python's `error or None`
    out = scan.scanner.rows(msgspec.json.encode({"Records": recs}), False)
    assert out is not None
    return out[0]


def state(agg: Aggregate) -> dict[str, Any]:
    return {k: getattr(agg, k) for k in STATE}


def both(calls: list[Call], now: Any, make: Any) -> None:
    """Count `calls` with Aggregate.add_calls and with the reference, in the same chunks; compare everything."""
    c, p = make(), make()
    for i in range(0, len(calls), 700):
        chunk = calls[i : i + 700]
        assert c.add_calls(chunk, now, "file") == reference.add_calls(p, chunk, now, "file")
    assert state(c) == state(p)
    for table in ("principal_calls", "cross_account", "policy_changes", "encryption_changes", "named", "callers"):
        assert getattr(c.access, table) == getattr(p.access, table), table
    # the slots' table keys (their per-principal access keys are a cache of what the snapshot compares)
    assert {k: (*v[:3], v[4]) for k, v in c._slots.items()} == {k: (*v[:3], v[4]) for k, v in p._slots.items()}


def test_calls_of_matches_python() -> None:
    for seed in (1, 2, 3):
        rows = rows_of(seed)
        assert scan.scanner.calls(rows) == reference.calls_of(rows)
        # and again from warm caches
        assert scan.scanner.calls(rows) == reference.calls_of(rows)


def with_times(rows: list[Any], times: list[Any]) -> list[Any]:
    return [(*r[:4], t, *r[5:]) for r, t in zip(rows, times, strict=False)]


ODD_TIMES = [
    "2026-11-01T00:00:00Z",
    "2024-02-29T23:59:59Z",
    "2026-02-29T00:00:00Z",  # no such day: Python says None
    "2026-11-01T24:00:00Z",
    "2026-11-01T00:00:60Z",
    "2026-11-01T00:00:00.Z",
    "2026-11-01T00:00:00.1Z",
    "2026-11-01T00:00:00.123456Z",
    "2026-11-01T00:00:00.1234567Z",  # seven digits: Python truncates
    "2026-11-01 00:00:00Z",
    "2026-11-01T00:00:00+02:00",
    "2026-11-01T00:00:00",
    "0001-01-01T00:00:00Z",
    "1969-12-31T23:59:59.999999Z",
    "9999-12-31T23:59:59.999999Z",  # beyond 2**53 microseconds: left to Python
    "2026-13-01T00:00:00Z",
    "2026-1a-01T00:00:00Z",
    "２０２６-11-01T00:00:00Z",
    "\ud800",
    "",
    None,
]


def test_event_times_parse_as_python_does() -> None:
    rows = rows_of(9, n=len(ODD_TIMES))
    odd = with_times(rows, ODD_TIMES)
    c, p = scan.scanner.calls(odd), reference.calls_of(odd)
    assert [x.time for x in c] == [x.time for x in p]
    assert c == p


@settings(max_examples=300, deadline=None)
@given(
    t=st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59, 59, 999999)),
    digits=st.integers(0, 8),
)
def test_event_times_hypothesis(t: datetime, digits: int) -> None:
    fraction = f"{t.microsecond:06d}{t.microsecond % 97:02d}"[:digits]
    text = t.strftime("%Y-%m-%dT%H:%M:%S") + ("." + fraction if digits else "") + "Z"
    rows = with_times(rows_of(9, n=5), [text])
    c, p = scan.scanner.calls(rows[:1]), reference.calls_of(rows[:1])
    assert c[0].time == p[0].time, text
    assert type(c[0].time) is type(p[0].time)


@pytest.mark.parametrize(
    "make",
    [
        lambda: Aggregate(),
        lambda: Aggregate(granularity="arn"),
        lambda: Aggregate(max_queues=5),  # the rest goes to (other)
        lambda: Aggregate(max_principals_per_queue=3),  # pruning, through the Python callback
    ],
    ids=["role", "arn", "max-queues", "max-principals"],
)
def test_add_calls_matches_python(make: Any) -> None:
    calls = reference.calls_of(rows_of(7))
    both(calls, 1.7925e9, make)


def test_filtered_calls_match_python() -> None:
    """The filters run before the aggregate (in the pipeline): what they keep counts alike in C and Python."""
    calls = reference.calls_of(rows_of(7))
    kept, _ = Filters(exclude_queues="^orders", include_accounts=["111122220000"]).select(calls, [])
    assert 0 < len(kept) < len(calls)
    both(kept, 1.7925e9, Aggregate)


def test_times_python_counts_differently_are_left_to_it() -> None:
    """An int time (not from CloudTrail, but Aggregate.add accepts it) is counted as Python compares it."""
    calls = reference.calls_of(rows_of(4, n=500))
    odd = [c if i % 97 else msgspec.structs.replace(c, time=int(c.time or 0)) for i, c in enumerate(calls)]
    both(odd, 1.7925e9, Aggregate)
    c = Aggregate()
    assert c.add_calls(odd, 1.7925e9, "file") == len(odd)
    assert sum(c.calls.values()) == len(odd)


def test_lags_on_bucket_bounds() -> None:
    """bisect_left: a lag equal to a bound falls in that bound's bucket."""
    calls = reference.calls_of(rows_of(8, n=400))
    newest = max(c.time for c in calls if c.time is not None)
    for bound in metrics.LAG_BUCKETS[:4]:
        both(calls, newest + float(bound), Aggregate)


def test_an_int_clock_takes_the_python_loop() -> None:
    calls = reference.calls_of(rows_of(5, n=300))
    both(calls, 1_792_500_000, Aggregate)


def test_no_histogram_before_the_first_timed_call() -> None:
    calls = [c for c in reference.calls_of(rows_of(6, n=300)) if c.time is None]
    assert calls
    agg = Aggregate()
    agg.add_calls(calls, 1.7925e9, "file")
    assert agg.lag == {}


@settings(max_examples=60, deadline=None)
@given(
    seed=st.integers(0, 10_000),
    max_queues=st.integers(1, 30),
    max_principals=st.integers(1, 6),
    arn=st.booleans(),
    now=st.floats(min_value=0, max_value=3e9, allow_nan=False),
)
def test_add_calls_matches_python_hypothesis(
    seed: int, max_queues: int, max_principals: int, arn: bool, now: float
) -> None:
    rng = random.Random(seed)
    rows = rows_of(seed % 50, n=400, queues=rng.randint(1, 20))
    calls = scan.scanner.calls(rows)
    assert calls == reference.calls_of(rows)
    rng.shuffle(calls)

    def make() -> Aggregate:
        granularity = "arn" if arn else "role"
        return Aggregate(max_queues=max_queues, granularity=granularity, max_principals_per_queue=max_principals)

    both(calls, now, make)


def test_a_whole_generated_delivery_counts_the_same_through_the_pipeline(tmp_path: Any) -> None:
    """End to end through extract_calls: Aggregate.add_calls and the reference give the same Aggregate."""
    from exporter.decode.delivery import extract_calls

    g = Generator(seed=11, queues_per_account=20)
    path = tmp_path / "x.json.gz"
    g.write_file(path, g.accounts[0], g.regions[0], datetime(2026, 11, 1, tzinfo=UTC), timedelta(hours=1), 2000)
    data = path.read_bytes()
    assert gzip.decompress(data)
    fast = extract_calls(data)
    assert fast is not None
    _, calls = fast
    both(calls, 1.7925e9, Aggregate)


def test_repeated_keys_are_one_object_and_still_per_caller_where_they_must_be() -> None:
    """The scanner hands out one tuple per repeated key (calls_of's identity caches rely on it). Without
    recipientAccountId the account comes from the caller, so the same key must still give each caller's."""
    g = Generator(seed=21, queues_per_account=1)
    t0 = datetime(2026, 11, 1, tzinfo=UTC)
    a = g.sqs_record(g.accounts[0], g.regions[0], t0)
    # a queue named without URL or ARN: nothing in the key itself says whose it is
    a.update(eventName="CreateQueue", requestParameters={"queueName": "q1"}, eventCategory="Management")
    a.pop("resources", None)
    a.pop("responseElements", None)
    same = [dict(a, eventID=f"e{i}") for i in range(3)]
    other = dict(a, eventID="x", userIdentity=dict(a["userIdentity"], accountId="999988887777"))
    other["userIdentity"].pop("arn", None)
    for r in (*same, other):
        r.pop("recipientAccountId", None)
    out = scan.scanner.rows(msgspec.json.encode({"Records": [*same, other]}), False)
    assert out is not None
    rows = out[0]
    assert rows[0][0] is rows[1][0] is rows[2][0] is rows[3][0]  # one dkey object
    assert rows[0][1] is rows[1][1] and rows[0][1] is not rows[3][1]
    for _ in range(2):  # cold, then warm caches
        c, p = scan.scanner.calls(rows), reference.calls_of(rows)
        assert c == p
    assert c[0].labels.account_id != c[3].labels.account_id  # different accounts
