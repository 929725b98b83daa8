"""Peak RSS (VmHWM of the exporter process) in the worst cases the memory budget is written for.

    python bench/memory.py             # every case, ~3 minutes; prints the README's table
    python bench/memory.py --only bomb,plain

Cases (each a fresh process with the default settings unless said):
  logs-down   `run` with OTel logs on, the OTLP endpoint a closed port, over a corpus whose log records
              (~160k) are far more than `logs.queue_max_bytes` holds: the queue fills, the rest is dropped
  bomb        `replay` of a 300 KB gzip of zeros (inflates to ~300 MB; refused at the object cap)
  plain       `replay` of a 400 MB plain file (refused by its size before it is read)
  s3sqs-two   `run` with an `s3-sqs` source (moto_server) and two ~60 MB objects notified at once
  principals  `replay` of 300k records: 1,000 queues × 300 distinct principals (global principal cap 100k)
  labels      `replay` of 20k records varying event name, error code, category, account and region
  series      `replay` of 160k records offering 320k call + error label sets (max_series 50k)
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from bench import procs  # noqa: E402

LIMIT_MB = 512 * 1.048576  # the chart's memory limit, 512Mi, in MB


def rec(i: int, queue: str, principal: str, **kw: Any) -> dict[str, Any]:
    r = {
        "eventVersion": "1.09",
        "eventSource": "sqs.amazonaws.com",
        "eventName": "SendMessage",
        "eventCategory": "Data",
        "awsRegion": "eu-west-1",
        "recipientAccountId": "111122223333",
        "eventTime": f"2026-11-01T00:{(i // 60) % 60:02d}:{i % 60:02d}Z",
        "eventID": f"e-{i}",
        "userIdentity": {"type": "IAMUser", "arn": principal},
        "requestParameters": {"queueUrl": f"https://sqs.eu-west-1.amazonaws.com/111122223333/{queue}"},
    }
    r.update(kw)
    return r


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def scrape(port: int) -> str:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=10) as r:
        return r.read().decode()


def metric(text: str, name: str, **labels: str) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


def replay(work: Path, name: str, *args: str) -> tuple[float, str]:
    r = procs.run([*procs.exporter_cmd(), "replay", *args], work / "out", name)
    return r.maxrss_mb, r.stdout


def run_until(
    work: Path, name: str, cfg: str, done: Callable[[str], bool], env: dict[str, str] | None = None
) -> tuple[float, str]:
    """Start `run`, wait until `done(metrics text)`, read VmHWM, stop it with SIGTERM."""
    port = free_port()
    path = work / f"{name}.yaml"
    path.write_text(f"listen: 127.0.0.1:{port}\nlog_level: warning\nstate: {{path: {work / name}.db}}\n" + cfg)
    err = (work / f"{name}.err").open("wb")
    p = subprocess.Popen(
        [*procs.exporter_cmd(), "run", "--config", str(path)],
        stdout=subprocess.DEVNULL,
        stderr=err,
        env={**procs.clean_env(), **(env or {})},
    )
    text = ""
    try:
        deadline = time.monotonic() + 600
        while time.monotonic() < deadline:
            time.sleep(0.5)
            if p.poll() is not None:
                raise RuntimeError(f"{name}: run exited {p.returncode}: {(work / f'{name}.err').read_text()[-2000:]}")
            try:
                text = scrape(port)
            except OSError:
                continue
            if done(text):
                break
        else:
            raise RuntimeError(f"{name}: not done in time")
        time.sleep(2)
        text = scrape(port)
        hwm = procs.status_mb(p.pid, "VmHWM:")
    finally:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(60)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()
        err.close()
    return hwm, text


# -- the cases ------------------------------------------------------------------------------------
def case_logs_down(work: Path) -> tuple[float, str]:
    d = work / "logs-corpus"
    files = 40
    if not d.exists():
        subprocess.run(
            [
                sys.executable,
                "-m",
                "exporter.generator",
                "--out",
                str(d),
                "--files",
                str(files),
                "--records",
                "8000",
                "--queues",
                "50",
                "--no-extras",
                "--quiet",
            ],
            check=True,
            cwd=ROOT,
        )
    cfg = (
        f"logs: {{enabled: true, endpoint: 'http://127.0.0.1:{free_port()}', protocol: grpc}}\n"
        f"sources: [{{type: file, path: {d}, settle: 0s, poll_interval: 1s}}]\n"
    )
    hwm, text = run_until(work, "logs-down", cfg, lambda t: metric(t, "cloudtrail_sqs_exporter_objects_total") >= files)
    dropped = metric(text, "cloudtrail_sqs_exporter_log_records_total", outcome="dropped")
    calls = metric(text, "cloudtrail_sqs_api_calls_total")
    return hwm, f"{calls:,.0f} SQS calls read, {dropped:,.0f} log records dropped (queue full)"


def case_bomb(work: Path) -> tuple[float, str]:
    d = work / "bomb"
    d.mkdir(exist_ok=True)
    f = d / "bomb.json.gz"
    with gzip.open(f, "wb", compresslevel=9) as gz:
        zeros = bytes(1 << 20)
        for _ in range(300):
            gz.write(zeros)
    hwm, _ = replay(work, "bomb", str(f))
    return hwm, f"{f.stat().st_size // 1000} KB gzip → 300 MB of zeros, failed at the cap"


def case_plain(work: Path) -> tuple[float, str]:
    f = work / "plain" / "big.json"
    f.parent.mkdir(exist_ok=True)
    with f.open("wb") as out:
        block = b" " * (1 << 20)
        for _ in range(400):
            out.write(block)
    hwm, _ = replay(work, "plain", str(f))
    f.unlink()
    return hwm, "400 MB plain file, refused by its size"


def case_s3sqs_two(work: Path) -> tuple[float, str]:
    from awsfixtures import MotoServer, aws_env

    moto = MotoServer(work).start()
    try:
        s3, sqs = moto.client("s3"), moto.client("sqs")
        s3.create_bucket(Bucket="trail")
        q = sqs.create_queue(QueueName="notes")["QueueUrl"]
        n = 150_000  # ~60 MB of JSON each, under the 64 MiB cap
        for k in ("a", "b"):
            body = json.dumps({"Records": [rec(i, f"q{i % 100}", f"arn:aws:iam::1:user/u{i % 50}") for i in range(n)]})
            s3.put_object(Bucket="trail", Key=f"AWSLogs/{k}.json", Body=body.encode())
        size = len(body) / 1e6
        event = {
            "Records": [
                {
                    "eventName": "ObjectCreated:Put",
                    "s3": {"bucket": {"name": "trail"}, "object": {"key": f"AWSLogs/{k}.json"}},
                }
                for k in ("a", "b")
            ]
        }
        sqs.send_message(QueueUrl=q, MessageBody=json.dumps(event))
        src = f"{{type: s3-sqs, queue_url: '{q}', endpoint_url: '{moto.url}', region: us-east-1, wait_time: 1s}}"
        cfg = f"sources: [{src}]\n"
        env = {k: v for k, v in aws_env().items() if k.startswith("AWS_")}
        hwm, text = run_until(
            work, "s3sqs-two", cfg, lambda t: metric(t, "cloudtrail_sqs_exporter_objects_total", outcome="ok") >= 2, env
        )
        calls = metric(text, "cloudtrail_sqs_api_calls_total")
        return hwm, f"2 × {size:.0f} MB plain objects in one notification, {calls:,.0f} calls counted"
    finally:
        moto.stop()


def case_principals(work: Path) -> tuple[float, str]:
    d = work / "principals"
    d.mkdir(exist_ok=True)
    i = 0
    for part in range(10):
        recs = []
        for _ in range(30_000):
            recs.append(rec(i, f"queue-{i % 1000:04d}", f"arn:aws:iam::111122223333:user/p{i}"))
            i += 1
        (d / f"p{part}.json.gz").write_bytes(gzip.compress(json.dumps({"Records": recs}).encode(), 1))
    hwm, out = replay(work, "principals", str(d))
    total = metric(out, "cloudtrail_sqs_distinct_principals", window="24h")
    return hwm, f"300k distinct principals over 1,000 queues; {total:,.0f} tracked (24h gauges summed)"


def label_records(n: int = 20_000) -> list[dict[str, Any]]:
    """Every record new in each label field: event name, error code, category, account, region."""
    return [
        rec(
            i,
            "q",
            "arn:aws:iam::1:user/u",
            eventName=f"Api{i}",
            errorCode=f"Err{i}",
            eventCategory=f"Cat{i}",
            recipientAccountId=f"{i:012d}",
            awsRegion=f"xx-{i}-1",
        )
        for i in range(n)
    ]


def case_labels(work: Path) -> tuple[float, str]:
    d = work / "labels"
    d.mkdir(exist_ok=True)
    (d / "labels.json").write_text(json.dumps({"Records": label_records()}))
    hwm, out = replay(work, "labels", str(d))
    calls = sum(1 for ln in out.splitlines() if ln.startswith("cloudtrail_sqs_api_calls_total{"))
    errors = sum(1 for ln in out.splitlines() if ln.startswith("cloudtrail_sqs_api_errors_total{"))
    return hwm, f"20k records, every label new each time: {calls:,} call + {errors:,} error series"


def case_series(work: Path) -> tuple[float, str]:
    d = work / "series"
    d.mkdir(exist_ok=True)
    i = 0
    for part in range(8):
        recs = []
        for _ in range(20_000):
            q, name = f"queue-{i % 1000:04d}", f"Api{(i // 1000) % 160}"
            recs.append(rec(i, q, "arn:aws:iam::1:user/u", eventName=name, errorCode=f"Err{i % 7}"))
            i += 1
        (d / f"s{part}.json.gz").write_bytes(gzip.compress(json.dumps({"Records": recs}).encode(), 1))
    hwm, out = replay(work, "series", str(d))
    calls = sum(1 for ln in out.splitlines() if ln.startswith("cloudtrail_sqs_api_calls_total{"))
    errors = sum(1 for ln in out.splitlines() if ln.startswith("cloudtrail_sqs_api_errors_total{"))
    return hwm, f"160k label sets offered (1,000 queues × 160 names, with errors): {calls + errors:,} series kept"


CASES: dict[str, tuple[str, Callable[[Path], tuple[float, str]]]] = {
    "logs-down": ("collector down, logs on (`run`)", case_logs_down),
    "bomb": ("gzip bomb (`replay`)", case_bomb),
    "plain": ("400 MB plain file (`replay`)", case_plain),
    "s3sqs-two": ("two s3-sqs objects at once (`run`)", case_s3sqs_two),
    "principals": ("1,000 queues × 300 principals (`replay`)", case_principals),
    "labels": ("label cardinality attack (`replay`)", case_labels),
    "series": ("the series cap reached (`replay`)", case_series),
}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated case names: " + ",".join(CASES))
    ap.add_argument("--work", type=Path, help="working directory (default: a temporary one)")
    args = ap.parse_args()
    names = args.only.split(",") if args.only else list(CASES)
    work = args.work or Path(tempfile.mkdtemp(prefix="ctsqs-memory-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in names:
        title, fn = CASES[name]
        print(f"{name} …", file=sys.stderr, flush=True)
        hwm, what = fn(work)
        rows.append((title, hwm, what))
    print("\n| case | peak RSS (VmHWM) | of 512Mi | what happened |\n|---|---|---|---|")
    worst = 0.0
    for title, hwm, what in rows:
        worst = max(worst, hwm)
        print(f"| {title} | {hwm:.0f} MB | {100 * hwm / LIMIT_MB:.0f} % | {what} |")
    print(f"\nworst: {worst:.0f} MB of {LIMIT_MB:.0f} MB (Python {sys.version.split()[0]}, {os.cpu_count()} CPUs)")
    return 0 if worst < LIMIT_MB else 1


if __name__ == "__main__":
    sys.exit(main())
