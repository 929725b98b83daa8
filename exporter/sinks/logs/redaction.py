"""`logs.redact`: what a record keeps, drops or hashes of its addresses, agents, keys and parameters."""

from __future__ import annotations

import hashlib
from typing import Any

import msgspec


class Redactor:
    """Applies `logs.redact` to a decoded record in place: keep, drop, or hash."""

    def __init__(self, cfg: Any) -> None:
        key = cfg.hash_key.encode() if cfg.hash_key else None
        self.source_ip = cfg.source_ip
        self.user_agent = cfg.user_agent
        self.access_key_id = cfg.access_key_id
        self.params = {k: v for k, v in cfg.parameters.items() if v != "keep"}
        self._hash_cache: dict[str, str] = {}
        self._pads: tuple[Any, Any] | None = None
        # what the C encoder hashes strings with: the HMAC key as RFC 2104 uses it (hashed when long)
        self.native_key = None if key is None else (hashlib.sha256(key).digest() if len(key) > 64 else key)
        if self.native_key is not None:
            block = self.native_key.ljust(64, b"\0")
            self._pads = (
                hashlib.sha256(bytes(x ^ 0x36 for x in block)),
                hashlib.sha256(bytes(x ^ 0x5C for x in block)),
            )

    def hash(self, value: Any) -> str:
        s = value if isinstance(value, str) else msgspec.json.encode(value).decode()
        h = self._hash_cache.get(s)
        if h is None:
            b = s.encode("utf-8", "surrogatepass")
            if self._pads is not None:  # HMAC-SHA256 from the keyed pads (RFC 2104), twice as fast as hmac.digest
                inner, outer = self._pads[0].copy(), self._pads[1].copy()
                inner.update(b)
                outer.update(inner.digest())
                digest = outer.digest()
            else:
                digest = hashlib.sha256(b).digest()
            h = "sha256:" + digest[:16].hex()
            if len(s) <= 64:  # ids and addresses repeat; receipt handles (hundreds of chars) never do
                if len(self._hash_cache) > 100_000:
                    self._hash_cache.clear()
                self._hash_cache[s] = h
        return h

    def _apply(self, d: dict[str, Any], key: str, action: str) -> None:
        if key in d:
            if action == "drop":
                del d[key]
            elif action == "hash" and d[key] is not None:
                d[key] = self.hash(d[key])

    def __call__(self, rec: dict[str, Any]) -> None:
        if self.source_ip != "keep":
            self._apply(rec, "sourceIPAddress", self.source_ip)
        if self.user_agent != "keep":
            self._apply(rec, "userAgent", self.user_agent)
        if self.access_key_id != "keep":
            ident = rec.get("userIdentity")
            if type(ident) is dict:
                self._apply(ident, "accessKeyId", self.access_key_id)
        if self.params:
            for top in ("requestParameters", "responseElements"):
                v = rec.get(top)
                if v:
                    self._walk(v)

    def _walk(self, node: Any) -> None:
        if type(node) is dict:
            params = self.params
            for k in list(node):
                action = params.get(k)
                if action is not None:
                    self._apply(node, k, action)
                else:
                    v = node[k]
                    if type(v) is dict or type(v) is list:
                        self._walk(v)
        elif type(node) is list:
            for x in node:
                if type(x) is dict or type(x) is list:
                    self._walk(x)
