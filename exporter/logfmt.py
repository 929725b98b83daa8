"""Where the process's own log lines go and how they look: stderr, as text for a person or as one JSON
object per line for a log shipper (`--log-format json`), with secrets masked either way."""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Iterable
from typing import Any

from . import masking

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

# the attributes every LogRecord has; anything else on a record came from `extra=` and is passed on
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime"}


class JsonFormatter(logging.Formatter):
    """One JSON object per record: time (RFC 3339, UTC), level, logger, message, the record's `extra`
    fields, and the traceback as `exception` when there is one. String values are masked before they are
    encoded, so a secret holding a quote or a backslash is found as written, not as JSON escapes it."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        super().__init__()
        self.secrets = set(secrets)

    def format(self, record: logging.LogRecord) -> str:
        t = time.gmtime(record.created)
        doc: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", t) + f".{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_") and key not in doc:
                doc[key] = value if isinstance(value, int | float | bool | type(None)) else str(value)
        if record.exc_info:
            doc["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            doc["stack"] = record.stack_info
        for key, value in doc.items():
            if isinstance(value, str):
                doc[key] = masking.mask_text(value, self.secrets)
        return json.dumps(doc, ensure_ascii=False, default=str)


def setup(level: str, secrets: set[str], fmt: str = "text") -> None:
    """Root logging to stderr at `level`, in `fmt`; every handler masks `secrets` (masking.mask_logging)."""
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter(secrets) if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root.addHandler(handler)
    root.setLevel(getattr(logging, level.upper()))
    logging.getLogger("botocore").setLevel(logging.WARNING)
    masking.mask_logging(secrets)  # no secret in any line, at any level, from any library
