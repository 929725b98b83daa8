"""The bounded queue of encoded records and the thread that exports it in batches.

Records are encoded on the processing thread and appended here as (concatenated LogRecord elements, how
many): deque appends and pops are atomic, and records and bytes held are in - out, each side written by one
thread. When the queue is full the producer drops (and counts) the record, or, for batch runs, waits for
room. One export thread drains the queue in requests of whole chunks and sends them, retrying transient
failures for up to `retry_max_elapsed`; what is still queued at the shutdown bound is dropped and counted.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from ...config import LogsConfig
from .retry import Retrier
from .transport import Transport
from .wire import RequestBuilder

log = logging.getLogger(__name__)


class ExportQueue:
    def __init__(
        self,
        cfg: LogsConfig,
        count: Callable[..., None],
        transport: Transport,
        retry: Retrier,
        builder: RequestBuilder,
        batch_bytes: int,
        export_timeout: float,
    ) -> None:
        self.count = count
        self.transport = transport
        self.retry = retry
        self.builder = builder
        self.flush_interval = cfg.flush_interval
        self.shutdown_timeout = cfg.shutdown_timeout
        self.export_timeout = export_timeout
        self.batch_size = cfg.batch_size
        self.batch_bytes = batch_bytes
        # Chunks are cut where the producer's batch ends (open_records / open_bytes: that batch so far), so
        # the export thread sends whole chunks and no request grows past batch_size records or batch_max_bytes.
        self.queue: deque[tuple[bytes, int]] = deque()
        self.max_records = cfg.queue_size
        self.max_bytes = cfg.queue_max_bytes
        self.records_in = self.records_out = 0
        self.bytes_in = self.bytes_out = 0
        self.open_records = self.open_bytes = 0
        # wait for room instead of dropping when the queue is full (replay); see wait_for_room
        self.block = False
        self.room = threading.Event()
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.deadline = float("inf")  # monotonic; set by shutdown
        self.thread = threading.Thread(target=self._run, name="otlp-logs-export", daemon=True)
        self.thread.start()

    # -- producer (processing thread) ---------------------------------------------------------------------------
    def queued(self) -> int:
        """Records waiting to be exported."""
        return self.records_in - self.records_out

    def full(self) -> bool:
        return self.queued() >= self.max_records or self.bytes_in - self.bytes_out > self.max_bytes

    def closed(self) -> bool:
        """Full, or shutting down: a record can only be dropped, or wait for room (wait_for_room)."""
        return self.full() or self.stopping.is_set()

    def put(self, f: bytes) -> None:
        n = len(f)
        if self.open_records and (self.open_records >= self.batch_size or self.open_bytes + n > self.batch_bytes):
            self.open_records = self.open_bytes = 0  # this record starts the next batch (as in LogEncoder.encode)
        self.open_records += 1
        self.open_bytes += n
        self.records_in += 1
        self.bytes_in += n
        self.queue.append((f, 1))
        self._wake_at_batch()

    def budget(self) -> tuple[int, int, int, int]:
        """(records of room, bytes of room, records and bytes of the open batch), as LogEncoder.encode takes it."""
        return (
            self.max_records - self.queued(),
            self.max_bytes - (self.bytes_in - self.bytes_out),
            self.open_records,
            self.open_bytes,
        )

    def extend(self, chunks: list[tuple[bytes, int]], size: int, open_records: int, open_bytes: int) -> None:
        """Chunks LogEncoder.encode wrote within budget(), and where its open batch now stands."""
        self.open_records, self.open_bytes = open_records, open_bytes
        if chunks:
            self.records_in += sum(c[1] for c in chunks)
            self.bytes_in += size
            self.queue.extend(chunks)
            self._wake_at_batch()

    def _wake_at_batch(self) -> None:
        """A full batch is queued: the export thread need not wait out the flush interval."""
        if (
            self.queued() >= self.batch_size or self.bytes_in - self.bytes_out >= self.batch_bytes
        ) and not self.wake.is_set():
            self.wake.set()

    def wait_for_room(self) -> bool:
        """Back-pressure for batch runs (`replay`): wait for the export thread instead of dropping.
        The daemon never waits here: its scrapes share the lock `emit` is called under."""
        while not self.stopping.is_set() and self.thread.is_alive():
            if not self.full():
                return True
            self.room.clear()
            self.wake.set()
            self.room.wait(0.05)
        return False

    # -- export thread ------------------------------------------------------------------------------------------
    def _run(self) -> None:
        q = self.queue
        try:
            while True:
                if self.queued() < self.batch_size and not self.stopping.is_set():
                    # a partial batch waits up to one flush interval for more (emit wakes us at a full one)
                    self.wake.wait(self.flush_interval)
                    self.wake.clear()
                if self.stopping.is_set() and (not q or time.monotonic() >= self.deadline):
                    return
                if q:
                    self._export_one()
        except Exception:
            log.exception("OTel log export thread failed")
        finally:
            self._abandon()

    def _abandon(self) -> None:
        """Whatever is still queued when the thread ends is dropped (and counted)."""
        left = 0
        q = self.queue
        while q:
            try:
                left += q.popleft()[1]
            except IndexError:
                break
        if left:
            self.count("dropped", left)
            log.warning("OTel logs: %d records still queued at shutdown were dropped", left)

    def _export_one(self) -> None:
        """One request of whole chunks: as many as fit in batch_size records and batch_max_bytes (a
        chunk that fits nothing alone, a single oversized record, goes alone)."""
        q = self.queue
        chunks: list[bytes] = []
        count = size = 0
        most, limit = self.batch_size, self.batch_bytes
        while q:
            f, n = q[0]  # this thread is the only consumer: the head stays until popped here
            if chunks and (count + n > most or size + len(f) > limit):
                break
            q.popleft()
            chunks.append(f)
            count += n
            size += len(f)
        self.records_out += count
        self.bytes_out += size
        self.room.set()
        if not chunks:
            return
        if time.monotonic() >= self.deadline:
            self.count("dropped", count)
            return
        self._send(self.builder.request(chunks), count)

    def _send(self, body: bytes, n: int) -> None:
        res = self.retry.run(lambda timeout: self.transport.send(body, timeout), self.stopping, lambda: self.deadline)
        if res.ok:
            if res.rejected:
                log.warning("OTel logs: collector rejected %d of %d records: %s", res.rejected, n, res.message)
            self.count("exported", n - res.rejected)
            self.count("failed", res.rejected)
            return
        log.log(self.retry.give_up_level(), "OTel logs: export of %d records failed: %s", n, res.message)
        self.count("failed", n)

    # -- lifecycle ----------------------------------------------------------------------------------------------
    def shutdown(self, timeout: float | None = None) -> None:
        """Flush what is queued within the bound (`shutdown_timeout`), then stop the export thread."""
        bound = self.shutdown_timeout if timeout is None else timeout
        self.deadline = time.monotonic() + bound
        self.stopping.set()
        self.wake.set()
        self.thread.join(bound + self.export_timeout + 5.0)
        try:
            self.transport.close()
        except Exception:
            log.debug("closing the OTLP transport failed", exc_info=True)
