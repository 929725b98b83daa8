"""A short coverage-guided fuzzing run (atheris) over the decoder, seeded with the fixtures."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from util import FIXTURES

pytest.importorskip("atheris")
pytestmark = pytest.mark.slow


def test_atheris_finds_no_crash(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus"
    corpus.mkdir()
    for i, f in enumerate(p for p in FIXTURES.rglob("*") if p.is_file() and p.stat().st_size < 20_000):
        shutil.copy(f, corpus / f"seed-{i}")
    r = subprocess.run(
        [
            sys.executable,
            str(Path(__file__).with_name("fuzz_decoder.py")),
            "-runs=30000",
            "-max_len=4096",
            "-rss_limit_mb=1024",
            str(corpus),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=tmp_path,
    )
    assert r.returncode == 0, r.stderr[-3000:]
    assert "Done 30000 runs" in r.stderr
