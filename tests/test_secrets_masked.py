"""Secrets never printed: a secret in every field that can hold one, fed through the file, the environment
and flags, must not appear in `check-config`'s output, in `run`'s log at debug level, or in any error."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from util import Exporter, free_port, generate, wait_for

from exporter import masking

# every value here is a secret: none may be printed anywhere
SECRETS = {
    "redis": "p@ss/w?rd#1",
    "redis_query": "redisqp9876",
    "otlp_user_password": "otlpsecret1",
    "otlp_token": "tok12345xyz",
    "endpoint_url": "s3secret123",
    "endpoint_sig": "sigvalue777",
    "honeycomb": "hcteam12345",
    "uptrace": "dsnsecret99",
    "xauth": "xauth12345",
    "cookie": "cookie12345",
    "authorization": "Bearer authz12345",
    "hash_key": "hashkey12345",
    "external_id": "extid12345",
    "env_header": "envheader123",
    "aws_secret": "awssecretkey123",
}


def secret_config(tmp_path: Path, closed: int, protocol: str = "http/protobuf") -> dict[str, Any]:
    s = SECRETS
    return {
        "listen": "127.0.0.1:0",
        "log_level": "debug",
        "state": {
            "path": str(tmp_path / "state" / "s.db"),
            "redis_url": f"redis://default:{s['redis']}@127.0.0.1:{closed}/0?password={s['redis_query']}",
        },
        "logs": {
            "enabled": True,
            "protocol": protocol,
            "endpoint": f"http://otlpuser:{s['otlp_user_password']}@127.0.0.1:{closed}/v1/logs?token={s['otlp_token']}",
            "headers": {
                "x-honeycomb-team": s["honeycomb"],
                "uptrace-dsn": f"https://{s['uptrace']}@uptrace.dev/1",
                "X-Auth": s["xauth"],
                "Cookie": f"session={s['cookie']}",
                "Authorization": s["authorization"],
            },
            "retry_max_elapsed": "1s",
            "redact": {"hash_key": s["hash_key"]},
        },
        "sources": [
            {"type": "file", "name": "trail", "path": str(tmp_path / "trail"), "poll_interval": "200ms"},
            {
                "type": "s3",
                "name": "bucket",
                "bucket": "trail",
                "region": "us-east-1",
                "endpoint_url": f"http://AKIAUSER:{s['endpoint_url']}@127.0.0.1:{closed}/?X-Amz-Signature={s['endpoint_sig']}",
                "external_id": s["external_id"],
                "max_attempts": 1,
                "connect_timeout": "200ms",
                "poll_interval": "500ms",
            },
        ],
    }


def secret_env() -> dict[str, str]:
    return {
        "OTEL_EXPORTER_OTLP_HEADERS": f"x-env-auth={SECRETS['env_header']}",
        "AWS_ACCESS_KEY_ID": "AKIAEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": SECRETS["aws_secret"],
    }


def leaks(text: str) -> list[str]:
    """The secrets (or their longer parts) found in `text`."""
    found = []
    for name, value in SECRETS.items():
        for part in {value, *value.split()}:
            if len(part) >= 6 and part in text:
                found.append(f"{name}: {part}")
    return found


def cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "exporter", *args],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, **(env or {})},
        cwd=cwd,
    )


def test_check_config_masks_a_secret_in_every_field(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(secret_config(tmp_path, free_port())))
    r = cli("check-config", str(cfg), env=secret_env())
    assert r.returncode == 0, r.stderr
    assert leaks(r.stdout + r.stderr) == []
    doc = yaml.safe_load(r.stdout)
    assert set(doc["logs"]["headers"].values()) == {"****"}
    assert doc["logs"]["endpoint"].startswith("http://otlpuser:****@127.0.0.1:")
    assert doc["logs"]["endpoint"].endswith("/v1/logs?token=****")
    assert doc["state"]["redis_url"].startswith("redis://default:****@127.0.0.1:")
    assert doc["sources"][1]["endpoint_url"].startswith("http://AKIAUSER:****@127.0.0.1:")
    assert doc["logs"]["redact"]["hash_key"] == doc["sources"][1]["external_id"] == "****"


def test_check_config_masks_secrets_given_by_environment(tmp_path: Path) -> None:
    cfg = tmp_path / "c.yaml"
    cfg.write_text("sources:\n  - type: file\n    path: /data\n")
    env = {
        "CTSQS_STATE__REDIS_URL": f"redis://:{SECRETS['redis']}@redis:6379/0",
        "CTSQS_LOGS__HEADERS": f'{{"authorization": "{SECRETS["authorization"]}"}}',
        "CTSQS_LOGS__HEADERS__X_AUTH": SECRETS["xauth"],
        "CTSQS_LOGS__REDACT__HASH_KEY": SECRETS["hash_key"],
    }
    r = cli("check-config", str(cfg), env=env)
    assert r.returncode == 0, r.stderr
    assert leaks(r.stdout + r.stderr) == []
    doc = yaml.safe_load(r.stdout)
    assert doc["logs"]["headers"] == {"authorization": "****", "x_auth": "****"}
    assert doc["state"]["redis_url"] == "redis://:****@redis:6379/0"


@pytest.mark.parametrize("protocol", ["http/protobuf", "grpc"])
def test_run_at_debug_logs_no_secret(tmp_path: Path, exporter_proc: list[Exporter], protocol: str) -> None:
    """Collector, Redis and S3 endpoint all unreachable: every failure is logged, with no secret in it."""
    generate(tmp_path / "trail", files=3)
    closed = free_port()
    doc = secret_config(tmp_path, closed, protocol)
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    exp = Exporter(cfg, tmp_path, env=secret_env())
    exporter_proc.append(exp)
    exp.start(wait_ready=False)
    # wait for the failures to be logged (however slow the machine), then a few more polls and retries
    wait_for(lambda: "export of" in exp.log.read_text() and "source bucket" in exp.log.read_text(), 60)
    time.sleep(1)
    assert exp.stop() == 0
    log = exp.log.read_text()
    assert " DEBUG " in log and "export failed" in log, log[-3000:]
    assert f"OTel logs: {protocol} to http://otlpuser:****@127.0.0.1:{closed}" in log, log[-3000:]
    assert leaks(log) == [], log[-3000:]


@pytest.mark.parametrize(
    ("text", "env"),
    [
        # a wrong type beside secrets: the message names the key, and echoes no value
        (
            "logs:\n  headers:\n    authorization: {SECRET}\n    x-bad: [1]\n  timeout: https://u:{SECRET}@x\n",
            {},
        ),
        # YAML that does not parse, on the line holding the secret
        ("logs:\n  headers: {{authorization: {SECRET}\n", {}),
        # environment JSON that does not parse
        ("{{}}\n", {"CTSQS_LOGS__HEADERS": '{{"authorization": "{SECRET}"'}),
        # a URL in the wrong place
        ("listen: https://u:{SECRET}@host:99999\n", {}),
    ],
)
def test_config_errors_echo_no_secret(tmp_path: Path, text: str, env: dict[str, str]) -> None:
    secret = SECRETS["authorization"].split()[1]
    cfg = tmp_path / "bad.yaml"
    cfg.write_text(text.format(SECRET=secret))
    r = cli("check-config", str(cfg), env={k: v.format(SECRET=secret) for k, v in env.items()})
    assert r.returncode == 2, r.stdout
    assert r.stderr.strip() and "Traceback" not in r.stderr
    assert secret not in r.stderr + r.stdout, r.stderr


def test_masking_formatter_masks_message_args_and_traceback() -> None:
    secrets = {"s3cr3tvalue", "tok"}  # too short to search for in text: left alone
    fmt = masking.MaskingFormatter(logging.Formatter("%(message)s"), secrets)
    try:
        raise ValueError("bad token s3cr3tvalue")
    except ValueError:
        import sys as _sys

        rec = logging.LogRecord(
            "x", logging.ERROR, __file__, 1, "url %s tok", ("http://u:s3cr3tvalue@h",), _sys.exc_info()
        )
    out = fmt.format(rec)
    assert "s3cr3tvalue" not in out and "url http://u:****@h tok" in out and "ValueError: bad token ****" in out


@pytest.mark.parametrize(
    ("url", "shown"),
    [
        ("redis://user:hunter2@redis:6379/0", "redis://user:****@redis:6379/0"),
        ("redis://:p@ss@redis:6379", "redis://:****@redis:6379"),
        ("https://token123@host/x", "https://****@host/x"),
        (
            "https://h/v1/logs?api_key=k1&x=1&X-Amz-Signature=s#f",
            "https://h/v1/logs?api_key=****&x=1&X-Amz-Signature=****#f",
        ),
        ("redis://h:6379/0?password=pw&db=1", "redis://h:6379/0?password=****&db=1"),
        ("sqs.us-east-1.amazonaws.com/1/q", "sqs.us-east-1.amazonaws.com/1/q"),
    ],
)
def test_mask_url(url: str, shown: str) -> None:
    assert masking.mask_url(url) == shown
