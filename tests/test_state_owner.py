"""One owner per state file: a second daemon stops at start naming the file and the owner's pid; a state
file deleted or replaced while running stops the daemon; unusable state gives one line naming the path."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_run import write_config
from util import Exporter, generate, wait_for

from exporter.state import StateError, StateLost, StateStore


def run_once(cfg: Path, cwd: Path, port: int = 0) -> subprocess.CompletedProcess:
    """`run` expected to fail at start: returns its exit code and output."""
    env = {**os.environ, "CTSQS_LISTEN": f"127.0.0.1:{port}"}
    cmd = [sys.executable, "-m", "exporter", "run", "--config", str(cfg)]
    return subprocess.run(cmd, cwd=cwd, env=env, capture_output=True, text=True, timeout=60)


def test_second_daemon_on_the_same_state_file_exits_naming_file_and_pid(
    tmp_path: Path, exporter_proc: list[Exporter]
) -> None:
    generate(tmp_path / "trail", files=4)
    cfg = write_config(tmp_path, tmp_path / "trail")
    first = Exporter(cfg, tmp_path).start()
    exporter_proc.append(first)
    assert first.proc is not None
    r = run_once(cfg, tmp_path)
    assert r.returncode == 2, r.stderr
    state = tmp_path / "state" / "exporter.db"
    lines = r.stderr.strip().splitlines()
    assert lines == [f"cloudtrail-sqs-exporter: state file {state} is in use by pid {first.proc.pid}"]
    # the first one is untouched and, once it stops, the file is free again
    assert first.proc.poll() is None
    assert first.stop() == 0
    StateStore(state).close()


def test_state_file_deleted_while_running_stops_the_daemon(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    generate(tmp_path / "trail", files=4)
    cfg = write_config(tmp_path, tmp_path / "trail")
    exp = Exporter(cfg, tmp_path).start()
    exporter_proc.append(exp)
    assert exp.proc is not None
    (tmp_path / "state" / "exporter.db").unlink()
    generate(tmp_path / "trail", files=6, seed=2)  # new work, so a checkpoint is due
    wait_for(lambda: exp.proc is not None and exp.proc.poll() is not None, 20, what="exit after the state vanished")
    rc = exp.stop()
    assert rc == 1
    log = exp.log.read_text()
    assert "was deleted while running" in log and str(tmp_path / "state" / "exporter.db") in log


def test_replaced_state_file_is_detected_at_commit(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    told: list[str] = []
    store = StateStore(path, on_lost=told.append)
    store.commit([StateStore.put_op("a", 1)])
    path.rename(tmp_path / "old.db")
    other = sqlite_file(tmp_path / "new.db")
    other.rename(path)
    with pytest.raises(StateLost, match="was replaced while running"):
        store.commit([StateStore.put_op("a", 2)])
    with pytest.raises(StateLost):  # and stays stopped
        store.commit([])
    assert len(told) == 1 and str(path) in told[0]
    store.close()


def sqlite_file(path: Path) -> Path:
    import sqlite3

    sqlite3.connect(path).close()
    return path


def test_lock_is_released_on_close_and_reports_the_owner(tmp_path: Path) -> None:
    path = tmp_path / "s.db"
    a = StateStore(path)
    with pytest.raises(StateError, match=f"state file {path} is in use by pid {os.getpid()}"):
        StateStore(path)
    a.close()
    StateStore(path).close()


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes anywhere")
def test_unwritable_state_dir_one_line_naming_the_path(tmp_path: Path) -> None:
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        cfg = write_config(tmp_path, tmp_path / "trail")
        cfg.write_text(cfg.read_text().replace(str(tmp_path / "state"), str(ro / "sub")))
        r = run_once(cfg, tmp_path)
    finally:
        ro.chmod(0o700)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and str(ro / "sub") in r.stderr, r.stderr


def test_state_dir_under_a_file_one_line_naming_the_path(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    cfg = write_config(tmp_path, tmp_path / "trail")
    cfg.write_text(cfg.read_text().replace(str(tmp_path / "state"), str(tmp_path / "afile" / "sub")))
    r = run_once(cfg, tmp_path)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1 and str(tmp_path / "afile" / "sub") in r.stderr, r.stderr


def test_unwritable_state_file_in_dir_one_line(tmp_path: Path) -> None:
    """A state path that is a directory: cannot be opened as a database."""
    (tmp_path / "state" / "exporter.db").mkdir(parents=True)
    r = run_once(write_config(tmp_path, tmp_path / "trail"), tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(tmp_path / "state" / "exporter.db") in r.stderr


@pytest.mark.parametrize("corrupt", ["garbage", "bad-aggregate"])
def test_corrupt_state_file_one_line_naming_the_path(tmp_path: Path, corrupt: str) -> None:
    state = tmp_path / "state" / "exporter.db"
    state.parent.mkdir()
    if corrupt == "garbage":
        state.write_bytes(b"this is not sqlite" * 500)
    else:
        store = StateStore(state)
        store.commit([lambda db: db.execute("INSERT INTO kv (key, value) VALUES ('aggregate', x'7b7b')")])
        store.close()
    r = run_once(write_config(tmp_path, tmp_path / "trail"), tmp_path)
    assert r.returncode == 2
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert str(state) in r.stderr
