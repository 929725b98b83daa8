"""The value types of the settings schema (durations, start times) and its source sections, one class per
source type. exporter.config builds the whole schema on them and re-exports every name here."""

from __future__ import annotations

import re
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator, model_validator

_DURATION = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?\s*$")
_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, None: 1.0}


def parse_duration(value: Any) -> float:
    """`90`, `1.5`, `500ms`, `15s`, `5m`, `1h`, `1d` → seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 15s, 5m or 1h")
    if isinstance(value, int | float):
        return float(value)
    m = _DURATION.match(str(value))
    if not m:
        raise ValueError(f"{value!r} is not a duration (use e.g. 500ms, 15s, 5m, 1h)")
    return float(m.group(1)) * _UNITS[m.group(2)]


Duration = Annotated[float, BeforeValidator(parse_duration)]
# the least a poll loop may wait between passes (0 would spin a core), a checkpoint or flush interval,
# and a network timeout
MIN_POLL = 0.1
MIN_COMMIT = 0.01
MIN_TIMEOUT = 0.1


class Strict(BaseModel):
    # validators built on first validation, not at import: a `replay` without configuration needs none
    # (exporter.config.load builds its defaults without validating)
    model_config = ConfigDict(extra="forbid", defer_build=True)


class FileSourceConfig(Strict):
    type: Literal["file"]
    path: Path
    name: str | None = None
    poll_interval: Duration = Field(5.0, ge=MIN_POLL)
    # a file younger than this may still be being written: wait for the next poll
    settle: Duration = Field(1.0, ge=0)


def parse_start(value: Any) -> datetime | Literal["now"] | None:
    """`now`, a date (`2026-11-01`) or a timestamp (`2026-11-01T12:00:00Z`) → aware UTC datetime."""
    if value is None or isinstance(value, datetime):
        return value if value is None or value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, date):
        return datetime(value.year, value.month, value.day, tzinfo=UTC)
    text = str(value).strip()
    if text.lower() == "now":
        return "now"
    try:
        t = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ValueError(f"{value!r} is not a date, a timestamp or 'now'") from None
    return t if t.tzinfo else t.replace(tzinfo=UTC)


Start = Annotated[datetime | Literal["now"] | None, BeforeValidator(parse_start)]


class AwsSourceConfig(Strict):
    """What every AWS source takes: where to connect and as whom."""

    name: str | None = None
    region: str | None = None  # else AWS_REGION / AWS_DEFAULT_REGION / profile
    endpoint_url: str | None = None  # else AWS_ENDPOINT_URL (S3-compatible stores, local emulators)
    role_arn: str | None = None  # assumed via STS, credentials refreshed before they expire
    role_session_name: str = "cloudtrail-sqs-exporter"
    external_id: str | None = None
    retry_mode: Literal["standard", "adaptive"] = "standard"
    max_attempts: int = Field(5, ge=1, le=20)
    connect_timeout: Duration = Field(5.0, ge=MIN_TIMEOUT)
    read_timeout: Duration = Field(60.0, ge=MIN_TIMEOUT)
    # how long object ids (bucket/key/ETag) are kept to drop duplicate deliveries
    object_retention: Duration = Field(7 * 86400.0, ge=0)


class S3SourceConfig(AwsSourceConfig):
    type: Literal["s3"]
    bucket: str = Field(min_length=3)
    prefix: str = "AWSLogs/"
    start: Start = None  # None: from the oldest object; "now": from when the source first ran
    poll_interval: Duration = Field(60.0, ge=MIN_POLL)
    accounts: list[str] | None = None  # only these account ids
    regions: list[str] | None = None  # only these regions
    max_in_flight: int = Field(4, ge=1, le=64)  # concurrent downloads
    # re-list keys this far behind the last key (by the time in its name): late deliveries with an
    # earlier key are still read; duplicates are dropped by object id
    lookback: Duration = Field(600.0, ge=0)
    max_object_attempts: int = Field(5, ge=1)  # then the object is counted failed and passed

    @field_validator("accounts", "regions", mode="before")
    @classmethod
    def _csv(cls, v: Any) -> Any:
        if isinstance(v, str):
            v = [a.strip() for a in v.split(",") if a.strip()]
        return [str(a) for a in v] if isinstance(v, list) else v


class S3SqsSourceConfig(AwsSourceConfig):
    type: Literal["s3-sqs"]
    queue_url: str = Field(min_length=1)
    # between receives; the receive itself long-polls (with wait_time 0, at least MIN_POLL)
    poll_interval: Duration = Field(0.0, ge=0)
    wait_time: Duration = Field(20.0, ge=0, le=20)
    max_messages: int = Field(10, ge=1, le=10)
    max_in_flight: int = Field(4, ge=1, le=64)  # objects downloaded at once
    visibility_timeout: Duration = Field(300.0, ge=1, le=43200)  # extended while processing
    # a message whose objects failed comes back after this × its receive count (≤ visibility_timeout)
    retry_visibility: Duration = Field(30.0, ge=0, le=43200)
    read_timeout: Duration = Field(60.0, ge=MIN_TIMEOUT)

    @model_validator(mode="after")
    def _no_busy_loop(self) -> S3SqsSourceConfig:
        if self.wait_time < MIN_POLL and self.poll_interval < MIN_POLL:
            raise ValueError(f"poll_interval must be at least {MIN_POLL}s when wait_time is below it (no long poll)")
        return self


class CloudWatchSourceConfig(AwsSourceConfig):
    type: Literal["cloudwatch"]
    log_group: str = Field(min_length=1)
    log_stream_names: list[str] | None = None
    log_stream_prefix: str | None = None
    filter_pattern: str = '{ $.eventSource = "sqs.amazonaws.com" }'
    start: Start = "now"
    late_window: Duration = Field(300.0, ge=0)
    # also look this far behind the window to count events that arrived too late (0: off)
    late_scan: Duration = Field(300.0, ge=0)
    poll_interval: Duration = Field(15.0, ge=MIN_POLL)
    requests_per_second: float = Field(5.0, gt=0)  # FilterLogEvents quota: 5/s per account and region
    page_size: int = Field(10000, ge=1, le=10000)

    @field_validator("log_stream_names", mode="before")
    @classmethod
    def _csv(cls, v: Any) -> Any:
        return [a.strip() for a in v.split(",") if a.strip()] if isinstance(v, str) else v


class EventBridgeSqsSourceConfig(AwsSourceConfig):
    """EventBridge "AWS API Call via CloudTrail" events that a rule sends to an SQS queue."""

    type: Literal["eventbridge-sqs"]
    queue_url: str = Field(min_length=1)
    poll_interval: Duration = 0.0  # between receives; the receive itself long-polls
    wait_time: Duration = Field(20.0, ge=0, le=20)
    max_messages: int = Field(10, ge=1, le=10)
    visibility_timeout: Duration = Field(60.0, ge=1, le=43200)


SourceConfig = Annotated[
    FileSourceConfig | S3SourceConfig | S3SqsSourceConfig | CloudWatchSourceConfig | EventBridgeSqsSourceConfig,
    Field(discriminator="type"),
]
