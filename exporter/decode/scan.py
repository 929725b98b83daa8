"""The C scanner's rows (exporter._native.scan_calls) → the same calls exporter.decode.record.to_calls makes.

The scanner returns, per SQS record, the tuple of fields the queue/category derivation reads and the
tuple of the caller's identity fields, as strings it hands out once per distinct value. Both tuples are
cache keys here; a miss rebuilds the SqsRecord they came from and asks record.py, so the derivation
itself lives in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from typing import Any

import msgspec

from .record import (
    _CACHEABLE,
    _MAX_CACHED,
    SQS_SOURCE,
    Call,
    Derived,
    SqsRecord,
    _derive,
    _Identity,
    _Issuer,
    _Params,
    _Resource,
    _SessionContext,
    _time_cache,
    parse_time,
    principals,
    remember,
)

try:  # built when a compiler is present; without it (or with CTSQS_NATIVE=0) the msgspec path does everything
    from .. import _native

    on = os.environ.get("CTSQS_NATIVE", "1") != "0"
    scan_calls = _native.scan_calls if on else None
    _native_calls_of = _native.calls_of if on else None
except ImportError:  # pragma: no cover - depends on the build
    scan_calls = _native_calls_of = None

Row = tuple[tuple[Any, ...], tuple[Any, ...] | None, str | None, int, str | None, bytes | None]

_derived: dict[tuple[Any, ...], Derived] = {}
_principals: dict[tuple[Any, ...] | None, tuple[str | None, str | None]] = {}


def identity(ikey: tuple[Any, ...] | None) -> _Identity | None:
    if ikey is None:
        return None
    kind, arn, principal_id, account_id, user_name, invoked_by, issuer = ikey
    ctx = _SessionContext(sessionIssuer=_Issuer(arn=issuer)) if issuer is not None else None
    return _Identity(kind, arn, principal_id, account_id, user_name, invoked_by, ctx)


def record(dkey: tuple[Any, ...], ikey: tuple[Any, ...] | None) -> SqsRecord:
    recipient, region, name, category, management, url, queue_name, source_arn, arns = dkey
    resources = None if arns is None else tuple(None if a is None else _Resource(ARN=a) for a in arns)
    return SqsRecord(
        eventSource=SQS_SOURCE,
        eventName=name,
        awsRegion=region,
        recipientAccountId=recipient,
        eventCategory=category,
        managementEvent=management,
        userIdentity=identity(ikey),
        requestParameters=_Params(queueUrl=url, queueName=queue_name, sourceArn=source_arn),
        resources=resources,
    )


def _short(key: tuple[Any, ...] | None) -> bool:
    """Hostile input must not fill memory: keys with long strings are not remembered."""
    return key is None or len(msgspec.json.encode(key)) <= 4 * _CACHEABLE


def derived(dkey: tuple[Any, ...], ikey: tuple[Any, ...] | None) -> Derived:
    hit = _derive(record(dkey, ikey))
    # without recipientAccountId the account may come from the caller: not a function of dkey alone
    if dkey[0] and _short(dkey):
        remember(_derived, dkey, hit, _MAX_CACHED)
    return hit


class Declined(Exception):
    """A row lacks a field its caller's principal needs: the msgspec path reads that delivery."""


def principals_of(ikey: tuple[Any, ...] | None) -> tuple[str | None, str | None]:
    if ikey is not None and ikey[0] == "IdentityCenterUser":
        raise Declined("the scanner's identity tuple carries no onBehalfOf")
    hit = principals(identity(ikey))
    if _short(ikey):
        remember(_principals, ikey, hit, _MAX_CACHED)
    return hit


def calls_of(rows: Iterable[Row]) -> list[Call]:
    if _native_calls_of is not None and type(rows) is list:  # the loop below, in C
        return _native_calls_of(rows, _derived, _principals, _time_cache, derived, principals_of, parse_time)
    return _calls_of(rows)


def _calls_of(rows: Iterable[Row]) -> list[Call]:
    calls: list[Call] = []
    append = calls.append
    derived_get = _derived.get
    principals_get = _principals.get
    times_get = _time_cache.get
    for dkey, ikey, error, entries, etime, _ in rows:
        d = derived_get(dkey) or derived(dkey, ikey)
        who = principals_get(ikey) or principals_of(ikey)
        t = times_get(etime) if etime else None
        if t is None:
            t = parse_time(etime)
        append((d[0], error or None, entries if d[2] else 0, t, who[0], who[1], d[1]))
    return calls
