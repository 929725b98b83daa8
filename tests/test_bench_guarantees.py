"""`bench/guarantees.py --quick` runs end to end and every figure it prints meets its promise (exit 0):
a second daemon on one state file, secrets in config errors, bad records beside valid ones."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_guarantees_quick_meets_every_promise(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTSQS_", "OTEL_"))}
    p = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "guarantees.py"), "--quick", "--work", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        env=env,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    rows = [ln for ln in p.stdout.splitlines() if ln.startswith("| ") and not ln.startswith("| case ")]
    assert {ln.split(" | ")[0][2:] for ln in rows} == {"owner", "secrets", "records"}, p.stdout
    assert "✗" not in p.stdout
    assert "is in use by pid" in p.stdout and "valid counted 8 / invalid 2" in p.stdout
