"""The C scanner's rows (exporter._native.scan_calls) → the same calls exporter.decode.record.to_call makes.

The scanner returns, per SQS record, the tuple of fields the queue/category derivation reads and the
tuple of the caller's identity fields, as strings it hands out once per distinct value. Both tuples are
cache keys here; a miss rebuilds the SqsRecord they came from and asks record.py, so the derivation
itself lives in one place.
"""

from __future__ import annotations

import os
from typing import Any

import msgspec

from ..cache import BoundedCache
from .record import (
    CACHEABLE,
    MAX_CACHED,
    SQS_SOURCE,
    TIMES,
    Call,
    Derived,
    Identity,
    Issuer,
    Params,
    Principals,
    Resource,
    SessionContext,
    SqsRecord,
    derive,
    parse_time,
    principals,
)

try:  # built when a compiler is present; without it (or with CTSQS_NATIVE=0) the msgspec path does everything
    from .. import _native

    if os.environ.get("CTSQS_NATIVE", "1") == "0":
        _native = None  # type: ignore[assignment]
except ImportError:  # pragma: no cover - depends on the build
    _native = None  # type: ignore[assignment]

scan_calls = _native.scan_calls if _native is not None else None

Row = tuple[tuple[Any, ...], tuple[Any, ...] | None, str | None, int, str | None, bytes | None]


def identity(ikey: tuple[Any, ...] | None) -> Identity | None:
    if ikey is None:
        return None
    kind, arn, principal_id, account_id, user_name, invoked_by, issuer = ikey
    ctx = SessionContext(sessionIssuer=Issuer(arn=issuer)) if issuer is not None else None
    return Identity(kind, arn, principal_id, account_id, user_name, invoked_by, ctx)


def record(dkey: tuple[Any, ...], ikey: tuple[Any, ...] | None) -> SqsRecord:
    recipient, region, name, category, management, url, queue_name, source_arn, arns = dkey
    resources = None if arns is None else tuple(None if a is None else Resource(ARN=a) for a in arns)
    return SqsRecord(
        eventSource=SQS_SOURCE,
        eventName=name,
        awsRegion=region,
        recipientAccountId=recipient,
        eventCategory=category,
        managementEvent=management,
        userIdentity=identity(ikey),
        requestParameters=Params(queueUrl=url, queueName=queue_name, sourceArn=source_arn),
        resources=resources,
    )


def _short(key: tuple[Any, ...] | None) -> bool:
    """Hostile input must not fill memory: keys with long strings are not remembered."""
    return key is None or len(msgspec.json.encode(key)) <= 4 * CACHEABLE


# Keyed by the scanner's tuples (not by SqsRecord like record.py's): a row never becomes a record on a hit.
ROW_DERIVED: BoundedCache[tuple[Any, ...], Derived] = BoundedCache(MAX_CACHED)
ROW_PRINCIPALS: BoundedCache[tuple[Any, ...] | None, Principals] = BoundedCache(MAX_CACHED)


def derived(dkey: tuple[Any, ...], ikey: tuple[Any, ...] | None) -> Derived:
    hit = derive(record(dkey, ikey))
    # without recipientAccountId the account may come from the caller: not a function of dkey alone
    if dkey[0] and _short(dkey):
        ROW_DERIVED.put(dkey, hit)
    return hit


def principals_of(ikey: tuple[Any, ...] | None) -> Principals:
    hit = principals(identity(ikey))
    if _short(ikey):
        ROW_PRINCIPALS.put(ikey, hit)
    return hit


def calls_of(rows: list[Row]) -> list[Call]:
    """The scanner's rows as Calls (exporter._native.calls_of: the cache lookups in C, misses here)."""
    return _native.calls_of(rows, ROW_DERIVED, ROW_PRINCIPALS, TIMES, derived, principals_of, parse_time)
