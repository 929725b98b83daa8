"""OTel log record per SQS event, exported over OTLP (gRPC or HTTP/protobuf), or printed (console).

`emit` (processing thread, under the pipeline lock) filters and samples, encodes the LogRecord protobuf
(encoding.py) and appends it to the bounded queue (queue.py); when the queue is full the record is dropped
and counted, so the metrics path never waits on the collector. The queue's export thread sends it
(transport.py, retry.py).

Outcomes are counted in the exporter's own counters (exporter.selfmetrics,
cloudtrail_sqs_exporter_log_records_total{outcome}): `exported`
(acknowledged by the collector), `dropped` (queue full, or still queued at the shutdown bound),
`failed` (rejected by the collector, or given up after retries). Every record that passed the filters
ends in exactly one of them.
"""

from __future__ import annotations

import logging
import random
from collections.abc import Callable, Mapping
from typing import Any

from ... import __version__
from ...access import POLICY_EVENTS
from ...config import LogsConfig
from ...decode.record import SqsEvent, call_event
from ...interfaces import After
from ...masking import mask_url
from ...model import Call
from ...selfmetrics import SelfMetrics
from . import wire
from .encoding import SCHEMA_URL, RecordEncoder, access_attributes
from .queue import ExportQueue
from .redaction import Redactor
from .retry import Retrier
from .settings import export_settings, resource_attributes
from .transport import Transport, make_transport

log = logging.getLogger(__name__)

SCOPE_NAME = "cloudtrail-sqs-exporter"


class LogSink:
    def __init__(
        self,
        cfg: LogsConfig,
        counters: SelfMetrics,
        transport: Transport | None = None,
        env: Mapping[str, str] | None = None,
        rng: Callable[[], float] = random.random,
    ) -> None:
        self.cfg = cfg
        # outcomes are counted from both threads: the counters' own lock keeps every increment
        self.count = counters.count_log
        self.settings = export_settings(cfg, env)
        self.transport = transport or make_transport(self.settings)
        self.builder = wire.RequestBuilder(resource_attributes(env), SCOPE_NAME, __version__, SCHEMA_URL)
        self.redact = Redactor(cfg.redact)
        self.batch_size = cfg.batch_size
        self.batch_bytes = cfg.batch_max_bytes - self.builder.overhead()
        self.encoding = RecordEncoder(cfg, self.redact, self.builder, self.batch_size, self.batch_bytes)
        self.rng = rng
        # filters
        self.only_errors = cfg.only_errors
        self.only_management = cfg.only_management
        self.include = frozenset(cfg.include_events) if cfg.include_events is not None else None
        self.exclude = frozenset(cfg.exclude_events or ())
        self.ratio = cfg.sample_ratio
        self.filtering = bool(self.only_errors or self.only_management or self.include is not None or self.exclude)
        # Records are encoded by `emit`, on the processing thread: on one core a second Python thread only
        # adds GIL hand-offs, and encoded records are what a batch needs.
        retry = Retrier(self.settings.timeout, cfg.retry_max_elapsed)
        self.exports = ExportQueue(
            cfg, self.count, self.transport, retry, self.builder, self.batch_bytes, self.settings.timeout
        )
        log.info(
            "OTel logs: %s to %s (queue %d records / %d MiB)",
            self.settings.protocol,
            mask_url(self.settings.endpoint),
            self.exports.max_records,
            self.exports.max_bytes >> 20,
        )

    # -- as a sink ----------------------------------------------------------------------------------------------
    wants_raw = True

    def consume(self, calls: list[Call], raws: list[Any], observed: float, source: str) -> After | None:
        """The calls of one object, already through the metrics filters."""
        self.emit_calls(calls, raws, [True] * len(calls), observed)
        return None

    # -- processing thread --------------------------------------------------------------------------------------
    def emit(self, raw: Any, ev: SqsEvent, observed: float) -> None:
        if self.filtering and not self._keep(ev):
            return
        sampled = False
        if self.ratio < 1.0 and ev.category == "Data" and ev.error_code is None:
            if self.rng() >= self.ratio:
                return
            sampled = True
        q = self.exports
        if q.closed() and not (q.block and q.wait_for_room()):
            self.count("dropped")
            return
        try:
            f = self.encoding.encode(raw, ev, observed, sampled)
        except Exception:
            self._failed(ev.event_name)
            return
        q.put(f)

    def _failed(self, event_name: str) -> None:
        log.exception("OTel logs: cannot encode a record of %s", event_name)
        self.count("failed")

    def emit_calls(self, calls: list[Call], raws: list[Any], kept: list[bool], observed: float) -> None:
        """emit() for the calls of one object (exporter.model.Call), where the
        metrics `kept` them. Without event filters or sampling, and with the C module, LogEncoder.encode
        writes the records of a run of calls at once, with the attribute blocks cached per kind of
        call, batch size and principal (.encoding); the call where it stops (a cache miss, a full queue, a
        record it leaves to the Python encoder) goes through _emit_call, then it goes on. tests/test_native.py
        checks that the records sent are the bytes emit() sends."""
        enc = self.encoding
        if self.filtering or self.ratio < 1.0 or enc.native_record is None:
            for call, raw, keep in zip(calls, raws, kept, strict=True):
                if keep:
                    self.emit(raw, call_event(call), observed)
            return
        o_ns = int(observed * 1e9)
        encode = enc.encoder.encode
        q = self.exports
        i, n = 0, len(calls)
        while i < n:
            if not q.stopping.is_set():
                chunks, i, size, open_records, open_bytes = encode(calls, raws, kept, i, o_ns, q.budget())
                q.extend(chunks, size, open_records, open_bytes)
            if i < n:
                if kept[i]:
                    self._emit_call(calls[i], raws[i], o_ns, observed)
                i += 1

    def _emit_call(self, call: Call, raw: Any, o_ns: int, observed: float) -> None:
        """One call of emit_calls, in Python: fills the caches LogEncoder.encode reads."""
        if self.exports.closed():
            self.emit(raw, call_event(call), observed)  # waits for room, or counts the drop
            return
        enc = self.encoding
        attrs, head, tail = enc.attributes((call.labels, call.error, call.queue), call.entries, call.principal_arn)
        name = call.labels[3]
        if name in POLICY_EVENTS:
            attrs += access_attributes(raw, name, call.error, call.labels[0])
        t = call.time
        try:
            t_ns = int(t * 1e9) if t is not None else 0
            f = enc.encoder.record(raw, t_ns, o_ns, (head, attrs, tail))
        except ValueError:  # input the C encoder does not handle exactly: encode() decides
            self.emit(raw, call_event(call), observed)
            return
        except Exception:
            self._failed(call.labels.event_name)
            return
        self.exports.put(f)

    def _keep(self, ev: SqsEvent) -> bool:
        if self.only_errors and ev.error_code is None:
            return False
        if self.only_management and ev.category != "Management":
            return False
        if self.include is not None and ev.event_name not in self.include:
            return False
        return ev.event_name not in self.exclude

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def queued(self) -> int:
        """Records waiting to be exported."""
        return self.exports.queued()

    def shutdown(self, timeout: float | None = None) -> None:
        """Flush what is queued within the bound (`shutdown_timeout`), then stop the export thread."""
        self.exports.shutdown(timeout)


def build_log_sink(cfg: LogsConfig, counters: SelfMetrics, block: bool = False) -> LogSink:
    sink = LogSink(cfg, counters)
    q = sink.exports
    q.block = block
    if block:  # a batch run waits for room: a few batches of queue keep the exporter busy, and RSS low
        q.max_records = min(q.max_records, 4 * cfg.batch_size)
        q.max_bytes = min(q.max_bytes, 4 * cfg.batch_max_bytes)
    return sink
