"""The OpenTelemetry environment, read as the SDK specification defines it, for the logs signal.

- which exporter: `OTEL_SDK_DISABLED=true` turns every signal off; `OTEL_LOGS_EXPORTER` picks `otlp`,
  `console` or `none` (a comma list may name both `otlp` and `console`); unset, `logs.enabled` decides;
- the OTLP exporter's settings: the config file over `OTEL_EXPORTER_OTLP_LOGS_*` over `OTEL_EXPORTER_OTLP_*`
  over the spec's defaults;
- the resource: `OTEL_RESOURCE_ATTRIBUTES` (percent-decoded `key=value` pairs) and `OTEL_SERVICE_NAME`
  (which wins for `service.name`), parsed here rather than by the SDK's detector, which reads only
  `os.environ` and so needed it rewritten.

An unsupported value is refused at start by `OtelEnvError`, one line naming the variable and what it takes.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from typing import Any
from urllib.parse import unquote, urlsplit

import msgspec

from ... import __version__
from ...config import ConfigError, LogsConfig

log = logging.getLogger(__name__)

PROTOCOLS = ("grpc", "http/protobuf")
EXPORTERS = ("otlp", "console", "none")
COMPRESSIONS = ("gzip", "none")
DEFAULT_SERVICE_NAME = "cloudtrail-sqs-exporter"


class OtelEnvError(ConfigError):
    """An OTEL_* value this exporter cannot honour; the message names the variable and the accepted values."""


def _true(value: str | None) -> bool:
    return (value or "").strip().lower() == "true"


def logs_exporters(enabled: bool, env: Mapping[str, str] | None = None) -> tuple[str, ...]:
    """The exporters the logs signal uses: () when export is off, else a subset of ("otlp", "console")."""
    env = os.environ if env is None else env
    if _true(env.get("OTEL_SDK_DISABLED")):
        return ()
    raw = (env.get("OTEL_LOGS_EXPORTER") or "").strip()
    if not raw:
        return ("otlp",) if enabled else ()
    names = [n.strip().lower() for n in raw.split(",") if n.strip()]
    bad = [n for n in names if n not in EXPORTERS]
    if bad:
        raise OtelEnvError(f"OTEL_LOGS_EXPORTER={raw}: {bad[0]!r} is not supported; use otlp, console or none")
    if "none" in names:
        return ()
    return tuple(n for n in ("otlp", "console") if n in names)


def off_reason(env: Mapping[str, str] | None = None) -> str | None:
    """The variable that turned export off, for the log line that says so (None when none did)."""
    env = os.environ if env is None else env
    if _true(env.get("OTEL_SDK_DISABLED")):
        return "OTEL_SDK_DISABLED=true"
    names = [n.strip().lower() for n in (env.get("OTEL_LOGS_EXPORTER") or "").split(",")]
    return "OTEL_LOGS_EXPORTER=none" if "none" in names else None


# -- exporter settings --------------------------------------------------------------------------------------------


def _env(name: str, env: Mapping[str, str]) -> tuple[str, str] | None:
    """(variable, value) of the first of OTEL_EXPORTER_OTLP_LOGS_<name>, OTEL_EXPORTER_OTLP_<name> that is set."""
    for key in (f"OTEL_EXPORTER_OTLP_LOGS_{name}", f"OTEL_EXPORTER_OTLP_{name}"):
        v = env.get(key)
        if v is not None and v.strip() != "":
            return key, v.strip()
    return None


def _value(name: str, env: Mapping[str, str]) -> str | None:
    found = _env(name, env)
    return found[1] if found else None


def parse_headers(value: str | None) -> dict[str, str]:
    """`k1=v1,k2=v2` (values URL-encoded, as the OTel spec says) → dict."""
    out: dict[str, str] = {}
    for item in (value or "").split(","):
        k, sep, v = item.partition("=")
        if sep and k.strip():
            out[unquote(k.strip()).lower()] = unquote(v.strip())
    return out


class ExportSettings(msgspec.Struct):
    protocol: str
    endpoint: str
    headers: dict[str, str]
    certificate: str | None
    client_certificate: str | None
    client_key: str | None
    insecure: bool
    compression: str
    timeout: float
    exporters: tuple[str, ...] = ("otlp",)


def _protocol(cfg: LogsConfig, env: Mapping[str, str]) -> str:
    if cfg.protocol:
        return cfg.protocol  # the config schema admits only the supported values
    found = _env("PROTOCOL", env)
    if found is None:
        return "grpc"
    var, value = found
    if value not in PROTOCOLS:
        hint = " (OTLP/JSON is not implemented)" if value == "http/json" else ""
        raise OtelEnvError(f"{var}={value} is not supported{hint}; use grpc or http/protobuf")
    return value


def _timeout(cfg: LogsConfig, env: Mapping[str, str]) -> float:
    if cfg.timeout is not None:
        return float(cfg.timeout)
    found = _env("TIMEOUT", env)
    if found is None:
        return 10.0
    try:
        ms = float(found[1])
    except ValueError:
        ms = -1.0
    if not ms > 0:
        raise OtelEnvError(f"{found[0]}={found[1]} is not a positive number of milliseconds")
    return ms / 1000.0  # the OTel spec says milliseconds


def export_settings(
    cfg: LogsConfig, env: Mapping[str, str] | None = None, exporters: tuple[str, ...] | None = None
) -> ExportSettings:
    env = os.environ if env is None else env
    if exporters is None:
        exporters = logs_exporters(True, env) or ("otlp",)
    if "otlp" not in exporters:  # console only: the OTLP variables do not apply
        return ExportSettings("console", "stdout", {}, None, None, None, True, "none", 10.0, exporters)
    protocol = _protocol(cfg, env)
    if cfg.endpoint:
        endpoint = cfg.endpoint
    elif env.get("OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "").strip():
        endpoint = env["OTEL_EXPORTER_OTLP_LOGS_ENDPOINT"].strip()  # used as is (the full URL for HTTP)
    elif env.get("OTEL_EXPORTER_OTLP_ENDPOINT", "").strip():
        endpoint = env["OTEL_EXPORTER_OTLP_ENDPOINT"].strip()
        if protocol == "http/protobuf":
            endpoint = endpoint.rstrip("/") + "/v1/logs"
    else:
        endpoint = "http://localhost:4317" if protocol == "grpc" else "http://localhost:4318/v1/logs"
    if protocol == "http/protobuf" and "://" not in endpoint:
        endpoint = "http://" + endpoint
    if protocol == "http/protobuf" and cfg.endpoint and urlsplit(endpoint).path in ("", "/"):
        endpoint = endpoint.rstrip("/") + "/v1/logs"
    headers = parse_headers(_value("HEADERS", env))
    if cfg.headers:
        headers.update({k.lower(): v for k, v in cfg.headers.items()})
    insecure = cfg.insecure if cfg.insecure is not None else _true(_value("INSECURE", env))
    compression = cfg.compression
    if compression is None:
        found = _env("COMPRESSION", env)
        compression = found[1].lower() if found else "none"
        if found and compression not in COMPRESSIONS:
            raise OtelEnvError(f"{found[0]}={found[1]} is not supported; use gzip or none")
    return ExportSettings(
        protocol=protocol,
        endpoint=endpoint,
        headers=headers,
        certificate=cfg.certificate or _value("CERTIFICATE", env),
        client_certificate=cfg.client_certificate or _value("CLIENT_CERTIFICATE", env),
        client_key=cfg.client_key or _value("CLIENT_KEY", env),
        insecure=insecure,
        compression=compression,
        timeout=_timeout(cfg, env),
        exporters=exporters,
    )


# -- resource -----------------------------------------------------------------------------------------------------


def parse_resource_attributes(value: str) -> dict[str, str]:
    """OTEL_RESOURCE_ATTRIBUTES: `key1=value1,key2=value2`, keys and values percent-decoded and trimmed.
    The spec says a value with any invalid pair is discarded whole (and the error reported): ValueError."""
    out: dict[str, str] = {}
    for item in value.split(","):
        if not item.strip():
            continue
        k, sep, v = item.partition("=")
        key = unquote(k.strip(), errors="strict")
        if not sep or not key:
            raise ValueError(f"{item.strip()!r} is not key=value")
        out[key] = unquote(v.strip(), errors="strict")
    return out


def resource_attributes(
    env: Mapping[str, str] | None = None, service_name: str = DEFAULT_SERVICE_NAME, version: str = __version__
) -> dict[str, Any]:
    """The resource of every record: this exporter's identity, then OTEL_RESOURCE_ATTRIBUTES, then
    OTEL_SERVICE_NAME for service.name (it takes precedence, as the spec says)."""
    env = os.environ if env is None else env
    attrs: dict[str, Any] = {
        "service.name": service_name,
        "service.version": version,
        "telemetry.sdk.name": "cloudtrail-sqs-exporter",
        "telemetry.sdk.language": "python",
        "telemetry.sdk.version": version,
    }
    raw = env.get("OTEL_RESOURCE_ATTRIBUTES")
    if raw and raw.strip():
        try:
            attrs.update(parse_resource_attributes(raw))
        except (ValueError, UnicodeDecodeError) as exc:
            log.warning("OTEL_RESOURCE_ATTRIBUTES ignored: %s", exc)
    name = (env.get("OTEL_SERVICE_NAME") or "").strip()
    if name:
        attrs["service.name"] = name
    return attrs
