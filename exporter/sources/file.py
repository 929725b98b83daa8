"""`file` source: a trail file or a directory tree of them, watched for new files by polling."""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

from ..config import FileSourceConfig
from ..state import StateStore
from .base import Context, Source

log = logging.getLogger(__name__)

SUFFIXES = (".json", ".json.gz", ".gz", ".jsonl", ".ndjson")


def trail_files(root: Path) -> Iterator[Path]:
    """Trail files under `root` (or `root` itself), in sorted order, hidden files and dirs left out."""
    if root.is_file():
        yield root
        return
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for f in sorted(filenames):
            if not f.startswith(".") and f.endswith(SUFFIXES):
                yield Path(dirpath, f)


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
                data = path.read_bytes()
            except OSError as exc:
                log.warning("source %s: cannot read %s: %s", self.name, path, exc)
                intake.source_error(self.name, "io")
                outcome = "failed"
                intake.count_object(self.name, outcome, mark(outcome))
            else:
                outcome = intake.process(data, self.name, key, progress=lambda r: mark(r.outcome)).outcome
            self.done[key] = (st.st_size, st.st_mtime_ns, outcome)
            intake.maybe_checkpoint()
