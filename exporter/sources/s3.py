"""`s3` source: polls a CloudTrail bucket.

Discovers accounts and regions under the trail prefix (`AWSLogs/<account>/CloudTrail/<region>/`,
organization trails `AWSLogs/o-xxxx/<account>/…`), then lists each region prefix in key order with
`StartAfter`. Keys carry the date and time (`YYYY/MM/DD/<acct>_CloudTrail_<region>_YYYYMMDDTHHMMZ_…`),
so `StartAfter` a key built from a time skips every earlier day without listing it: a new day never
lists the bucket again. Progress is the last key per region prefix (bounded state). A short lookback
behind the last key picks up deliveries that land with an earlier key; object ids (bucket/key/ETag)
drop what was already counted.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any, Literal
from urllib.parse import urlparse

from ..config import AwsSourceConfig, S3SourceConfig
from ..decode.reader import TooLarge
from ..state import StateStore
from .aws import ErrorCounter, OnceLog, error_kind, make_client, object_id, skipped_key
from .base import Context, Source
from .download import Downloads, download_budget, get_capped

log = logging.getLogger(__name__)

ACCOUNT = re.compile(r"^\d{12}$")
ORG = re.compile(r"^o-[a-z0-9]{10,32}$")
STAMP = re.compile(r"_(\d{8}T\d{4})Z_")


def list_prefixes(s3: Any, bucket: str, prefix: str) -> list[str]:
    out: list[str] = []
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix, Delimiter="/"):
        out.extend(cp["Prefix"] for cp in page.get("CommonPrefixes", ()))
    return out


def _seg(prefix: str, i: int = -1) -> str:
    parts = prefix.rstrip("/").split("/")
    return parts[i] if len(parts) >= -i else ""


def discover(
    s3: Any,
    bucket: str,
    prefix: str,
    accounts: list[str] | None = None,
    regions: list[str] | None = None,
) -> list[tuple[str, str, str]]:
    """(account, region, region prefix) for every trail log prefix under `prefix`."""
    out: list[tuple[str, str, str]] = []

    def region_prefixes(acct: str, ct_prefix: str) -> None:
        if accounts is not None and acct not in accounts:
            return
        if regions is not None:  # known: no need to list them
            out.extend((acct, r, f"{ct_prefix}{r}/") for r in regions)
            return
        for rp in list_prefixes(s3, bucket, ct_prefix):
            out.append((acct, _seg(rp), rp))

    def walk(p: str, depth: int) -> None:
        last = _seg(p)
        if _seg(p, -2) == "CloudTrail" and p:  # …/<acct>/CloudTrail/<region>/
            acct, region = _seg(p, -3), last
            if (accounts is None or acct in accounts) and (regions is None or region in regions):
                out.append((acct, region, p))
            return
        if last == "CloudTrail":
            region_prefixes(_seg(p, -2), p)
            return
        if ACCOUNT.match(last):
            region_prefixes(last, f"{p}CloudTrail/")
            return
        if depth > 3:
            return
        for child in list_prefixes(s3, bucket, p):
            name = _seg(child)
            if ACCOUNT.match(name):
                region_prefixes(name, f"{child}CloudTrail/")
            elif ORG.match(name) or name == "AWSLogs":
                walk(child, depth + 1)

    walk(prefix, 0)
    return out


def key_at(region_prefix: str, acct: str, region: str, t: datetime) -> str:
    """The key a delivery made at `t` would sort after: `StartAfter` for a time."""
    t = t.astimezone(UTC)
    return f"{region_prefix}{t:%Y/%m/%d}/{acct}_CloudTrail_{region}_{t:%Y%m%dT%H%M}Z"


def key_time(key: str) -> datetime | None:
    m = STAMP.search(key.rsplit("/", 1)[-1])
    if not m:
        return None
    return datetime.strptime(m.group(1), "%Y%m%dT%H%M").replace(tzinfo=UTC)


class S3Source(Source[S3SourceConfig]):
    type = "s3"

    def __init__(self, cfg: S3SourceConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.bucket: str = cfg.bucket
        prefix = cfg.prefix or ""
        self.prefix = prefix if not prefix or prefix.endswith("/") else prefix + "/"
        self.errors = ErrorCounter(ctx.intake, self.name)
        self.s3 = make_client("s3", cfg, self.errors, in_flight=cfg.max_in_flight)
        self.pool = ThreadPoolExecutor(cfg.max_in_flight, thread_name_prefix=f"{self.name}-get")
        self.downloads = Downloads(self.pool, self.s3, download_budget(ctx.settings))
        self.oncelog = OnceLog(self.name)
        self.last: dict[str, str | None] = {}  # region prefix → last key done
        self.attempts: dict[str, int] = {}
        self._expired = 0.0
        self.start = self._resolve_start(cfg.start)

    def _state_key(self, what: str) -> str:
        return f"s3:{self.name}:{what}"

    def _resolve_start(self, start: datetime | Literal["now"] | None) -> datetime | None:
        """`now` means when this source first ran, kept in the state so a restart does not skip."""
        if start != "now":
            return start
        store = self.ctx.store
        saved = store.get(self._state_key("start")) if store else None
        if saved is not None:
            return datetime.fromtimestamp(saved, UTC)
        now = time.time()
        self.intake.stage([StateStore.put_op(self._state_key("start"), now)])
        return datetime.fromtimestamp(now, UTC)

    def _last_key(self, rp: str) -> str | None:
        if rp not in self.last:
            store = self.ctx.store
            self.last[rp] = store.get(self._state_key(rp)) if store else None
        return self.last[rp]

    def _seen(self, oid: str) -> bool:
        store = self.ctx.store
        return store is not None and store.seen_object(oid)

    def poll(self, stop: threading.Event) -> None:
        cfg = self.cfg
        try:
            prefixes = discover(self.s3, self.bucket, self.prefix, cfg.accounts, cfg.regions)
        except Exception as exc:
            self.errors.unsent(exc)
            self.oncelog.warn(exc, f"listing s3://{self.bucket}/{self.prefix}")
            raise
        behind: list[str] = []
        for acct, region, rp in prefixes:
            if stop.is_set():
                return
            try:
                if not self._walk(acct, region, rp, stop):
                    behind.append(rp)
            except Exception as exc:
                self.errors.unsent(exc)
                self.oncelog.warn(exc, f"listing s3://{self.bucket}/{rp}")
                behind.append(rp)
        self._expire()
        if behind:
            raise RuntimeError(f"{len(behind)} prefix(es) could not be read completely, e.g. {behind[0]}")
        self.oncelog.clear()

    def _start_after(self, acct: str, region: str, rp: str) -> str | None:
        last = self._last_key(rp)
        if last is None:
            return key_at(rp, acct, region, self.start) if self.start is not None else None
        t = key_time(last)
        if t is None or self.cfg.lookback <= 0:
            return last
        return min(last, key_at(rp, acct, region, datetime.fromtimestamp(t.timestamp() - self.cfg.lookback, UTC)))

    def _walk(self, acct: str, region: str, rp: str, stop: threading.Event) -> bool:
        """Read every new object under one region prefix in key order. False: stopped at a failure."""
        kw: dict[str, Any] = {"Bucket": self.bucket, "Prefix": rp}
        start_after = self._start_after(acct, region, rp)
        if start_after:
            kw["StartAfter"] = start_after
        chunk = self.cfg.max_in_flight * 4
        for page in self.s3.get_paginator("list_objects_v2").paginate(**kw):
            items = [(o["Key"], str(o.get("ETag", "")).strip('"')) for o in page.get("Contents", ())]
            for i in range(0, len(items), chunk):
                if stop.is_set():
                    return True
                if not self._batch(rp, items[i : i + chunk]):
                    return False
        return True

    def _batch(self, rp: str, items: list[tuple[str, str]]) -> bool:
        """Download a chunk of keys in parallel, then count them strictly in key order, so the saved
        last key never passes an object that is still to be read."""
        kinds = []
        for key, etag in items:
            if skipped_key(key):
                kinds.append("skip")
            elif self._seen(object_id(self.bucket, key, etag)):
                kinds.append("seen")
            else:
                kinds.append("get")
        gets = [k for (k, _), kind in zip(items, kinds, strict=True) if kind == "get"]
        futures = [self.downloads.submit(self.bucket, k) for k in gets]
        fetched = iter(futures)
        try:
            return self._count(rp, items, kinds, fetched)
        finally:
            self.downloads.abandon(fetched)  # what a failure left untaken

    def _count(self, rp: str, items: list[tuple[str, str]], kinds: list[str], fetched: Iterator[Any]) -> bool:
        intake = self.intake
        for (key, etag), kind in zip(items, kinds, strict=True):
            if kind == "skip":
                intake.count_object(self.name, "skipped", self._progress(rp, key, None))
                continue
            if kind == "seen":
                self._advance(rp, key)
                continue
            data, got_etag, exc, fut = self._fetched(next(fetched))
            oid = object_id(self.bucket, key, got_etag or etag)
            if exc is None:
                assert data is not None
                try:
                    intake.process(data, self.name, f"s3://{self.bucket}/{key}", progress=self._progress(rp, key, oid))
                finally:
                    del data
                    self.downloads.release(fut)
            else:
                self.oncelog.warn(exc, f"s3://{self.bucket}/{key}")
                n = self.attempts[key] = self.attempts.get(key, 0) + 1
                lasting = isinstance(exc, TooLarge) or error_kind(exc=exc) == "notfound"
                if not lasting and n < self.cfg.max_object_attempts:
                    return False  # keep the order: retry from here at the next poll
                log.warning("source %s: giving up on s3://%s/%s after %d attempt(s)", self.name, self.bucket, key, n)
                intake.count_object(self.name, "failed", self._progress(rp, key, oid))
            self.attempts.pop(key, None)
            intake.maybe_checkpoint()
        return True

    def _fetched(self, fut: Any) -> tuple[bytes | None, str | None, BaseException | None, Any]:
        try:
            data, etag = self.downloads.take(fut)
        except Exception as exc:
            if not isinstance(exc, TooLarge):  # the object's fault, not the source's
                self.errors.unsent(exc)
            return None, None, exc, fut
        return data, etag, None, fut

    def _advance(self, rp: str, key: str) -> None:
        last = self._last_key(rp)
        if last is None or key > last:
            self.intake.stage(self._progress(rp, key, None))

    def _progress(self, rp: str, key: str, oid: str | None) -> list:
        ops = []
        last = self._last_key(rp)
        if last is None or key > last:
            self.last[rp] = key
            ops.append(StateStore.put_op(self._state_key(rp), key))
        if oid is not None:
            ops.append(StateStore.object_op(oid))
        return ops

    def _expire(self) -> None:
        store = self.ctx.store
        if store is not None and time.monotonic() - self._expired > 3600:
            self._expired = time.monotonic()
            store.expire_objects(time.time() - self.cfg.object_retention)


def iter_s3_url(url: str) -> Iterator[tuple[str, Any]]:
    """(s3://bucket/key, loader) for every object under an s3:// URL, in key order (for `replay`).
    Honours AWS_ENDPOINT_URL and the standard credential chain. Digest and Insight objects are not
    downloaded: their loader yields an empty document, which the pipeline counts as skipped."""
    u = urlparse(url)
    bucket, prefix = u.netloc, u.path.lstrip("/")
    if not bucket:
        raise ValueError("expected s3://bucket/prefix: no bucket named")

    s3 = make_client("s3", AwsSourceConfig(), in_flight=4)  # the defaults: region and endpoint from the environment
    for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        for obj in page.get("Contents", ()):
            key = obj["Key"]
            if skipped_key(key):
                yield f"s3://{bucket}/{key}", lambda: b"{}"
            else:
                yield f"s3://{bucket}/{key}", (lambda k=key: get_capped(s3, bucket, k)[0])
