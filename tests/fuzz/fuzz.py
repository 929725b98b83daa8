"""Coverage-guided fuzzing of the C extension (atheris driving libFuzzer), one target per run:

    python tests/fuzz/fuzz.py scan|encode [libFuzzer flags] [corpus dirs]
    python tests/fuzz/fuzz.py scan|encode --leaks FILE_OR_DIR...   (replay, looking for memory kept per call)

Run it through tests/fuzz/run.py (or in the environment instrumented.py prints): the extension must be
the one built with `-fsanitize=fuzzer-no-link,address,undefined`, and the sanitizer runtime with
libFuzzer linked in must be preloaded, so that libFuzzer sees the C's edges and the sanitizers abort on
the first bad access or undefined behaviour. An oracle mismatch (tests/fuzz/targets.py) is an uncaught
AssertionError: libFuzzer reports it as a crash and writes the input to crash-<sha1>."""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Callable
from pathlib import Path

import atheris

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import targets


def leaks(oracle: Callable[[bytes], None], paths: list[str]) -> int:
    """Replay inputs (files, or every file of a directory) with tracemalloc: any input after which the
    oracle keeps memory on every call is a leak in the C (the Python paths keep nothing per call)."""
    import tracemalloc

    files = sorted(f for p in map(Path, paths) for f in ([p] if p.is_file() else p.rglob("*")) if f.is_file())
    tracemalloc.start()
    bad = 0
    for f in files:
        grown = targets.leaked(oracle, f.read_bytes())
        if grown:
            bad += 1
            print(f"LEAK: {grown} bytes per call on {f}", file=sys.stderr)
    print(f"leak check: {len(files)} inputs, {bad} leaking", file=sys.stderr)
    return 1 if bad or not files else 0


def main() -> int:
    if len(sys.argv) < 2 or sys.argv[1] not in ("scan", "encode"):
        print(__doc__, file=sys.stderr)
        return 2
    name = sys.argv.pop(1)
    if not targets.loaded():
        print("the C extension is not built (or CTSQS_NATIVE=0): nothing to fuzz", file=sys.stderr)
        return 2
    native = targets.native_module()
    print(f"fuzzing {name} in {native.__file__}", file=sys.stderr, flush=True)
    oracle = targets.scan_oracle if name == "scan" else targets.encode_oracle
    # a record neither encoder can write is logged (and counted) by the sink: expected here, and printing
    # its traceback for every such input would only slow the run down
    logging.disable(logging.CRITICAL)
    if sys.argv[1:2] == ["--leaks"]:
        return leaks(oracle, sys.argv[2:])
    atheris.Setup(sys.argv, oracle)
    atheris.Fuzz()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
