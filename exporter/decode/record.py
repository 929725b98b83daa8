"""One CloudTrail record → one SqsEvent: only the fields the exporter needs are decoded."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import msgspec

from ..cache import BoundedCache
from ..model import INSIGHT, NO_QUEUE, NO_REF, SQS_SOURCE, UNKNOWN, Call, Labels, QueueRef

__all__ = ["INSIGHT", "NO_QUEUE", "SQS_SOURCE", "UNKNOWN", "Call", "Labels", "QueueRef"]

# Data events per the SQS developer guide; every other SQS API is a management event.
DATA_EVENTS = frozenset(
    {
        "SendMessage",
        "SendMessageBatch",
        "ReceiveMessage",
        "DeleteMessage",
        "DeleteMessageBatch",
        "ChangeMessageVisibility",
        "ChangeMessageVisibilityBatch",
    }
)


# gc=False: decoded records hold only strings, numbers and each other (no cycles); not tracking them
# spares the cyclic collector from walking every record of a file.
# frozen: an identity is hashable, so its principals are worked out once per caller, not per call.
class Issuer(msgspec.Struct, gc=False, frozen=True):
    arn: str | None = None


class SessionContext(msgspec.Struct, gc=False, frozen=True):
    sessionIssuer: Issuer | None = None


class OnBehalfOf(msgspec.Struct, gc=False, frozen=True):
    userId: str | None = None
    identityStoreArn: str | None = None


class Identity(msgspec.Struct, gc=False, frozen=True):
    type: str | None = None
    arn: str | None = None
    principalId: str | None = None
    accountId: str | None = None
    userName: str | None = None
    invokedBy: str | None = None
    sessionContext: SessionContext | None = None
    # IdentityCenterUser: the user the call was made for (there is no arn)
    onBehalfOf: OnBehalfOf | None = None


class Resource(msgspec.Struct, gc=False, frozen=True):
    ARN: str | None = None


class Params(msgspec.Struct, gc=False):
    queueUrl: str | None = None
    queueName: str | None = None
    sourceArn: str | None = None
    entries: list[msgspec.Raw] | None = None


class Source(msgspec.Struct, gc=False):
    """The cheapest decode that tells an SQS record from the rest."""

    eventSource: str | None = None
    eventType: str | None = None


class SqsRecord(msgspec.Struct, gc=False):
    eventSource: str | None = None
    eventName: str | None = None
    eventTime: str | None = None
    eventType: str | None = None
    awsRegion: str | None = None
    recipientAccountId: str | None = None
    errorCode: str | None = None
    eventCategory: str | None = None
    managementEvent: bool | None = None
    userIdentity: Identity | None = None
    requestParameters: Params | None = None
    # a tuple of frozen structs: hashable, part of the key derive's results are remembered by
    resources: tuple[Resource | None, ...] | None = None
    eventID: str | None = None


class SqsEvent(msgspec.Struct, gc=False):
    """What the sinks need of one SQS API call."""

    account_id: str
    region: str
    queue: str
    event_name: str
    category: str
    error_code: str | None
    principal_role: str | None
    principal_arn: str | None
    event_time: float | None
    batch_entries: int
    queue_url: str | None
    queue_arn: str | None


decode_source = msgspec.json.Decoder(Source).decode
decode_record = msgspec.json.Decoder(SqsRecord).decode

# a file spans minutes: the cache only needs to hold its seconds
TIMES: BoundedCache[str, float | None] = BoundedCache(100_000)


def parse_time(value: str | None) -> float | None:
    """eventTime → epoch seconds. Accepts `…Z`, offsets, a space separator, fractions; None if unreadable."""
    if not value:
        return None
    cached = TIMES.get(value)
    if cached is not None or value in TIMES:
        return cached
    try:
        dt = datetime.fromisoformat(value)
    except ValueError:
        result = None
    else:
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        result = dt.timestamp()
    if len(value) <= 40:  # real eventTimes are short; hostile ones must not fill memory
        TIMES.put(value, result)
    return result


_url_cache: BoundedCache[str, tuple[str | None, str | None]] = BoundedCache(100_000)
_arn_cache: BoundedCache[str, tuple[str | None, str | None]] = BoundedCache(100_000)
CACHEABLE = 256  # real queue URLs and ARNs are shorter; longer (hostile) strings are not remembered


def split_url(url: str) -> tuple[str | None, str | None]:
    """_split_url, remembered: a deployment has a few thousand queue URLs, seen millions of times."""
    hit = _url_cache.get(url)
    if hit is None:
        hit = _split_url(url)
        if len(url) <= CACHEABLE:
            _url_cache.put(url, hit)
    return hit


def split_arn(arn: str) -> tuple[str | None, str | None]:
    hit = _arn_cache.get(arn)
    if hit is None:
        hit = _split_arn(arn)
        if len(arn) <= CACHEABLE:
            _arn_cache.put(arn, hit)
    return hit


def _split_url(url: str) -> tuple[str | None, str | None]:
    """Queue URL (any host: sqs.<region>.amazonaws.com, queue.amazonaws.com, VPC endpoints…) → (account, name)."""
    path = url.split("?", 1)[0].rstrip("/")
    if "://" in path:
        path = path.split("://", 1)[1]
        parts = path.split("/")[1:]  # drop the host
    else:
        parts = path.split("/")
    parts = [p for p in parts if p]
    if not parts:
        return None, None
    if len(parts) >= 2:
        return parts[-2], parts[-1]
    return None, parts[-1]


def _split_arn(arn: str) -> tuple[str | None, str | None]:
    """`arn:aws:sqs:region:account:name` → (account, name)."""
    parts = arn.split(":", 5)
    if len(parts) == 6 and parts[2] == "sqs" and parts[5]:
        return parts[4] or None, parts[5]
    return None, None


def _role_of(arn: str) -> str:
    """An assumed-role session ARN → the role it was issued for."""
    # arn:aws:sts::123:assumed-role/Role/Session → arn:aws:iam::123:role/Role
    head, _, resource = arn.partition(":assumed-role/")
    if not resource:
        return arn
    role = resource.split("/", 1)[0]
    return head.replace(":sts:", ":iam:", 1) + ":role/" + role


def principals(ident: Identity | None) -> tuple[str | None, str | None]:
    """(role-granularity principal, arn-granularity principal) of a caller (table: docs/identity.md)."""
    if ident is None:
        return None, None
    obo = ident.onBehalfOf
    if ident.type == "IdentityCenterUser" and obo is not None and obo.userId:
        # a user id is unique within its identity store; the store's ARN names the instance
        store = obo.identityStoreArn or (f"account:{ident.accountId}" if ident.accountId else "identitystore")
        p = f"{store}/user/{obo.userId}"
        return p, p
    if ident.type == "AWSAccount" and not ident.arn and ident.accountId and ident.principalId:
        # principal ids are unique per account only; a role session id (AROA…:session) counts as its role
        p = f"account:{ident.accountId}/{ident.principalId}"
        return f"account:{ident.accountId}/{ident.principalId.split(':', 1)[0]}", p
    if ident.type == "AWSService" or (ident.invokedBy and not ident.arn):
        p = ident.invokedBy or ident.principalId
        return p, p
    arn = ident.arn
    if arn is None:
        p = ident.principalId or ident.userName or (f"account:{ident.accountId}" if ident.accountId else None)
        return p, p
    if ident.type == "AssumedRole" or ":assumed-role/" in arn:
        ctx = ident.sessionContext
        issuer = ctx.sessionIssuer.arn if ctx is not None and ctx.sessionIssuer is not None else None
        return issuer or _role_of(arn), arn
    return arn, arn


# Labels, the queue as named, and whether the call is a *Batch one (its entries are counted).
Derived = tuple[Labels, QueueRef, bool]
Principals = tuple[str | None, str | None]  # the caller at role and at arn granularity

MAX_CACHED = 20_000  # entries per cache; a deployment has a few thousand queues × event names, callers
DERIVED: BoundedCache[tuple[Any, ...], Derived] = BoundedCache(MAX_CACHED)
PRINCIPALS: BoundedCache[Identity | None, Principals] = BoundedCache(MAX_CACHED)


def derive_key(rec: SqsRecord) -> tuple[Any, ...]:
    """Everything `derive` reads of a record (the identity's account only matters without these)."""
    p = rec.requestParameters
    if p is None:
        return (
            rec.recipientAccountId,
            rec.awsRegion,
            rec.eventName,
            rec.eventCategory,
            rec.managementEvent,
            None,
            None,
            None,
            rec.resources,
        )
    return (
        rec.recipientAccountId,
        rec.awsRegion,
        rec.eventName,
        rec.eventCategory,
        rec.managementEvent,
        p.queueUrl,
        p.queueName,
        p.sourceArn,
        rec.resources,
    )


def derived(rec: SqsRecord, key: tuple[Any, ...]) -> Derived:
    """derive, remembered by `key` (= derive_key(rec)) when the record names its account and no string
    in it is long: hostile input must not fill memory."""
    hit = derive(rec)
    if (
        rec.recipientAccountId
        and all(type(v) is not str or len(v) <= CACHEABLE for v in key[:-1])
        and (not rec.resources or len(msgspec.json.encode(rec.resources)) <= 4 * CACHEABLE)
    ):
        DERIVED.put(key, hit)
    return hit


def derive(rec: SqsRecord) -> Derived:
    params = rec.requestParameters
    url_account = queue = queue_url = queue_arn = None
    if params is not None and params.queueUrl:
        queue_url = params.queueUrl
        url_account, queue = split_url(queue_url)
    if rec.resources:
        for res in rec.resources:
            if res is not None and res.ARN and res.ARN.startswith("arn:"):
                acct, name = split_arn(res.ARN)
                if name is not None and not name.endswith("*"):  # `…:*` (ListQueues) names no queue
                    queue_arn = res.ARN
                    if queue is None:
                        queue, url_account = name, acct
                    break
    if queue is None and params is not None:
        if params.queueName:
            queue = params.queueName
        elif params.sourceArn and not params.sourceArn.endswith("*"):
            url_account, queue = split_arn(params.sourceArn)
    ident = rec.userIdentity
    account = rec.recipientAccountId or url_account or (ident.accountId if ident else None) or UNKNOWN
    region = rec.awsRegion or UNKNOWN
    if queue_arn is None and queue is not None and account != UNKNOWN and region != UNKNOWN:
        queue_arn = f"arn:aws:sqs:{region}:{account}:{queue}"

    name = rec.eventName or UNKNOWN
    if rec.eventCategory:
        category = rec.eventCategory
    elif rec.managementEvent is not None:
        category = "Management" if rec.managementEvent else "Data"
    else:
        category = "Data" if name in DATA_EVENTS else "Management"
    ref = NO_REF if queue_url is None and queue_arn is None else QueueRef(queue_url, queue_arn)
    return Labels(account, region, queue or NO_QUEUE, name, category), ref, name.endswith("Batch")


def principals_of(ident: Identity | None) -> Principals:
    """principals(), remembered per identity (sessions call many times); long strings are not kept."""
    hit = PRINCIPALS.get(ident)
    if hit is None:
        hit = principals(ident)
        if ident is None or len(msgspec.json.encode(ident)) <= 4 * CACHEABLE:
            PRINCIPALS.put(ident, hit)
    return hit


def to_call(rec: SqsRecord) -> Call:
    """What every sink needs of one SQS API call record."""
    key = derive_key(rec)
    labels, ref, batch = DERIVED.get(key) or derived(rec, key)
    entries = rec.requestParameters.entries if batch and rec.requestParameters is not None else None
    role, arn = principals_of(rec.userIdentity)
    n = len(entries) if entries else 0
    return Call(labels, rec.errorCode or None, n, parse_time(rec.eventTime), role, arn, ref, rec.eventID)


def call_event(call: Call) -> SqsEvent:
    account, region, queue, name, category = call.labels
    url, queue_arn = call.queue
    return SqsEvent(
        account,
        region,
        queue,
        name,
        category,
        call.error,
        call.principal_role,
        call.principal_arn,
        call.time,
        call.entries,
        url,
        queue_arn,
    )


def to_event(rec: SqsRecord) -> SqsEvent:
    return call_event(to_call(rec))
