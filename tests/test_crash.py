"""Crash safety: kill -9 the daemon at random moments while it works; the final counts are exact."""

from __future__ import annotations

import random
import signal
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from test_run import matches, truth_of, write_config
from util import Exporter, http_get, parse_metrics, series, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow


def objects_ok(exp: Exporter) -> float:
    _, body, _ = http_get(exp.url + "/metrics", timeout=2)
    return series(parse_metrics(body), "cloudtrail_sqs_exporter_objects_total", "outcome").get(("ok",), 0.0)


def kill_9_along_the_work(
    exp: Exporter, progress: Callable[[Exporter], float], total: float, kills: int, rng: random.Random
) -> list[float]:
    """Start `exp` and kill -9 it `kills` times on the same state. Each kill is aimed at a random point of
    the work (a share of `total`, rising from kill to kill) rather than a random time, so kills land
    mid-work whether the machine is fast or slow that minute: the progress is scraped until it passes the
    point, then the kill follows a random few milliseconds later. Every third run is instead killed just
    after it starts serving (sources starting, first listing, restored state). Returns the progress seen
    last before each kill."""
    points = sorted(rng.uniform(0.02, 0.9) * total for _ in range(kills))
    seen: list[float] = []
    for i, point in enumerate(points):
        early = i % 3 == 2
        exp.start(wait_ready=False, check=lambda: True)
        last = -1.0
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            try:
                last = progress(exp)
            except OSError:  # not serving yet
                time.sleep(0.02)
                continue
            if early or last >= point:
                break
        time.sleep(rng.uniform(0.0, 0.1 if early else 0.03))
        seen.append(last)
        exp.stop(signal.SIGKILL)
    print(f"progress before each kill (of {total}):", seen)
    return seen


def test_kill_9_at_random_moments_file_source(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail = tmp_path / "trail"
    gen = Generator(seed=21)
    gen.write(trail, 720, 400, extras=False)
    truth = truth_of(gen, tmp_path)
    cfg = write_config(tmp_path, trail).read_text().replace("commit_interval: 0.2s", "commit_interval: 0.05s")
    (tmp_path / "config.yaml").write_text(cfg)
    exp = Exporter(tmp_path / "config.yaml", tmp_path)
    exporter_proc.append(exp)
    progress = kill_9_along_the_work(exp, objects_ok, len(truth["files"]), 12, random.Random(5))
    # the kills landed in the middle of the work, not only before or after it
    assert any(0 < p < len(truth["files"]) for p in progress), progress
    exp.start(wait_ready=False)
    wait_for(lambda: matches(exp, truth), 120, what="exact counts after 12 kill -9")
    m = exp.metrics()
    assert series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")[("ok",)] == len(truth["files"])
    assert series(m, "cloudtrail_sqs_exporter_records_total", "outcome")[("sqs",)] == truth["records"]["sqs"]


def test_sigterm_exits_0_and_keeps_everything(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail = tmp_path / "trail"
    gen = Generator(seed=22)
    gen.write(trail, 120, 400, extras=False)
    truth = truth_of(gen, tmp_path)
    exp = Exporter(write_config(tmp_path, trail), tmp_path)
    exporter_proc.append(exp)
    exp.start(wait_ready=False)
    wait_for(lambda: objects_ok(exp) > 0, 60, what="work under way")  # stop it while it works
    t0 = time.monotonic()
    assert exp.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10
    exp.start(wait_ready=False)
    wait_for(lambda: matches(exp, truth), 60, what="exact counts after SIGTERM mid-work")
