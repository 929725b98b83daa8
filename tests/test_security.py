"""Runtime hardening: a read-only root filesystem with only the state directory writable; no secrets,
receipt handles or message bodies in the logs."""

from __future__ import annotations

import os
import shlex
import subprocess
from pathlib import Path

import pytest
from test_run import matches, truth_of
from util import Exporter, wait_for

from exporter.generator import Generator

pytestmark = pytest.mark.slow


def can_unshare() -> bool:
    """Root with mount namespaces and setpriv (CI runs as root here)."""
    r = subprocess.run(
        ["unshare", "-m", "sh", "-c", "mount -o remount,bind,ro / && setpriv --reuid=65534 true"], capture_output=True
    )
    return r.returncode == 0


def config(tmp: Path, trail: Path, state: Path, level: str = "info") -> Path:
    cfg = tmp / "config.yaml"
    cfg.write_text(
        f"log_level: {level}\nstate:\n  path: {state / 'exporter.db'}\n  commit_interval: 0.2s\n"
        f"sources:\n  - type: file\n    path: {trail}\n    poll_interval: 0.5s\n    settle: 0s\n"
    )
    return cfg


@pytest.mark.skipif(not can_unshare(), reason="needs mount namespaces (unshare -m) to make / read-only")
def test_non_root_on_a_read_only_root_filesystem(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail, state = tmp_path / "trail", tmp_path / "state"
    state.mkdir()
    gen = Generator(seed=31)
    gen.write(trail, 8, 60)
    truth = truth_of(gen, tmp_path)

    # and as an unprivileged user (uid 65534) that owns only the state directory; it keeps the one
    # capability to *read* everywhere, since the test's Python lives under root's home
    os.chown(state, 65534, 65534)
    nobody = "setpriv --reuid=65534 --regid=65534 --clear-groups --inh-caps=+dac_read_search "
    nobody += "--ambient-caps=+dac_read_search "

    def read_only(cmd: list[str]) -> list[str]:
        s = shlex.quote(str(state))
        inner = f"mount --bind {s} {s} && mount -o remount,bind,ro / && exec {nobody}{shlex.join(cmd)}"
        return ["unshare", "-m", "sh", "-c", inner]

    exp = Exporter(config(tmp_path, trail, state), tmp_path, wrap=read_only)
    exporter_proc.append(exp)
    exp.start()
    wait_for(lambda: matches(exp, truth), 30, what="counts under a read-only root")
    log = exp.log.read_text()
    assert "Read-only file system" not in log and "Traceback" not in log
    assert (state / "exporter.db").stat().st_uid == 65534  # written by the unprivileged user
    # it did write there, and a restart under the same conditions resumes from it
    before = exp.metrics()
    exp.stop()
    exp.start()
    assert {k: v for k, v in exp.metrics().items() if k[0].startswith("cloudtrail_sqs_api")} == {
        k: v for k, v in before.items() if k[0].startswith("cloudtrail_sqs_api")
    }


def test_no_secrets_in_logs(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    trail, state = tmp_path / "trail", tmp_path / "state"
    gen = Generator(seed=32)
    gen.write(trail, 6, 60)
    (trail / "broken.json").write_text('{"Records": [{"requestParameters": {"receiptHandle": "AQEBsecret"')
    truth = truth_of(gen, tmp_path)
    secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYSECRETKEY"
    cfg = config(tmp_path, trail, state, level="debug")
    exp = Exporter(cfg, tmp_path, env={"AWS_SECRET_ACCESS_KEY": secret, "AWS_ACCESS_KEY_ID": "AKIDMARKER"})
    exporter_proc.append(exp)
    exp.start()
    wait_for(lambda: matches(exp, truth), 30, what="counted")
    exp.stop()
    log = exp.log.read_text()
    assert "broken.json" in log  # the bad file is reported…
    for marker in (secret, "AKIDMARKER", "AQEB", "HIDDEN_DUE_TO_SECURITY_REASONS", "ASIA"):
        assert marker not in log  # …but never credentials, receipt handles or message bodies
