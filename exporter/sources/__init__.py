"""Sources: where CloudTrail deliveries come from. Each type maps to one module."""

from __future__ import annotations

from importlib import import_module
from typing import Any

from ..config import SourceConfig
from .base import Context, Source

# type → (module, class); imported when configured: the AWS ones pull in boto3, whose import a `replay` of
# local files should not pay
SOURCE_TYPES: dict[str, tuple[str, str]] = {
    "file": (".file", "FileSource"),
    "s3": (".s3", "S3Source"),
    "s3-sqs": (".s3sqs", "S3SqsSource"),
    "cloudwatch": (".cloudwatch", "CloudWatchSource"),
    "eventbridge-sqs": (".eventbridge", "EventBridgeSqsSource"),
}


def source_class(type_: str) -> type[Source[Any]]:
    module, name = SOURCE_TYPES[type_]
    return getattr(import_module(module, __name__), name)


def build(cfg: SourceConfig, ctx: Context) -> Source[Any]:
    return source_class(cfg.type)(cfg, ctx)


__all__ = ["SOURCE_TYPES", "Context", "Source", "build", "source_class"]
