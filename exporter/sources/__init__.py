"""Sources: where CloudTrail deliveries come from. Each type maps to one module."""

from __future__ import annotations

from typing import Any

from .base import Context, Source
from .cloudwatch import CloudWatchSource
from .file import FileSource
from .s3 import S3Source
from .s3sqs import S3SqsSource

SOURCE_TYPES: dict[str, type[Source]] = {
    "file": FileSource,
    "s3": S3Source,
    "s3-sqs": S3SqsSource,
    "cloudwatch": CloudWatchSource,
}


def build(cfg: Any, ctx: Context) -> Source:
    return SOURCE_TYPES[cfg.type](cfg, ctx)


__all__ = ["SOURCE_TYPES", "Context", "Source", "build"]
