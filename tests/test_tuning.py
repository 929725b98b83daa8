"""exporter.tuning: big short-lived buffers are reused from the heap instead of fresh mmap()s."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

PROBE = """
import resource, sys
from exporter.tuning import tune_malloc
tuned = tune_malloc() if sys.argv[1] == "tuned" else False
def faults():
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt
bytes(bytearray(4 << 20))  # warm up: the first buffer faults either way
before = faults()
for _ in range(50):
    b = bytes(bytearray(4 << 20))  # two 4 MiB buffers, written in full, then freed
    del b
print(tuned, faults() - before)
"""


def _faults(mode: str) -> tuple[str, int]:
    out = subprocess.run([sys.executable, "-c", PROBE, mode], capture_output=True, text=True, check=True).stdout
    tuned, n = out.split()
    return tuned, int(n)


@pytest.mark.skipif(not hasattr(os, "confstr") or not os.confstr("CS_GNU_LIBC_VERSION"), reason="glibc only")
def test_big_buffers_stop_faulting_once_tuned() -> None:
    _, plain = _faults("plain")
    tuned, after = _faults("tuned")
    assert tuned == "True"
    # untuned: every 4 MiB buffer is a fresh mapping (1,024 faults each); tuned: the heap is reused
    assert plain > 50 * 1000
    assert after < plain / 20


def test_gc_tuning_freezes_start_up_and_spaces_young_collections() -> None:
    probe = (
        "import gc; from exporter.tuning import tune_gc; n = len(gc.get_objects()); tune_gc(); "
        "print(gc.get_freeze_count() >= n // 2, gc.get_threshold()[0])"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True", "10000"]
