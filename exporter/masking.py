"""Secrets never printed: one place that knows which configuration values are secret, masks them in the
effective configuration (`check-config`), in URLs, and in any text (log lines, error messages).

Secret: every value under a `headers` mapping; keys named like a credential (`hash_key`, `external_id`,
`*password*`, `*secret*`, `*token*`); the userinfo of any URL (`user:****@`, or `****@` for a bare token)
and its credential query parameters (`password`, `token`, `key`, `secret`, `sig`, … by name); the OTLP
headers and endpoints from `OTEL_EXPORTER_OTLP_*`, and the AWS secret key / session token from the
environment. Text is masked by replacing each secret value found in the configuration, so a library's own
message (a URL in a connection error, a header echoed back) is covered too.
"""

from __future__ import annotations

import logging
import os
import re
import sys
import threading
from collections.abc import Iterable, Mapping
from types import TracebackType
from typing import Any
from urllib.parse import unquote, unquote_plus

MASK = "****"
# configuration keys whose whole value is secret
_SECRET_KEY = re.compile(r"password|passwd|secret|token|hash_key|external_id|authorization|api_?key", re.I)
# query parameters whose value is a credential (matched anywhere in the name: x-amz-signature, access_token…)
_SECRET_PARAM = re.compile(r"pass|pwd|token|key|secret|sig|auth|credential|session|dsn|code", re.I)
_SCHEME = re.compile(r"^\s*[A-Za-z][A-Za-z0-9+.-]*://")
# values shorter than this are not searched for in free text (masking every "ab" would ruin the logs)
MIN_TEXT_SECRET = 4
_ENV_SECRETS = ("AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN")
_ENV_HEADERS = ("OTEL_EXPORTER_OTLP_HEADERS", "OTEL_EXPORTER_OTLP_LOGS_HEADERS")
_ENV_URLS = ("OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_LOGS_ENDPOINT", "AWS_ENDPOINT_URL")


def _split_url(url: str) -> tuple[str, str, str, str] | None:
    """(scheme://, userinfo, rest of the authority and path, ?query#fragment), or None if not a URL.
    The userinfo ends at the last `@` anywhere: a password holding an unencoded `@`, `/`, `?` or `#` is
    masked whole (an `@` in a path or query masks too much, never too little)."""
    m = _SCHEME.match(url)
    if not m:
        return None
    head, rest = url[: m.end()], url[m.end() :]
    at = rest.rfind("@")
    userinfo = rest[:at] if at >= 0 else ""
    rest = rest[at + 1 :]
    q = min((i for i in (rest.find("?"), rest.find("#")) if i >= 0), default=len(rest))
    return head, userinfo, rest[:q], rest[q:]


def _query_secrets(tail: str) -> list[tuple[int, int]]:
    """Spans of the credential values in `?a=b&c=d#f`."""
    spans = []
    end = tail.find("#") if "#" in tail else len(tail)
    pos = 1 if tail.startswith("?") else end
    while pos < end:
        amp = tail.find("&", pos, end)
        stop = end if amp < 0 else amp
        name, eq, _ = tail[pos:stop].partition("=")
        if eq and _SECRET_PARAM.search(unquote_plus(name)):
            spans.append((pos + len(name) + 1, stop))
        pos = stop + 1
    return spans


def mask_url(url: str) -> str:
    """The URL with its userinfo password (or bare token) and credential query values masked."""
    parts = _split_url(url)
    if parts is None:
        return url
    head, userinfo, body, tail = parts
    if userinfo:
        user, colon, _ = userinfo.partition(":")
        body = (f"{user}:{MASK}" if colon else MASK) + "@" + body
    for start, stop in reversed(_query_secrets(tail)):
        tail = tail[:start] + MASK + tail[stop:]
    return head + body + tail


def url_secrets(url: str) -> list[str]:
    """The secret parts of one URL, as written and percent-decoded."""
    parts = _split_url(url)
    if parts is None:
        return []
    _, userinfo, _, tail = parts
    found = []
    if userinfo:
        user, colon, password = userinfo.partition(":")
        found.append(password if colon else user)
    found += [tail[a:b] for a, b in _query_secrets(tail)]
    return [v for s in found if s for v in {s, unquote(s), unquote_plus(s)}]


def masked(data: Any, key: str = "") -> Any:
    """Plain configuration data (dicts, lists, strings) with every secret value masked."""
    key = key.rpartition(".")[2]  # flags name keys dotted: logs.headers
    if isinstance(data, Mapping):
        if key.lower() == "headers":
            return {k: MASK if v is not None else None for k, v in data.items()}
        return {k: masked(v, str(k)) for k, v in data.items()}
    if isinstance(data, list | tuple):
        return [masked(v, key) for v in data]
    if isinstance(data, str):
        return MASK if _SECRET_KEY.search(key) else mask_url(data)
    if data is not None and _SECRET_KEY.search(key):
        return MASK
    return data


def secrets_in(data: Any, key: str = "") -> set[str]:
    """Every secret value in plain configuration data (also data that failed validation)."""
    out: set[str] = set()
    key = key.rpartition(".")[2]
    if isinstance(data, Mapping):
        for k, v in data.items():
            if key.lower() == "headers":
                out |= {str(x) for x in _leaves(v)}
            else:
                out |= secrets_in(v, str(k))
    elif isinstance(data, list | tuple):
        for v in data:
            out |= secrets_in(v, key)
    elif _SECRET_KEY.search(key) and data is not None and not isinstance(data, bool):
        out |= {str(x) for x in _leaves(data)}
    elif isinstance(data, str):
        out |= set(url_secrets(data))
    return out


def _leaves(v: Any) -> Iterable[Any]:
    if isinstance(v, Mapping):
        for x in v.values():
            yield from _leaves(x)
    elif isinstance(v, list | tuple):
        for x in v:
            yield from _leaves(x)
    elif v is not None:
        yield v


def env_secrets(env: Mapping[str, str] | None = None) -> set[str]:
    """Secrets the process takes from its environment besides CTSQS_* (OTLP headers, AWS keys)."""
    env = os.environ if env is None else env
    out = {env[k] for k in _ENV_SECRETS if env.get(k)}
    for k in _ENV_HEADERS:
        for item in env.get(k, "").split(","):
            _, eq, value = item.partition("=")
            if eq and value.strip():
                out |= {value.strip(), unquote(value.strip())}
    for k in _ENV_URLS:
        out |= set(url_secrets(env.get(k, "")))
    for k, v in env.items():
        if k.upper().startswith("CTSQS_") and v:
            name = k.upper().removeprefix("CTSQS_")
            if "HEADERS" in name.split("__") or _SECRET_KEY.search(name.split("__")[-1]):
                out |= {v, *_json_leaves(v)}
            out |= set(url_secrets(v))
    return out


def _json_leaves(text: str) -> list[str]:
    import json

    try:
        return [str(x) for x in _leaves(json.loads(text))]
    except ValueError:
        return []


def mask_text(text: str, secrets: Iterable[str]) -> str:
    """`text` with every occurrence of each secret replaced (longest first, so a secret containing
    another is masked whole)."""
    for s in sorted({s for s in secrets if len(s) >= MIN_TEXT_SECRET}, key=len, reverse=True):
        if s in text:
            text = text.replace(s, MASK)
    return text


class MaskingFormatter(logging.Formatter):
    """Formats as the wrapped formatter would, then masks the secrets in the whole line (message,
    arguments and traceback alike)."""

    def __init__(self, inner: logging.Formatter, secrets: Iterable[str]) -> None:
        super().__init__()
        self.inner = inner
        self.secrets = sorted({s for s in secrets if len(s) >= MIN_TEXT_SECRET}, key=len, reverse=True)

    def format(self, record: logging.LogRecord) -> str:
        return mask_text(self.inner.format(record), self.secrets)


def mask_logging(secrets: Iterable[str]) -> None:
    """Mask secrets in everything the root logger's handlers write, and send uncaught exceptions (in
    any thread) through logging so they are masked too."""
    found = set(secrets)
    for h in logging.getLogger().handlers:
        inner = h.formatter or logging.Formatter()
        if isinstance(inner, MaskingFormatter):
            inner = inner.inner
        h.setFormatter(MaskingFormatter(inner, found))
    log = logging.getLogger("exporter")

    def thread_hook(args: threading.ExceptHookArgs) -> None:
        if args.exc_type is SystemExit:
            return
        name = args.thread.name if args.thread is not None else "?"
        exc = (args.exc_type, args.exc_value, args.exc_traceback)
        log.error("thread %s stopped by an uncaught exception", name, exc_info=exc)  # type: ignore[arg-type]

    def main_hook(t: type[BaseException], v: BaseException, tb: TracebackType | None) -> None:
        log.critical("uncaught exception", exc_info=(t, v, tb))

    threading.excepthook = thread_hook
    sys.excepthook = main_hook
