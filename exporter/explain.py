"""Expected failures as one line a person can act on: what failed, and what to do about it.

Used where a failure ends a command (`replay`, `run` at start) instead of a traceback; the traceback is
still logged at debug. botocore is only looked at when it is already loaded (`replay` of a local path
never imports it).
"""

from __future__ import annotations

import errno
import sys

_CREDENTIALS_HINT = (
    "set AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY or AWS_PROFILE, or run where a role is available "
    "(instance profile, IRSA, Pod Identity)"
)
_REJECTED = frozenset(
    {"InvalidAccessKeyId", "SignatureDoesNotMatch", "ExpiredToken", "InvalidToken", "UnrecognizedClientException"}
)


def explain(exc: BaseException, what: str = "") -> str:
    """`exc` as one line saying what went wrong and the remedy; `what` (a path, an s3:// URL, an address)
    is the thing it happened to, which the caller names."""
    aws = _aws(exc, what)
    if aws is not None:
        return aws
    if isinstance(exc, FileNotFoundError):
        return "no such file or directory"
    if isinstance(exc, PermissionError):
        return "permission denied: check that this user may read it"
    if isinstance(exc, IsADirectoryError):
        return "is a directory"
    if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
        return "address already in use: stop the other process or choose another address"
    if isinstance(exc, OSError) and exc.strerror:
        return f"{exc.strerror.lower()}"
    text = " ".join(str(exc).split()) or type(exc).__name__
    return f"{text}"


def _aws(exc: BaseException, what: str) -> str | None:
    if "botocore.exceptions" not in sys.modules:
        return None
    from botocore import exceptions as be

    if isinstance(exc, be.NoCredentialsError | be.PartialCredentialsError):
        return f"no AWS credentials found: {_CREDENTIALS_HINT}"
    if isinstance(exc, be.NoRegionError):
        return "no AWS region configured: set AWS_REGION (or AWS_DEFAULT_REGION)"
    if isinstance(exc, be.EndpointConnectionError | be.ConnectTimeoutError):
        url = getattr(exc, "kwargs", {}).get("endpoint_url", "")
        host = (url.split("/")[2] if url.count("/") >= 2 else url).rpartition("@")[2]  # never the userinfo
        return f"cannot connect to {host or 'the AWS endpoint'}: check AWS_ENDPOINT_URL, the network and any proxy"
    if isinstance(exc, be.ReadTimeoutError):
        return "the AWS endpoint did not answer in time: try again, or check the network"
    if isinstance(exc, be.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code", ""))
        status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode")
        op = getattr(exc, "operation_name", "") or "the request"
        bucket = what[5:].split("/", 1)[0] if what.startswith("s3://") else ""
        if code == "NoSuchBucket":
            return f"bucket {bucket or '(unknown)'} does not exist: check the bucket name (and the region/endpoint)"
        if code in ("NoSuchKey", "404", "NotFound"):
            return "no such object (deleted while reading?)"
        if code in _REJECTED:
            return f"the AWS credentials were rejected ({code}): check the access key, secret and session token"
        if code in ("AccessDenied", "AccessDeniedException", "AllAccessDisabled") or status == 403:
            need = "s3:ListBucket" if op == "ListObjectsV2" else "s3:GetObject" if op == "GetObject" else op
            where = f" on {bucket}" if bucket else ""
            return f"access denied ({op}): the credentials in use need {need}{where} (and kms:Decrypt if SSE-KMS)"
        message = " ".join(str(err.get("Message", "")).split())
        return f"{op} failed: {code or status}{': ' + message if message else ''}"
    if isinstance(exc, be.BotoCoreError):
        return " ".join(str(exc).split())
    return None
