"""The C scanner (exporter._native.Scanner), and what it asks Python on a cache miss.

The scanner reads, per SQS record, the tuple of fields the queue/category derivation reads and the
tuple of the caller's identity fields, as strings it hands out once per distinct value. Both tuples are
keys of the scanner's own caches; a miss rebuilds the SqsRecord they came from and asks record.py, so
the derivation itself lives in one place.
"""

from __future__ import annotations

import os
from typing import Any

from ..access import POLICY_EVENTS
from .record import (
    SQS_SOURCE,
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

# (dkey, ikey, errorCode, entries, eventTime, eventID, raw): one SQS record as Scanner.rows reads it
Row = tuple[tuple[Any, ...], tuple[Any, ...] | None, str | None, int, str | None, str | None, bytes | None]


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


def derived(dkey: tuple[Any, ...], ikey: tuple[Any, ...] | None) -> Derived:
    return derive(record(dkey, ikey))


class Declined(Exception):
    """A row lacks a field its caller's principal needs: the msgspec path reads that delivery."""


def principals_of(ikey: tuple[Any, ...] | None) -> Principals:
    if ikey is not None and ikey[0] == "IdentityCenterUser":
        raise Declined("the scanner's identity tuple carries no onBehalfOf")
    return principals(identity(ikey))


# calls whose raw JSON is kept even when no sink wants raw records (`raws` then holds None for the others)
RAW_EVENTS = POLICY_EVENTS


def _build() -> Any:
    """The scanner, or None without the extension (not built, or CTSQS_NATIVE=0)."""
    if os.environ.get("CTSQS_NATIVE", "1") == "0":
        return None
    try:
        from .._native import Scanner
    except ImportError:  # pragma: no cover - depends on the build
        return None
    # the metrics read the request parameters of the rare calls that change a queue's policy or encryption
    return Scanner(derived, principals_of, parse_time, raw_events=RAW_EVENTS)


scanner = _build()
