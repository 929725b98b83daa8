"""Who may reach a queue after a call changes it: exposure of access policies and encryption settings.

Pure functions over the decoded `requestParameters` of CreateQueue, SetQueueAttributes, AddPermission and
RemovePermission. The policy arrives as a JSON string inside `attributes.Policy`, written by whoever made
the call: anything can be in it, so every step is defensive and an unreadable policy is `unknown`, never
an exception.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import msgspec

from .cache import BoundedCache

PUBLIC = "public"
CROSS_ACCOUNT = "cross_account"
ACCOUNT = "account"
REMOVED = "removed"
UNKNOWN = "unknown"
EXPOSURES = (PUBLIC, CROSS_ACCOUNT, ACCOUNT, REMOVED, UNKNOWN)

SSE_KMS = "sse_kms"
SSE_SQS = "sse_sqs"
NO_ENCRYPTION = "none"
ENCRYPTIONS = (SSE_KMS, SSE_SQS, NO_ENCRYPTION)

POLICY_EVENTS = frozenset({"CreateQueue", "SetQueueAttributes", "AddPermission", "RemovePermission"})
ATTRIBUTE_EVENTS = frozenset({"CreateQueue", "SetQueueAttributes"})

# SQS caps a policy at 20 KiB; anything far larger is not a policy SQS accepted
MAX_POLICY_BYTES = 256 << 10
_ACCOUNT_ID = re.compile(r"^\d{12}$")
_ARN_ACCOUNT = re.compile(r"^arn:[^:]*:[^:]*:[^:]*:(\d{12}):")
_decode_policy = msgspec.json.Decoder().decode


class _Params(msgspec.Struct):
    """All the classification reads of a policy/encryption call's record."""

    requestParameters: dict[str, Any] | None = None


_decode_params = msgspec.json.Decoder(_Params).decode
# Memos of pure functions, small and holding only small texts. (record, event name, owner) → answer: the
# metrics and the logs classify the same record object one after the other. (policy text, owner) →
# exposure: infrastructure code sets the same policy again and again.
_MEMO_BYTES = 16 << 10
_by_record: BoundedCache[tuple[bytes, str, str], tuple[str | None, str | None]] = BoundedCache(256)
_by_policy: BoundedCache[tuple[str, str | None], str] = BoundedCache(1024)


def arn_account(arn: str | None) -> str | None:
    """The account id an ARN names (`arn:aws:iam::123456789012:role/x` → `123456789012`), else None."""
    if not arn:
        return None
    m = _ARN_ACCOUNT.match(arn)
    return m.group(1) if m else None


def principal_account(value: str) -> str | None:
    """The account a policy's `AWS` principal names: a bare account id or an ARN's account."""
    value = value.strip()
    if _ACCOUNT_ID.match(value):
        return value
    return arn_account(value)


def _as_list(value: Any) -> list[Any]:
    if value is None:
        return []
    if isinstance(value, list):
        return value
    return [value]


def _statement_exposure(st: Mapping[str, Any], owner: str | None) -> str | None:
    """The exposure one Allow statement grants (None for Deny / statements that grant nothing)."""
    if st.get("Effect") != "Allow":
        return None
    conditioned = bool(st.get("Condition"))
    if "NotPrincipal" in st:  # Allow to everyone but the listed ones: as open as a wildcard
        return ACCOUNT if conditioned else PUBLIC
    principal = st.get("Principal")
    if principal is None:
        return None
    if principal == "*":
        return ACCOUNT if conditioned else PUBLIC
    if not isinstance(principal, Mapping):
        raise ValueError("Principal is neither '*' nor a map")
    worst: str | None = None
    for kind, values in principal.items():
        for v in _as_list(values):
            if not isinstance(v, str):
                raise ValueError("a principal that is not a string")
            if kind == "AWS":
                if v == "*":
                    return ACCOUNT if conditioned else PUBLIC
                acct = principal_account(v)
                if acct is not None and owner is not None and acct != owner:
                    worst = CROSS_ACCOUNT
                elif worst is None:
                    worst = ACCOUNT
            elif kind == "Federated" or kind == "CanonicalUser":
                acct = arn_account(v)
                # an identity provider of another account, or one not named by account (web identity)
                if acct is None or (owner is not None and acct != owner):
                    worst = CROSS_ACCOUNT
                elif worst is None:
                    worst = ACCOUNT
            elif worst is None:  # Service principals act for the account that configured them
                worst = ACCOUNT
    return worst


def policy_exposure(policy: Any, owner: str | None) -> str:
    """Exposure of a queue policy as set (`attributes.Policy`): public > cross_account > account;
    an empty policy is `removed`, an unreadable one `unknown`."""
    if policy is None:
        return UNKNOWN
    if isinstance(policy, str):
        if not policy.strip():
            return REMOVED
        if len(policy) > MAX_POLICY_BYTES:
            return UNKNOWN
        if len(policy) > _MEMO_BYTES:
            return _text_exposure(policy, owner)
        key = (policy, owner)
        hit = _by_policy.get(key)
        if hit is None:
            hit = _by_policy.put(key, _text_exposure(policy, owner))
        return hit
    return _document_exposure(policy, owner)


def _text_exposure(policy: str, owner: str | None) -> str:
    try:
        doc = _decode_policy(policy)
    except (msgspec.DecodeError, RecursionError, ValueError):
        return UNKNOWN
    return _document_exposure(doc, owner)


def _document_exposure(doc: Any, owner: str | None) -> str:
    if not isinstance(doc, Mapping):
        return UNKNOWN
    statements = _as_list(doc.get("Statement"))
    if not statements:
        return REMOVED
    found: set[str] = set()
    try:
        for st in statements:
            if not isinstance(st, Mapping):
                return UNKNOWN
            e = _statement_exposure(st, owner)
            if e is not None:
                found.add(e)
    except (ValueError, TypeError, RecursionError):
        return UNKNOWN
    for e in (PUBLIC, CROSS_ACCOUNT, ACCOUNT):
        if e in found:
            return e
    return ACCOUNT  # only Deny statements: nobody outside gains access


def _get_ci(params: Mapping[str, Any], name: str) -> Any:
    """A request parameter by name, case-insensitively (CloudTrail writes `AWSAccountIds` and
    `aWSAccountIds` in different eras)."""
    if name in params:
        return params[name]
    low = name.lower()
    for k, v in params.items():
        if isinstance(k, str) and k.lower() == low:
            return v
    return None


def _attributes(params: Mapping[str, Any]) -> Mapping[str, Any]:
    attrs = _get_ci(params, "attributes")
    return attrs if isinstance(attrs, Mapping) else {}


def change_exposure(event_name: str, params: Any, owner: str | None) -> str | None:
    """The exposure a successful call sets, or None when the call does not touch the queue's policy."""
    if event_name not in POLICY_EVENTS:
        return None
    if event_name == "RemovePermission":
        return REMOVED
    if not isinstance(params, Mapping):
        return UNKNOWN if event_name == "AddPermission" else None
    if event_name == "AddPermission":
        accounts = _get_ci(params, "AWSAccountIds")
        if not isinstance(accounts, list) or not accounts:
            return UNKNOWN
        others = [a for a in accounts if not isinstance(a, str) or principal_account(a) != owner]
        return CROSS_ACCOUNT if others else ACCOUNT
    attrs = _attributes(params)
    if "Policy" not in attrs:
        return None
    return policy_exposure(attrs["Policy"], owner)


def record_changes(raw: Any, event_name: str, owner: str) -> tuple[str | None, str | None]:
    """(exposure, encryption) that a successful call of `event_name` sets, read from its raw JSON record;
    (None, None) when it sets neither or its request parameters cannot be read."""
    key = (raw, event_name, owner) if type(raw) is bytes and len(raw) <= _MEMO_BYTES else None
    hit = _by_record.get(key) if key is not None else None
    if hit is not None:
        return hit
    try:
        params = _decode_params(raw).requestParameters
    except (msgspec.DecodeError, RecursionError):
        out: tuple[str | None, str | None] = (None, None)
    else:
        out = (change_exposure(event_name, params, owner), change_encryption(event_name, params))
    if key is not None:
        _by_record.put(key, out)
    return out


def _truthy(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, str):
        v = value.strip().lower()
        if v in ("true", "false"):
            return v == "true"
    return None


def change_encryption(event_name: str, params: Any) -> str | None:
    """The encryption a successful CreateQueue / SetQueueAttributes sets, or None when it sets none."""
    if event_name not in ATTRIBUTE_EVENTS or not isinstance(params, Mapping):
        return None
    attrs = _attributes(params)
    has_key = "KmsMasterKeyId" in attrs
    has_sse = "SqsManagedSseEnabled" in attrs
    if not has_key and not has_sse:
        return None
    key = attrs.get("KmsMasterKeyId")
    if isinstance(key, str) and key.strip():
        return SSE_KMS
    if _truthy(attrs.get("SqsManagedSseEnabled")):
        return SSE_SQS
    return NO_ENCRYPTION


def caller_account(identity: Mapping[str, Any] | None) -> str | None:
    """The caller's account for cross-account counting: `accountId`, else the account in its ARN;
    None for AWS service callers (never cross-account); "anonymous" when nothing names one."""
    if not isinstance(identity, Mapping):
        return "anonymous"
    arn = identity.get("arn")
    if identity.get("type") == "AWSService" or (identity.get("invokedBy") and not arn):
        return None
    acct = identity.get("accountId")
    if isinstance(acct, str) and acct:
        return acct
    acct = arn_account(arn) if isinstance(arn, str) else None
    return acct or "anonymous"


def principal_caller_account(principal: str | None) -> str | None:
    """The caller account of a call from its principal (either granularity; docs/identity.md): the
    account an ARN names, `account:<acct>/…` (AWSAccount callers), the account of an Identity Center store;
    None for AWS service callers (`*.amazonaws.com`); "anonymous" when the principal names no account."""
    if principal is None:
        return "anonymous"
    if principal.startswith("account:"):
        acct = principal[8:].split("/", 1)[0]
        return acct if _ACCOUNT_ID.match(acct) else "anonymous"
    if principal.endswith(".amazonaws.com"):
        return None
    return arn_account(principal) or "anonymous"
