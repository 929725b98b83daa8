"""Sources: where CloudTrail deliveries come from. Each type maps to one module."""

from __future__ import annotations

from typing import Any

from .base import Context, Source
from .file import FileSource

SOURCE_TYPES: dict[str, type[Source]] = {"file": FileSource}


def build(cfg: Any, ctx: Context) -> Source:
    return SOURCE_TYPES[cfg.type](cfg, ctx)


__all__ = ["SOURCE_TYPES", "Context", "Source", "build"]
