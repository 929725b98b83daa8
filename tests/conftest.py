from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from util import Exporter

# fixtures for the AWS sources (moto_server); registered here so pytest rewrites their asserts
pytest_plugins = ["awsfixtures"]


@pytest.fixture
def exporter_proc(tmp_path: Path) -> Iterator[list[Exporter]]:
    """Collects Exporter processes a test starts, and stops them all at teardown."""
    procs: list[Exporter] = []
    yield procs
    for p in procs:
        p.stop()
