"""What the AWS sources share: sessions (standard chain or an assumed role), clients with botocore
retries, error classification and counting, a request-rate limiter, and S3 object fetching with
object-level idempotency."""

from __future__ import annotations

import logging
import os
import re
import threading
import time
from collections.abc import Callable
from typing import Any

import boto3
import botocore.session
from botocore.config import Config
from botocore.credentials import DeferredRefreshableCredentials
from botocore.exceptions import (
    BotoCoreError,
    ClientError,
    HTTPClientError,
    NoCredentialsError,
    PartialCredentialsError,
)
from botocore.exceptions import (
    ConnectionError as BotoConnectionError,
)

from ..config import AwsSourceConfig
from ..interfaces import Intake

log = logging.getLogger(__name__)

THROTTLED = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
        "AWS.SimpleQueueService.RequestThrottled",
    }
)
DENIED = frozenset(
    {
        "AccessDenied",
        "AccessDeniedException",
        "UnauthorizedOperation",
        "UnrecognizedClientException",
        "InvalidAccessKeyId",
        "InvalidClientTokenId",
        "SignatureDoesNotMatch",
        "ExpiredToken",
        "ExpiredTokenException",
        "InvalidToken",
        "KMS.AccessDeniedException",
        "AWS.SimpleQueueService.AccessDenied",
    }
)
NOT_FOUND = frozenset(
    {
        "NoSuchKey",
        "NoSuchBucket",
        "NotFound",
        "404",
        "ResourceNotFoundException",
        "AWS.SimpleQueueService.NonExistentQueue",
        "QueueDoesNotExist",
    }
)


def error_kind(code: str | None = None, status: int | None = None, exc: BaseException | None = None) -> str:
    """throttled | denied | notfound | server | client | network | credentials | other"""
    if exc is not None:
        if isinstance(exc, ClientError):
            err = exc.response.get("Error", {})
            meta = exc.response.get("ResponseMetadata", {})
            return error_kind(err.get("Code"), meta.get("HTTPStatusCode"))
        if isinstance(exc, NoCredentialsError | PartialCredentialsError):
            return "credentials"
        if isinstance(exc, HTTPClientError | BotoConnectionError | ConnectionError | TimeoutError):
            return "network"
        return "other"
    if code in THROTTLED or status == 429:
        return "throttled"
    if code in DENIED or status == 403:
        return "denied"
    if code in NOT_FOUND or status == 404:
        return "notfound"
    if status is not None and status >= 500:
        return "server"
    return "client"


def was_sent(exc: BaseException) -> bool:
    """Whether botocore saw this failure on the wire (and the attempt counter already counted it)."""
    return isinstance(exc, ClientError | HTTPClientError | BotoConnectionError)


class ErrorCounter:
    """Counts every failed attempt (retries included) into source_errors_total by kind, via botocore's
    `needs-retry` event, so throttling that retries absorb is still visible."""

    def __init__(self, intake: Intake | None, source: str) -> None:
        self.intake = intake
        self.source = source
        self.last: tuple[str, str] | None = None  # (kind, detail) of the last failed attempt

    def attach(self, client: Any) -> Any:
        client.meta.events.register("needs-retry", self._on_attempt)
        return client

    def _on_attempt(self, response: Any = None, caught_exception: Any = None, operation: Any = None, **_: Any) -> None:
        if caught_exception is not None:
            kind = error_kind(exc=caught_exception)
            detail = f"{type(caught_exception).__name__}: {caught_exception}"
        elif response is not None:
            http, parsed = response
            status = getattr(http, "status_code", 0)
            if status < 400:
                return
            code = (parsed or {}).get("Error", {}).get("Code")
            kind = error_kind(code, status)
            detail = f"HTTP {status} {code or ''}".strip()
        else:
            return
        name = getattr(operation, "name", "?")
        self.last = (kind, f"{name}: {detail}")
        log.debug("source %s: %s failed (%s): %s", self.source, name, kind, detail)
        if self.intake is not None:
            self.intake.source_error(self.source, kind)

    def unsent(self, exc: BaseException) -> None:
        """Count a failure that never reached the wire (no credentials, bad parameters...)."""
        if not was_sent(exc) and self.intake is not None:
            self.intake.source_error(self.source, error_kind(exc=exc))


class OnceLog:
    """Logs a failure once per (kind, context) until `clear()`; retries and repeats stay quiet."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._seen: set[tuple[str, str]] = set()

    def warn(self, exc: BaseException, context: str) -> None:
        kind = error_kind(exc=exc)
        if (kind, context) not in self._seen:
            self._seen.add((kind, context))
            log.warning("source %s: %s failed (%s): %s", self.source, context, kind, exc)

    def clear(self) -> None:
        self._seen.clear()


def endpoint_url(cfg: AwsSourceConfig) -> str | None:
    return cfg.endpoint_url or os.environ.get("AWS_ENDPOINT_URL") or None


def client_config(cfg: AwsSourceConfig, in_flight: int = 1, **extra: Any) -> Config:
    """botocore settings from the source's config; `in_flight`: how many requests the caller makes at once."""
    return Config(
        retries={"mode": cfg.retry_mode, "max_attempts": cfg.max_attempts},
        connect_timeout=cfg.connect_timeout,
        read_timeout=cfg.read_timeout,
        max_pool_connections=max(10, in_flight * 2),
        user_agent_extra="cloudtrail-sqs-exporter",
        **extra,
    )


def make_session(cfg: AwsSourceConfig) -> boto3.Session:
    """The standard credential chain (env, profile, IRSA web identity, Pod Identity / container
    credentials, instance profile); with `role_arn`, a role assumed from it, refreshed as it expires."""
    region = cfg.region
    base = boto3.Session(region_name=region)
    role_arn = cfg.role_arn
    if not role_arn:
        return base
    sts = base.client("sts", endpoint_url=endpoint_url(cfg), config=client_config(cfg))

    def refresh() -> dict[str, str]:
        kw: dict[str, Any] = {"RoleArn": role_arn, "RoleSessionName": cfg.role_session_name}
        if cfg.external_id:
            kw["ExternalId"] = cfg.external_id
        c = sts.assume_role(**kw)["Credentials"]
        return {
            "access_key": c["AccessKeyId"],
            "secret_key": c["SecretAccessKey"],
            "token": c["SessionToken"],
            "expiry_time": c["Expiration"].isoformat(),
        }

    bs = botocore.session.get_session()
    bs._credentials = DeferredRefreshableCredentials(refresh_using=refresh, method="sts-assume-role")
    if region:
        bs.set_config_variable("region", region)
    return boto3.Session(botocore_session=bs)


def make_client(
    service: str,
    cfg: AwsSourceConfig,
    counter: ErrorCounter | None = None,
    session: Any = None,
    in_flight: int = 1,
    **extra: Any,
) -> Any:
    session = session or make_session(cfg)
    client = session.client(service, endpoint_url=endpoint_url(cfg), config=client_config(cfg, in_flight, **extra))
    if counter is not None:
        counter.attach(client)
    return client


class RateLimiter:
    """A token bucket shared by the sources that call the same quota (e.g. FilterLogEvents, 5/s)."""

    _shared: dict[Any, RateLimiter] = {}
    _shared_lock = threading.Lock()

    def __init__(self, rate: float, burst: float | None = None, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(1.0, rate)
        self.tokens = self.burst
        self.clock = clock
        self.t = clock()
        self.lock = threading.Lock()

    @classmethod
    def shared(cls, key: Any, rate: float) -> RateLimiter:
        with cls._shared_lock:
            lim = cls._shared.get(key)
            if lim is None:
                lim = cls._shared[key] = cls(rate)
            else:
                lim.rate = min(lim.rate, rate)
            return lim

    def acquire(self, stop: threading.Event | None = None) -> bool:
        """Wait for a token; False if `stop` was set while waiting."""
        while True:
            with self.lock:
                now = self.clock()
                self.tokens = min(self.burst, self.tokens + (now - self.t) * self.rate)
                self.t = now
                if self.tokens >= 1:
                    self.tokens -= 1
                    return True
                wait = (1 - self.tokens) / self.rate
            if stop is not None:
                if stop.wait(wait):
                    return False
            else:
                time.sleep(wait)


SKIP_MARKERS = ("/CloudTrail-Digest/", "/CloudTrail-Insight/")


def skipped_key(key: str) -> bool:
    """Digest and Insight deliveries: not trail logs, skipped by key without downloading."""
    k = "/" + key
    return any(m in k for m in SKIP_MARKERS)


def object_id(bucket: str, key: str, etag: str | None) -> str:
    return f"s3://{bucket}/{key}#{(etag or '').strip(chr(34))}"


def get_object(s3: Any, bucket: str, key: str) -> tuple[bytes, str]:
    """The object's bytes and its ETag (quotes stripped)."""
    r = s3.get_object(Bucket=bucket, Key=key)
    try:
        data = r["Body"].read()
    finally:
        r["Body"].close()
    return data, str(r.get("ETag", "")).strip('"')


__all__ = [
    "BotoCoreError",
    "ClientError",
    "ErrorCounter",
    "OnceLog",
    "RateLimiter",
    "error_kind",
    "get_object",
    "make_client",
    "make_session",
    "object_id",
    "skipped_key",
]


_QUEUE_REGION = re.compile(r"sqs[.-]([a-z0-9-]+)\.amazonaws\.com|://([a-z0-9-]+)\.queue\.amazonaws\.com")


def queue_region(url: str) -> str | None:
    m = _QUEUE_REGION.search(url)
    return (m.group(1) or m.group(2)) if m else None
