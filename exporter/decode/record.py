"""One CloudTrail record → one SqsEvent: only the fields the exporter needs are decoded."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

SQS_SOURCE = "sqs.amazonaws.com"
NO_QUEUE = "(none)"
UNKNOWN = "unknown"

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
class _Issuer(msgspec.Struct, gc=False):
    arn: str | None = None


class _SessionContext(msgspec.Struct, gc=False):
    sessionIssuer: _Issuer | None = None


class _Identity(msgspec.Struct, gc=False):
    type: str | None = None
    arn: str | None = None
    principalId: str | None = None
    accountId: str | None = None
    userName: str | None = None
    invokedBy: str | None = None
    sessionContext: _SessionContext | None = None


class _Resource(msgspec.Struct, gc=False):
    ARN: str | None = None


class _Params(msgspec.Struct, gc=False):
    queueUrl: str | None = None
    queueName: str | None = None
    sourceArn: str | None = None
    entries: list[msgspec.Raw] | None = None


class _Source(msgspec.Struct, gc=False):
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
    userIdentity: _Identity | None = None
    requestParameters: _Params | None = None
    resources: list[_Resource | None] | None = None


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


decode_source = msgspec.json.Decoder(_Source).decode
decode_record = msgspec.json.Decoder(SqsRecord).decode

_time_cache: dict[str, float | None] = {}


def parse_time(value: str | None) -> float | None:
    """eventTime → epoch seconds. Accepts `…Z`, offsets, a space separator, fractions; None if unreadable."""
    if not value:
        return None
    cached = _time_cache.get(value)
    if cached is not None or value in _time_cache:
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
        if len(_time_cache) > 100_000:  # a file spans minutes; the cache only needs to hold its seconds
            _time_cache.clear()
        _time_cache[value] = result
    return result


_url_cache: dict[str, tuple[str | None, str | None]] = {}
_arn_cache: dict[str, tuple[str | None, str | None]] = {}
_CACHEABLE = 256  # real queue URLs and ARNs are shorter; longer (hostile) strings are not remembered


def split_url(url: str) -> tuple[str | None, str | None]:
    """_split_url, remembered: a deployment has a few thousand queue URLs, seen millions of times."""
    hit = _url_cache.get(url)
    if hit is None:
        hit = _split_url(url)
        if len(url) <= _CACHEABLE:
            if len(_url_cache) > 100_000:
                _url_cache.clear()
            _url_cache[url] = hit
    return hit


def split_arn(arn: str) -> tuple[str | None, str | None]:
    hit = _arn_cache.get(arn)
    if hit is None:
        hit = _split_arn(arn)
        if len(arn) <= _CACHEABLE:
            if len(_arn_cache) > 100_000:
                _arn_cache.clear()
            _arn_cache[arn] = hit
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


def principals(ident: _Identity | None) -> tuple[str | None, str | None]:
    """(role-granularity principal, arn-granularity principal) of a caller."""
    if ident is None:
        return None, None
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


def to_event(rec: SqsRecord) -> SqsEvent:
    params = rec.requestParameters
    url_account = queue = queue_url = queue_arn = None
    if params is not None and params.queueUrl:
        queue_url = params.queueUrl
        url_account, queue = split_url(queue_url)
    if rec.resources:
        for res in rec.resources:
            if res is not None and res.ARN and res.ARN.startswith("arn:"):
                acct, name = split_arn(res.ARN)
                if name is not None:
                    queue_arn = res.ARN
                    if queue is None:
                        queue, url_account = name, acct
                    break
    if queue is None and params is not None:
        if params.queueName:
            queue = params.queueName
        elif params.sourceArn:
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

    role, arn = principals(ident)
    entries = params.entries if params is not None and name.endswith("Batch") else None
    return SqsEvent(
        account_id=account,
        region=region,
        queue=queue or NO_QUEUE,
        event_name=name,
        category=category,
        error_code=rec.errorCode or None,
        principal_role=role,
        principal_arn=arn,
        event_time=parse_time(rec.eventTime),
        batch_entries=len(entries) if entries else 0,
        queue_url=queue_url,
        queue_arn=queue_arn,
    )
