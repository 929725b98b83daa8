"""What every source shares: a poll loop, health for /readyz, and the `Intake` it hands deliveries to."""

from __future__ import annotations

import logging
import threading
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import TYPE_CHECKING, Generic, TypeVar

from ..config import (
    CloudWatchSourceConfig,
    EventBridgeSqsSourceConfig,
    FileSourceConfig,
    S3SourceConfig,
    S3SqsSourceConfig,
    Settings,
)
from ..interfaces import Intake
from ..state import StateStore
from .activity import Activity

if TYPE_CHECKING:  # redis is imported only when state.redis_url is set
    from ..shared import SharedState

log = logging.getLogger(__name__)

# while the last checkpoint did not save, how often a source asks again (the pipeline paces the retries)
HOLD_WAIT = 0.5

C = TypeVar(
    "C", FileSourceConfig, S3SourceConfig, S3SqsSourceConfig, CloudWatchSourceConfig, EventBridgeSqsSourceConfig
)


@dataclass
class Context:
    intake: Intake
    store: StateStore | None
    settings: Settings | None = None
    shared: SharedState | None = None  # when state.redis_url is set


class Source(ABC, Generic[C]):
    """A source polls in its own thread; each object goes through `ctx.intake.process`."""

    type = "base"

    # named counters of its own the source adds (zero series from the start)
    extra_counters: tuple[str, ...] = ()

    def __init__(self, cfg: C, ctx: Context) -> None:
        self.cfg = cfg
        self.ctx = ctx
        self.intake = Activity(ctx.intake, cfg.name or self.type)  # what it did, for the log
        self.name: str = cfg.name or self.type
        self.interval: float = cfg.poll_interval
        self.last_success: float | None = None  # monotonic time of the last good poll
        self.failing_since: float | None = None
        self.last_error: str | None = None
        self.loop_error: str | None = None  # the checkpoint call itself raised
        self.intake.register(self.name, self.extra_counters)

    @abstractmethod
    def poll(self, stop: threading.Event) -> None:
        """One pass over whatever is new. Raise to report the pass as failed."""

    def run(self, stop: threading.Event) -> None:
        """Poll until stopped; nothing ends the loop before that. A failed pass is reported (health); a
        checkpoint that did not save holds new passes back until it has (the pipeline retries it, and
        new work on unsaved progress could count twice); any other error is logged once and the loop goes
        on. Should the loop end anyway, the process is asked to exit (non-zero) rather than serve counts
        that no longer move."""
        saved = True
        try:
            while not stop.is_set():
                if saved:
                    self._pass(stop)
                try:
                    saved = self.intake.checkpoint() is not False
                except Exception as exc:  # an Intake that raises instead of reporting the failure
                    saved = False
                    self._loop_failed(exc)
                else:
                    self._loop_ok()
                stop.wait(self.interval if saved else HOLD_WAIT)
        finally:
            if not stop.is_set():
                self.intake.fatal(f"source {self.name}: poll loop ended unexpectedly")

    def _pass(self, stop: threading.Event) -> None:
        try:
            self.poll(stop)
        except Exception as exc:
            self._failed(exc)
        else:
            self._ok()

    def _loop_ok(self) -> None:
        if self.loop_error is not None:
            log.info("source %s: checkpoints work again", self.name)
            self.loop_error = None

    def _loop_failed(self, exc: Exception) -> None:
        if self.loop_error is None:  # once per failing spell, with the traceback
            log.error("source %s: checkpoint raised; holding new work until it works", self.name, exc_info=exc)
        self.loop_error = f"{type(exc).__name__}: {exc}"

    def _ok(self) -> None:
        if self.failing_since is not None:
            log.info("source %s recovered", self.name)
        self.last_success = time.monotonic()
        self.failing_since = None
        self.last_error = None

    def _failed(self, exc: Exception) -> None:
        msg = f"{type(exc).__name__}: {exc}"
        if self.failing_since is None:
            self.failing_since = time.monotonic()
            log.warning("source %s: poll failed: %s", self.name, msg)  # once, not every retry
        elif msg != self.last_error:
            log.warning("source %s: still failing: %s", self.name, msg)
        self.last_error = msg

    def health(self, unready_after: float) -> tuple[bool, str]:
        if self.last_success is None:
            return False, f"{self.name}: no successful poll yet" + (f" ({self.last_error})" if self.last_error else "")
        if self.failing_since is not None and time.monotonic() - self.failing_since > unready_after:
            return False, f"{self.name}: failing for {time.monotonic() - self.failing_since:.0f}s: {self.last_error}"
        return True, f"{self.name}: ok"
