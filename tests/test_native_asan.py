"""The C module built with AddressSanitizer + UndefinedBehaviorSanitizer, fed mutated trail files and the
differential tests: an out-of-bounds read or write, a use after free or undefined behaviour aborts."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]
pytestmark = pytest.mark.slow
DIFFERENTIAL = ["tests/test_native.py", "tests/test_fastpath.py", "tests/test_native_tally.py"]


def _runtime(name: str) -> str | None:
    cc = shutil.which("gcc")
    if cc is None:
        return None
    path = subprocess.run([cc, f"-print-file-name={name}"], capture_output=True, text=True).stdout.strip()
    return path if os.path.isabs(path) and os.path.exists(path) else None


@pytest.fixture(scope="module")
def asan_tree(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, str]]:
    asan, ubsan = _runtime("libasan.so"), _runtime("libubsan.so")
    if asan is None or ubsan is None:
        pytest.skip("gcc's sanitizer runtimes are not installed")
    tree = tmp_path_factory.mktemp("asan")
    shutil.copytree(ROOT / "exporter", tree / "exporter", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    shutil.copytree(ROOT / "tests", tree / "tests", ignore=shutil.ignore_patterns("__pycache__"))
    for f in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, tree / f)
    flags = "-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -O1 -g"
    build = subprocess.run(
        [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
        cwd=tree,
        env={**os.environ, "CFLAGS": flags},
        capture_output=True,
        text=True,
    )
    assert build.returncode == 0 and list((tree / "exporter").glob("_native*.so")), build.stderr[-3000:]
    env = {
        **os.environ,
        "LD_PRELOAD": f"{asan} {ubsan}",
        "ASAN_OPTIONS": "detect_leaks=0:abort_on_error=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "PYTHONPATH": str(tree),
    }
    return tree, env


def test_mutated_trail_files(asan_tree: tuple[Path, dict[str, str]]) -> None:
    tree, env = asan_tree
    seeds = [str(p) for p in sorted((ROOT / "exporter" / "sample" / "trail").rglob("*.json.gz"))[:6]]
    seeds += [str(p) for p in sorted((ROOT / "tests" / "fixtures").rglob("*.json"))]
    r = subprocess.run(
        [sys.executable, str(tree / "tests" / "asan_mutate.py"), "4000", "3", *seeds],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0 and "ok 4000" in r.stdout, r.stderr[-4000:]
    assert str(tree) in r.stdout, f"not the sanitized build: {r.stdout}"


def test_differential_tests_under_sanitizers(asan_tree: tuple[Path, dict[str, str]]) -> None:
    tree, env = asan_tree
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            "-q",
            "-p",
            "no:cacheprovider",
            *DIFFERENTIAL,
        ],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert r.returncode == 0, (r.stdout + r.stderr)[-4000:]
