"""The object processor: one delivery's bytes → SQS events → sinks, counted per outcome."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

from .decode.delivery import Decoded, ObjectResult, decode
from .decode.record import Call, SqsEvent
from .sinks.metrics import Aggregate
from .state import Op, StateStore

log = logging.getLogger(__name__)


class EventSink(Protocol):
    def emit(self, raw: Any, ev: SqsEvent, observed: float) -> None: ...

    def emit_calls(self, calls: list[Call], raws: list[Any], kept: list[bool], observed: float) -> None: ...


class Pipeline:
    """Applies decoded objects to the aggregate (and the optional log sink) under one lock per object,
    and checkpoints counters together with the progress they reflect."""

    def __init__(
        self,
        agg: Aggregate,
        sink: EventSink | None = None,
        store: StateStore | None = None,
        commit_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.agg = agg
        self.sink = sink
        self.store = store
        self.commit_interval = commit_interval
        self.clock = clock
        self.lock = threading.RLock()
        self._pending: list[Op] = []
        self._after: list[Callable[[], None]] = []
        self._last_commit = time.monotonic()
        if store is not None:
            snap = store.get("aggregate")
            if snap:
                agg.restore(snap)

    def process(
        self,
        data: bytes,
        source: str,
        name: str = "",
        progress: Iterable[Op] | Callable[[ObjectResult], Iterable[Op]] = (),
        after: Callable[[], None] | None = None,
    ) -> ObjectResult:
        """Count one object. `progress` (ops, or a function of the result giving ops) is saved with
        the counters; `after` runs once they are saved."""
        try:
            d = decode(data, keep_raw=self.sink is not None)
        except Exception as exc:  # a decoder bug must cost one object, not the daemon
            log.exception("unexpected error decoding %s", name)
            d = Decoded(ObjectResult("failed", reason=f"internal: {exc!r}"))
        res, calls, raws, events = d.result, d.calls, d.raws, d.events
        if res.outcome == "failed":
            log.warning("source %s: failed to read %s: %s", source, name or "object", res.reason)
        now = self.clock()
        agg = self.agg
        with self.lock:
            agg.count(agg.objects, (source, res.outcome))
            if res.sqs:
                agg.count(agg.records, (source, "sqs"), res.sqs)
            if res.other:
                agg.count(agg.records, (source, "other"), res.other)
            if res.invalid:
                agg.count(agg.records, (source, "invalid"), res.invalid)
            sink = self.sink
            if calls:
                if sink is None:
                    agg.add_calls(calls, now, source)
                else:
                    kept: list[bool] = []
                    agg.add_calls(calls, now, source, kept)
                    sink.emit_calls(calls, raws, kept, now)
            add = agg.add
            for raw, ev in events:
                if add(ev, now, source) and sink is not None:
                    sink.emit(raw, ev, now)
            self._stage(progress(res) if callable(progress) else progress, after)
            shared = agg.shared.take() if agg.shared is not None and (events or calls) else None
        if shared is not None:  # Redis I/O outside the lock
            agg.shared.send(shared)
        return res

    def count_object(
        self,
        source: str,
        outcome: str,
        progress: Iterable[Op] = (),
        after: Callable[[], None] | None = None,
    ) -> None:
        """Count an object that was not decoded: skipped by its key, or failed to download."""
        with self.lock:
            self.agg.count(self.agg.objects, (source, outcome))
            self._stage(progress, after)

    def stage(self, progress: Iterable[Op] = (), after: Callable[[], None] | None = None) -> None:
        """Save `progress` with the next checkpoint and run `after` once saved, counting nothing."""
        with self.lock:
            self._stage(progress, after)

    def source_error(self, source: str, kind: str) -> None:
        with self.lock:
            self.agg.count(self.agg.source_errors, (source, kind))

    def _stage(self, progress: Iterable[Op], after: Callable[[], None] | None) -> None:
        self._pending.extend(progress)
        if after is not None:
            self._after.append(after)

    def checkpoint(self, force: bool = False) -> None:
        """Save counters and staged progress in one transaction, then run the post-commit actions."""
        with self.lock:
            if not force and not self._pending and not self._after:
                return
            if self.store is not None:
                ops = [*self._pending, StateStore.put_op("aggregate", self.agg.snapshot())]
                self.store.commit(ops)
            self._pending.clear()
            after, self._after = self._after, []
            self._last_commit = time.monotonic()
        for action in after:
            try:
                action()
            except Exception:
                log.exception("post-checkpoint action failed")

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_commit >= self.commit_interval:
            self.checkpoint()
