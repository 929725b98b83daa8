"""What the two queue-fed sources (`s3-sqs`, `eventbridge-sqs`) share: deleting handled messages in batches
once their counts are saved, and forgetting the ids that stop a second count once they are old enough."""

from __future__ import annotations

import logging
import time
from typing import Any

from .aws import ErrorCounter, OnceLog

log = logging.getLogger(__name__)


class QueueMessages:
    """A mixin for a Source that reads an SQS queue; it sets `sqs`, `queue_url`, `errors`, `oncelog`."""

    name: str
    ctx: Any
    cfg: Any
    sqs: Any
    queue_url: str
    errors: ErrorCounter
    oncelog: OnceLog
    _expired: float = 0.0

    def _delete(self, messages: list[dict[str, Any]]) -> None:
        """Runs once the counts of these messages are saved. A delete that fails means the message comes
        back; the ids kept in the state store stop a second count."""
        for i in range(0, len(messages), 10):
            entries = [{"Id": str(j), "ReceiptHandle": m["ReceiptHandle"]} for j, m in enumerate(messages[i : i + 10])]
            try:
                r = self.sqs.delete_message_batch(QueueUrl=self.queue_url, Entries=entries)
            except Exception as exc:
                self.errors.unsent(exc)
                self.oncelog.warn(exc, "deleting messages")
                continue
            for f in r.get("Failed", ()):
                log.warning("source %s: could not delete a message: %s", self.name, f.get("Message") or f.get("Code"))

    def _expire(self) -> None:
        """Once an hour, forget the ids older than `object_retention`."""
        store = self.ctx.store
        if store is not None and time.monotonic() - self._expired > 3600:
            self._expired = time.monotonic()
            store.expire_objects(time.time() - self.cfg.object_retention)
