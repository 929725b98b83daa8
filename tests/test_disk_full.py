"""The state on a small tmpfs that fills up mid-run: checkpoints fail, are counted and retried, /readyz
turns 503 after `unready_after`; once space is freed counting resumes and ends exact, without a restart."""

from __future__ import annotations

import errno
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from awsfixtures import counted, wait_metric, write_batch
from util import Exporter, assert_matches_truth, http_get, wait_for

from exporter.generator import Generator

OBJECTS = "cloudtrail_sqs_exporter_objects_total"
CKPT_ERRORS = "cloudtrail_sqs_exporter_checkpoint_errors_total"
UNREADY_AFTER = 2.0


@pytest.fixture
def small_tmpfs(tmp_path: Path) -> Iterator[Path]:
    """A 4 MiB tmpfs (we run as root in CI); unmounted at teardown."""
    mnt = tmp_path / "state"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(directory: Path) -> Path:
    """Write a filler file until the filesystem has no byte left."""
    filler = directory / "filler"
    fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        for chunk in (1 << 16, 1 << 12, 1):
            block = b"\0" * chunk
            while True:
                try:
                    os.write(fd, block)
                except OSError as exc:
                    if exc.errno != errno.ENOSPC:
                        raise
                    break
    finally:
        os.close(fd)
    return filler


def move_in(staging: Path, trail: Path) -> list[Path]:
    """The staged trail files, moved into the watched tree one rename each (never half-written)."""
    out = []
    for f in sorted(staging.rglob("*.json.gz")):
        dest = trail / f.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        out.append(dest)
        f.rename(dest)
    return out


@pytest.mark.slow
def test_disk_full_mid_run_is_retried_reported_and_recovered(
    small_tmpfs: Path, tmp_path: Path, exporter_proc: list
) -> None:
    trail, staging = tmp_path / "trail", tmp_path / "staging"
    gen = Generator(seed=31)
    write_batch(gen, trail, 10, extras=False)
    truth = write_batch(gen, staging, 40, records=200, extras=False)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "unready_after": f"{UNREADY_AFTER}s",
                "state": {"path": str(small_tmpfs / "exporter.db"), "commit_interval": "50ms"},
                "sources": [
                    {"type": "file", "name": "files", "path": str(trail), "poll_interval": "200ms", "settle": 0}
                ],
            }
        )
    )
    exp = Exporter(cfg, tmp_path)
    exporter_proc.append(exp)
    exp.start()
    assert exp.proc is not None
    pid = exp.proc.pid
    wait_metric(exp, OBJECTS, 10, source="files", outcome="ok")
    assert counted(exp.metrics(), CKPT_ERRORS) == 0

    filler = fill(small_tmpfs)
    # new deliveries, a few at a time, until a checkpoint cannot be written
    pending = sorted(staging.rglob("*.json.gz"))
    first_error = None
    for f in pending:
        dest = trail / f.relative_to(staging)
        dest.parent.mkdir(parents=True, exist_ok=True)
        f.rename(dest)
        time.sleep(0.3)
        if counted(exp.metrics(), CKPT_ERRORS) > 0:
            first_error = time.monotonic()
            break
    assert first_error is not None, "no checkpoint failed with the state filesystem full"
    move_in(staging, trail)  # the rest arrives while the disk is full

    wait_for(lambda: http_get(exp.url + "/readyz")[0] == 503, timeout=UNREADY_AFTER + 1.5, what="/readyz 503")
    code, body, _ = http_get(exp.url + "/readyz")
    assert code == 503 and "database or disk is full" in body, body
    m1 = exp.metrics()
    held = counted(m1, OBJECTS, source="files", outcome="ok")
    time.sleep(2.0)
    m2 = exp.metrics()
    assert counted(m2, CKPT_ERRORS) > counted(m1, CKPT_ERRORS)  # retried, each attempt counted
    assert counted(m2, OBJECTS, source="files", outcome="ok") == held < 50  # no new work on unsaved state
    assert counted(m2, OBJECTS, outcome="failed") == 0

    filler.unlink()
    m = wait_metric(exp, OBJECTS, 50, timeout=60, source="files", outcome="ok")
    assert exp.proc is not None and exp.proc.pid == pid and exp.proc.poll() is None  # no restart
    assert_matches_truth(m, truth)
    wait_for(lambda: http_get(exp.url + "/readyz")[0] == 200, timeout=10, what="/readyz 200 again")
    errors = counted(exp.metrics(), CKPT_ERRORS)
    log = exp.log.read_text()
    assert log.count("checkpoint failed:") == 1, log[-3000:]  # once per state change, not per retry
    assert log.count("checkpoint recovered after") == 1, log[-3000:]

    # what was saved after the recovery is exact too: a restart shows the same counts, no file read twice
    assert exp.stop() == 0
    exp.start()
    m = exp.metrics()
    assert counted(m, OBJECTS, source="files", outcome="ok") == 50
    assert counted(m, CKPT_ERRORS) == errors
    assert_matches_truth(m, truth)
