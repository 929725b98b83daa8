"""Build glue for the optional C accelerator and the revision stamp; everything else is in pyproject.toml."""

import os
import subprocess
from pathlib import Path

from setuptools import Extension, setup
from setuptools.command.build_py import build_py


def _revision() -> str:
    rev = os.environ.get("SOURCE_REVISION", "").strip()
    if rev:
        return rev
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=True)
        return out.stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


class BuildPy(build_py):
    """Writes exporter/_revision.txt into the built package, so build_info knows the commit outside a checkout."""

    def run(self) -> None:
        super().run()
        if not self.editable_mode:
            target = Path(self.build_lib) / "exporter" / "_revision.txt"
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_text(_revision() + "\n")


setup(
    cmdclass={"build_py": BuildPy},
    ext_modules=[
        # optional: without a compiler (or libcrypto's headers) the wheel still builds and the pure-Python
        # paths are used; redaction hashes with libcrypto (Debian: libssl-dev)
        Extension(
            "exporter._native",
            ["exporter/_native.c"],
            optional=True,
            extra_compile_args=["-O2"],
            libraries=["crypto"],
        ),
    ],
)
