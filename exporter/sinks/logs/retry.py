"""Retrying one OTLP export: exponential backoff with full jitter, the server's requested delay honoured.

- attempt n waits uniform(0, min(cap, base·2ⁿ)) ("full jitter"): exporters that failed together do not
  come back together; a delay the server asked for (gRPC RetryInfo, HTTP Retry-After) is waited instead,
  plus up to a tenth more, never less;
- each attempt is bounded by the export timeout, the batch by `retry_max_elapsed`: a retry that would
  start after it is not made;
- once shutdown has begun (`stopping` set) a batch gets at most one more attempt, and only if its wait
  ends before the flush deadline; while exports fail, each queued batch waits a backoff before its one
  attempt too: no retry loop, and no burst of the whole queue, while the process is stopping.

One WARNING when exports start failing, one for the first batch given up, one INFO when they succeed
again; each retry, and each later batch given up, is DEBUG.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from .transport import SendResult

log = logging.getLogger(__name__)


class Backoff:
    def __init__(self, base: float = 0.5, cap: float = 10.0, rng: Callable[[], float] = random.random) -> None:
        self.base, self.cap, self.rng = base, cap, rng

    def delay(self, attempt: int, server_delay: float | None = None) -> float:
        """Seconds to wait after failed attempt number `attempt` (0 for the first)."""
        if server_delay is not None and server_delay > 0:
            return server_delay + self.rng() * min(0.1 * server_delay, self.cap)
        return self.rng() * min(self.cap, self.base * (2 ** min(attempt, 30)))


class Retrier:
    def __init__(
        self,
        timeout: float,
        max_elapsed: float,
        backoff: Backoff | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.timeout = timeout
        self.max_elapsed = max_elapsed
        self.backoff = backoff or Backoff()
        self.clock = clock
        self.failing = False  # exports fail transiently: the next success is worth a line
        self.failed_attempts = 0  # since the last success
        self.gave_up = False  # a batch was given up since the last success

    def run(
        self, send: Callable[[float], SendResult], stopping: threading.Event, deadline: Callable[[], float]
    ) -> SendResult:
        """Attempts of one batch until it is acknowledged, refused, or out of time. `deadline()` is the
        flush deadline (monotonic; infinite until shutdown begins)."""
        clock = self.clock
        start = clock()
        attempt = 0
        # shutting down while exports fail: each queued batch's one attempt waits its backoff too, rather
        # than every batch hitting the collector at once
        paced = stopping.is_set() and self.failing
        if paced and not self._wait(start + self.backoff.delay(self.failed_attempts), stopping, deadline):
            return SendResult(False, True, 0, "not sent: shutting down while exports fail")
        while True:
            last_chance = stopping.is_set()
            timeout = min(self.timeout, max(0.1, deadline() - clock()))
            res = send(timeout)
            if not isinstance(res, SendResult):
                res = SendResult(*res)
            if res.ok:
                if self.failing:
                    log.info("OTel logs: export succeeded again after %d failed attempts", self.failed_attempts)
                self.failing, self.failed_attempts, self.gave_up = False, 0, False
                return res
            self.failed_attempts += 1
            if not res.retryable:
                return res
            if not self.failing:
                self.failing = True
                log.warning("OTel logs: export failed (%s); retrying with backoff", res.message)
            if last_chance:
                return res
            delay = self.backoff.delay(attempt, res.retry_after)
            attempt += 1
            now = clock()
            if now - start + delay > self.max_elapsed or now + delay > deadline():
                return res
            log.debug("OTel logs: export failed (%s); retrying in %.2fs", res.message, delay)
            if not self._wait(now + delay, stopping, deadline):
                return res

    def give_up_level(self) -> int:
        """The level of the line for a batch given up: WARNING for the first since the last success, then
        DEBUG (the failed count is in cloudtrail_sqs_exporter_log_records_total)."""
        level = logging.DEBUG if self.gave_up else logging.WARNING
        self.gave_up = True
        return level

    def _wait(self, until: float, stopping: threading.Event, deadline: Callable[[], float]) -> bool:
        """Wait until `until`; False when shutdown began and that is past the flush deadline."""
        if stopping.wait(max(0.0, until - self.clock())):
            if until > deadline():
                return False
            # shutdown began: the wait still ends when it was due (the server's delay holds), not at once
            time.sleep(max(0.0, until - self.clock()))
        return True
