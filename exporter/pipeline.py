"""The object processor: one delivery → SQS calls → the filters → every sink, counted per outcome.

It is the `Intake` the sources hand their deliveries to, and it owns the checkpoint: the sinks' state,
the self-monitoring counters and the sources' progress are saved in one transaction (with the event ids
dedupe remembers, when `metrics.dedupe_window` is set).

A checkpoint that fails (disk full, I/O error) keeps everything staged (progress ops and the actions
that follow a commit) and is retried with backoff; the sources take no new work until one succeeds, so
nothing is lost or counted twice. The failure is counted, logged once when it starts and once when it
ends, makes /readyz fail after `unready_after`, and after `max_failure` the process is asked to exit
(`on_fatal`) so that the orchestrator restarts it.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from .decode.delivery import Decoded, ObjectResult, decode, decode_records
from .dedupe import Dedupe
from .filters import Filters
from .interfaces import After, ExtraCount, Persistent, Progress, Sink
from .model import Call
from .selfmetrics import SelfMetrics
from .snapshots import Snapshots
from .state import Op, StateLost, StateStore

log = logging.getLogger(__name__)

RETRY_FIRST = 0.5  # seconds before the first retry of a failed checkpoint; doubles up to RETRY_MAX
RETRY_MAX = 10.0


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
        dedupe: Dedupe | None = None,
        max_failure: float = 600.0,
    ) -> None:
        self.sinks = list(sinks)
        self.counters = counters if counters is not None else SelfMetrics()
        self.filters = filters if filters is not None and filters.active else None
        self.store = store
        self.dedupe = dedupe
        self.commit_interval = commit_interval
        self.clock = clock
        self.keep_raw = any(s.wants_raw for s in self.sinks)
        self.lock = threading.RLock()
        self._persistent: list[Persistent] = [s for s in self.sinks if isinstance(s, Persistent)]
        self._persistent.append(self.counters)
        self._pending: list[Op] = []
        self._after: list[After] = []
        self._last_commit = time.monotonic()
        self.max_failure = max_failure
        # told once (with the reason) when the state cannot be saved within max_failure: exit non-zero
        self.on_fatal: Callable[[str], None] | None = None
        self.failing_since: float | None = None  # monotonic time of the first failed checkpoint in a row
        self.failures = 0  # failed checkpoints in a row
        self.last_error: str | None = None
        self._next_try = 0.0
        self._gave_up = False
        self._snapshots: Snapshots | None = None
        if store is not None:
            self._snapshots = snapshots = Snapshots(store)
            for part in self._persistent:
                snap = snapshots.load(part)
                if not snap and part is self.counters:
                    snap = store.get(SelfMetrics.legacy_key)
                if snap:
                    part.restore(snap)

    # -- Intake --------------------------------------------------------------------------------------
    def register(self, source: str, extra: Iterable[str] = ()) -> None:
        self.counters.register_source(source, extra)
        if self.dedupe is not None:
            self.counters.register_duplicates(source)

    def process(
        self, data: bytes, source: str, name: str = "", progress: Progress = (), after: After | None = None
    ) -> ObjectResult:
        """Count one object. `progress` (ops, or a function of the result giving ops) is saved with
        the counters; `after` runs once they are saved."""
        try:
            d = decode(data, keep_raw=self.keep_raw, event_ids=self.dedupe is not None)
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

    def checkpoint(self, force: bool = False) -> bool:
        """Save counters and staged progress in one transaction, then run the post-commit actions.
        False when the state is not saved: this attempt failed, or an earlier one did and its retry
        is not due yet (`force` tries at once). Everything staged stays staged until a commit succeeds."""
        with self.lock:
            failing = self.failing_since is not None
            if failing and not force and time.monotonic() < self._next_try:
                return False
            if not force and not failing and not self._pending and not self._after:
                return True
            if self.store is not None and self._snapshots is not None:
                try:
                    # only the parts of the state that changed since the last commit, with the progress
                    ops = [*self._pending, *self._snapshots.ops(self._persistent)]
                    if self.dedupe is not None:
                        ops.extend(self.dedupe.ops())
                    self.store.commit(ops)
                except Exception as exc:  # disk full, I/O error, lost file: keep it all, retry later
                    self._failed(exc)
                    return False
                self._snapshots.committed()
                if self.dedupe is not None:
                    self.dedupe.committed()
            if failing:
                self._recovered()
            self._pending.clear()
            after, self._after = self._after, []
            self._last_commit = time.monotonic()
        for action in after:
            try:
                action()
            except Exception:
                log.exception("post-checkpoint action failed")
        return True

    def health(self, unready_after: float) -> tuple[bool, str]:
        """For /readyz: not ready once checkpoints have been failing for longer than `unready_after`."""
        since = self.failing_since
        if since is None:
            return True, "state: ok"
        age = time.monotonic() - since
        if age > unready_after:
            return False, f"state: checkpoint failing for {age:.0f}s: {self.last_error}"
        return True, f"state: checkpoint failing for {age:.0f}s (retrying): {self.last_error}"

    def fatal(self, reason: str) -> None:
        """The process cannot go on: log it and ask the owner (the `run` command) to exit non-zero."""
        log.critical("%s; exiting", reason)
        if self.on_fatal is not None:
            self.on_fatal(reason)

    def maybe_checkpoint(self) -> None:
        if time.monotonic() - self._last_commit >= self.commit_interval:
            self.checkpoint()

    # -- internals -----------------------------------------------------------------------------------
    def _failed(self, exc: Exception) -> None:
        """One failed checkpoint (under the lock): count it, log the first of a row, schedule the retry,
        and give up after max_failure (at once when the state file is gone: no retry can help)."""
        now = time.monotonic()
        self.counters.count_checkpoint_error()
        self.failures += 1
        self.last_error = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = now
            log.error(
                "checkpoint failed: %s; retrying with backoff, taking no new work meanwhile "
                "(counts and progress are kept in memory; exit after %.0fs)",
                self.last_error,
                self.max_failure,
            )
        else:
            log.debug("checkpoint retry %d failed: %s", self.failures, self.last_error)
        self._next_try = now + min(RETRY_MAX, RETRY_FIRST * 2 ** (self.failures - 1))
        if isinstance(exc, StateLost):  # no retry can help; the store has told its owner already
            self._gave_up = True
        if not self._gave_up and now - self.failing_since >= self.max_failure:
            self._gave_up = True
            self.fatal(
                f"state file {getattr(self.store, 'path', '')}: cannot save the state for "
                f"{now - self.failing_since:.0f}s ({self.failures} attempts): {self.last_error}"
            )

    def _recovered(self) -> None:
        assert self.failing_since is not None
        log.warning(
            "checkpoint recovered after %d failed attempts over %.0fs",
            self.failures,
            time.monotonic() - self.failing_since,
        )
        self.failing_since = None
        self.failures = 0
        self.last_error = None

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
            if calls and self.dedupe is not None:
                calls, raws = self._drop_seen(calls, raws, source)
            if calls:
                for sink in self.sinks:
                    action = sink.consume(calls, raws, now, source)
                    if action is not None:
                        later.append(action)
            self._stage(progress, res, after)
        for action in later:  # slow I/O (Redis) outside the lock
            action()
        return res

    def _drop_seen(self, calls: list[Call], raws: list[Any], source: str) -> tuple[list[Call], list[Any]]:
        """The dedupe stage: calls whose eventID was counted within the window (from any source) go no
        further than the filters' rejects do; they are counted as duplicates. Under the lock: Dedupe's
        memory and its checkpoint ops must agree."""
        assert self.dedupe is not None
        flags = self.dedupe.new([c.event_id for c in calls])
        if all(flags):
            return calls, raws
        self.counters.count_duplicates(source, len(flags) - sum(flags))
        kept = [c for c, k in zip(calls, flags, strict=True) if k]
        return kept, ([r for r, k in zip(raws, flags, strict=True) if k] if raws else raws)

    def _stage(self, progress: Progress, res: ObjectResult | None, after: After | None) -> None:
        if callable(progress):
            assert res is not None, "a progress function needs an object result"
            progress = progress(res)
        self._pending.extend(progress)
        if after is not None:
            self._after.append(after)
