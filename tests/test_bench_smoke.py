"""The benchmark still runs end to end (`bench/run.py --quick`); no figures are checked here."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_bench_quick_completes() -> None:
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    for row in ("(a) gunzip floor", "(b) naive", "(c) replay", "(c)/(a)", "(c)/(b)", "start-up", "/metrics scrape"):
        assert row in p.stdout, p.stdout
    assert (ROOT / "bench" / "out" / "results-quick.json").exists()
