"""`eventbridge-sqs` source: CloudTrail events from EventBridge, seconds after the call.

An EventBridge rule matching `{"source": ["aws.sqs"], "detail-type": ["AWS API Call via CloudTrail"]}`
sends each event to an SQS queue (directly, or through an SNS topic); the CloudTrail record is the event's
`detail`. Each message body goes to the decoder as one delivery, which unwraps EventBridge and SNS
envelopes like any other shape.

Progress lives in SQS: messages are deleted, in batches, only after the checkpoint that saved their
counts. A message received again (its delete was lost, or the process died between the checkpoint and
the delete) is recognised by its MessageId, kept in the state store in the same transaction as the
counts, and deleted without being counted twice. A body that cannot be read is counted as a failed
object, logged, and deleted: receiving it again would not make it readable.

EventBridge delivery is best effort, so this is the fresh path, not the complete one: run it beside an
`s3`, `s3-sqs` or `cloudwatch` source on the same trail with `metrics.dedupe_window` set.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

from ..config import EventBridgeSqsSourceConfig
from ..state import StateStore
from .aws import ErrorCounter, OnceLog, make_client, queue_region
from .base import Context, Source
from .sqs import QueueMessages

log = logging.getLogger(__name__)

_ID_PREFIX = "eventbridge-sqs:"


class EventBridgeSqsSource(QueueMessages, Source[EventBridgeSqsSourceConfig]):
    type = "eventbridge-sqs"

    def __init__(self, cfg: EventBridgeSqsSourceConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.queue_url = cfg.queue_url
        if cfg.region is None and (region := queue_region(cfg.queue_url)):
            cfg = self.cfg = cfg.model_copy(update={"region": region})
        self.errors = ErrorCounter(self.intake, self.name)
        self.sqs = make_client("sqs", cfg, self.errors)
        self.oncelog = OnceLog(self.name)
        self._expired = 0.0

    def poll(self, stop: threading.Event) -> None:
        cfg = self.cfg
        try:
            resp = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=cfg.max_messages,
                WaitTimeSeconds=int(cfg.wait_time),
                VisibilityTimeout=int(cfg.visibility_timeout),
            )
        except Exception as exc:
            self.errors.unsent(exc)
            self.oncelog.warn(exc, f"receiving from {self.queue_url}")
            raise
        messages: list[dict[str, Any]] = resp.get("Messages", [])
        if messages:
            self._handle(messages)
        self.oncelog.clear()
        self._expire()

    def _handle(self, messages: list[dict[str, Any]]) -> None:
        store = self.ctx.store
        for msg in messages:
            key = _ID_PREFIX + str(msg.get("MessageId"))
            if store is not None and store.seen_object(key):
                continue  # counted before its delete was lost: delete it now, count nothing
            body = msg.get("Body") or ""
            data = body.encode("utf-8", "surrogatepass") if isinstance(body, str) else bytes(body)
            self.intake.process(
                data, self.name, f"message {msg.get('MessageId')}", progress=[StateStore.object_op(key)]
            )
        self.intake.stage(after=lambda: self._delete(messages))
