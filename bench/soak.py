"""`--soak MINUTES`: RSS of `run` on a directory that keeps receiving trail files."""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import time
import urllib.request
from pathlib import Path
from typing import Any

from . import procs
from .corpus import Corpus


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def soak(pool: Corpus, minutes: float, work: Path, files_per_second: float = 2.0, sample_every: float = 5.0) -> dict:
    """Copy pool files into a watched directory at a steady rate; sample the daemon's RSS."""
    if work.exists():
        shutil.rmtree(work)
    inbox = work / "inbox"
    inbox.mkdir(parents=True)
    port = _free_port()
    cfg = work / "soak.yaml"
    cfg.write_text(
        f'listen: "127.0.0.1:{port}"\n'
        f"log_level: warning\n"
        f"state: {{path: {work / 'state.db'}}}\n"
        f"sources: [{{type: file, path: {inbox}, poll_interval: 1s, settle: 0s}}]\n"
    )
    src = [p for p in pool.paths if "CloudTrail/" in str(p)]
    p = subprocess.Popen(
        [*procs.exporter_cmd(), "run", "--config", str(cfg)],
        stdout=subprocess.DEVNULL,
        stderr=(work / "run.err").open("wb"),
        env=procs.clean_env(),
    )
    rss: list[tuple[float, float]] = []
    copied = 0
    try:
        t0 = time.monotonic()
        next_sample = t0
        end = t0 + minutes * 60
        while (now := time.monotonic()) < end:
            if p.poll() is not None:
                raise RuntimeError(f"run exited early (rc={p.returncode}); see {work / 'run.err'}")
            due = int((now - t0) * files_per_second)
            while copied < due:
                f = src[copied % len(src)]
                dst = inbox / f"{copied // len(src):05d}" / f.name
                dst.parent.mkdir(exist_ok=True)
                tmp = dst.with_name("." + dst.name)  # hidden while being written
                shutil.copyfile(f, tmp)
                tmp.rename(dst)
                copied += 1
            if now >= next_sample:
                rss.append((now - t0, procs.status_mb(p.pid)))
                next_sample += sample_every
            time.sleep(0.1)
        time.sleep(3)  # let the last files be read
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
            text = r.read().decode()
    finally:
        if p.poll() is None:
            p.send_signal(signal.SIGTERM)
            try:
                p.wait(30)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    records = procs.value(text, "cloudtrail_sqs_exporter_records_total")
    return summarize(rss) | {"minutes": minutes, "files": copied, "records": records}


def summarize(rss: list[tuple[float, float]]) -> dict[str, Any]:
    """RSS after warm-up (second minute, or the second tenth of a short soak) against the last minute."""
    rss = [(t, m) for t, m in rss if m > 0]  # the first sample can precede the process
    if len(rss) < 4:
        return {"samples": rss}
    end = rss[-1][0]
    warm = min(60.0, end / 10)
    first = [m for t, m in rss if warm <= t < 2 * warm] or [rss[1][1]]
    last = [m for t, m in rss if t >= end - warm] or [rss[-1][1]]
    a, b = sum(first) / len(first), sum(last) / len(last)
    return {
        "rss_warm_mb": a,
        "rss_last_mb": b,
        "rss_max_mb": max(m for _, m in rss),
        "growth_mb": b - a,
        "growth_pct": (b - a) / a * 100,
        "samples": rss,
    }
