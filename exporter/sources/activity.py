"""What a running source tells the log: a line per object at debug, and at info a line for the poll
cycles that did something (objects, records, SQS calls, lag), at most one a minute per source, the
cycles in between added up into the next line.

It stands between a source and the pipeline as the source's `Intake`, so it sees every object's result
without the sources reporting anything themselves. A poll cycle ends with the source's `checkpoint()`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from ..decode.delivery import ObjectResult
from ..interfaces import After, ExtraCount, Intake, Progress

log = logging.getLogger("exporter.sources")

EVERY = 60.0  # seconds between two info lines of one source, at least
# (events counted, sum of their lags in seconds) so far, for the mean lag between two lines
LagReader = Callable[[], tuple[float, float]]


class Activity:
    """A source's `Intake`: passes everything to the pipeline and keeps a tally for the log."""

    def __init__(
        self, inner: Intake, source: str, every: float = EVERY, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.inner = inner
        self.source = source
        self.every = every
        self.clock = clock
        self.lag: LagReader | None = None  # set by the app, which owns the aggregate (attach_lag)
        self._lock = threading.Lock()
        self._last_line: float | None = None
        self._lag_at_line = (0.0, 0.0)
        self._reset()

    def _reset(self) -> None:
        self.objects: dict[str, int] = {"ok": 0, "skipped": 0, "failed": 0}
        self.records: dict[str, int] = {"sqs": 0, "other": 0, "invalid": 0}
        self.cycles = 0

    # -- Intake, passed on ---------------------------------------------------------------------------
    def register(self, source: str, extra: Iterable[str] = ()) -> None:
        self.inner.register(source, extra)

    def process(
        self, data: bytes, source: str, name: str = "", progress: Progress = (), after: After | None = None
    ) -> ObjectResult:
        res = self.inner.process(data, source, name, progress, after)
        self._note(res, name)
        return res

    def process_records(
        self,
        records: Sequence[bytes],
        source: str,
        progress: Progress = (),
        after: After | None = None,
        extra: Iterable[ExtraCount] = (),
    ) -> ObjectResult:
        res = self.inner.process_records(records, source, progress, after, extra)
        self._note(res, f"{len(records)} log events")
        return res

    def count_object(self, source: str, outcome: str, progress: Progress = (), after: After | None = None) -> None:
        self.inner.count_object(source, outcome, progress, after)
        with self._lock:
            self.objects[outcome] = self.objects.get(outcome, 0) + 1
        log.debug("source %s: an object %s without decoding", self.source, outcome)

    def source_error(self, source: str, kind: str) -> None:
        self.inner.source_error(source, kind)

    def stage(self, progress: Progress = (), after: After | None = None, extra: Iterable[ExtraCount] = ()) -> None:
        self.inner.stage(progress, after, extra)

    def checkpoint(self, force: bool = False) -> bool:
        """The end of a poll cycle: save, then maybe say what the cycles since the last line did."""
        try:
            return self.inner.checkpoint(force)
        finally:
            self.cycle()

    def fatal(self, reason: str) -> None:
        self.inner.fatal(reason)

    def maybe_checkpoint(self) -> None:
        self.inner.maybe_checkpoint()

    # -- the tally -----------------------------------------------------------------------------------
    def _note(self, res: ObjectResult, name: str) -> None:
        with self._lock:
            self.objects[res.outcome] = self.objects.get(res.outcome, 0) + 1
            self.records["sqs"] += res.sqs
            self.records["other"] += res.other
            self.records["invalid"] += res.invalid
        if log.isEnabledFor(logging.DEBUG):
            why = f" ({res.reason})" if res.reason else ""
            log.debug(
                "source %s: %s: %s%s, %d SQS / %d other / %d invalid records",
                self.source,
                name or "object",
                res.outcome,
                why,
                res.sqs,
                res.other,
                res.invalid,
            )

    def cycle(self) -> None:
        """Count a finished poll cycle; log the tally when there is one and the last line is old enough."""
        now = self.clock()
        with self._lock:
            self.cycles += 1
            objects = sum(self.objects.values())
            if not objects or (self._last_line is not None and now - self._last_line < self.every):
                return
            since = now - self._last_line if self._last_line is not None else None
            objs, recs, cycles = self.objects, self.records, self.cycles
            self._last_line = now
            self._reset()
        lag = self._mean_lag()
        fields: dict[str, Any] = {
            "source": self.source,
            "objects": objects,
            "objects_failed": objs.get("failed", 0),
            "records": sum(recs.values()),
            "sqs_calls": recs["sqs"],
            "polls": cycles,
        }
        if lag is not None:
            fields["lag_seconds"] = round(lag, 1)
        parts = ", ".join(f"{n} {k}" for k, n in objs.items() if n)
        window = f" in {cycles} polls over {since:.0f}s" if since is not None else ""
        log.info(
            "source %s: %d objects (%s), %d records, %d SQS calls%s%s",
            self.source,
            objects,
            parts,
            fields["records"],
            recs["sqs"],
            f", lag {_duration(lag)}" if lag is not None else "",
            window,
            extra=fields,
        )

    def _mean_lag(self) -> float | None:
        """The mean event lag (observed minus event time) of the calls counted since the last line."""
        if self.lag is None:
            return None
        n, total = self.lag()
        n0, total0 = self._lag_at_line
        self._lag_at_line = (n, total)
        return (total - total0) / (n - n0) if n > n0 else None


def _duration(seconds: float | None) -> str:
    s = max(0.0, seconds or 0.0)
    if s < 120:
        return f"{s:.0f}s"
    if s < 7200:
        return f"{s / 60:.0f}m"
    if s < 172800:
        return f"{s / 3600:.1f}h"
    return f"{s / 86400:.1f}d"


def attach_lag(sources: Iterable[Any], agg: Any, lock: Any) -> None:
    """Let each source's tally read its lag from the aggregate's histogram (count and sum per source)."""
    for src in sources:
        if isinstance(src.intake, Activity):
            src.intake.lag = read = _lag_reader(agg, lock, src.name)
            src.intake._lag_at_line = read()  # what a restored state already holds is not this run's lag


def _lag_reader(agg: Any, lock: Any, source: str) -> LagReader:
    def read() -> tuple[float, float]:
        with lock:
            h = agg.lag.get(source)
            return (sum(h[:-1]), h[-1]) if h else (0.0, 0.0)

    return read
