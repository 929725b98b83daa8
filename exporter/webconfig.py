"""TLS and basic auth for the HTTP endpoints from a web-config file, in the Prometheus exporter toolkit's
schema (https://github.com/prometheus/exporter-toolkit/blob/master/docs/web-configuration.md):

tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_auth_type: RequireAndVerifyClientCert   # Go's tls.ClientAuthType names
  client_ca_file: ca.crt
  min_version: TLS13                              # TLS10 … TLS13; default TLS12
  max_version: TLS13
  cipher_suites: [TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384]   # Go names; TLS 1.2 and below only
  curve_preferences: [X25519]
  prefer_server_cipher_suites: true
http_server_config:
  headers: {Strict-Transport-Security: max-age=31536000}
basic_auth_users:
  prometheus: $2b$12$...                          # bcrypt (htpasswd -nBC 10 "" | tr -d ':\\n')

A key that cannot be honoured is an error naming it, never ignored. The file (and the files it names)
is re-read when it changes, so certificates rotate without a restart.
"""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import ssl
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bcrypt
import yaml

log = logging.getLogger(__name__)

TLS_VERSIONS = {
    "TLS10": ssl.TLSVersion.TLSv1,
    "TLS11": ssl.TLSVersion.TLSv1_1,
    "TLS12": ssl.TLSVersion.TLSv1_2,
    "TLS13": ssl.TLSVersion.TLSv1_3,
}
# Go's tls.ClientAuthType → what the server asks for. Go's RequestClientCert / RequireAnyClientCert take a
# certificate *without verifying it*; Python's ssl module cannot accept an unverified client certificate,
# so those two are refused rather than silently turned into verification.
CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}
UNVERIFIED_CLIENT_AUTH = ("RequestClientCert", "RequireAnyClientCert", "RequireClientCert")
# Go cipher suite names (crypto/tls) → OpenSSL names. Go lets only TLS ≤ 1.2 suites be chosen.
CIPHERS = {
    "TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256": "ECDHE-ECDSA-AES128-GCM-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384": "ECDHE-ECDSA-AES256-GCM-SHA384",
    "TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256": "ECDHE-RSA-AES128-GCM-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384": "ECDHE-RSA-AES256-GCM-SHA384",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305": "ECDHE-ECDSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305": "ECDHE-RSA-CHACHA20-POLY1305",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA256": "ECDHE-ECDSA-AES128-SHA256",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA256": "ECDHE-RSA-AES128-SHA256",
    "TLS_ECDHE_ECDSA_WITH_AES_128_CBC_SHA": "ECDHE-ECDSA-AES128-SHA",
    "TLS_ECDHE_ECDSA_WITH_AES_256_CBC_SHA": "ECDHE-ECDSA-AES256-SHA",
    "TLS_ECDHE_RSA_WITH_AES_128_CBC_SHA": "ECDHE-RSA-AES128-SHA",
    "TLS_ECDHE_RSA_WITH_AES_256_CBC_SHA": "ECDHE-RSA-AES256-SHA",
    "TLS_RSA_WITH_AES_128_GCM_SHA256": "AES128-GCM-SHA256",
    "TLS_RSA_WITH_AES_256_GCM_SHA384": "AES256-GCM-SHA384",
    "TLS_RSA_WITH_AES_128_CBC_SHA256": "AES128-SHA256",
    "TLS_RSA_WITH_AES_128_CBC_SHA": "AES128-SHA",
    "TLS_RSA_WITH_AES_256_CBC_SHA": "AES256-SHA",
}
CURVES = {"CurveP256": "prime256v1", "CurveP384": "secp384r1", "CurveP521": "secp521r1", "X25519": "X25519"}
# the toolkit's allow-list of response headers, with the values it accepts (None: any)
HEADERS: dict[str, re.Pattern[str] | None] = {
    "Strict-Transport-Security": None,
    "X-Content-Type-Options": re.compile(r"nosniff"),
    "X-Frame-Options": re.compile(r"(?i)deny|sameorigin"),
    "X-XSS-Protection": None,
    "Content-Security-Policy": None,
}
TLS_KEYS = {
    "cert_file",
    "key_file",
    "client_auth_type",
    "client_ca_file",
    "min_version",
    "max_version",
    "cipher_suites",
    "curve_preferences",
    "prefer_server_cipher_suites",
}
# Work bound for failed logins: one bcrypt at a time (as the toolkit's mutex), and at most this many
# requests waiting for it; more are answered 429 at once instead of queueing CPU work.
MAX_AUTH_WAITERS = 8
CACHE_MAX = 1024


class WebConfigError(ValueError):
    """The web-config cannot be honoured; the message names the key."""


def _signature(paths: list[Path]) -> tuple[Any, ...]:
    out = []
    for p in paths:
        try:
            st = p.stat()
            out.append((str(p), st.st_mtime_ns, st.st_size, st.st_ino))
        except OSError:
            out.append((str(p), None))
    return tuple(out)


@dataclass
class Parsed:
    """One successful read of the file."""

    ssl: ssl.SSLContext | None
    users: dict[str, bytes]
    headers: dict[str, str]
    dummy: bytes  # bcrypt hash compared against when the user is unknown, at the users' cost
    files: list[Path] = field(default_factory=list)


def _mapping(value: Any, key: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise WebConfigError(f"{key}: expected a mapping")
    return value


def _list(value: Any, key: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise WebConfigError(f"{key}: expected a list of names")
    return value


def _tls(doc: dict[str, Any], base: Path, files: list[Path]) -> ssl.SSLContext | None:
    if not doc:
        return None
    unknown = sorted(set(doc) - TLS_KEYS)
    if unknown:
        raise WebConfigError(f"tls_server_config.{unknown[0]}: not supported by this exporter")
    for key in ("cert_file", "key_file"):
        if not doc.get(key):
            raise WebConfigError(f"tls_server_config.{key}: required when tls_server_config is set")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    for key, attr, default in (("min_version", "minimum_version", "TLS12"), ("max_version", "maximum_version", None)):
        name = doc.get(key) or default
        if name is None:
            continue
        if name not in TLS_VERSIONS:
            raise WebConfigError(f"tls_server_config.{key}: {name!r} is not one of {', '.join(TLS_VERSIONS)}")
        try:
            setattr(ctx, attr, TLS_VERSIONS[name])
        except (ValueError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config.{key}: {name} cannot be set here: {exc}") from exc
    if ctx.maximum_version != ssl.TLSVersion.MAXIMUM_SUPPORTED and ctx.maximum_version < ctx.minimum_version:
        raise WebConfigError("tls_server_config.max_version: lower than min_version")
    cert, key = base / doc["cert_file"], base / doc["key_file"]
    files += [cert, key]
    try:
        ctx.load_cert_chain(cert, key)
    except (OSError, ssl.SSLError) as exc:
        raise WebConfigError(f"tls_server_config.cert_file/key_file: cannot load {cert} / {key}: {exc}") from exc
    auth = doc.get("client_auth_type") or ("RequireAndVerifyClientCert" if doc.get("client_ca_file") else "")
    auth = auth or "NoClientCert"
    if auth in UNVERIFIED_CLIENT_AUTH:
        raise WebConfigError(
            f"tls_server_config.client_auth_type: {auth} (accept a client certificate without verifying it) "
            "is not supported; use VerifyClientCertIfGiven or RequireAndVerifyClientCert with client_ca_file"
        )
    if auth not in CLIENT_AUTH:
        raise WebConfigError(f"tls_server_config.client_auth_type: invalid {auth!r}")
    ca = doc.get("client_ca_file")
    if ca:
        if auth == "NoClientCert":
            raise WebConfigError("tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert")
        files.append(base / ca)
        try:
            ctx.load_verify_locations(base / ca)
        except (OSError, ssl.SSLError) as exc:
            raise WebConfigError(f"tls_server_config.client_ca_file: cannot load {base / ca}: {exc}") from exc
    elif auth != "NoClientCert":
        raise WebConfigError(f"tls_server_config.client_auth_type: {auth} needs client_ca_file")
    ctx.verify_mode = CLIENT_AUTH[auth]
    suites = _list(doc.get("cipher_suites"), "tls_server_config.cipher_suites")
    if suites:
        bad = [s for s in suites if s not in CIPHERS]
        if bad:
            raise WebConfigError(f"tls_server_config.cipher_suites: unknown or unsupported suite {bad[0]}")
        try:
            ctx.set_ciphers(":".join(CIPHERS[s] for s in suites))
        except ssl.SSLError as exc:
            raise WebConfigError(f"tls_server_config.cipher_suites: {exc}") from exc
    curves = _list(doc.get("curve_preferences"), "tls_server_config.curve_preferences")
    if curves:
        bad = [c for c in curves if c not in CURVES]
        if bad:
            raise WebConfigError(f"tls_server_config.curve_preferences: unknown or unsupported curve {bad[0]}")
        if len(curves) > 1:
            # Python's ssl sets exactly one group (set_ecdh_curve); a preference list would be half honoured
            raise WebConfigError("tls_server_config.curve_preferences: only one curve can be set (Python's ssl)")
        ctx.set_ecdh_curve(CURVES[curves[0]])
    if doc.get("prefer_server_cipher_suites", True):
        ctx.options |= ssl.OP_CIPHER_SERVER_PREFERENCE
    else:
        ctx.options &= ~ssl.OP_CIPHER_SERVER_PREFERENCE
    return ctx


def _http(doc: dict[str, Any]) -> dict[str, str]:
    unknown = sorted(set(doc) - {"headers", "http2"})
    if unknown:
        raise WebConfigError(f"http_server_config.{unknown[0]}: not supported by this exporter")
    if doc.get("http2"):
        raise WebConfigError(
            "http_server_config.http2: HTTP/2 is not supported (this server speaks HTTP/1.1); set http2: false"
        )
    headers = _mapping(doc.get("headers"), "http_server_config.headers")
    for name, value in headers.items():
        allowed = {h.lower(): h for h in HEADERS}
        canon = allowed.get(str(name).lower())
        if canon is None:
            raise WebConfigError(f"http_server_config.headers.{name}: not an allowed header ({', '.join(HEADERS)})")
        check = HEADERS[canon]
        if check is not None and not check.fullmatch(str(value)):
            raise WebConfigError(f"http_server_config.headers.{name}: invalid value {value!r}")
    return {str(k): str(v) for k, v in headers.items()}


def parse(path: Path) -> Parsed:
    """Read and check the whole file; WebConfigError names the first key that cannot be honoured."""
    try:
        doc = yaml.safe_load(path.read_text()) or {}
    except (OSError, yaml.YAMLError) as exc:
        raise WebConfigError(f"cannot read: {exc}") from exc
    doc = _mapping(doc, "(top level)")
    unknown = sorted(set(doc) - {"tls_server_config", "http_server_config", "basic_auth_users"})
    if unknown:
        raise WebConfigError(f"{unknown[0]}: not a web-config key this exporter supports")
    files = [path]
    ctx = _tls(_mapping(doc.get("tls_server_config"), "tls_server_config"), path.parent, files)
    headers = _http(_mapping(doc.get("http_server_config"), "http_server_config"))
    users: dict[str, bytes] = {}
    cost = 10
    for user, hashed in _mapping(doc.get("basic_auth_users"), "basic_auth_users").items():
        m = re.fullmatch(r"\$2[aby]\$(\d\d)\$[./A-Za-z0-9]{53}", str(hashed))
        if not m:
            raise WebConfigError(f"basic_auth_users.{user}: not a bcrypt hash")
        users[str(user)] = str(hashed).encode()
        cost = max(cost, int(m.group(1)))
    # unknown users are checked against this hash of the same cost, so a reply's timing does not tell
    # whether a user exists (the toolkit does the same with a fixed hash)
    dummy = bcrypt.hashpw(b"not-a-password", bcrypt.gensalt(rounds=cost)) if users else b""
    return Parsed(ctx, users, headers, dummy, files)


class WebConfig:
    """The current web-config. `current()` re-reads the file when it or a file it names changed; while the
    file on disk is invalid, requests fail closed (TLS handshakes refused, 500) and the error is logged once."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        try:
            self._parsed: Parsed | None = parse(self.path)
        except WebConfigError as exc:
            raise WebConfigError(f"web config {self.path}: {exc}") from None
        self.tls = self._parsed.ssl is not None
        self._sig = _signature(self._parsed.files)
        self._lock = threading.Lock()
        self._bcrypt = threading.Lock()
        self._waiters = threading.BoundedSemaphore(MAX_AUTH_WAITERS)
        self._cache: dict[bytes, bool] = {}

    def current(self) -> Parsed | None:
        """The config in force, reloaded if its files changed; None while the file is invalid."""
        with self._lock:
            files = self._parsed.files if self._parsed else [self.path]
            sig = _signature(files)
            if sig == self._sig:
                return self._parsed
            try:
                parsed = parse(self.path)
                if (parsed.ssl is not None) != self.tls:
                    raise WebConfigError("tls_server_config: turning TLS on or off needs a restart")
            except WebConfigError as exc:
                if self._parsed is not None or sig != self._sig:
                    log.error("web config %s: %s; refusing requests until it is fixed", self.path, exc)
                self._parsed, self._sig = None, sig
                return None
            log.info("web config %s reloaded", self.path)
            self._parsed, self._sig = parsed, _signature(parsed.files)
            self._cache.clear()
            return parsed

    def authorize(self, parsed: Parsed, header: str | None) -> int:
        """200 if the request may pass, 401 if not, 429 when too many failed checks are already waiting."""
        if not parsed.users:
            return 200
        if not header or not header.startswith("Basic "):
            return 401
        try:
            user, sep, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return 401
        if not sep:
            return 401
        known = user in parsed.users
        hashed = parsed.users.get(user, parsed.dummy)
        key = hashlib.sha256(b"\0".join((user.encode(), hashed, password.encode()))).digest()
        cached = self._cache.get(key)
        if cached is not None:
            return 200 if cached else 401
        if not self._waiters.acquire(blocking=False):
            return 429
        try:
            with self._bcrypt:
                ok = bcrypt.checkpw(password.encode(), hashed) and known
        finally:
            self._waiters.release()
        with self._lock:
            if len(self._cache) >= CACHE_MAX:
                self._cache.clear()
            self._cache[key] = ok
        return 200 if ok else 401
