"""The per-call counting loop and the tables it writes: calls, errors, batch entries, newest event times,
the distinct principals seen per queue, the lag histograms, and its caches: the slot cache (labels → table
keys) and the access cache ((queue, principal) → access-map cells).

It runs once per SQS call, so it is the hottest loop of the metrics. `exporter._native.Tally` is the same
component in C; the plain `Tally` here runs when the extension is not built or turned off
(CTSQS_NATIVE=0). `TALLY` is whichever is available; the aggregate composes it and does not know which.
What is rare or policy-heavy stays with the aggregate, reached through the callbacks given at construction:
the table keys of new labels (`slot`), the errors-table key of a new (labels, error code) pair
(`error_key`, the error caps), the access-map cells of a principal new to a queue (`access_keys`) and
principal pruning (`prune`).
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
# account/region key, the errors-table keys known per error code, whether the call may change a queue
Slot = tuple[tuple[str, ...], tuple[str, str, str], tuple[str, str], dict[str, Any], bool]
SlotFn = Callable[[Labels], Slot]
ErrorFn = Callable[[tuple[str, str, str], str, str, Any], tuple[str, ...]]
# a principal's access-map cells on a queue: principal_calls on success, on error (None: the access map is
# off), and for a call from another account (cells, account, region, queue, caller label) — the
# cross-account cell also depends on the event name: cells[(account, region, queue, caller label, name)]
Access = tuple[Any, Any, Any]
AccessFn = Callable[[tuple[str, str, str], str | None], Access]
PruneFn = Callable[[tuple[str, str, str], dict[str, float]], None]
_LONG = 256  # a principal or queue name longer than this is not remembered (hostile input)


def rememberable(qkey: tuple[str, str, str], principal: str | None) -> bool:
    return (principal is None or len(principal) <= _LONG) and all(len(v) <= _LONG for v in qkey)


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
        error_key: ErrorFn,
        access_keys: AccessFn,
        prune: PruneFn,
    ) -> None:
        self.by_arn = by_arn
        self.max_principals = max_principals
        self.max_principals_total = max_principals_total
        self.buckets = buckets
        self.max_slots = max_slots
        self.slot, self.error_key, self.access_keys, self.prune = slot, error_key, access_keys, prune
        self.calls: dict[tuple[str, ...], int] = {}
        self.errors: dict[tuple[str, ...], int] = {}
        self.batch: dict[tuple[str, ...], int] = {}
        # (account, region, queue) → principal → newest event time it was seen at
        self.principals: dict[tuple[str, str, str], dict[str, float]] = {}
        self.newest: dict[tuple[str, str], float] = {}
        # source → [bucket counts..., +Inf count], sum
        self.lag: dict[str, list[float]] = {}
        self.slots: BoundedCache[Labels, Slot] = BoundedCache(max_slots)
        # (account, region, queue) → principal → its Access; at most max_slots principals in all (then emptied)
        self.access: dict[tuple[str, str, str], dict[str | None, Access]] = {}
        self._access_n = 0
        self.changes: list[int] = []
        self.principal_count = 0
        # several replicas: each timed call's principal also goes to shared.add (exporter.shared)
        self.shared: Any = None

    def forget(self) -> None:
        """Empty the caches (on restore: the admitted queues, caps and access-map cells are replaced)."""
        self.slots.clear()
        self.access.clear()
        self._access_n = 0

    def _remember(self, qkey: tuple[str, str, str], principal: str | None, ak: Access) -> None:
        if not rememberable(qkey, principal):
            return
        if self._access_n >= self.max_slots:
            self.access.clear()
            self._access_n = 0
        whos = self.access.get(qkey)
        if whos is None:
            whos = self.access[qkey] = {}
        whos[principal] = ak
        self._access_n += 1

    def add_calls(self, calls: Iterable[Call], now: Any, source: str) -> int:
        """Count the calls; returns how many. `changes` then holds the positions of those whose slot says
        they may change a queue's policy or encryption."""
        slots_get = self.slots.get
        changes = self.changes = []
        table = self.calls
        table_get = table.get
        errors = self.errors
        access = self.access
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
            key, qkey, akey, known, change = slot
            table[key] = table_get(key, 0) + 1
            error = call.error
            if error is not None:
                ekey = known.get(error)
                if ekey is None:
                    ekey = self.error_key(qkey, key[3], error, known)
                errors[ekey] = errors.get(ekey, 0) + 1
            if call.entries:
                bkey = key[:4]
                batch[bkey] = batch.get(bkey, 0) + call.entries
            principal = call.principal_arn if by_arn else call.principal_role
            whos = access.get(qkey)
            ak = None if whos is None else whos.get(principal)
            if ak is None:
                ak = self.access_keys(qkey, principal)
                self._remember(qkey, principal, ak)
            cell = ak[0] if error is None else ak[1]
            if cell is not None:
                cell[0] += 1
            cross = ak[2]
            if cross is not None:
                cells, account, region, queue, caller = cross
                ckey = (account, region, queue, caller, key[3])
                cell = cells.get(ckey)
                if cell is None:
                    cell = cells[ckey] = [0]
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
