"""The per-call counting loop and the tables it writes: calls, batch entries, newest event times, the
distinct principals seen per queue, the lag histograms, and the slot cache (labels → table keys).

It runs once per SQS call, so it is the hottest loop of the metrics. `exporter._native.Tally` is the same
component in C; the plain `Tally` here runs when the extension is not built or turned off
(CTSQS_NATIVE=0). `TALLY` is whichever is available; the aggregate composes it and does not know which.
What is rare or policy-heavy stays with the aggregate, reached through the callbacks given at construction:
the table keys of new labels (`slot`), error counts (`count_error`, the error caps), access-map cells of a
new principal (`access_keys`) and principal pruning (`prune`).
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Callable, Iterable
from typing import Any

from ...cache import BoundedCache
from ...model import Call, Labels

_bisect_left = bisect.bisect_left

# what an aggregate's slot holds (see Aggregate._slot): the calls-table key, the queue key, the
# account/region key, the access-map cells per principal, whether the call may change a queue
Slot = tuple[tuple[str, ...], tuple[str, str, str], tuple[str, str], dict[Any, Any], bool]
SlotFn = Callable[[Labels], Slot]
ErrorFn = Callable[[tuple[str, str, str], str, str], None]
AccessFn = Callable[[tuple[str, ...], tuple[str, str, str], str | None, Any], tuple[Any, Any, Any]]
PruneFn = Callable[[tuple[str, str, str], dict[str, float]], None]


class Tally:
    """Counts calls into its tables. Settings are fixed at construction; the tables are read (and, on
    restore, refilled in place) by the aggregate. `principal_count` and `shared` may be set."""

    def __init__(
        self,
        *,
        by_arn: bool,
        max_principals: int,
        max_principals_total: int,
        buckets: tuple[float, ...],
        max_slots: int,
        slot: SlotFn,
        count_error: ErrorFn,
        access_keys: AccessFn,
        prune: PruneFn,
    ) -> None:
        self.by_arn = by_arn
        self.max_principals = max_principals
        self.max_principals_total = max_principals_total
        self.buckets = buckets
        self.slot, self.count_error, self.access_keys, self.prune = slot, count_error, access_keys, prune
        self.calls: dict[tuple[str, ...], int] = {}
        self.batch: dict[tuple[str, ...], int] = {}
        # (account, region, queue) → principal → newest event time it was seen at
        self.principals: dict[tuple[str, str, str], dict[str, float]] = {}
        self.newest: dict[tuple[str, str], float] = {}
        # source → [bucket counts..., +Inf count], sum
        self.lag: dict[str, list[float]] = {}
        self.slots: BoundedCache[Labels, Slot] = BoundedCache(max_slots)
        self.changes: list[int] = []
        self.principal_count = 0
        # several replicas: each timed call's principal also goes to shared.add (exporter.shared)
        self.shared: Any = None

    def add_calls(self, calls: Iterable[Call], now: Any, source: str) -> int:
        """Count the calls; returns how many. `changes` then holds the positions of those whose slot says
        they may change a queue's policy or encryption."""
        slots_get = self.slots.get
        changes = self.changes = []
        table = self.calls
        table_get = table.get
        batch = self.batch
        newest = self.newest
        newest_get = newest.get
        principals = self.principals
        by_arn = self.by_arn
        shared = self.shared
        buckets = self.buckets
        lag_counts = self.lag.get(source)
        kept = 0
        for call in calls:
            slot = slots_get(call.labels)
            if slot is None:
                slot = self.slot(call.labels)
            kept += 1
            key, qkey, akey, whos, change = slot
            table[key] = table_get(key, 0) + 1
            error = call.error
            if error is not None:
                self.count_error(qkey, key[3], error)
            if call.entries:
                bkey = key[:4]
                batch[bkey] = batch.get(bkey, 0) + call.entries
            principal = call.principal_arn if by_arn else call.principal_role
            ak = whos.get(principal)
            if ak is None:
                ak = self.access_keys(key, qkey, principal, whos)
            cell = ak[0] if error is None else ak[1]
            if cell is not None:
                cell[0] += 1
            cell = ak[2]
            if cell is not None:
                cell[0] += 1
            if change:
                changes.append(kept - 1)
            t = call.time
            if t is None:
                continue
            if t > newest_get(akey, 0.0):
                newest[akey] = t
            if principal is not None:
                if shared is not None:
                    shared.add(*qkey, t, principal)
                seen = principals.get(qkey)
                if seen is None:
                    seen = principals[qkey] = {}
                old = seen.get(principal)
                if old is None:
                    if len(seen) >= self.max_principals or self.principal_count >= self.max_principals_total:
                        self.prune(qkey, seen)
                    seen[principal] = t
                    self.principal_count += 1
                elif t > old:
                    seen[principal] = t
            lag = now - t
            if lag_counts is None:
                lag_counts = self.lag[source] = [0.0] * (len(buckets) + 2)
            lag_counts[_bisect_left(buckets, lag)] += 1
            lag_counts[-1] += lag
        return kept


def _native() -> Any:
    """exporter._native.Tally, or None without the extension (not built, or CTSQS_NATIVE=0)."""
    if os.environ.get("CTSQS_NATIVE", "1") == "0":
        return None
    try:
        from ..._native import Tally as NativeTally
    except ImportError:  # pragma: no cover - depends on the build
        return None
    return NativeTally


TALLY: Any = _native() or Tally
