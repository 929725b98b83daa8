"""Reference oracles for the differential tests: plain Python versions of loops production runs in C
(or runs once, in one place). Not imported by the exporter."""

from __future__ import annotations

import bisect
from collections.abc import Iterable
from typing import Any

from exporter.access import principal_caller_account
from exporter.decode import scan
from exporter.decode.record import parse_time
from exporter.model import Call
from exporter.sinks.metrics import LAG_BUCKETS, Aggregate


def calls_of(rows: Iterable[scan.Row]) -> list[Call]:
    """Scanner.calls without its caches: the scanner's rows → Calls, each derived afresh."""
    calls: list[Call] = []
    for dkey, ikey, error, entries, etime, event_id, _ in rows:
        labels, ref, batch = scan.derived(dkey, ikey)
        role, arn = scan.principals_of(ikey)
        calls.append(Call(labels, error or None, entries if batch else 0, parse_time(etime), role, arn, ref, event_id))
    return calls


def add_calls(agg: Aggregate, calls: Iterable[Call], now: Any, source: str) -> int:
    """Aggregate.add_calls, written out plainly: what each call adds to each table."""
    kept = 0
    for call in calls:
        slot = agg._slots.get(call.labels)
        if slot is None:
            slot = agg._slot(call.labels)
        kept += 1
        key, qkey, akey = slot[:3]
        who = call.principal_arn if agg.by_arn else call.principal_role
        agg.access.add(qkey, key[3], call.error, who, principal_caller_account(who))
        agg.calls[key] = agg.calls.get(key, 0) + 1
        if call.error is not None:
            ekey = (*qkey, key[3], call.error)
            agg.errors[ekey] = agg.errors.get(ekey, 0) + 1
        if call.entries:
            agg.batch[key[:4]] = agg.batch.get(key[:4], 0) + call.entries
        t = call.time
        if t is None:
            continue
        if t > agg.newest.get(akey, 0.0):
            agg.newest[akey] = t
        principal = call.principal_arn if agg.by_arn else call.principal_role
        if principal is not None:
            seen = agg.principals.setdefault(qkey, {})
            old = seen.get(principal)
            if old is None:
                if len(seen) >= agg.max_principals:
                    agg._prune_principals(qkey, seen)
                seen[principal] = t
            elif t > old:
                seen[principal] = t
        lag = now - t
        counts = agg.lag.setdefault(source, [0.0] * (len(LAG_BUCKETS) + 2))
        counts[bisect.bisect_left(LAG_BUCKETS, lag)] += 1
        counts[-1] += lag
    return kept
