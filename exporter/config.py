"""Configuration: one YAML file, overridden by CTSQS_* environment variables, overridden by flags.

Validated once at start; errors name the key (`sources[0].path: Field required`).
"""

from __future__ import annotations

import os
import re
import socket
import sys
from pathlib import Path
from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from . import config_sources, masking
from .config_types import (
    MIN_COMMIT,
    MIN_POLL,
    MIN_TIMEOUT,
    AwsSourceConfig,
    CloudWatchSourceConfig,
    Duration,
    EventBridgeSqsSourceConfig,
    FileSourceConfig,
    S3SourceConfig,
    S3SqsSourceConfig,
    SourceConfig,
    Start,
    Strict,
    parse_duration,
    parse_start,
)

SAMPLE_DIR = Path(__file__).parent / "sample" / "trail"


class StateConfig(Strict):
    path: Path = Path("./state/cloudtrail-sqs-exporter.db")
    redis_url: str | None = None
    # how often progress and counters are saved together (one transaction)
    commit_interval: Duration = Field(1.0, ge=MIN_COMMIT)
    # a checkpoint that keeps failing (disk full) is retried this long, then the process exits non-zero
    max_checkpoint_failure: Duration = Field(600.0, ge=1)
    # with redis_url: how long a replica may hold an object before another may take it over (keep it
    # at least the s3-sqs visibility timeout), and how long "counted" marks are kept
    redis_lease: Duration = Field(300.0, ge=1)
    redis_retention: Duration = Field(7 * 86400.0, ge=1)


class MetricsConfig(Strict):
    max_queues: int = Field(1000, ge=1)
    principal_granularity: Literal["role", "arn"] = "role"
    include_queues: str | None = None
    exclude_queues: str | None = None
    include_accounts: list[str] | None = None
    exclude_accounts: list[str] | None = None
    # distinct-principal windows: per queue, and across all queues (~400 bytes each; see "Memory budget")
    max_principals_per_queue: int = Field(10_000, ge=1)
    max_principals: int = Field(100_000, ge=1)
    # label caps (exporter.sinks.caps): later values read `(other)`; far above what real CloudTrail has
    max_event_names: int = Field(200, ge=1)
    max_error_codes: int = Field(200, ge=1)
    max_accounts: int = Field(5000, ge=1)
    max_regions: int = Field(100, ge=1)
    max_series: int = Field(50_000, ge=10)  # api_calls + api_errors label sets together
    # access map: a queue's first N principals get series of their own, later ones `(other)`; 0: off
    max_principals_per_queue_series: int = Field(10, ge=0)
    max_caller_accounts: int = Field(1000, ge=1)
    # each eventID counted once within this window, whichever source brings it (None: off)
    dedupe_window: Duration | None = None

    @field_validator("include_queues", "exclude_queues")
    @classmethod
    def _regex(cls, v: str | None) -> str | None:
        if v is not None:
            try:
                re.compile(v)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return v

    @field_validator("include_accounts", "exclude_accounts", mode="before")
    @classmethod
    def _accounts(cls, v: Any) -> Any:
        if isinstance(v, str):  # CTSQS_METRICS__INCLUDE_ACCOUNTS=111,222
            v = [a.strip() for a in v.split(",") if a.strip()]
        if isinstance(v, list):
            return [str(a) for a in v]
        return v


class LimitsConfig(Strict):
    """Memory bounds of reading (README, "Memory budget")."""

    # one object's uncompressed size: a bigger file or S3 object, or gzip inflating past it, is failed
    max_object_bytes: int = Field(64 << 20, ge=1 << 20)
    # S3 bodies downloaded and not yet counted, per source (one object is always allowed)
    max_download_bytes: int = Field(32 << 20, ge=1 << 20)


RedactAction = Literal["keep", "drop", "hash"]


class LogsRedactConfig(Strict):
    """What the log records (body and attributes) carry of sensitive fields: keep, drop, or hash
    (HMAC-SHA256 with `hash_key`, or plain SHA-256 without one; `sha256:` + 32 hex digits)."""

    source_ip: RedactAction = "keep"  # sourceIPAddress / client.address
    user_agent: RedactAction = "keep"  # userAgent / user_agent.original
    access_key_id: RedactAction = "hash"  # userIdentity.accessKeyId
    # keys anywhere inside requestParameters / responseElements
    parameters: dict[str, RedactAction] = Field(default_factory=lambda: {"receiptHandle": "hash"})
    hash_key: str | None = None


class LogsConfig(Strict):
    enabled: bool = False
    # OTLP exporter: unset keys come from OTEL_EXPORTER_OTLP_LOGS_* / OTEL_EXPORTER_OTLP_*, then OTel defaults
    endpoint: str | None = None
    protocol: Literal["grpc", "http/protobuf"] | None = None
    headers: dict[str, str] | None = None
    certificate: str | None = None  # CA bundle (PEM) to verify the collector
    client_certificate: str | None = None
    client_key: str | None = None
    insecure: bool | None = None  # gRPC without TLS when the endpoint has no scheme
    compression: Literal["gzip", "none"] | None = None
    timeout: Duration | None = Field(None, ge=MIN_TIMEOUT)  # per export request
    # back-pressure: records wait in a bounded queue, then are dropped (counted)
    queue_size: int = Field(262_144, ge=1)  # records
    queue_max_bytes: int = Field(64 << 20, ge=1 << 16)  # encoded log record bytes held (memory budget)
    batch_size: int = Field(2048, ge=1, le=100_000)  # records per export request
    batch_max_bytes: int = Field(3 << 20, ge=1 << 14)  # encoded bytes per request (collectors take 4 MiB)
    flush_interval: Duration = Field(0.5, ge=MIN_COMMIT)  # a partial batch waits at most this long
    # a batch that keeps failing transiently is given up (failed)
    retry_max_elapsed: Duration = Field(60.0, ge=0)
    shutdown_timeout: Duration = Field(
        10.0, ge=0
    )  # flush bound at shutdown (inside the 20 s grace); the rest is dropped
    # which SQS events become log records (all by default)
    only_errors: bool = False
    only_management: bool = False
    include_events: list[str] | None = None  # eventName
    exclude_events: list[str] | None = None
    # kept share of Data events without errorCode; recorded on the record as cloudtrail_sqs.sampling.ratio
    sample_ratio: float = Field(1.0, gt=0.0, le=1.0)
    redact: LogsRedactConfig = Field(default_factory=LogsRedactConfig)

    @field_validator("include_events", "exclude_events", mode="before")
    @classmethod
    def _names(cls, v: Any) -> Any:
        if isinstance(v, str):  # CTSQS_LOGS__INCLUDE_EVENTS=SendMessage,DeleteMessage
            v = [a.strip() for a in v.split(",") if a.strip()]
        return v


def _default_sources() -> list[Any]:
    # valid as written; validating it would build the schema of every source type
    return [FileSourceConfig.model_construct(type="file", path=SAMPLE_DIR, name="sample")]


class Settings(BaseModel):
    # a plain model: load() merges the file, CTSQS_* variables and flags itself (config_sources), keeping
    # the origin of every key for its error messages, so pydantic-settings (a fifth of `replay`'s start-up)
    # would add nothing. Defaults are validated, as a BaseSettings does, whenever anything is configured
    model_config = ConfigDict(extra="forbid", validate_default=True, defer_build=True)

    # 10355: free on the Prometheus wiki's "Default port allocations" list (README, "Port")
    listen: str = "0.0.0.0:10355"
    # TLS and basic auth for the HTTP endpoints, in the Prometheus exporter-toolkit web-config format
    web_config_file: Path | None = None
    telemetry_path: str = "/metrics"
    # a second, plain-HTTP listener with only /healthz and /readyz (no auth, no detail), for kubelet
    # probes when the main one needs TLS and credentials; off by default
    health_listen: str | None = None
    log_level: Literal["debug", "info", "warning", "error"] = "info"
    # a source failing for longer than this makes /readyz fail
    unready_after: Duration = Field(300.0, ge=1)
    state: StateConfig = Field(default_factory=StateConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    logs: LogsConfig = Field(default_factory=LogsConfig)
    limits: LimitsConfig = Field(default_factory=LimitsConfig)
    sources: list[SourceConfig] = Field(default_factory=_default_sources, min_length=1)

    @field_validator("listen", "health_listen", mode="before")
    @classmethod
    def _listen(cls, v: Any) -> str | None:
        if v is None:
            return v
        if not isinstance(v, str):  # `listen: 9108` in YAML is a number, not a port
            raise ValueError(f'expected address:port as a string, e.g. ":{v}" or "0.0.0.0:{v}"')
        host, sep, port = v.rpartition(":")
        if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise ValueError("expected address:port, e.g. 0.0.0.0:10355, 127.0.0.1:10355 or :10355")
        try:
            socket.getaddrinfo(_host(host.strip("[]")), int(port), type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
        except (OSError, UnicodeError) as exc:
            raise ValueError(f"cannot resolve the address {host!r}: {getattr(exc, 'strerror', None) or exc}") from None
        return v

    @field_validator("telemetry_path")
    @classmethod
    def _path(cls, v: str) -> str:
        if not v.startswith("/") or v in ("/healthz", "/readyz", "/") or any(c in v for c in "?# "):
            raise ValueError("expected a path such as /metrics (not /, /healthz or /readyz)")
        return v

    @field_validator("sources")
    @classmethod
    def _unique_names(cls, v: list[Any]) -> list[Any]:
        seen: dict[str, int] = {}
        for i, s in enumerate(v):
            if s.name is None:
                n = sum(1 for x in v if x.type == s.type)
                s.name = s.type if n == 1 else f"{s.type}-{i}"
            if s.name in seen:
                raise ValueError(f"sources[{i}].name {s.name!r} repeats sources[{seen[s.name]}]")
            seen[s.name] = i
        return v

    @property
    def listen_address(self) -> tuple[str, int]:
        host, _, port = self.listen.rpartition(":")  # `:port` = all interfaces, as the toolkit takes it
        return host.strip("[]"), int(port)


def _host(host: str) -> str | bytes | None:
    """The host as getaddrinfo takes it. An ASCII name the idna codec would pass unchanged goes as bytes:
    a str is always run through that codec, whose import (encodings.idna, stringprep, unicodedata) every
    start would pay for the default `0.0.0.0`; anything else goes as given, for the codec to reject."""
    if not host:
        return None
    if host.isascii():
        labels = host.split(".")
        if all(0 < len(label) < 64 for label in labels[:-1]) and len(labels[-1]) < 64:
            return host.encode()
    return host


class ConfigError(Exception):
    """Invalid configuration; the message names the key."""


def _loc(loc: tuple[Any, ...]) -> tuple[str | int, ...]:
    """pydantic's error location as the key path the user wrote."""
    out: list[str | int] = []
    for part in loc:
        if (
            isinstance(part, str)
            and part in ("file", "s3", "s3-sqs", "cloudwatch")
            and out
            and isinstance(out[-1], int)
        ):
            continue  # pydantic's discriminator step, not a key the user wrote
        out.append(part)
    return tuple(out)


_Model = TypeVar("_Model", bound=BaseModel)


def _defaults(model: type[_Model]) -> _Model:
    """What `model()` validates to, built without validating when nothing is configured: the defaults
    are valid values, which the validators return unchanged (tests/test_config.py compares the two).
    Validating would build the schemas of the whole configuration, a tenth of `replay`'s start-up."""
    nested = {
        name: _defaults(f.default_factory)
        for name, f in model.model_fields.items()
        if isinstance(f.default_factory, type) and issubclass(f.default_factory, BaseModel)
    }
    return model.model_construct(_fields_set=set(), **nested)


def _top_level(doc: dict[str, Any]) -> dict[str, Any]:
    """Top-level keys name their field in any case (`Listen:` is `listen`), the first of two spellings
    winning, as they did when Settings was a case-insensitive BaseSettings."""
    names = {n.lower(): n for n in Settings.model_fields}
    out: dict[str, Any] = {}
    for key, value in doc.items():
        out.setdefault(names.get(key.lower(), key), value)
    return out


def load(path: str | Path | None = None, **overrides: Any) -> Settings:
    """Read the YAML file (if any), apply CTSQS_* env vars, then flag overrides (None = not given).
    Every error names the key and where its value came from; no secret is echoed."""
    doc: dict[str, Any] = {}
    if path is not None:
        p = Path(path)
        if not p.is_file():
            raise ConfigError(f"config file {p} does not exist")
        import yaml  # only with a file: `replay` without one starts without the parser

        try:
            doc = yaml.safe_load(p.read_text()) or {}
        except yaml.YAMLError as exc:
            # the problem and its line, never the offending line's text (it may hold a secret)
            mark = getattr(exc, "problem_mark", None)
            at = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
            raise ConfigError(f"{p}: not valid YAML{at}: {getattr(exc, 'problem', None) or 'cannot parse'}") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"{p}: cannot read: {exc}") from None
        if not isinstance(doc, dict):
            raise ConfigError(f"{p}: the top level must be a mapping of keys")
        doc = {str(k): v for k, v in doc.items()}
    secrets = masking.secrets_in(doc) | masking.secrets_in(overrides) | masking.env_secrets()
    try:
        merged, warnings = config_sources.merge(
            Settings, doc, str(path) if path is not None else None, os.environ, overrides
        )
    except config_sources.SourceError as exc:
        raise ConfigError(masking.mask_text(str(exc), secrets)) from None
    for w in warnings:
        print(f"cloudtrail-sqs-exporter: warning: {w}", file=sys.stderr)
    if not merged.doc:
        return _defaults(Settings)
    try:
        return Settings(**_top_level(merged.doc))
    except ValidationError as exc:
        lines = []
        for e in exc.errors():
            loc = _loc(e["loc"])
            msg = str(e["msg"]).removeprefix("Value error, ")  # pydantic's wording, not the user's
            lines.append(f"{config_sources.dotted(loc)}: {msg} (from {merged.origin_of(loc)})")
        text = "invalid configuration:\n  " + "\n  ".join(lines)  # each line names where its value came from
        raise ConfigError(masking.mask_text(text, secrets)) from None


def masked(settings: Settings) -> dict[str, Any]:
    """The effective configuration as plain data, secrets masked."""
    return masking.masked(settings.model_dump(mode="json"))


def secrets(settings: Settings) -> set[str]:
    """Every secret the running process knows of, for masking log lines."""
    return masking.secrets_in(_plain(settings)) | masking.env_secrets()


def _plain(value: Any) -> Any:
    """The settings as nested dicts and lists, leaves as they are: what secrets_in reads of
    model_dump(mode="json") (strings, and the leaves under a secret key, all strings), without building
    the serializer (a schema build of the whole configuration, a tenth of `replay`'s start-up)."""
    if isinstance(value, BaseModel):
        return {name: _plain(getattr(value, name)) for name in type(value).model_fields}
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    return value


__all__ = [
    "MIN_COMMIT",
    "MIN_POLL",
    "MIN_TIMEOUT",
    "SAMPLE_DIR",
    "AwsSourceConfig",
    "CloudWatchSourceConfig",
    "ConfigError",
    "Duration",
    "EventBridgeSqsSourceConfig",
    "FileSourceConfig",
    "LogsConfig",
    "LogsRedactConfig",
    "MetricsConfig",
    "S3SourceConfig",
    "S3SqsSourceConfig",
    "Settings",
    "SourceConfig",
    "Start",
    "StateConfig",
    "Strict",
    "load",
    "masked",
    "parse_duration",
    "parse_start",
    "secrets",
]
