"""The command line tells the truth: one-line reasons instead of tracebacks, exit codes that say what
happened, a closing replay summary on stderr, a daemon that says what it reads, help with defaults.

End to end through `python -m exporter …` children, against moto_server where S3 is involved."""

from __future__ import annotations

import argparse
import gzip
import json
import logging
import os
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from awsfixtures import MotoServer, aws_env, write_config
from util import ROOT, Exporter, free_port, generate, parse_metrics, series, wait_for

from exporter import cli, logfmt, masking
from exporter.sources.activity import Activity

AWS_SCRUB = ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_ENDPOINT_URL")


def run_cli(
    *args: str, env: dict[str, str] | None = None, extra: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m exporter ARGS` with `env` (default: this process's) minus OTEL_* / CTSQS_*, plus `extra`."""
    base = {k: v for k, v in (os.environ if env is None else env).items() if not k.startswith(("OTEL_", "CTSQS_"))}
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        env={**base, "PYTHONPATH": str(ROOT), **(extra or {})},
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def short_failure(r: subprocess.CompletedProcess[str]) -> list[str]:
    """The stderr lines of a command that failed as an expected failure should: few, no traceback."""
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0, r.stderr
    assert "Traceback" not in r.stderr, r.stderr
    assert 1 <= len(lines) <= 2, r.stderr
    return lines


def sqs_record(i: int, queue: str = "orders") -> dict[str, Any]:
    return {
        "eventVersion": "1.09",
        "eventID": f"00000000-0000-0000-0000-{i:012d}",
        "eventSource": "sqs.amazonaws.com",
        "eventName": "SendMessage",
        "eventCategory": "Data",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333",
        "eventTime": "2026-11-01T00:00:00Z",
        "userIdentity": {"type": "IAMUser", "arn": "arn:aws:iam::111122223333:user/app"},
        "requestParameters": {"queueUrl": f"https://sqs.eu-west-1.amazonaws.com/111122223333/{queue}"},
    }


# -- replay: exit codes and messages ---------------------------------------------------------------------------


def test_replay_of_a_missing_path_exits_3_in_one_line(tmp_path: Path) -> None:
    missing = tmp_path / "nonexistent"
    r = run_cli("replay", str(missing))
    assert r.returncode == 3
    lines = short_failure(r)
    assert str(missing) in lines[0] and "no such file or directory" in lines[0]
    assert r.stdout == ""  # nothing read: nothing to print


def test_one_corrupt_file_of_three_exits_1_and_is_named(tmp_path: Path) -> None:
    d = tmp_path / "trail"
    d.mkdir()
    (d / "a.json").write_text(json.dumps({"Records": [sqs_record(1), sqs_record(2)]}))
    (d / "b.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [sqs_record(3)]}).encode()))
    (d / "c.json.gz").write_bytes(gzip.compress(json.dumps({"Records": [sqs_record(4)] * 50}).encode())[:-30])
    r = run_cli("replay", str(d))
    assert r.returncode == 1, r.stderr
    assert "Traceback" not in r.stderr
    assert f"failed: {d / 'c.json.gz'}" in r.stderr
    assert "3 inputs: 2 read, 0 skipped, 1 failed" in r.stderr
    m = parse_metrics(r.stdout)  # what was read is still printed, and stdout is nothing but the metrics
    assert sum(series(m, "cloudtrail_sqs_api_calls_total", "queue").values()) == 3


def test_every_input_failing_exits_3(tmp_path: Path) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text('{"Records": [')
    r = run_cli("replay", str(bad))
    assert r.returncode == 3
    assert str(bad) in short_failure(r)[0]


def test_a_successful_replay_reports_on_stderr_and_keeps_stdout_pure(tmp_path: Path) -> None:
    truth = generate(tmp_path / "trail", files=6, records=120, seed=5)
    (tmp_path / "trail" / "NOTES.txt").write_text("not a delivery\n")
    r = run_cli("replay", str(tmp_path / "trail"))
    assert r.returncode == 0, r.stderr
    sqs = truth["records"]["sqs"]
    assert f"{sqs} SQS calls counted" in r.stderr
    assert "top queues by calls" in r.stderr
    assert "left out 1 files: 1 not JSON or gzip" in r.stderr
    assert r.stdout.startswith("# HELP") and "replay:" not in r.stdout
    assert sum(series(parse_metrics(r.stdout), "cloudtrail_sqs_api_calls_total", "queue").values()) == sqs


def test_a_directory_without_deliveries_exits_3(tmp_path: Path) -> None:
    (tmp_path / "README").write_text("notes\n")
    r = run_cli("replay", str(tmp_path))
    assert r.returncode == 3
    assert "no input found (1 files left out: 1 not JSON or gzip)" in short_failure(r)[0]


# -- replay of s3:// URLs that cannot be read ---------------------------------------------------------------------


def _no_aws_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in aws_env().items() if k not in AWS_SCRUB}
    # no shared files, no instance metadata: the credential chain finds nothing, and nothing leaves the host
    env.update(AWS_CONFIG_FILE=os.devnull, AWS_SHARED_CREDENTIALS_FILE=os.devnull, AWS_EC2_METADATA_DISABLED="true")
    return {**env, **extra}


def test_replay_s3_against_a_closed_port(tmp_path: Path) -> None:
    port = free_port()  # nothing listens there
    r = run_cli("replay", "s3://trail/AWSLogs/", env=aws_env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}"))
    assert r.returncode == 3
    line = short_failure(r)[0]
    assert "s3://trail/AWSLogs/" in line and f"cannot connect to 127.0.0.1:{port}" in line
    assert "AWS_ENDPOINT_URL" in line


def test_replay_s3_without_credentials(moto: MotoServer) -> None:
    r = run_cli("replay", "s3://trail/AWSLogs/", env=_no_aws_env(AWS_ENDPOINT_URL=moto.url))
    assert r.returncode == 3
    line = short_failure(r)[0]
    assert "no AWS credentials found" in line and "AWS_ACCESS_KEY_ID" in line


def test_replay_s3_on_a_missing_bucket(moto: MotoServer) -> None:
    r = run_cli("replay", "s3://no-such-bucket/AWSLogs/", env=aws_env(AWS_ENDPOINT_URL=moto.url))
    assert r.returncode == 3
    line = short_failure(r)[0]
    assert "bucket no-such-bucket does not exist" in line


def test_replay_s3_states_the_sqs_call_count(moto: MotoServer, tmp_path: Path) -> None:
    s3 = moto.client("s3")
    s3.create_bucket(Bucket="trail")
    body = json.dumps({"Records": [sqs_record(i) for i in range(7)]}).encode()
    s3.put_object(Bucket="trail", Key="AWSLogs/a.json.gz", Body=gzip.compress(body))
    r = run_cli("replay", "s3://trail/AWSLogs/", env=aws_env(AWS_ENDPOINT_URL=moto.url))
    assert r.returncode == 0, r.stderr
    assert "1 inputs: 1 read" in r.stderr and "7 SQS calls counted" in r.stderr


def test_explain_names_access_denied_and_rejected_keys() -> None:
    """botocore's own error objects, as S3 returns them (moto does not enforce IAM policies)."""
    from botocore.exceptions import ClientError

    from exporter.explain import explain

    def err(code: str, status: int) -> ClientError:
        return ClientError(
            {"Error": {"Code": code, "Message": "x"}, "ResponseMetadata": {"HTTPStatusCode": status}}, "ListObjectsV2"
        )

    assert explain(err("AccessDenied", 403), "s3://b/p") == (
        "access denied (ListObjectsV2): the credentials in use need s3:ListBucket on b (and kms:Decrypt if SSE-KMS)"
    )
    assert "credentials were rejected (InvalidAccessKeyId)" in explain(err("InvalidAccessKeyId", 403))
    assert explain(PermissionError(13, "Permission denied")) == "permission denied: check that this user may read it"


# -- config and run ---------------------------------------------------------------------------------------------


def test_listen_as_a_number_says_address_port(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("listen: 9108\n")
    r = run_cli("check-config", str(cfg))
    assert r.returncode == 2
    assert "listen: expected address:port" in r.stderr and "valid string" not in r.stderr
    assert f"(from {cfg})" in r.stderr
    r = run_cli("check-config", str(cfg), extra={"CTSQS_LISTEN": "nope"})
    assert "(from environment variable CTSQS_LISTEN)" in r.stderr and f"in {cfg}" not in r.stderr


def test_run_on_a_busy_port_names_the_address(tmp_path: Path) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        address = f"127.0.0.1:{busy.getsockname()[1]}"
        r = run_cli("run", f"--web.listen-address={address}", "--state-path", str(tmp_path / "s.db"), timeout=60)
    assert r.returncode == 1
    line = short_failure(r)[0]
    assert f"cannot listen on {address}: address already in use" in line


def test_run_logs_json_lines_with_what_each_poll_did(tmp_path: Path, exporter_proc: list[Exporter]) -> None:
    truth = generate(tmp_path / "trail", files=5, records=80, seed=3)
    cfg = write_config(tmp_path / "c.yaml", [{"type": "file", "path": str(tmp_path / "trail"), "poll_interval": "1s"}])
    exp = Exporter(cfg, tmp_path, wrap=lambda cmd: [*cmd, "--log-format", "json"])
    exporter_proc.append(exp)
    exp.start()

    def activity() -> dict | None:
        for line in exp.log.read_text().splitlines():
            doc = json.loads(line)  # every line is one JSON object
            if doc.get("logger") == "exporter.sources" and "sqs_calls" in doc:
                return doc
        return None

    doc = wait_for(activity, 30, what="the poll cycle's info line")
    assert doc["level"] == "info" and doc["source"] == "file" and doc["time"].endswith("Z")
    assert doc["sqs_calls"] == truth["records"]["sqs"]
    assert doc["objects"] == truth["objects"]["ok"] + truth["objects"]["skipped"]
    assert doc["lag_seconds"] > 0
    exp.stop()
    for line in exp.log.read_text().splitlines():
        assert set(json.loads(line)) >= {"time", "level", "logger", "message"}


def test_json_log_lines_stay_masked(capsys: pytest.CaptureFixture[str]) -> None:
    hooks = (sys.excepthook, threading.excepthook)
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    secret = 'hun"ter2\\x'
    try:
        logfmt.setup("info", {secret}, "json")
        logging.getLogger("exporter.t").info("token %s", secret, extra={"header": f"Bearer {secret}"})
    finally:
        root.handlers[:], _ = saved
        root.setLevel(saved[1])
        sys.excepthook, threading.excepthook = hooks
    doc = json.loads(capsys.readouterr().err.strip().splitlines()[-1])
    assert doc["message"] == f"token {masking.MASK}" and doc["header"] == f"Bearer {masking.MASK}"
    assert "hun" not in json.dumps(doc)


# -- help -------------------------------------------------------------------------------------------------------


def test_every_option_has_help_and_shows_its_default() -> None:
    ap = cli._parser()
    subs = next(a for a in ap._actions if isinstance(a, argparse._SubParsersAction))
    for name, parser in subs.choices.items():
        for action in parser._actions:
            assert action.help, f"{name} {action.option_strings or action.dest} has no help text"
        text = " ".join(parser.format_help().split())
        if name in ("run", "replay"):
            assert "--log-format {text,json}" in text and "(default: text)" in text
    replay_help = " ".join(subs.choices["replay"].format_help().split())
    assert "(default: prometheus)" in replay_help and "(default: error)" in replay_help
    assert "default: role" in replay_help and "s3://bucket/prefix" in replay_help
    run_help = " ".join(subs.choices["run"].format_help().split())
    assert "default: info" in run_help and "(default: 20.0)" in run_help
    assert "the YAML config file to check" in subs.choices["check-config"].format_help()


def test_help_through_the_command_line() -> None:
    r = run_cli("replay", "--help")
    assert r.returncode == 0 and "(default: prometheus)" in r.stdout


# -- the daemon's activity line, as a unit ------------------------------------------------------------------------


class FakeIntake:
    def __init__(self) -> None:
        self.checkpoints = 0

    def register(self, source: str, extra: Any = ()) -> None: ...
    def process(self, data: bytes, source: str, name: str = "", progress: Any = (), after: Any = None) -> Any:
        from exporter.decode.delivery import ObjectResult

        return ObjectResult("ok", sqs=len(data), other=1)

    def count_object(self, source: str, outcome: str, progress: Any = (), after: Any = None) -> None: ...
    def checkpoint(self, force: bool = False) -> None:
        self.checkpoints += 1


def test_activity_lines_at_most_once_a_minute_with_the_cycles_added_up(caplog: pytest.LogCaptureFixture) -> None:
    now = [0.0]
    act = Activity(FakeIntake(), "s3", clock=lambda: now[0])  # type: ignore[arg-type]
    act.lag = lambda: (10.0, 300.0)
    caplog.set_level(logging.INFO, logger="exporter.sources")

    def cycle(objects: int, at: float) -> None:
        now[0] = at
        for _ in range(objects):
            act.process(b"xyz", "s3", "k")
        act.checkpoint()

    cycle(0, 1)  # idle: nothing to say
    cycle(2, 2)  # first work: said at once
    cycle(1, 30)  # within the minute: held
    cycle(1, 50)
    cycle(0, 70)  # the minute is over: the two held cycles in one line
    cycle(0, 200)  # idle again: silent
    lines = [r for r in caplog.records if r.name == "exporter.sources"]
    assert [r.getMessage() for r in lines] == [
        "source s3: 2 objects (2 ok), 8 records, 6 SQS calls, lag 30s",
        "source s3: 2 objects (2 ok), 8 records, 6 SQS calls in 3 polls over 68s",
    ]
    assert lines[1].sqs_calls == 6 and lines[1].polls == 3  # type: ignore[attr-defined]
    assert act.inner.checkpoints == 6  # type: ignore[attr-defined]


def test_the_traceback_is_shown_at_debug_only() -> None:
    env = aws_env(AWS_ENDPOINT_URL=f"http://127.0.0.1:{free_port()}")
    r = run_cli("replay", "s3://trail/AWSLogs/", "--log-level", "debug", env=env)
    assert r.returncode == 3 and "Traceback" in r.stderr and "EndpointConnectionError" in r.stderr


def test_the_progress_covers_listing_and_reading_and_stays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from exporter import config
    from exporter.app import replay_report

    generate(tmp_path / "trail", files=3, records=50, seed=4)
    _, report = replay_report([str(tmp_path / "trail")], config.load(None), progress=True)
    err = capsys.readouterr().err
    assert f"listed {report.inputs:,} inputs" in err  # the listing's line, kept
    assert f"{report.inputs}/{report.inputs}" in err.splitlines()[-1]  # the reading bar, complete, last
