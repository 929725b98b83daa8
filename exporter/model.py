"""The records every stage shares: what a call is counted under, and the call itself.

Sources hand over bytes; `exporter.decode` turns them into `Call`s; the pipeline hands the calls to every
sink. This module is the only place these shapes are defined, so a stage never reads another stage's
tuples by position.
"""

from __future__ import annotations

from typing import NamedTuple

import msgspec

SQS_SOURCE = "sqs.amazonaws.com"
INSIGHT = "AwsCloudTrailInsight"

NO_QUEUE = "(none)"  # the call names no queue (ListQueues, …)
OTHER_QUEUE = "(other)"  # a queue beyond metrics.max_queues
UNKNOWN = "unknown"  # an account or region the record does not give

# distinct-principal windows: label → width in seconds (event time)
WINDOWS: tuple[tuple[str, float], ...] = (("15m", 900.0), ("1h", 3600.0), ("24h", 86400.0))
LONGEST_WINDOW = WINDOWS[-1][1]

RECORD_OUTCOMES = ("sqs", "other", "invalid")
OBJECT_OUTCOMES = ("ok", "skipped", "failed")
LOG_OUTCOMES = ("exported", "dropped", "failed")


class Labels(NamedTuple):
    """What an SQS call is counted under. The hot path may build it as a plain tuple: equal and hashed alike."""

    account_id: str
    region: str
    queue: str
    event_name: str
    category: str


class QueueRef(NamedTuple):
    """The queue as the record names it (for logs): its URL and ARN, either may be unknown."""

    url: str | None
    arn: str | None


NO_REF = QueueRef(None, None)


class Call(msgspec.Struct, gc=False, frozen=True):
    """One SQS API call, as every sink sees it.

    A msgspec Struct: named fields at tuple speed, created from C through its vectorcall constructor.
    """

    labels: Labels
    error: str | None
    entries: int  # entries of a *Batch request, else 0
    time: float | None  # eventTime, epoch seconds; None when unreadable
    principal_role: str | None  # the caller at `role` granularity
    principal_arn: str | None  # the caller at `arn` granularity
    queue: QueueRef
    event_id: str | None = None  # eventID: the same event from two sources is told apart by it (dedupe)
