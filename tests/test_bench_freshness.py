"""bench/freshness.py still runs end to end on a handful of messages (moto_server, the exporter as a
process); only that each message was counted, not how fast."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_freshness_bench_counts_each_message() -> None:
    p = subprocess.run(
        [sys.executable, "-m", "bench.freshness", "--messages", "5", "--wait-time", "20s"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "5 messages one at a time" in p.stdout, p.stdout
    m = re.search(r"p50 (\d+) ms .* p99 (\d+) ms", p.stdout)
    assert m is not None, p.stdout
    assert 0 <= int(m.group(1)) <= int(m.group(2)) < 60_000
