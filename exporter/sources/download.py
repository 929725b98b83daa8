"""S3 downloads with bounded memory: an object above limits.max_object_bytes is refused by its
ContentLength before its body is read, and the bodies downloaded but not yet counted stay within a byte
budget (limits.max_download_bytes) however many downloads run at once.

Bodies are kept as they come (a gzip trail file compressed, usually a tenth of its JSON); the pipeline
inflates one object at a time into its reused buffer, capped by the same limit, so an object is never
held inflated twice nor inflated ahead of its turn.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

from ..decode import reader


def get_capped(s3: Any, bucket: str, key: str, admit: Any = None) -> tuple[bytes, str, int]:
    """The object's bytes, its ETag (quotes stripped) and the bytes `admit` was asked for; TooLarge
    (from the ContentLength, before reading) above the cap. `admit(n)` waits for room for `n` bytes."""
    r = s3.get_object(Bucket=bucket, Key=key)
    body = r["Body"]
    try:
        size = r.get("ContentLength")
        limit = reader.MAX_DECOMPRESSED
        if size is not None and (reason := reader.too_large(int(size))) is not None:
            raise reader.TooLarge(f"s3://{bucket}/{key}: {reason}")
        n = int(size) if size is not None else limit
        if admit is not None:
            admit(n)
        try:
            # with a ContentLength, one read fills one buffer of that size
            data = body.read() if size is not None else body.read(limit + 1)
        except BaseException:
            if admit is not None:
                admit(-n)
            raise
        if len(data) > limit:
            if admit is not None:
                admit(-n)
            raise reader.TooLarge(f"s3://{bucket}/{key}: more than limits.max_object_bytes ({limit})")
    finally:
        body.close()
    return data, str(r.get("ETag", "")).strip('"'), n


def download_budget(settings: Any) -> int:
    """limits.max_download_bytes of the settings (the default without them)."""
    from ..config import LimitsConfig

    return (settings.limits if settings is not None else LimitsConfig()).max_download_bytes


class Downloads:
    """GETs on a pool, with the bodies not yet released (see `take`) within `limit` bytes. A download
    waits for room unless it is the oldest one not yet released or the one the consumer is waiting for,
    so the consumer is never stuck, whatever order it takes results in (held ≤ limit + one object)."""

    def __init__(self, pool: ThreadPoolExecutor, s3: Any, limit: int) -> None:
        self.pool = pool
        self.s3 = s3
        self.limit = limit
        self.used = 0
        self._cond = threading.Condition()
        self._next = 0
        self._open: set[int] = set()  # tickets submitted and not yet released
        self._held: dict[int, int] = {}  # ticket → bytes admitted
        self._futures: dict[int, Future] = {}  # ticket → its download, until released
        self._wanted: set[int] = set()  # tickets the consumer is blocked on

    def submit(self, bucket: str, key: str) -> Future:
        with self._cond:
            ticket = self._next
            self._next += 1
            self._open.add(ticket)
        fut = self.pool.submit(self._get, ticket, bucket, key)
        fut.ticket = ticket  # type: ignore[attr-defined]
        with self._cond:
            if ticket in self._open:
                self._futures[ticket] = fut
        return fut

    def _get(self, ticket: int, bucket: str, key: str) -> list[Any]:
        def admit(n: int) -> None:
            with self._cond:
                if n < 0:  # the body was refused after all
                    self._held.pop(ticket, None)
                    self.used += n
                    self._cond.notify_all()
                    return
                while (
                    self.used
                    and self.used + n > self.limit
                    and ticket != min(self._open)
                    and ticket not in self._wanted
                ):
                    self._cond.wait()
                self.used += n
                self._held[ticket] = n

        data, etag, _ = get_capped(self.s3, bucket, key, admit)
        return [data, etag]  # a box `release` empties: the future itself lives on in the caller's list

    def take(self, fut: Future) -> tuple[bytes, str]:
        """The body and ETag of `fut` (raises its error, releasing it). Call `release` once it is counted."""
        ticket = fut.ticket  # type: ignore[attr-defined]
        with self._cond:
            self._wanted.add(ticket)
            self._cond.notify_all()
        try:
            data, etag = fut.result()
        except BaseException:
            self.release(fut)
            raise
        finally:
            with self._cond:
                self._wanted.discard(ticket)
        return data, etag

    def release(self, fut: Future) -> None:
        """The body of `fut` is no longer held (counted, failed or abandoned)."""
        ticket = fut.ticket  # type: ignore[attr-defined]
        with self._cond:
            if ticket in self._open:
                self._open.discard(ticket)
                self.used -= self._held.pop(ticket, 0)
                self._futures.pop(ticket, None)
                self._cond.notify_all()
        if fut.done() and not fut.cancelled() and fut.exception() is None:
            fut.result().clear()

    def abandon(self, futs: Iterable[Future]) -> None:
        """Release downloads that will not be taken (their results are discarded once they finish)."""
        for fut in futs:
            if fut.cancel():
                self.release(fut)
            else:
                fut.add_done_callback(self.release)

    def abandon_open(self) -> None:
        """Release every download not released yet (what a failure or a stop left untaken)."""
        with self._cond:
            futs = list(self._futures.values())
        self.abandon(futs)
