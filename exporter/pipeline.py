"""The object processor: one delivery → SQS calls → the filters → every sink, counted per outcome.

It is the `Intake` the sources hand their deliveries to, and it owns the checkpoint: the sinks' state,
the self-monitoring counters and the sources' progress are saved in one transaction.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence

from .decode.delivery import Decoded, ObjectResult, decode, decode_records
from .filters import Filters
from .interfaces import After, ExtraCount, Persistent, Progress, Sink
from .selfmetrics import SelfMetrics
from .state import Op, StateStore

log = logging.getLogger(__name__)


class Pipeline:
    """Hands decoded objects to the sinks under one lock per object, and checkpoints what the sinks and
    the counters hold together with the progress it reflects."""

    def __init__(
        self,
        sinks: Sequence[Sink],
        store: StateStore | None = None,
        counters: SelfMetrics | None = None,
        filters: Filters | None = None,
        commit_interval: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.sinks = list(sinks)
        self.counters = counters if counters is not None else SelfMetrics()
        self.filters = filters if filters is not None and filters.active else None
        self.store = store
        self.commit_interval = commit_interval
        self.clock = clock
        self.keep_raw = any(s.wants_raw for s in self.sinks)
        self.lock = threading.RLock()
        self._persistent: list[Persistent] = [s for s in self.sinks if isinstance(s, Persistent)]
        self._persistent.append(self.counters)
        self._pending: list[Op] = []
        self._after: list[After] = []
        self._last_commit = time.monotonic()
        if store is not None:
            for part in self._persistent:
                snap = store.get(part.state_key)
                if not snap and part is self.counters:
                    snap = store.get(SelfMetrics.legacy_key)
                if snap:
                    part.restore(snap)

    # -- Intake --------------------------------------------------------------------------------------
    def register(self, source: str, extra: Iterable[str] = ()) -> None:
        self.counters.register_source(source, extra)

    def process(
        self, data: bytes, source: str, name: str = "", progress: Progress = (), after: After | None = None
    ) -> ObjectResult:
        """Count one object. `progress` (ops, or a function of the result giving ops) is saved with
        the counters; `after` runs once they are saved."""
        try:
            d = decode(data, keep_raw=self.keep_raw)
        except Exception as exc:  # a decoder bug must cost one object, not the daemon
            log.exception("unexpected error decoding %s", name)
            d = Decoded(ObjectResult("failed", reason=f"internal: {exc!r}"))
        if d.result.outcome == "failed":
            log.warning("source %s: failed to read %s: %s", source, name or "object", d.result.reason)
        return self._apply(d, source, progress, after, ())

    def process_records(
        self,
        records: Sequence[bytes],
        source: str,
        progress: Progress = (),
        after: After | None = None,
        extra: Iterable[ExtraCount] = (),
    ) -> ObjectResult:
        return self._apply(decode_records(records, self.keep_raw), source, progress, after, extra)

    def count_object(self, source: str, outcome: str, progress: Progress = (), after: After | None = None) -> None:
        """Count an object that was not decoded: skipped by its key, or failed to download."""
        with self.lock:
            self.counters.count_object(source, outcome)
            self._stage(progress, None, after)

    def source_error(self, source: str, kind: str) -> None:
        self.counters.count_source_error(source, kind)

    def stage(self, progress: Progress = (), after: After | None = None, extra: Iterable[ExtraCount] = ()) -> None:
        """Save `progress` with the next checkpoint and run `after` once saved, counting no object."""
        with self.lock:
            for name, key, n in extra:
                self.counters.count_extra(name, key, n)
            self._stage(progress, None, after)

    def checkpoint(self, force: bool = False) -> None:
        """Save counters and staged progress in one transaction, then run the post-commit actions."""
        with self.lock:
            if not force and not self._pending and not self._after:
                return
            if self.store is not None:
                ops = [*self._pending, *(StateStore.put_op(p.state_key, p.snapshot()) for p in self._persistent)]
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

    # -- internals -----------------------------------------------------------------------------------
    def _apply(
        self, d: Decoded, source: str, progress: Progress, after: After | None, extra: Iterable[ExtraCount]
    ) -> ObjectResult:
        res, calls, raws = d.result, d.calls, d.raws
        if self.filters is not None and calls:
            calls, raws = self.filters.select(calls, raws)
        now = self.clock()
        later: list[After] = []
        with self.lock:
            counters = self.counters
            counters.count_object(source, res.outcome, res.sqs, res.other, res.invalid)
            for name, key, n in extra:
                counters.count_extra(name, key, n)
            if calls:
                for sink in self.sinks:
                    action = sink.consume(calls, raws, now, source)
                    if action is not None:
                        later.append(action)
            self._stage(progress, res, after)
        for action in later:  # slow I/O (Redis) outside the lock
            action()
        return res

    def _stage(self, progress: Progress, res: ObjectResult | None, after: After | None) -> None:
        if callable(progress):
            assert res is not None, "a progress function needs an object result"
            progress = progress(res)
        self._pending.extend(progress)
        if after is not None:
            self._after.append(after)
