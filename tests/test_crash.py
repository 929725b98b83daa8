"""Crash safety: kill -9 the daemon at random moments while it works; the final counts are exact."""

from __future__ import annotations

import random
import signal
import time
from pathlib import Path

import pytest
from test_run import matches, truth_of, write_config
from util import Exporter, http_get, parse_metrics, series, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow


def objects_ok(exp: Exporter) -> float:
    _, body, _ = http_get(exp.url + "/metrics", timeout=2)
    return series(parse_metrics(body), "cloudtrail_sqs_exporter_objects_total", "outcome").get(("ok",), 0.0)


def test_kill_9_at_random_moments_file_source(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail = tmp_path / "trail"
    gen = Generator(seed=21)
    # enough work that kills land in the middle of it (the C scanner reads 240 of these files in ~0.5 s)
    gen.write(trail, 720, 400, extras=False)
    truth = truth_of(gen, tmp_path)
    cfg = write_config(tmp_path, trail).read_text().replace("commit_interval: 0.2s", "commit_interval: 0.05s")
    (tmp_path / "config.yaml").write_text(cfg)
    exp = Exporter(tmp_path / "config.yaml", tmp_path)
    exporter_proc.append(exp)
    rng = random.Random(5)
    progress = []
    for _ in range(12):
        exp.start(wait_ready=False)
        time.sleep(rng.uniform(0.05, 0.6))
        try:
            progress.append(objects_ok(exp))
        except OSError:
            progress.append(-1.0)
        exp.stop(signal.SIGKILL)
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
    time.sleep(0.5)
    t0 = time.monotonic()
    assert exp.stop(signal.SIGTERM) == 0
    assert time.monotonic() - t0 < 10
    exp.start(wait_ready=False)
    wait_for(lambda: matches(exp, truth), 60, what="exact counts after SIGTERM mid-work")
