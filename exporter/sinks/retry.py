"""Retrying one OTLP export: exponential backoff with full jitter, the server's requested delay honoured.

- attempt n waits uniform(0, min(cap, base·2ⁿ)) ("full jitter"): exporters that failed together do not
  come back together; a delay the server asked for (gRPC RetryInfo, HTTP Retry-After) is waited instead,
  plus up to a tenth more, never less;
- each attempt is bounded by the export timeout, the batch by `retry_max_elapsed`: a retry that would
  start after it is not made;
- once shutdown has begun (`stopping` set) a batch gets at most one more attempt, and only if its wait
  ends before the flush deadline: no retry loop while the process is stopping.

One WARNING when exports start failing and one INFO when they succeed again; each retry is DEBUG.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections.abc import Callable

from .otlp_transport import SendResult

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
        self.failing = False  # the last export failed: the next success is worth a line
        self.failed_attempts = 0

    def run(
        self, send: Callable[[float], SendResult], stopping: threading.Event, deadline: Callable[[], float]
    ) -> SendResult:
        """Attempts of one batch until it is acknowledged, refused, or out of time. `deadline()` is the
        flush deadline (monotonic; infinite until shutdown begins)."""
        clock = self.clock
        start = clock()
        attempt = 0
        while True:
            last_chance = stopping.is_set()
            timeout = min(self.timeout, max(0.1, deadline() - clock()))
            res = send(timeout)
            if not isinstance(res, SendResult):
                res = SendResult(*res)
            if res.ok:
                if self.failing:
                    log.info("OTel logs: export succeeded again after %d failed attempts", self.failed_attempts)
                self.failing, self.failed_attempts = False, 0
                return res
            self.failed_attempts += 1
            if not res.retryable or last_chance:
                return res
            delay = self.backoff.delay(attempt, res.retry_after)
            attempt += 1
            now = clock()
            if now - start + delay > self.max_elapsed or now + delay > deadline():
                return res
            if not self.failing:
                self.failing = True
                log.warning(
                    "OTel logs: export failed (%s); retrying with backoff for up to %gs", res.message, self.max_elapsed
                )
            else:
                log.debug("OTel logs: export failed (%s); retrying in %.2fs", res.message, delay)
            if not self._wait(now + delay, stopping, deadline):
                return res

    def _wait(self, until: float, stopping: threading.Event, deadline: Callable[[], float]) -> bool:
        """Wait until `until`; False when shutdown began and that is past the flush deadline."""
        if stopping.wait(max(0.0, until - self.clock())):
            if until > deadline():
                return False
            # shutdown began: the wait still ends when it was due (the server's delay holds), not at once
            time.sleep(max(0.0, until - self.clock()))
        return True
