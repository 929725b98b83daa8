"""`s3-sqs` source: S3 object-created notifications from an SQS queue.

Accepts plain S3 event notifications, SNS-wrapped ones (`Message` holds the S3 event as a JSON string)
and EventBridge `Object Created` events; ignores (and deletes) `s3:TestEvent`. Keys in S3 notifications
are URL-encoded (`+` for spaces), EventBridge keys are not. Progress lives in SQS itself: a message is
deleted only after every object it names is counted and the counts are saved (an `Intake.stage`
action after the checkpoint), and its visibility is extended while its objects are being read. A
message naming an object that cannot be read for now (throttled, network, 5xx) stays in the queue and
is received again later. Poison (an object that is gone or denied: NoSuchKey, NoSuchBucket,
AccessDenied; a body that is no notification) is counted once and logged once, then the message is
deleted, or left for the dead-letter queue when the queue has a redrive policy (read at start). Objects
delivered twice count once: their ids (bucket/key/ETag) are kept in the state store for
`object_retention`.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote_plus

from ..config import S3SqsSourceConfig
from ..decode.reader import TooLarge
from ..state import StateStore
from .aws import (
    ClientError,
    ErrorCounter,
    OnceLog,
    make_client,
    make_session,
    object_id,
    queue_region,
    skipped_key,
)
from .base import Context, Source
from .download import Downloads, download_budget
from .sqs import QueueMessages

log = logging.getLogger(__name__)

# S3 errors that name the object, not the moment: retrying the message cannot help
POISON_CODES = frozenset({"NoSuchKey", "NoSuchBucket", "AccessDenied"})
# poison already counted and logged (objects, message ids), so a message the DLQ has not taken yet
# counts once however often it comes back; bounded, oldest forgotten first
_REMEMBER = 10_000


def poison_code(exc: BaseException) -> str | None:
    """The S3 error code if `exc` says the object itself cannot be read, else None."""
    if isinstance(exc, ClientError):
        code = exc.response.get("Error", {}).get("Code")
        if code in POISON_CODES:
            return str(code)
    return None


@dataclass(slots=True)
class S3Object:
    bucket: str
    key: str
    etag: str | None = None


@dataclass(slots=True)
class Notification:
    """What one SQS message asks for."""

    objects: list[S3Object] = field(default_factory=list)
    kind: str = "s3"  # s3 | sns | eventbridge | test | ignored | invalid
    reason: str | None = None


def parse_message(body: str | bytes) -> Notification:
    """The objects an SQS message body names (plain S3 event, SNS-wrapped, or EventBridge)."""
    try:
        doc = json.loads(body)
    except ValueError as exc:
        return Notification(kind="invalid", reason=f"not JSON: {exc}")
    return _parse(doc, depth=0)


def _parse(doc: Any, depth: int) -> Notification:
    if not isinstance(doc, dict):
        return Notification(kind="invalid", reason="not a JSON object")
    if doc.get("Type") == "Notification" and isinstance(doc.get("Message"), str) and depth < 2:
        try:
            inner = _parse(json.loads(doc["Message"]), depth + 1)
        except ValueError:
            return Notification(kind="invalid", reason="SNS Message is not JSON")
        if inner.kind == "s3":
            inner.kind = "sns"
        return inner
    if doc.get("Event") == "s3:TestEvent":
        return Notification(kind="test")
    if "detail-type" in doc and doc.get("source") == "aws.s3":
        if doc["detail-type"] != "Object Created":
            return Notification(kind="ignored")
        d = doc.get("detail") or {}
        try:
            obj = S3Object(d["bucket"]["name"], d["object"]["key"], d["object"].get("etag") or d["object"].get("eTag"))
        except (KeyError, TypeError):
            return Notification(kind="invalid", reason="EventBridge event without detail.bucket/object")
        return Notification([obj], kind="eventbridge")
    records = doc.get("Records")
    if isinstance(records, list):
        n = Notification(kind="s3")
        for r in records:
            if not isinstance(r, dict) or not str(r.get("eventName", "")).startswith("ObjectCreated:"):
                continue
            try:
                s3 = r["s3"]
                obj = s3["object"]
                n.objects.append(S3Object(s3["bucket"]["name"], unquote_plus(obj["key"]), obj.get("eTag")))
            except (KeyError, TypeError):
                return Notification(kind="invalid", reason="S3 event record without s3.bucket/object")
        if not n.objects:
            n.kind = "ignored"
        return n
    return Notification(kind="invalid", reason="neither an S3, SNS nor EventBridge notification")


class _VisibilityKeeper:
    """Extends the visibility of received messages every half timeout until stopped."""

    def __init__(self, source: S3SqsSource, handles: list[str]) -> None:
        self.source = source
        self.handles = handles
        self.done = threading.Event()
        self.thread = threading.Thread(target=self._run, name=f"{source.name}-visibility", daemon=True)

    def __enter__(self) -> _VisibilityKeeper:
        self.thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self.done.set()
        self.thread.join(5)

    def _run(self) -> None:
        src = self.source
        timeout = int(src.cfg.visibility_timeout)
        while not self.done.wait(max(1.0, timeout / 2)):
            handles = self.handles
            entries = [{"Id": str(i), "ReceiptHandle": h, "VisibilityTimeout": timeout} for i, h in enumerate(handles)]
            for i in range(0, len(entries), 10):
                try:
                    src.sqs.change_message_visibility_batch(QueueUrl=src.queue_url, Entries=entries[i : i + 10])
                except Exception as exc:
                    src.oncelog.warn(exc, "extending message visibility")


class S3SqsSource(QueueMessages, Source[S3SqsSourceConfig]):
    type = "s3-sqs"

    def __init__(self, cfg: S3SqsSourceConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.queue_url: str = cfg.queue_url
        if cfg.region is None and (region := queue_region(cfg.queue_url)):
            cfg = cfg.model_copy(update={"region": region})
            self.cfg = cfg
        self.errors = ErrorCounter(ctx.intake, self.name)
        session = make_session(cfg)
        self.sqs = make_client("sqs", cfg, self.errors, session=session, in_flight=cfg.max_in_flight)
        self.s3 = make_client("s3", cfg, self.errors, session=session, in_flight=cfg.max_in_flight)
        self.pool = ThreadPoolExecutor(cfg.max_in_flight, thread_name_prefix=f"{self.name}-get")
        self.downloads = Downloads(self.pool, self.s3, download_budget(ctx.settings))
        self.oncelog = OnceLog(self.name)
        self._expired = 0.0
        # whether the queue has a redrive policy (poison is left for its DLQ); None: not known yet
        self.redrive: bool | None = None
        self._poison: OrderedDict[Any, None] = OrderedDict()

    def poll(self, stop: threading.Event) -> None:
        cfg = self.cfg
        if self.redrive is None:
            self._read_redrive()
        try:
            resp = self.sqs.receive_message(
                QueueUrl=self.queue_url,
                MaxNumberOfMessages=cfg.max_messages,
                WaitTimeSeconds=int(cfg.wait_time),
                VisibilityTimeout=int(cfg.visibility_timeout),
                MessageSystemAttributeNames=["ApproximateReceiveCount"],
            )
        except Exception as exc:
            self.errors.unsent(exc)
            self.oncelog.warn(exc, f"receiving from {self.queue_url}")
            raise
        messages = resp.get("Messages", [])
        if messages:
            with _VisibilityKeeper(self, [m["ReceiptHandle"] for m in messages]) as keeper:
                try:
                    self._handle(messages, keeper)
                finally:
                    self.downloads.abandon_open()
        self._expire()

    def _handle(self, messages: list[dict[str, Any]], keeper: _VisibilityKeeper) -> None:
        intake = self.intake
        store = self.ctx.store
        shared = self.ctx.shared
        notes = [parse_message(m.get("Body", "")) for m in messages]
        # start every download first (bounded by the pool), then count in message order
        futures: dict[tuple[str, str], Future] = {}
        for n in notes:
            for o in n.objects:
                ref = (o.bucket, o.key)
                if skipped_key(o.key) or ref in futures:
                    continue
                if o.etag and store is not None and store.seen_object(object_id(o.bucket, o.key, o.etag)):
                    continue
                futures[ref] = self.downloads.submit(o.bucket, o.key)
        done: dict[tuple[str, str], bool] = {}  # counted (or known counted) in this batch → ok?
        deletable: list[dict[str, Any]] = []
        for msg, n in zip(messages, notes, strict=True):
            if n.kind == "invalid":
                if self._first_time(("message", msg.get("MessageId"))):
                    intake.source_error(self.name, "message")
                    log.warning(
                        "source %s: message %s is not an S3 notification (%s); %s",
                        self.name,
                        msg.get("MessageId"),
                        n.reason,
                        self._poison_fate(),
                    )
                if self.keep_poison:  # back soon, so the queue's maxReceiveCount moves it to the DLQ
                    keeper.handles = [h for h in keeper.handles if h != msg["ReceiptHandle"]]
                    self._retry_later(msg, quiet=True)
                else:
                    deletable.append(msg)
                continue
            poison = False
            ok = True
            for o in n.objects:
                ref = (o.bucket, o.key)
                if ref in done:
                    ok = ok and done[ref]
                    continue
                if skipped_key(o.key):
                    intake.count_object(self.name, "skipped")
                    done[ref] = True
                    continue
                fut = futures.get(ref)
                if fut is None:  # already counted in an earlier batch
                    done[ref] = True
                    continue
                try:
                    data, etag = self.downloads.take(fut)
                except Exception as exc:
                    if not isinstance(exc, TooLarge):  # the object's fault, not the source's
                        self.errors.unsent(exc)
                    if (code := poison_code(exc)) is not None:
                        self._count_poison(o, code)
                        poison = True
                        done[ref] = not self.keep_poison
                        ok = ok and done[ref]
                        continue
                    self.oncelog.warn(exc, f"s3://{o.bucket}/{o.key}")
                    intake.count_object(self.name, "failed")
                    done[ref] = ok = False
                    continue
                oid = object_id(o.bucket, o.key, etag)
                if store is not None and store.seen_object(oid):
                    done[ref] = True
                    continue
                # several replicas: a lease in Redis decides who counts it (None: Redis away, local only)
                claim = shared.claim(oid) if shared is not None else None
                if claim == "done":
                    done[ref] = True
                    continue
                if claim == "busy":  # another replica is on it; if it dies, its lease expires
                    done[ref] = ok = False
                    continue
                intake.process(
                    data,
                    self.name,
                    f"s3://{o.bucket}/{o.key}",
                    progress=[StateStore.object_op(oid)],
                    after=(lambda oid=oid: shared.mark_done([oid])) if claim == "new" else None,
                )
                data = b""
                self.downloads.release(fut)
                done[ref] = True
            if ok:
                deletable.append(msg)
            else:
                keeper.handles = [h for h in keeper.handles if h != msg["ReceiptHandle"]]
                self._retry_later(msg, quiet=poison)
        if deletable:
            intake.stage(after=lambda: self._delete(deletable))
        if len(deletable) == len(messages):
            self.oncelog.clear()

    # -- poison ------------------------------------------------------------------------------------
    @property
    def keep_poison(self) -> bool:
        """Leave poison for the DLQ (the queue has a redrive policy, or we could not tell yet)."""
        return self.redrive is not False

    def _poison_fate(self) -> str:
        if self.redrive is None:
            return "left in the queue (its redrive policy could not be read)"
        return "left for the dead-letter queue" if self.redrive else "message deleted (the queue has no DLQ)"

    def _read_redrive(self) -> None:
        try:
            attrs = self.sqs.get_queue_attributes(QueueUrl=self.queue_url, AttributeNames=["RedrivePolicy"])
        except Exception as exc:  # asked again next poll; meanwhile nothing unread is deleted
            self.errors.unsent(exc)
            self.oncelog.warn(exc, f"reading the redrive policy of {self.queue_url}")
            return
        self.redrive = bool(attrs.get("Attributes", {}).get("RedrivePolicy"))
        log.info(
            "source %s: %s has %s; a message naming an object that is gone or denied is %s",
            self.name,
            self.queue_url,
            "a redrive policy" if self.redrive else "no redrive policy",
            "left for the DLQ" if self.redrive else "deleted once counted as failed",
        )

    def _first_time(self, key: Any) -> bool:
        if key in self._poison:
            return False
        self._poison[key] = None
        if len(self._poison) > _REMEMBER:
            self._poison.popitem(last=False)
        return True

    def _count_poison(self, o: S3Object, code: str) -> None:
        """An object that cannot be read however often it is asked for: one failed object, one line."""
        if self._first_time(("object", o.bucket, o.key, o.etag)):
            self.intake.count_object(self.name, "failed")
            log.warning(
                "source %s: s3://%s/%s: %s; counted as failed, %s",
                self.name,
                o.bucket,
                o.key,
                code,
                self._poison_fate(),
            )

    def _retry_later(self, msg: dict[str, Any], quiet: bool = False) -> None:
        """Leave the message in the queue, visible again after a delay growing with its receive count."""
        count = int(msg.get("Attributes", {}).get("ApproximateReceiveCount", "1") or 1)
        delay = int(min(self.cfg.visibility_timeout, self.cfg.retry_visibility * count))
        (log.debug if quiet else log.info)(
            "source %s: message %s left in the queue (received %d times), back in %ds",
            self.name,
            msg.get("MessageId"),
            count,
            delay,
        )
        try:
            self.sqs.change_message_visibility(
                QueueUrl=self.queue_url, ReceiptHandle=msg["ReceiptHandle"], VisibilityTimeout=delay
            )
        except Exception as exc:
            self.errors.unsent(exc)
            self.oncelog.warn(exc, "changing message visibility")
