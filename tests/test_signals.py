"""Signals reach the daemon whichever thread the kernel hands them to.

A process-directed signal goes to any thread that does not block it. CPython runs the Python handler in
the main thread only, at its next bytecode: a main thread parked in a wait without a timeout never gets
there, so a SIGTERM taken by the HTTP or a source thread used to leave the daemon serving for ever."""

from __future__ import annotations

import ctypes
import os
import signal
from pathlib import Path

import pytest
from test_run import write_config
from util import Exporter, generate, wait_for

SYS_TGKILL = 234  # x86_64; aarch64 has 131


def other_threads(pid: int) -> list[int]:
    return sorted(int(t) for t in os.listdir(f"/proc/{pid}/task") if int(t) != pid)


def tgkill(pid: int, tid: int, sig: int) -> None:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.syscall(SYS_TGKILL, pid, tid, sig) != 0:
        raise OSError(ctypes.get_errno(), f"tgkill {pid} {tid}")


@pytest.mark.skipif(os.uname().machine != "x86_64" or not Path("/proc/self/task").exists(), reason="Linux x86_64")
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_a_signal_taken_by_another_thread_still_stops_the_daemon(
    tmp_path: Path, exporter_proc: list[Exporter], sig: int
) -> None:
    generate(tmp_path / "trail", files=2)
    exp = Exporter(write_config(tmp_path, tmp_path / "trail"), tmp_path).start()
    exporter_proc.append(exp)
    assert exp.proc is not None
    pid = exp.proc.pid
    threads = other_threads(pid)
    assert threads, "the daemon runs its server and sources in threads"
    tgkill(pid, threads[0], sig)  # not the main thread
    wait_for(lambda: exp.proc is not None and exp.proc.poll() is not None, 10, what="exit after the signal")
    assert exp.stop() == 0
    assert f"signal {int(sig)}: shutting down" in exp.log.read_text()
