"""The fuzzing build: a copy of exporter/ whose C extension clang compiles with libFuzzer's coverage
instrumentation and AddressSanitizer + UndefinedBehaviorSanitizer, and the sanitizer runtime with
libFuzzer linked in, to preload into Python (see README.md for why it is built here and not taken from
atheris' wheel).

    python tests/fuzz/instrumented.py OUT_DIR   builds (or reuses) OUT_DIR/tree and OUT_DIR/asan_with_fuzzer.so
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CFLAGS = [
    "-fsanitize=fuzzer-no-link,address,undefined",
    "-fno-sanitize-recover=undefined",  # the first undefined behaviour aborts: libFuzzer keeps the input
    "-fno-omit-frame-pointer",
    "-g",
]


LIBS = ["-Wl,--no-whole-archive", "-lpthread", "-ldl"]


class Unavailable(Exception):
    """No clang, or no compiler-rt with libFuzzer and the sanitizers: nothing to build with."""


def _out(*cmd: str) -> str:
    return subprocess.run(cmd, capture_output=True, text=True, check=True).stdout.strip()


def runtime(name: str) -> Path:
    """A compiler-rt archive of the clang on PATH, e.g. runtime("asan") → libclang_rt.asan-x86_64.a."""
    if shutil.which("clang") is None or shutil.which("clang++") is None:
        raise Unavailable("clang is not installed (apt-get install clang)")
    lib = f"libclang_rt.{name}-{platform.machine()}.a"
    path = Path(_out("clang", f"-print-file-name={lib}"))
    if not path.is_absolute() or not path.exists():
        raise Unavailable(f"{lib} is not installed with clang")
    return path


def preload(out: Path) -> Path:
    """ASan (which carries the UBSan runtime) and libFuzzer in one shared object. Preloaded, its strong
    coverage symbols win over the sanitizer's weak ones, so the instrumented extension's edges reach
    libFuzzer; atheris sees LLVMFuzzerRunDriver already loaded and uses this libFuzzer, not its own."""
    so = out / "asan_with_fuzzer.so"
    fuzzer, asan = runtime("fuzzer_no_main"), runtime("asan")
    stamp = out / "preload.stamp"
    key = f"{fuzzer}:{fuzzer.stat().st_mtime}:{asan}:{asan.stat().st_mtime}"
    if so.exists() and stamp.exists() and stamp.read_text() == key:
        return so
    work = out / "preload-work"
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    shutil.copy(asan, work / "asan.a")
    # the preinit object registers asan's init in .preinit_array, which a shared object must not have
    subprocess.run(["ar", "d", str(work / "asan.a"), "asan_preinit.cpp.o"], check=True)
    subprocess.run(
        ["clang++", "-shared", "-o", str(so), "-Wl,--whole-archive", str(fuzzer), str(work / "asan.a"), *LIBS],
        check=True,
        capture_output=True,
    )
    shutil.rmtree(work)
    stamp.write_text(key)
    return so


def tree(out: Path) -> Path:
    """OUT/tree: exporter/ as it is in this checkout, with the instrumented extension (rebuilt only when
    the C source, setup.py, the flags or clang change). setup.py links it with libcrypto, which is not
    instrumented: the hashing it does for redaction is libcrypto's own, fuzzed here only through its
    inputs."""
    dest = out / "tree"
    shutil.rmtree(dest / "exporter", ignore_errors=True)
    shutil.copytree(ROOT / "exporter", dest / "exporter", ignore=shutil.ignore_patterns("*.so", "__pycache__"))
    for f in ("setup.py", "pyproject.toml", "README.md"):
        shutil.copy(ROOT / f, dest / f)
    # setup.py too: it names the libraries the extension links (libcrypto)
    source = (ROOT / "exporter" / "_native.c").read_bytes() + (ROOT / "setup.py").read_bytes()
    key = hashlib.sha256(source + " ".join(CFLAGS).encode() + _out("clang", "--version").encode()).hexdigest()
    built, stamp = out / "_native.so", out / "native.stamp"
    if not (built.exists() and stamp.exists() and stamp.read_text() == key):
        env = {**os.environ, "CC": "clang", "LDSHARED": "clang -shared -pthread", "CFLAGS": " ".join(CFLAGS)}
        r = subprocess.run(
            [sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
            cwd=dest,
            env=env,
            capture_output=True,
            text=True,
        )
        made = list((dest / "exporter").glob("_native*.so"))
        if r.returncode != 0 or not made:
            raise RuntimeError(f"the instrumented build failed:\n{r.stderr[-4000:]}")
        shutil.copy(made[0], built)
        stamp.write_text(key)
    suffix = _out(sys.executable, "-c", "import sysconfig; print(sysconfig.get_config_var('EXT_SUFFIX'))")
    shutil.copy(built, dest / "exporter" / f"_native{suffix}")
    return dest


def build(out: Path) -> dict[str, str]:
    """Build what is missing under `out`; → the environment a fuzz run needs."""
    out.mkdir(parents=True, exist_ok=True)
    so = preload(out)
    src = tree(out)
    return {
        "LD_PRELOAD": str(so),
        "PYTHONPATH": str(src),
        # every allocation through malloc, so ASan sees the bounds of the objects the C reads and writes
        "PYTHONMALLOC": "malloc",
        # LeakSanitizer is off: CPython keeps memory to the end on purpose (and so do pydantic and the
        # rest), so its report is noise; the C's own leaks are looked for with tracemalloc instead
        # (fuzz.py --leaks, on the corpus after a run)
        "ASAN_OPTIONS": "detect_leaks=0:allocator_may_return_null=1:abort_on_error=0:handle_abort=1",
        "UBSAN_OPTIONS": "halt_on_error=1:print_stacktrace=1",
        "CTSQS_NATIVE": "1",
    }


if __name__ == "__main__":
    if len(sys.argv) != 2:
        print(__doc__, file=sys.stderr)
        raise SystemExit(2)
    for k, v in build(Path(sys.argv[1]).resolve()).items():
        print(f"{k}={v}")
