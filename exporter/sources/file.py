"""`file` source: a trail file or a directory tree of them, watched for new files by polling."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..config import FileSourceConfig
from ..decode.reader import read_file
from ..state import StateStore
from .base import Context, Source

log = logging.getLogger(__name__)

SUFFIXES = (".json", ".json.gz", ".gz", ".jsonl", ".ndjson")
# what a delivery's first bytes can be: gzip, a UTF-8 BOM, or JSON text after blanks
_SNIFF = (b"\x1f\x8b", b"\xef\xbb\xbf", b"{", b"[")
_reported: dict[str, dict[str, int]] = {}


def trail_files(root: Path, skipped: dict[str, int] | None = None) -> Iterator[Path]:
    """Every regular file under `root` (or `root` itself) that may hold deliveries, in sorted order: by
    extension (any case) or by its first bytes; hidden files and dirs left out. What is left out otherwise
    is counted in `skipped` by reason and logged once per change."""
    if root.is_file():
        yield root
        return
    why: dict[str, int] = {}
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if f.startswith("."):
                continue
            path = Path(dirpath, f)
            reason = None if f.lower().endswith(SUFFIXES) else _sniff(path)
            if reason is None:
                yield path
            else:
                why[reason] = why.get(reason, 0) + 1
    if skipped is not None:
        for reason, n in why.items():
            skipped[reason] = skipped.get(reason, 0) + n
    if why and _reported.get(str(root)) != why:
        detail = ", ".join(f"{n} {reason}" for reason, n in sorted(why.items()))
        log.info("%s: skipped %d files (%s)", root, sum(why.values()), detail)
    _reported[str(root)] = why


def _sniff(path: Path) -> str | None:
    """None when the file's first bytes look like a delivery, else why it is left out."""
    try:
        if not path.is_file():
            return "not a regular file"
        with path.open("rb") as fh:
            head = fh.read(512)
    except OSError:
        return "unreadable"
    if head.startswith(_SNIFF[:2]) or head.lstrip().startswith(_SNIFF[2:]):
        return None
    return "empty" if not head.strip() else "not JSON or gzip"


class FileSource(Source[FileSourceConfig]):
    type = "file"

    def __init__(self, cfg: FileSourceConfig, ctx: Context) -> None:
        super().__init__(cfg, ctx)
        self.root = Path(cfg.path)
        self.settle: float = cfg.settle
        # path → (size, mtime_ns, outcome); loaded once, then kept in step with what we commit
        self.done: dict[str, tuple[int, int, str]] = ctx.store.files(self.name) if ctx.store else {}

    def poll(self, stop: threading.Event) -> None:
        if not self.root.exists():
            raise FileNotFoundError(f"{self.root} does not exist")
        intake = self.intake
        now = time.time()
        for path in trail_files(self.root):
            if stop.is_set():
                return
            key = str(path)
            try:
                st = path.stat()
            except OSError:
                continue  # vanished between listing and stat
            prev = self.done.get(key)
            if prev is not None and (prev[2] != "failed" or prev[:2] == (st.st_size, st.st_mtime_ns)):
                continue  # done; a failed file is retried only once it changes
            if now - st.st_mtime < self.settle:
                continue  # may still be being written; next poll

            def mark(outcome: str, key: str = key, st: os.stat_result = st) -> list:
                return [StateStore.file_op(self.name, key, st.st_size, st.st_mtime_ns, outcome)]

            try:
                data = read_file(path)  # TooLarge above limits.max_object_bytes
            except OSError as exc:
                log.warning("source %s: cannot read %s: %s", self.name, path, exc)
                intake.source_error(self.name, "io")
                outcome = "failed"
                intake.count_object(self.name, outcome, mark(outcome))
            else:
                outcome = intake.process(data, self.name, key, progress=lambda r: mark(r.outcome)).outcome
            self.done[key] = (st.st_size, st.st_mtime_ns, outcome)
            intake.maybe_checkpoint()
