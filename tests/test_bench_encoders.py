"""bench/otlp_encoders.py still runs against the log sink and every encoder writes the SDK's log records
(the script checks that itself before timing); no rates are checked here."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_otlp_encoders_agree_and_run() -> None:
    p = subprocess.run(
        [
            sys.executable,
            str(ROOT / "bench" / "otlp_encoders.py"),
            "--records",
            "300",
            "--batch",
            "100",
            "--repeats",
            "1",
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    assert "SDK " in p.stdout and "Python " in p.stdout, p.stdout
    if os.environ.get("CTSQS_NATIVE") == "0":
        return
    try:
        from exporter import _native  # noqa: F401
    except ImportError:
        return
    assert "C " in p.stdout, p.stdout
