"""State shared by several replicas through Redis: object idempotency, distinct principals, and which
principals have series of their own in the access map.

Counters are not shared: each replica exports its share and `sum without (instance, pod)` adds them up.
Distinct principals cannot be summed, so every replica PFADDs into per-minute and per-hour HyperLogLog keys
and reports a window's figure from PFCOUNT over that window's keys: all replicas report the same number.

When Redis is unreachable a replica keeps counting: HLL additions wait in a bounded buffer and are sent
when Redis returns; object idempotency falls back to the replica's own SQLite store (so an object
redelivered to *another* replica during the outage can be counted twice), and so does event dedupe
(an event another replica counted during the outage can be counted again); the distinct-principal gauges
show this replica's own view; `/readyz` fails and `cloudtrail_sqs_exporter_redis_up` is 0.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterable, Sequence
from typing import Any

import redis

log = logging.getLogger(__name__)

PREFIX = "ctsqs:"
WINDOWS: tuple[tuple[str, float], ...] = (("15m", 900.0), ("1h", 3600.0), ("24h", 86400.0))
MAX_BUFFER = 1_000_000  # pending HLL additions kept through a Redis outage

# SET key to the larger of its value and ARGV[1]
_MAX_SCRIPT = """
local v = tonumber(redis.call('GET', KEYS[1]) or '0')
if tonumber(ARGV[1]) > v then redis.call('SET', KEYS[1], ARGV[1]) end
redis.call('EXPIRE', KEYS[1], ARGV[2])
return 1
"""


# Admit ARGV[1] to the set KEYS[1] while it holds fewer than ARGV[2] members; 1 if it is (now) a member
_ADMIT_SCRIPT = """
if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return 1 end
if redis.call('SCARD', KEYS[1]) < tonumber(ARGV[2]) then
  redis.call('SADD', KEYS[1], ARGV[1])
  return 1
end
return 0
"""


class Batch:
    """HLL additions and newest event times gathered from some objects, not yet in Redis."""

    def __init__(
        self, pending: dict[tuple[str, str, str, int], set[str]], newest: dict[tuple[str, str], float], n: int
    ) -> None:
        self.pending, self.newest, self.n = pending, newest, n

    def merge(self, other: Batch) -> None:
        for k, s in other.pending.items():
            cur = self.pending.setdefault(k, set())
            before = len(cur)
            cur |= s
            self.n += len(cur) - before
        for k, t in other.newest.items():
            if t > self.newest.get(k, 0.0):
                self.newest[k] = t


def _key(*parts: object) -> str:
    return PREFIX + "|".join(str(p) for p in parts)


class SharedState:
    def __init__(self, url: str, lease: float = 300.0, retention: float = 7 * 86400.0) -> None:
        self.r = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.replica = f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self.lease = lease
        self.retention = retention
        self.up = False
        self.failing_since: float | None = time.monotonic()
        self.errors = 0
        self.dropped = 0
        self._send_lock = threading.Lock()
        self._retry: Batch | None = None
        # (account, region, queue, minute) → principals not yet sent
        self._pending: dict[tuple[str, str, str, int], set[str]] = {}
        self._pending_n = 0
        self._newest: dict[tuple[str, str], float] = {}
        self._max = self.r.register_script(_MAX_SCRIPT)
        self._admit = self.r.register_script(_ADMIT_SCRIPT)
        self._cache: tuple[float, dict[tuple[str, str, str, str], int]] | None = None
        self.ping()

    # -- health ------------------------------------------------------------------------------------
    def _ok(self) -> None:
        if not self.up:
            log.info("redis: connected (replica %s)", self.replica)
        self.up = True
        self.failing_since = None

    def _failed(self, exc: Exception) -> None:
        self.errors += 1
        if self.up or self.failing_since is None:
            log.warning("redis: unavailable, counting on with local state: %s", exc)
            self.failing_since = time.monotonic()
        self.up = False

    def ping(self) -> bool:
        try:
            self.r.ping()
        except redis.RedisError as exc:
            self._failed(exc)
            return False
        self._ok()
        return True

    def health(self) -> tuple[bool, str]:
        return (True, "redis: ok") if self.up else (False, "redis: unavailable")

    # -- object idempotency ------------------------------------------------------------------------
    def claim(self, object_id: str) -> str | None:
        """'new' (this replica holds the lease), 'done' (counted by someone), 'busy' (another replica's
        lease), or None when Redis is unreachable (the caller falls back to its local store)."""
        key = _key("obj", object_id)
        mine = "lease:" + self.replica
        try:
            if self.r.set(key, mine, nx=True, px=int(self.lease * 1000)):
                self._ok()
                return "new"
            value = self.r.get(key)
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        self._ok()
        if value is None:  # expired between the two calls
            return self.claim(object_id)
        value = value.decode()
        if value == "done":
            return "done"
        return "new" if value == mine else "busy"

    def mark_done(self, object_ids: Iterable[str]) -> None:
        ids = list(object_ids)
        if not ids:
            return
        try:
            pipe = self.r.pipeline(transaction=False)
            for oid in ids:
                pipe.set(_key("obj", oid), "done", ex=int(self.retention))
            pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)
        else:
            self._ok()

    def release(self, object_id: str) -> None:
        """Give up a lease (the object failed) so another replica may try at once."""
        try:
            key = _key("obj", object_id)
            if self.r.get(key) == ("lease:" + self.replica).encode():
                self.r.delete(key)
        except redis.RedisError as exc:
            self._failed(exc)

    # -- event dedupe (metrics.dedupe_window) ----------------------------------------------------------
    def seen_events(self, ids: Sequence[str]) -> set[str]:
        """The ids another replica (or this one) has claimed within the window. While Redis is away:
        none, and dedupe goes by the local state store alone."""
        if not ids or not self.up:
            return set()
        try:
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.exists(_key("ev", i))
            found = pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)
            return set()
        self._ok()
        return {i for i, n in zip(ids, found, strict=True) if n}

    def claim_events(self, ids: Sequence[str], ttl: float) -> None:
        """Mark ids counted, once their counts are committed locally: SET NX (the first replica's mark
        stands) with the window as TTL, so Redis holds one window of ids."""
        if not ids or not self.up:
            return
        ex = max(1, int(ttl))
        try:
            pipe = self.r.pipeline(transaction=False)
            for i in ids:
                pipe.set(_key("ev", i), 1, nx=True, ex=ex)
            pipe.execute()
        except redis.RedisError as exc:
            self._failed(exc)
        else:
            self._ok()

    # -- distinct principals -----------------------------------------------------------------------
    def add(self, account: str, region: str, queue: str, t: float, principal: str) -> None:
        """Called per event under the pipeline lock: only buffers."""
        k = (account, region, queue, int(t // 60))
        s = self._pending.get(k)
        if s is None:
            s = self._pending[k] = set()
        if principal not in s:
            if self._pending_n >= MAX_BUFFER:
                self.dropped += 1
                return
            s.add(principal)
            self._pending_n += 1
        ak = (account, region)
        if t > self._newest.get(ak, 0.0):
            self._newest[ak] = t

    def take(self) -> Batch:
        """Hand over what `add` buffered. Call under the same lock as `add` (the pipeline lock)."""
        batch = Batch(self._pending, self._newest, self._pending_n)
        self._pending, self._newest, self._pending_n = {}, {}, 0
        return batch

    def send(self, batch: Batch | None = None) -> bool:
        """Send a batch (and whatever an outage held back). On failure keep it, bounded, for next time."""
        with self._send_lock:
            if batch is not None and batch.n:
                if self._retry is None:
                    self._retry = batch
                elif self._retry.n + batch.n > MAX_BUFFER:
                    self.dropped += batch.n
                else:
                    self._retry.merge(batch)
            if self._retry is None:
                return True
            try:
                self._write(self._retry)
            except redis.RedisError as exc:
                self._failed(exc)
                return False
            self._retry = None
        self._ok()
        return True

    def _write(self, batch: Batch) -> None:
        ttl = int(max(w for _, w in WINDOWS) + 7200)
        pipe = self.r.pipeline(transaction=False)
        queues = set()
        for (a, r, q, minute), principals in batch.pending.items():
            members = list(principals)
            for kind, bucket in (("m", minute), ("h", minute // 60)):
                key = _key("hll", kind, a, r, q, bucket)
                pipe.pfadd(key, *members)
                pipe.expire(key, ttl)
            queues.add(f"{a}|{r}|{q}")
        if queues:
            pipe.sadd(_key("queues"), *queues)
        for (a, r), t in batch.newest.items():
            self._max(keys=[_key("newest", a, r)], args=[t, ttl], client=pipe)
        pipe.execute()

    @property
    def backlog(self) -> int:
        retry = self._retry
        return self._pending_n + (retry.n if retry is not None else 0)

    def distinct(self, max_age: float = 5.0) -> dict[tuple[str, str, str, str], int] | None:
        """Global distinct principals per (account, region, queue, window); None if Redis is down.
        Cached for `max_age` seconds: one scrape costs a PFCOUNT per queue and window."""
        now = time.monotonic()
        if self._cache is not None and now - self._cache[0] < max_age:
            return self._cache[1]
        try:
            queues = sorted(m.decode() for m in self.r.smembers(_key("queues")))
            accounts = sorted({tuple(q.split("|", 2)[:2]) for q in queues})
            pipe = self.r.pipeline(transaction=False)
            for a, r in accounts:
                pipe.get(_key("newest", a, r))
            newest = {ar: float(v) for ar, v in zip(accounts, pipe.execute(), strict=True) if v is not None}
            order: list[tuple[str, str, str, str]] = []
            pipe = self.r.pipeline(transaction=False)
            for q in queues:
                a, r, name = q.split("|", 2)
                t = newest.get((a, r))
                if t is None:
                    continue
                for label, width in WINDOWS:
                    pipe.pfcount(*window_keys(a, r, name, t, width))
                    order.append((a, r, name, label))
            counts = pipe.execute() if order else []
        except redis.RedisError as exc:
            self._failed(exc)
            return None
        self._ok()
        result = dict(zip(order, counts, strict=True))
        self._cache = (now, result)
        return result

    # -- access map ----------------------------------------------------------------------------------
    def admit_principal(self, qkey: tuple[str, str, str], principal: str, cap: int) -> bool:
        """Whether a principal gets a series of its own on a queue (exporter.sinks.metrics.access_map `admit`):
        the first `cap` principals any replica admits, atomically in Redis, so every replica names the same
        ones. While Redis is unreachable the replica decides alone (it has checked its own cap)."""
        if not self.up:
            return True
        try:
            ok = self._admit(keys=[_key("named", *qkey)], args=[principal, cap])
        except redis.RedisError as exc:
            self._failed(exc)
            return True
        return bool(ok)


def window_keys(a: str, r: str, q: str, newest: float, width: float) -> list[str]:
    """The HLL keys covering (newest - width, newest]. A bucket at the lower edge counts when more than
    half of it lies inside the window, so the edge error is at most half a bucket either way.
    Windows up to an hour use minute buckets; longer ones hour buckets."""
    size, kind = (60, "m") if width <= 3600 else (3600, "h")
    last = int(newest // size)
    start = newest - width
    first = int(start // size)
    if (first + 1) * size - start < size / 2:  # less than half of the edge bucket is inside
        first += 1
    return [_key("hll", kind, a, r, q, b) for b in range(first, last + 1)]


def connect(url: str | None, **kw: Any) -> SharedState | None:
    return SharedState(url, **kw) if url else None


class SharedCollector:
    """The replica's view of Redis, for /metrics."""

    def __init__(self, shared: SharedState) -> None:
        self.shared = shared

    def describe(self) -> list[Any]:
        return []

    def collect(self) -> Iterable[Any]:
        from prometheus_client.metrics_core import CounterMetricFamily, GaugeMetricFamily

        s = self.shared
        p = "cloudtrail_sqs_exporter_redis_"
        yield GaugeMetricFamily(p + "up", "1 when the shared Redis answered the last call.", value=int(s.up))
        yield CounterMetricFamily(p + "errors", "Failed calls to the shared Redis.", value=s.errors)
        yield GaugeMetricFamily(p + "backlog", "Distinct-principal additions waiting for Redis.", value=s.backlog)
        yield CounterMetricFamily(
            p + "dropped", "Distinct-principal additions dropped while Redis was away too long.", value=s.dropped
        )
