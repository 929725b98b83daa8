"""The metric state: calls, errors, batch entries, principals, lag and newest event times, and the access
map (exporter.sinks.metrics.access_map), as plain dicts keyed by label tuples, updated per object and checkpointed
with the pipeline's progress."""

from __future__ import annotations

import bisect
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...access import POLICY_EVENTS, principal_caller_account, record_changes
from ...cache import BoundedCache
from ...decode.record import SqsEvent
from ...model import NO_QUEUE, NO_REF, OTHER_QUEUE, Call, Labels
from . import sections
from .access_map import ERROR, OTHER, SUCCESS, AccessMap
from .caps import LabelCaps
from .tally import TALLY

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
_MAX_SLOTS = 50_000
# an event's keys in the calls, principals and newest tables (see Aggregate._slot)
# a principal's counter cells in the access map: principal_calls on success, on error (None: the map is off),
# and from another account what names its cross_account cell (see Tally.add_calls)
_Access = tuple[list[int] | None, list[int] | None, tuple[Any, ...] | None]
# an event's keys in the calls, principals and newest tables, its errors-table keys per error code, and
# whether it may change a queue's policy or encryption (see Aggregate._slot)
_Slot = tuple[
    tuple[str, str, str, str, str], tuple[str, str, str], tuple[str, str], BoundedCache[str, tuple[str, ...]], bool
]
_MAX_CODES = 256  # error codes remembered per slot (a miss only recomputes their key)


class _Tallied:
    """An attribute of the aggregate that is the tally's: a table (the same object for the aggregate's whole
    life: setting it refills it, as restore does) or, with `plain`, a value set through."""

    def __init__(self, plain: bool = False) -> None:
        self.plain = plain

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, agg: Any, owner: type | None = None) -> Any:
        return getattr(agg._tally, self.name)

    def __set__(self, agg: Any, value: Any) -> None:
        if self.plain:
            setattr(agg._tally, self.name, value)
            return
        table = getattr(agg._tally, self.name)
        if value is not table:
            table.clear()
            table.update(value)


class Aggregate:
    """Everything the metrics show, as plain dicts keyed by label tuples. Not thread-safe: callers
    hold the pipeline lock per object (never per event). A `Sink` of the pipeline, checkpointed with it."""

    wants_raw = False
    state_key = "aggregate"
    sectioned = True

    def __init__(
        self,
        max_queues: int = 1000,
        granularity: str = "role",
        max_principals_per_queue: int = 10_000,
        max_principals: int = 100_000,
        caps: LabelCaps | None = None,
        max_principal_series: int = 10,
        max_caller_accounts: int = 1000,
        tally: Any = None,
    ) -> None:
        self.max_queues = max_queues
        self.by_arn = granularity == "arn"
        self.max_principals = max_principals_per_queue
        self.max_principals_total = max_principals  # across all queues
        self.caps = caps if caps is not None else LabelCaps()  # every label but queue bounded
        self.queues: set[tuple[str, str, str]] = set()
        # the per-call loop and the tables it writes (calls, errors, batch, principals, newest, lag; its caches:
        # labels → table keys, (queue, principal) → access cells, forgotten on restore, which replaces the
        # admitted queues, caps and cells); C when built.
        # `tally`: another implementation of it (the differential tests compare the two)
        self._tally = (tally or TALLY)(
            by_arn=self.by_arn,
            max_principals=max_principals_per_queue,
            max_principals_total=max_principals,
            buckets=LAG_BUCKETS,
            max_slots=_MAX_SLOTS,
            slot=self._slot,
            error_key=self._error_key,
            access_keys=self._access_keys,
            prune=self._prune_principals,
        )
        # who calls each queue; `access.admit` is set for several replicas (exporter.shared)
        self.access = AccessMap(max_principal_series, max_caller_accounts)
        self._caller_of: BoundedCache[str | None, str | None] = BoundedCache(_MAX_SLOTS)

    # -- the tally's tables and settings, under the names the views, collector and snapshot read -----------
    calls: dict[tuple[str, str, str, str, str], int] = _Tallied()  # type: ignore[assignment]
    errors: dict[tuple[str, str, str, str, str], int] = _Tallied()  # type: ignore[assignment]
    batch: dict[tuple[str, str, str, str], int] = _Tallied()  # type: ignore[assignment]
    # (account, region, queue) → principal → newest event time it was seen at
    principals: dict[tuple[str, str, str], dict[str, float]] = _Tallied()  # type: ignore[assignment]
    newest: dict[tuple[str, str], float] = _Tallied()  # type: ignore[assignment]
    # source → [bucket counts..., +Inf count], sum
    lag: dict[str, list[float]] = _Tallied()  # type: ignore[assignment]
    principal_count: int = _Tallied(plain=True)  # type: ignore[assignment]
    # several replicas: distinct principals go to Redis too (exporter.shared.SharedState)
    shared: Any = _Tallied(plain=True)

    @property
    def changes(self) -> list[int]:
        """The positions of the calls the last add_calls saw that may change a queue."""
        return self._tally.changes  # type: ignore[no-any-return]

    @property
    def _slots(self) -> BoundedCache[Labels, _Slot]:
        return self._tally.slots  # type: ignore[no-any-return]

    # -- as a sink ---------------------------------------------------------------------------------
    def consume(self, calls: list[Call], raws: list[Any], observed: float, source: str) -> Callable[[], None] | None:
        """Count one object's calls; with several replicas, what goes to Redis is sent once the pipeline
        lock is released."""
        self.add_calls(calls, observed, source)
        if self.changes and raws:
            self._changes(calls, raws, self.changes)
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

    def add_calls(self, calls: Iterable[Call], now: float, source: str) -> int:
        """Count SQS calls (the pipeline has applied the filters); returns how many. `changes` then holds
        the positions of those that may change a queue's policy or encryption (consume() reads their
        request parameters)."""
        return self._tally.add_calls(calls, now, source)

    def _error_key(
        self, qkey: tuple[str, str, str], name: str, error: str, known: BoundedCache[str, tuple[str, ...]]
    ) -> tuple[str, ...]:
        """The errors-table key of a failed call (the error caps). Remembered in `known` (the slot's) unless
        the series cap folded it: a code or a label set, once admitted (or the code folded), stays so."""
        caps = self.caps
        folded = caps.folded
        ekey = caps.error_key((*qkey, name, error))
        if caps.folded == folded and len(error) <= 256:  # hostile long codes are not remembered
            known.put(error, ekey)
        return ekey

    def _access_keys(self, qkey: tuple[str, str, str], who: str | None) -> _Access:
        """The access map cells of a call to this queue by this principal: its series (admitted now if the
        queue has room) and, from another account, what names its cross-account series (the caller account
        admitted now if there is room; the cell is per event name). The tally remembers them: a principal
        or caller account, once admitted or folded, stays so."""
        access = self.access
        account, region, queue = qkey
        ok = err = cross = None
        if access.max_series > 0:  # enabled (this runs for every new principal of every slot)
            label = OTHER if who is None else access.principal_label(qkey, who)
            cells = access.principal_cells
            k = (account, region, queue, label, SUCCESS)
            ok = cells.get(k) or access.cell(cells, k)
            k = (account, region, queue, label, ERROR)
            err = cells.get(k) or access.cell(cells, k)
        caller = self._caller_of.get(who, "")
        if caller == "":
            caller = principal_caller_account(who)
            if who is None or len(who) <= 256:
                self._caller_of.put(who, caller)
        if caller is not None and caller != account:
            cross = (access.cross_cells, account, region, queue, access.caller_label(caller))
        return ok, err, cross

    def _changes(self, calls: list[Call], raws: list[Any], positions: list[int]) -> None:
        """Count the policy and encryption changes among the calls at these positions, from each one's
        request parameters (raws: aligned with calls, None where not kept)."""
        access = self.access
        slots_get = self._slots.get
        for i in positions:
            call, raw = calls[i], raws[i]
            if raw is None or call.error is not None:
                continue
            slot = slots_get(call.labels) or self._slot(call.labels)
            qkey = slot[1]
            access.count_change(qkey, *record_changes(raw, call.labels[3], qkey[0]))

    def _slot(self, labels: Labels) -> _Slot:
        """The table keys of calls with these labels (queue capped to OTHER_QUEUE). The answer is
        remembered: a queue, once admitted or refused, stays so. (The pipeline applies the filters.)"""
        account, region, queue, name, category = labels
        account, region, name, category = self.caps.labels(account, region, name, category)
        if queue != NO_QUEUE:
            qkey = (account, region, queue)
            if qkey not in self.queues:
                if len(self.queues) < self.max_queues:
                    self.queues.add(qkey)
                else:
                    queue = OTHER_QUEUE
        key = self.caps.call_key((account, region, queue, name, category))
        slot: _Slot = (key, key[:3], key[:2], BoundedCache(_MAX_CODES), name in POLICY_EVENTS)  # type: ignore[assignment]
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
        """Keep a queue's principal map bounded: forget what left the longest window, then the oldest;
        and all queues' maps together (`max_principals`): the same across every queue."""
        before = len(seen)
        if before >= self.max_principals:
            horizon = self.newest.get(pkey[:2], 0.0) - LONGEST_WINDOW
            for p in [p for p, t in seen.items() if t <= horizon]:
                del seen[p]
            if len(seen) >= self.max_principals:
                oldest = sorted(seen.items(), key=lambda kv: kv[1])[: len(seen) // 10 or 1]
                for p, _ in oldest:
                    del seen[p]
            self.principal_count -= before - len(seen)
        if self.principal_count >= self.max_principals_total:
            self.prune()
        if self.principal_count >= self.max_principals_total:
            # the oldest tenth of every queue's principals together (sorting all is rare: once per tenth)
            entries = sorted((t, q, p) for q, s in self.principals.items() for p, t in s.items())
            for _, q, p in entries[: len(entries) // 10 or 1]:
                del self.principals[q][p]
            self.principal_count = sum(len(s) for s in self.principals.values())

    def prune(self) -> None:
        """Drop principals older than the longest window behind their account/region's newest event."""
        for pkey, seen in list(self.principals.items()):
            horizon = self.newest.get(pkey[:2], 0.0) - LONGEST_WINDOW
            stale = [p for p, t in seen.items() if t <= horizon]
            for p in stale:
                del seen[p]
            # an emptied queue keeps its key: its gauge reads 0 rather than vanishing (queues are capped)
        self.principal_count = sum(len(s) for s in self.principals.values())

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
        """In parts (exporter.sinks.metrics.sections), so that a checkpoint writes only what changed."""
        self.prune()
        return sections.split(
            {
                "v": 1,
                "calls": [[*k, v] for k, v in self.calls.items()],
                "errors": [[*k, v] for k, v in self.errors.items()],
                "batch": [[*k, v] for k, v in self.batch.items()],
                "principals": [[*k, seen] for k, seen in self.principals.items()],
                "newest": [[*k, v] for k, v in self.newest.items()],
                "queues": [list(q) for q in self.queues],
                "lag": self.lag,
                "access": self.access.snapshot(),
            }
        )

    def restore(self, snap: dict[str, Any]) -> None:
        """From a snapshot's parts, or from the single blob of a state file written before them."""
        snap = sections.join(snap)

        def rows(name: str) -> Iterator[tuple[tuple[Any, ...], Any]]:
            for row in snap.get(name, ()):
                yield tuple(row[:-1]), row[-1]

        self._tally.forget()
        self.access.restore(snap.get("access") or {})  # snapshots from before the access map have none
        self.calls = dict(rows("calls"))  # type: ignore[arg-type]
        self.errors = dict(rows("errors"))  # type: ignore[arg-type]
        self.batch = dict(rows("batch"))  # type: ignore[arg-type]
        self.principals = {k: dict(v) for k, v in rows("principals")}  # type: ignore[misc]
        self.newest = dict(rows("newest"))  # type: ignore[arg-type]
        self.queues = {tuple(q) for q in snap.get("queues", ())}  # type: ignore[misc]
        self.lag = {k: list(v) for k, v in snap.get("lag", {}).items()}
        self.principal_count = sum(len(s) for s in self.principals.values())
        self.caps.learn(self.calls, self.errors)
