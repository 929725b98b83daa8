"""Running the exporter as a whole process: time, CPU, peak RSS; the local OTLP sink."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

HERE = Path(__file__).resolve().parent


def exporter_cmd() -> list[str]:
    """The installed console script next to this interpreter, else `python -m exporter`."""
    script = Path(sys.executable).with_name("cloudtrail-sqs-exporter")
    return [str(script)] if script.exists() else [sys.executable, "-m", "exporter"]


def clean_env() -> dict[str, str]:
    """The caller's environment without settings that would change what is measured."""
    return {k: v for k, v in os.environ.items() if not k.startswith(("CTSQS_", "OTEL_"))}


@dataclass
class ProcResult:
    rc: int
    wall: float  # seconds
    cpu: float  # user + sys seconds of the child
    maxrss_mb: float
    stdout: str
    stderr: str


def run(cmd: list[str], out_dir: Path, name: str) -> ProcResult:
    """Run to completion; stdout/stderr go to files so a full pipe never stalls the child."""
    out_dir.mkdir(parents=True, exist_ok=True)
    so, se = out_dir / f"{name}.out", out_dir / f"{name}.err"
    with so.open("wb") as fo, se.open("wb") as fe:
        t0 = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=fo, stderr=fe, stdin=subprocess.DEVNULL, env=clean_env())
        # Peak RSS from VmHWM, polled: ru_maxrss of a child also counts the bench process it was
        # forked from (Linux keeps the pre-exec high-water mark).
        hwm = 0.0
        while True:
            pid, status, ru = os.wait4(p.pid, os.WNOHANG)
            if pid:
                break
            hwm = max(hwm, status_mb(p.pid, "VmHWM:"))
            time.sleep(0.02)
        wall = time.perf_counter() - t0
        p.returncode = os.waitstatus_to_exitcode(status)
    return ProcResult(
        p.returncode,
        wall,
        ru.ru_utime + ru.ru_stime,
        hwm,
        so.read_text(errors="replace"),
        se.read_text(errors="replace"),
    )


def time_to_first_byte(cmd: list[str]) -> float:
    """Seconds from spawning the process to the first byte on its stdout."""
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=clean_env())
    assert p.stdout is not None
    p.stdout.read(1)
    dt = time.perf_counter() - t0
    p.stdout.read()
    p.wait()
    return dt


_SAMPLE = re.compile(r"^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)$")


def samples(text: str, name: str) -> dict[str, float]:
    """Label string → value of one metric's samples in Prometheus text output."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = _SAMPLE.match(line)
        if m and m.group(1) == name:
            out[m.group(2) or ""] = float(m.group(3))
    return out


def value(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for lab, v in samples(text, name).items():
        if all(f'{k}="{val}"' in lab for k, val in labels.items()):
            total += v
    return total


def status_mb(pid: int, field: str = "VmRSS:") -> float:
    """A memory figure of /proc/PID/status in MB (0 once the process is gone)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


class OtlpSink:
    """bench/otlp_sink.py in its own process (on another core when there is one)."""

    def __init__(self, cpu: int | None, decode_all: bool = False) -> None:
        self.p = subprocess.Popen(
            [sys.executable, str(HERE / "otlp_sink.py"), *(["--decode-all"] if decode_all else [])],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        if cpu is not None:
            os.sched_setaffinity(self.p.pid, {cpu})
        line = self._out.readline()
        if not line.startswith("port "):
            self.close()
            raise RuntimeError(f"OTLP sink did not start: {line!r}")
        self.port = int(line.split()[1])

    @property
    def _out(self) -> IO[str]:
        assert self.p.stdout is not None
        return self.p.stdout

    def counts(self) -> dict[str, Any]:
        assert self.p.stdin is not None
        self.p.stdin.write("\n")
        self.p.stdin.flush()
        return json.loads(self._out.readline())

    def close(self) -> None:
        if self.p.poll() is None:
            if self.p.stdin is not None:
                self.p.stdin.close()
            try:
                self.p.wait(10)
            except subprocess.TimeoutExpired:
                self.p.kill()
                self.p.wait()
