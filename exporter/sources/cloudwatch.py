"""`cloudwatch` source: tails a CloudTrail log group with FilterLogEvents.

A server-side filter pattern on `eventSource` keeps non-SQS events in AWS (and the same test runs
client-side, since emulators and some patterns let others through). Each poll reads from the
watermark (newest event time counted) minus `late_window`; event ids already counted inside that
window are dropped, so a late event inside the window counts once. The poll also looks `late_scan`
further back: an event there that was ingested after the previous poll (by CloudWatch's
`ingestionTime`) came too late to be counted and goes to `cloudtrail_sqs_exporter_late_events_total`.
Requests are held to `requests_per_second` (the FilterLogEvents quota is 5/s per account and region),
shared by every cloudwatch source on the same endpoint and region. Progress (watermark, ingestion
cutoff, ids inside the window) is saved with the counts.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Any

import msgspec

from ..config import CloudWatchSourceConfig
from ..decode.record import SQS_SOURCE
from ..state import StateStore
from .aws import ErrorCounter, OnceLog, RateLimiter, endpoint_url, make_client
from .base import Context, Source

log = logging.getLogger(__name__)

LATE_COUNTER = "exporter_late_events"


class _Source(msgspec.Struct):
    eventSource: str | None = None


_decode_source = msgspec.json.Decoder(_Source).decode


def is_sqs_event(message: str) -> bool:
    try:
        return _decode_source(message).eventSource == SQS_SOURCE
    except (msgspec.DecodeError, ValueError):
        return False


class CloudWatchSource(Source[CloudWatchSourceConfig]):
    type = "cloudwatch"
    extra_counters = (LATE_COUNTER,)

    def __init__(self, cfg: CloudWatchSourceConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.errors = ErrorCounter(ctx.intake, self.name)
        self.logs = make_client("logs", cfg, self.errors)
        region = self.logs.meta.region_name
        self.limiter = RateLimiter.shared(("logs", endpoint_url(cfg), region), cfg.requests_per_second)
        self.oncelog = OnceLog(self.name)
        self.window = int(cfg.late_window * 1000)
        self.scan = int(cfg.late_scan * 1000)
        self.client_filter = SQS_SOURCE in cfg.filter_pattern
        state = ctx.store.get(self._key) if ctx.store else None
        state = state or {}
        self.watermark: int | None = state.get("w")
        self.cutoff: int | None = state.get("cut")
        self.ids: dict[str, int] = state.get("ids", {})  # counted, timestamp ≥ watermark − window
        self.late_ids: dict[str, int] = state.get("late", {})  # counted as late, inside the scan range

    @property
    def _key(self) -> str:
        return f"cloudwatch:{self.name}"

    def _state(self, watermark: int | None, cutoff: int | None) -> dict[str, Any]:
        return {"w": watermark, "cut": cutoff, "ids": self.ids, "late": self.late_ids}

    def _start_ms(self) -> int:
        start = self.cfg.start
        if start is None:
            return 0
        if start == "now":
            return int(time.time() * 1000)
        return int(start.timestamp() * 1000)

    def _request(self, stop: threading.Event, **kw: Any) -> dict[str, Any] | None:
        if not self.limiter.acquire(stop):
            return None
        try:
            return self.logs.filter_log_events(**kw)
        except Exception as exc:
            self.errors.unsent(exc)
            self.oncelog.warn(exc, f"FilterLogEvents on {self.cfg.log_group}")
            raise

    def poll(self, stop: threading.Event) -> None:
        cfg = self.cfg
        intake = self.intake
        now = int(time.time() * 1000)
        if self.watermark is None:
            self.watermark = self._start_ms()
            intake.stage([StateStore.put_op(self._key, self._state(self.watermark, self.cutoff))])
        watermark, cutoff = self.watermark, self.cutoff
        lower = watermark - self.window
        start = max(0, lower - (self.scan if cutoff is not None else 0))
        kw: dict[str, Any] = {"startTime": start, "limit": cfg.page_size}
        kw["logGroupIdentifier" if cfg.log_group.startswith("arn:") else "logGroupName"] = cfg.log_group
        if cfg.filter_pattern:
            kw["filterPattern"] = cfg.filter_pattern
        if cfg.log_stream_names:
            kw["logStreamNames"] = cfg.log_stream_names
        elif cfg.log_stream_prefix:
            kw["logStreamNamePrefix"] = cfg.log_stream_prefix
        newest = watermark
        max_ingest = cutoff
        token: str | None = None
        while not stop.is_set():
            resp = self._request(stop, **kw, **({"nextToken": token} if token else {}))
            if resp is None:
                return
            fresh: list[bytes] = []  # each event's message: one CloudTrail record
            late = 0
            for e in resp.get("events", ()):
                ing = e.get("ingestionTime")
                if ing is not None and (max_ingest is None or ing > max_ingest):
                    max_ingest = ing
                if not self._wanted(e):
                    continue
                eid, ts = e["eventId"], e["timestamp"]
                if ts < lower:
                    # before the window: counted when it was inside it, or too late to count
                    if cutoff is not None and ing is not None and ing > cutoff and eid not in self.late_ids:
                        self.late_ids[eid] = ts
                        late += 1
                    continue
                if eid in self.ids:
                    continue
                self.ids[eid] = ts
                fresh.append(e["message"].encode())
                newest = max(newest, min(ts, now))
            if fresh or late:
                self._count(fresh, late, watermark, cutoff)
            token = resp.get("nextToken")
            if not token:
                break
        else:
            return
        self.watermark = newest
        self.cutoff = max_ingest if max_ingest is not None else now
        lower = newest - self.window
        self.ids = {k: t for k, t in self.ids.items() if t >= lower}
        self.late_ids = {k: t for k, t in self.late_ids.items() if t >= lower - self.scan}
        intake.stage([StateStore.put_op(self._key, self._state(self.watermark, self.cutoff))])
        self.oncelog.clear()

    def _wanted(self, e: dict[str, Any]) -> bool:
        cfg = self.cfg
        stream = e.get("logStreamName", "")
        if cfg.log_stream_names and stream not in cfg.log_stream_names:
            return False
        if cfg.log_stream_prefix and not stream.startswith(cfg.log_stream_prefix):
            return False
        return not self.client_filter or is_sqs_event(e.get("message", ""))

    def _count(self, fresh: list[bytes], late: int, watermark: int, cutoff: int | None) -> None:
        """One page: late events and new events counted with the ids that stop a second count, in one
        step no checkpoint can split."""
        progress = [StateStore.put_op(self._key, self._state(watermark, cutoff))]
        if late:
            log.info("source %s: %d event(s) arrived after the late window", self.name, late)
        extra = [(LATE_COUNTER, (self.name,), late)] if late else []
        if fresh:
            self.intake.process_records(fresh, self.name, progress=progress, extra=extra)
        else:
            self.intake.stage(progress, extra=extra)
        self.intake.maybe_checkpoint()
