"""Freshness of the `eventbridge-sqs` path: from an event landing in the queue to its count on /metrics.

    python -m bench.freshness [--messages 200] [--poll 20ms] [--wait-time 20s]

Starts `moto_server` and `cloudtrail-sqs-exporter run` with one `eventbridge-sqs` source long-polling
(`wait_time`, 20 s by default, as deployed). Then, one message at a time: an EventBridge "AWS API Call
via CloudTrail" event holding a generated SQS record is sent to the queue; the clock starts when
SendMessage returns (the message is in the queue) and stops at the first /metrics scrape, polled every
`--poll`, whose `cloudtrail_sqs_api_calls_total` includes it. Prints p50, p90, p99 and max. The scrape
interval bounds the resolution: a figure is at most one poll late.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from exporter.config import parse_duration
from exporter.generator import Generator

from . import procs

CALLS = "cloudtrail_sqs_api_calls_total"
# moto needs credentials of some kind; these are its documented dummies, never real ones
CREDS = {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing", "AWS_DEFAULT_REGION": "us-east-1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def env() -> dict[str, str]:
    e = {k: v for k, v in procs.clean_env().items() if not k.startswith("AWS_")}
    return {**e, **CREDS}


def get(url: str, timeout: float = 5.0) -> tuple[int, str]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as r:
            return r.status, r.read().decode()
    except OSError:
        return 0, ""


def wait(check: Any, timeout: float, what: str) -> None:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if check():
            return
        time.sleep(0.05)
    raise TimeoutError(f"timed out waiting for {what}")


def eventbridge_event(record: dict[str, Any]) -> dict[str, Any]:
    return {
        "version": "0",
        "id": str(uuid.uuid4()),
        "detail-type": "AWS API Call via CloudTrail",
        "source": "aws.sqs",
        "account": record["recipientAccountId"],
        "time": record["eventTime"],
        "region": record["awsRegion"],
        "resources": [],
        "detail": record,
    }


def stop(p: subprocess.Popen[bytes], grace: float = 15.0) -> None:
    if p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(grace)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def measure(messages: int, poll: float, wait_time: float, work: Path) -> list[float]:
    import boto3

    moto_port, port = free_port(), free_port()
    moto_url = f"http://127.0.0.1:{moto_port}"
    exe = shutil.which("moto_server") or str(Path(sys.executable).with_name("moto_server"))
    moto_cmd = [exe] if Path(exe).exists() else [sys.executable, "-m", "moto.server"]
    with (work / "moto.log").open("wb") as moto_log, (work / "run.err").open("wb") as run_err:
        moto = subprocess.Popen(
            [*moto_cmd, "-H", "127.0.0.1", "-p", str(moto_port)], stdout=moto_log, stderr=moto_log, env=env()
        )
        exporter: subprocess.Popen[bytes] | None = None
        try:
            wait(lambda: get(moto_url + "/moto-api/data.json")[0] == 200, 30, "moto_server")
            sqs = boto3.client("sqs", endpoint_url=moto_url, region_name="us-east-1", **_keys())
            url = sqs.create_queue(QueueName="cloudtrail-events")["QueueUrl"]
            cfg = work / "config.yaml"
            source = {
                "type": "eventbridge-sqs",
                "queue_url": url,
                "region": "us-east-1",
                "endpoint_url": moto_url,
                "wait_time": f"{wait_time}s",
            }
            cfg.write_text(
                json.dumps(
                    {
                        "listen": f"127.0.0.1:{port}",
                        "log_level": "warning",
                        "state": {"path": str(work / "state.db")},
                        "sources": [source],
                    }
                )
            )
            exporter = subprocess.Popen(
                [*procs.exporter_cmd(), "run", "--config", str(cfg)],
                stdout=subprocess.DEVNULL,
                stderr=run_err,
                env=env(),
            )
            metrics = f"http://127.0.0.1:{port}/metrics"
            gen = Generator(seed=5)
            rng = random.Random(5)

            def send() -> None:
                rec = gen.sqs_record(gen.accounts[0], gen.regions[0], datetime.now(UTC))
                rec["eventID"] = str(uuid.uuid4())
                sqs.send_message(QueueUrl=url, MessageBody=json.dumps(eventbridge_event(rec)))

            # a first message, not measured: once it is counted the source is up and long-polling again
            wait(lambda: get(metrics)[0] == 200, 60, "the exporter to serve /metrics")
            send()
            wait(lambda: procs.value(get(metrics)[1], CALLS) >= 1, 60, "the first message to be counted")
            out: list[float] = []
            for i in range(1, messages + 1):
                send()
                landed = time.monotonic()
                deadline = landed + wait_time + 30
                while True:
                    if exporter.poll() is not None:
                        raise RuntimeError(f"the exporter exited (rc={exporter.returncode}); see {work / 'run.err'}")
                    status, text = get(metrics)
                    if status == 200 and procs.value(text, CALLS) >= i + 1:
                        out.append(time.monotonic() - landed)
                        break
                    if time.monotonic() > deadline:
                        raise TimeoutError(f"message {i} not counted within {wait_time + 30:.0f}s")
                    time.sleep(poll)
                time.sleep(rng.uniform(0.0, 0.1))  # the next one lands at no fixed phase of the scrape loop
            return out
        finally:
            if exporter is not None:  # a clean stop waits for the open long poll: not worth waiting for here
                stop(exporter, grace=1.0)
            stop(moto)


def _keys() -> dict[str, str]:
    return {"aws_access_key_id": CREDS["AWS_ACCESS_KEY_ID"], "aws_secret_access_key": CREDS["AWS_SECRET_ACCESS_KEY"]}


def quantile(xs: list[float], q: float) -> float:
    s = sorted(xs)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=200)
    ap.add_argument("--poll", default="20ms", help="how often /metrics is scraped")
    ap.add_argument("--wait-time", default="20s", help="the source's long poll (wait_time)")
    args = ap.parse_args(argv)
    poll, wait_time = parse_duration(args.poll), parse_duration(args.wait_time)
    with tempfile.TemporaryDirectory(prefix="freshness-") as tmp:
        lat = measure(args.messages, poll, wait_time, Path(tmp))
    ms = [x * 1000 for x in lat]
    print(
        f"eventbridge-sqs freshness against moto_server, {len(ms)} messages one at a time,"
        f" wait_time {args.wait_time}, /metrics every {args.poll}:\n"
        f"  queue → /metrics  p50 {quantile(ms, 0.5):.0f} ms  p90 {quantile(ms, 0.9):.0f} ms"
        f"  p99 {quantile(ms, 0.99):.0f} ms  max {max(ms):.0f} ms  mean {statistics.fmean(ms):.0f} ms"
    )
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PYTHONUNBUFFERED", "1")
    sys.exit(main())
