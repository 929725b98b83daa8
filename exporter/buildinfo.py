"""What `cloudtrail_sqs_exporter_build_info` says: version, source revision, Python version."""

from __future__ import annotations

import functools
import platform
import subprocess
from pathlib import Path

from . import __version__

HERE = Path(__file__).parent
# written into the built package by setup.py (from $SOURCE_REVISION or `git rev-parse HEAD`)
REVISION_FILE = HERE / "_revision.txt"


@functools.cache
def revision() -> str:
    """The git commit the running code was built from: the file stamped at build time, else `git` when
    running from a checkout, else "unknown"."""
    try:
        text = REVISION_FILE.read_text().strip()
        if text:
            return text
    except OSError:
        pass
    try:
        out = subprocess.run(
            ["git", "-C", str(HERE), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=2, check=True
        )
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def labels() -> dict[str, str]:
    return {"version": __version__, "revision": revision(), "python_version": platform.python_version()}
