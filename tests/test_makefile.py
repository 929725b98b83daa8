"""`make run` installs only when the project changed (stamp file), so a second `make run` starts at once.

Measured on this machine (README, Quick start): a first `make run` reached /healthz after ~39 s (venv + install
from the index), the second after ~0.4 s. Here `make -n` shows what make would do, without installing."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
from deploytools import ROOT

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _dry_run(venv: Path) -> str:
    r = subprocess.run(["make", "-n", "run", f"VENV={venv}"], cwd=ROOT, capture_output=True, text=True, check=True)
    return r.stdout


def test_second_make_run_does_not_reinstall(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    (venv / "bin" / "python").write_text("#!/bin/sh\n")
    (venv / "bin" / "python").chmod(0o755)
    stamp = venv / ".installed"
    stamp.touch()
    out = _dry_run(venv)
    assert "pip install" not in out and "cloudtrail-sqs-exporter run" in out, out
    # a stamp older than pyproject.toml (the project changed): make installs again
    os.utime(stamp, (0, 0))
    assert "pip install -q -e ." in _dry_run(venv)
    stamp.unlink()  # never installed
    assert "pip install -q -e ." in _dry_run(venv)
