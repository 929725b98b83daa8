"""decode.reader.read_file: a file's bytes, exactly, without allocating the object cap for each file."""

from __future__ import annotations

import os
import tracemalloc
from pathlib import Path

import pytest

from exporter.decode import reader


def test_reads_the_file_and_only_its_size(tmp_path: Path) -> None:
    p = tmp_path / "one.json"
    p.write_bytes(b'{"Records": []}' * 1000)
    tracemalloc.start()
    try:
        data = reader.read_file(p)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert data == p.read_bytes()
    # read(cap + 1) allocated the whole cap (64 MiB) per file: fresh pages, a page fault per page read into
    assert peak < 4 * len(data) + (1 << 16), peak


def test_a_file_that_grew_since_fstat_is_read_on_up_to_the_cap(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "growing.json"
    p.write_bytes(b"x" * 5000)
    real = os.fstat

    class Smaller:
        def __init__(self, st: os.stat_result) -> None:
            self.st_size = st.st_size - 3000  # the size when it was looked at

    monkeypatch.setattr(reader.os, "fstat", lambda fd: Smaller(real(fd)))
    assert reader.read_file(p) == p.read_bytes()
    monkeypatch.setattr(reader, "MAX_DECOMPRESSED", 4000)
    # beyond the cap it is cut at cap + 1, which the reader reports as too large / truncated
    assert len(reader.read_file(p)) == 4001


def test_above_the_cap_is_refused_unread(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    p = tmp_path / "big.json"
    p.write_bytes(b"y" * 2000)
    monkeypatch.setattr(reader, "MAX_DECOMPRESSED", 1000)
    with pytest.raises(reader.TooLarge):
        reader.read_file(p)
