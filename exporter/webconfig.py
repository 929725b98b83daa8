"""TLS and basic auth for /metrics from a web-config file, as the Prometheus exporter toolkit reads it:

tls_server_config:
  cert_file: server.crt
  key_file: server.key
  client_ca_file: ca.crt            # optional: verify client certificates
  client_auth_type: RequireAndVerifyClientCert
basic_auth_users:
  prometheus: $2b$12$...            # bcrypt hash (htpasswd -nBC 10 "" | tr -d ':\\n')
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ssl
import threading
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, ValidationError

CLIENT_AUTH = {
    "NoClientCert": ssl.CERT_NONE,
    "RequestClientCert": ssl.CERT_OPTIONAL,
    "RequireAnyClientCert": ssl.CERT_REQUIRED,
    "VerifyClientCertIfGiven": ssl.CERT_OPTIONAL,
    "RequireAndVerifyClientCert": ssl.CERT_REQUIRED,
}


class TLSServerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    cert_file: Path
    key_file: Path
    client_ca_file: Path | None = None
    client_auth_type: str = "NoClientCert"
    min_version: str | None = None


class WebConfigFile(BaseModel):
    model_config = ConfigDict(extra="forbid")
    tls_server_config: TLSServerConfig | None = None
    basic_auth_users: dict[str, str] | None = None


class WebConfig:
    def __init__(self, path: str | Path) -> None:
        p = Path(path)
        try:
            doc: Any = yaml.safe_load(p.read_text()) or {}
            self.cfg = WebConfigFile.model_validate(doc)
        except (OSError, yaml.YAMLError, ValidationError) as exc:
            raise ValueError(f"web config {p}: {exc}") from exc
        base = p.parent
        tls = self.cfg.tls_server_config
        self.ssl: ssl.SSLContext | None = None
        if tls is not None:
            if tls.client_auth_type not in CLIENT_AUTH:
                raise ValueError(f"web config {p}: client_auth_type must be one of {', '.join(CLIENT_AUTH)}")
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.minimum_version = ssl.TLSVersion.TLSv1_2
            ctx.load_cert_chain(base / tls.cert_file, base / tls.key_file)
            ctx.verify_mode = CLIENT_AUTH[tls.client_auth_type]
            if tls.client_ca_file is not None:
                ctx.load_verify_locations(base / tls.client_ca_file)
            self.ssl = ctx
        self.users = dict(self.cfg.basic_auth_users or {})
        # bcrypt is slow on purpose; remember what verified, keyed by a hash of the header
        self._ok: set[bytes] = set()
        self._lock = threading.Lock()

    def authorized(self, header: str | None) -> bool:
        if not self.users:
            return True
        if not header or not header.startswith("Basic "):
            return False
        digest = hashlib.sha256(header.encode()).digest()
        if digest in self._ok:
            return True
        try:
            user, _, password = base64.b64decode(header[6:], validate=True).decode().partition(":")
        except (ValueError, UnicodeDecodeError):
            return False
        hashed = self.users.get(user)
        if hashed is None:
            return False
        import bcrypt

        try:
            ok = bcrypt.checkpw(password.encode(), hashed.encode())
        except ValueError:
            ok = hmac.compare_digest(password, hashed) and False  # not a bcrypt hash: never accept
        if ok:
            with self._lock:
                if len(self._ok) > 1000:
                    self._ok.clear()
                self._ok.add(digest)
        return ok
