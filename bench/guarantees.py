"""The figures behind the README's Guarantees ("Measured"): each of issue 19's findings re-run on this machine
against the real peers the tests use (the daemon as a child process, moto_server, a gRPC OTLP receiver, a tmpfs).

    python bench/guarantees.py            # every case, ~2 minutes; prints the README's table
    python bench/guarantees.py --quick    # the fast cases only (two daemons, secrets in errors, bad records)
    python bench/guarantees.py --only disk,auth

Every process started here is stopped before its case returns; everything listens on 127.0.0.1 only.
The disk-full case needs root (mount -t tmpfs) and is reported as skipped without it.
"""

from __future__ import annotations

import argparse
import base64
import gzip
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, NamedTuple

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

import yaml  # noqa: E402
from awsfixtures import MotoServer, aws_env, counted, upload_tree, wait_metric, write_batch  # noqa: E402
from util import Exporter, assert_matches_truth, free_port, generate, http_get, parse_metrics, series  # noqa: E402

from exporter.generator import Generator  # noqa: E402

OBJECTS = "cloudtrail_sqs_exporter_objects_total"
CKPT_ERRORS = "cloudtrail_sqs_exporter_checkpoint_errors_total"
RECORDS = "cloudtrail_sqs_exporter_records_total"
LOGS = "cloudtrail_sqs_exporter_log_records_total"


class Row(NamedTuple):
    what: str  # what was measured
    figure: str
    want: str  # what it should be
    ok: bool = True  # the figure is what it should be (False fails the run)


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("CTSQS_", "OTEL_"))}
    return {**env, **extra}


def replay_metrics(d: Path, timeout: float) -> tuple[subprocess.CompletedProcess[str], Any]:
    """`replay` of a directory, and the metrics it printed."""
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(d)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(),
    )
    return r, parse_metrics(r.stdout)


def poll(check: Callable[[], Any], timeout: float, interval: float = 0.05) -> float | None:
    """Seconds until `check()` is truthy, or None after `timeout`."""
    t0 = time.monotonic()
    while time.monotonic() - t0 < timeout:
        try:
            if check():
                return time.monotonic() - t0
        except Exception:  # a scrape refused while the daemon starts or stops
            pass
        time.sleep(interval)
    return None


def exact(metrics: dict, truth: dict) -> str:
    try:
        assert_matches_truth(metrics, truth)
    except AssertionError:
        return "NOT exact"
    return "exact"


# -- a failed checkpoint --------------------------------------------------------------------------------------------
def case_disk(work: Path) -> list[Row]:
    from test_disk_full import fill, move_in

    mnt = work / "tmpfs"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode != 0:
        return [Row("state on a full tmpfs", f"skipped: cannot mount a tmpfs ({r.stderr.strip()[:60]})", "")]
    unready_after = 2.0
    exp: Exporter | None = None
    try:
        trail, staging = work / "disk-trail", work / "disk-staging"
        gen = Generator(seed=31)
        write_batch(gen, trail, 10, extras=False)
        truth = write_batch(gen, staging, 40, records=200, extras=False)
        cfg = work / "disk.yaml"
        cfg.write_text(
            yaml.safe_dump(
                {
                    "unready_after": f"{unready_after}s",
                    "state": {"path": str(mnt / "exporter.db"), "commit_interval": "50ms"},
                    "sources": [
                        {"type": "file", "name": "files", "path": str(trail), "poll_interval": "200ms", "settle": 0}
                    ],
                }
            )
        )
        exp = Exporter(cfg, work, env=clean_env())
        exp.start()
        wait_metric(exp, OBJECTS, 10, source="files", outcome="ok")
        filler = fill(mnt)
        first_error = None
        for f in sorted(staging.rglob("*.json.gz")):
            dest = trail / f.relative_to(staging)
            dest.parent.mkdir(parents=True, exist_ok=True)
            f.rename(dest)
            if poll(lambda: counted(exp.metrics(), CKPT_ERRORS) > 0, 0.3) is not None:
                first_error = time.monotonic()
                break
        if first_error is None:
            return [Row("state on a full tmpfs", "no checkpoint failed (the tmpfs did not fill)", "", False)]
        move_in(staging, trail)
        to_503 = None
        if poll(lambda: http_get(exp.url + "/readyz")[0] == 503, unready_after + 5) is not None:
            to_503 = time.monotonic() - first_error
        time.sleep(2.0)
        m = exp.metrics()
        errors, held = counted(m, CKPT_ERRORS), counted(m, OBJECTS, source="files", outcome="ok")
        filler.unlink()
        freed = time.monotonic()
        resumed = poll(lambda: counted(exp.metrics(), OBJECTS, source="files", outcome="ok") > held, 60)
        done = wait_metric(exp, OBJECTS, 50, timeout=60, source="files", outcome="ok")
        took = time.monotonic() - freed
        assert exp.proc is not None
        same = exp.proc.poll() is None
        log = exp.log.read_text()
        lines = (log.count("checkpoint failed:"), log.count("checkpoint recovered after"))
        return [
            Row(
                "checkpoint fails (state on a 4 MiB tmpfs filled mid-run): first error → `/readyz` 503",
                f"{to_503:.1f} s" if to_503 is not None else "never",
                f"≤ `unready_after` ({unready_after:.0f} s) + a probe",
                to_503 is not None and to_503 <= unready_after + 1.5,
            ),
            Row(
                "checkpoint errors counted, 2 s after the 503 (retried with backoff)",
                f"{errors:.0f}",
                "> 1",
                errors > 1,
            ),
            Row(
                "space freed → counting resumes / all 50 files counted",
                f"{resumed:.1f} s / {took:.1f} s" if resumed is not None else "never",
                "resumes, same process",
                resumed is not None and same,
            ),
            Row(
                "final counts against the generator's truth; restart?; log lines",
                f"{exact(done, truth)}; {'no restart' if same else 'RESTARTED'}; "
                f"{lines[0]} × failed, {lines[1]} × recovered",
                "exact; no; 1 + 1",
                exact(done, truth) == "exact" and same and lines == (1, 1),
            ),
        ]
    finally:
        if exp is not None:
            exp.stop()
        subprocess.run(["umount", "-l", str(mnt)], check=False)


# -- one owner per state file ---------------------------------------------------------------------------------------
def case_owner(work: Path) -> list[Row]:
    from test_run import write_config

    d = work / "owner"
    d.mkdir()
    generate(d / "trail", files=4)
    cfg = write_config(d, d / "trail")
    first = Exporter(cfg, d, env=clean_env()).start()
    try:
        t0 = time.monotonic()
        r = subprocess.run(
            [sys.executable, "-m", "exporter", "run", "--config", str(cfg)],
            cwd=d,
            env=clean_env(CTSQS_LISTEN="127.0.0.1:0"),
            capture_output=True,
            text=True,
            timeout=60,
        )
        took = time.monotonic() - t0
        assert first.proc is not None
        alive, pid = first.proc.poll() is None, first.proc.pid
        msg = r.stderr.strip().splitlines()[-1] if r.stderr.strip() else "(nothing)"
        msg = msg.replace(str(d), "…")
    finally:
        rc_first = first.stop()
    return [
        Row(
            "second daemon on the same state file: exit code, time to exit",
            f"{r.returncode}, {took:.2f} s (process start included)",
            "non-zero at start",
            r.returncode != 0,
        ),
        Row(
            "its message", f"`{msg}`", "names the file and the owner's pid", f"pid {pid}" in msg and "state file" in msg
        ),
        Row("the first daemon", f"{'untouched' if alive else 'DISTURBED'}, exits {rc_first}", "untouched", alive),
    ]


# -- secrets --------------------------------------------------------------------------------------------------------
def secret_errors() -> list[tuple[str, dict[str, str]]]:
    """The bad configs of tests/test_secrets_masked.py (each with a secret beside the error)."""
    from test_secrets_masked import test_config_errors_echo_no_secret

    for mark in getattr(test_config_errors_echo_no_secret, "pytestmark", ()):
        if mark.name == "parametrize":
            return list(mark.args[1])
    raise RuntimeError("the error cases of tests/test_secrets_masked.py moved")


def errors_leaks(work: Path) -> tuple[int, int]:
    from test_secrets_masked import SECRETS, cli

    secret = SECRETS["authorization"].split()[1]
    found = n = 0
    for i, (text, env) in enumerate(secret_errors()):
        cfg = work / f"bad-{i}.yaml"
        cfg.write_text(text.format(SECRET=secret))
        r = cli("check-config", str(cfg), env={k: v.format(SECRET=secret) for k, v in env.items()})
        n += 1
        found += int(r.returncode != 2) + (r.stdout + r.stderr).count(secret)
    return found, n


def case_secrets(work: Path, quick: bool = False) -> list[Row]:
    from test_secrets_masked import SECRETS, cli, leaks, secret_config, secret_env

    d = work / "secrets"
    d.mkdir()
    rows: list[Row] = []
    found, n = errors_leaks(d)
    if not quick:
        closed = free_port()
        cfg = d / "c.yaml"
        cfg.write_text(yaml.safe_dump(secret_config(d, closed)))
        r = cli("check-config", str(cfg), env=secret_env())
        in_check = len(leaks(r.stdout + r.stderr))
        in_logs = 0
        lines = 0
        for protocol in ("http/protobuf", "grpc"):
            generate(d / "trail", files=3, seed=len(protocol))
            cfg.write_text(yaml.safe_dump(secret_config(d, closed, protocol)))
            exp = Exporter(cfg, d, env={**clean_env(), **secret_env()})
            try:
                exp.start(wait_ready=False)
                poll(lambda e=exp: "export of" in e.log.read_text() and "source bucket" in e.log.read_text(), 60, 0.2)
                time.sleep(1)
            finally:
                exp.stop()
            text = exp.log.read_text()
            in_logs += len(leaks(text))
            lines += text.count("\n")
        rows.append(
            Row(
                f"secrets found: {len(SECRETS)} secrets in every secret-capable field — `check-config` output",
                str(in_check),
                "0",
                in_check == 0 and r.returncode == 0,
            )
        )
        rows.append(
            Row(
                f"… `run` at debug, collector, Redis and S3 unreachable ({lines:,} log lines, HTTP + gRPC)",
                str(in_logs),
                "0",
                in_logs == 0 and lines > 0,
            )
        )
    rows.append(
        Row(f"… config error messages ({n} bad configs with a secret beside the error)", str(found), "0", found == 0)
    )
    return rows


# -- label caps -----------------------------------------------------------------------------------------------------
def case_labels(work: Path) -> list[Row]:
    from test_caps import label_attack

    from exporter.config import MetricsConfig
    from exporter.sinks.metrics.caps import OTHER

    d = work / "labels"
    d.mkdir()
    recs = label_attack(20_000)
    for part in range(4):
        body = json.dumps({"Records": recs[part * 5000 : (part + 1) * 5000]}).encode()
        (d / f"labels-{part}.json.gz").write_bytes(gzip.compress(body))
    r, m = replay_metrics(d, timeout=300)
    lim = MetricsConfig().model_dump()
    calls = series(m, "cloudtrail_sqs_api_calls_total", "account_id", "region", "queue", "event_name", "event_category")
    errors = series(m, "cloudtrail_sqs_api_errors_total", "account_id", "region", "queue", "event_name", "error_code")
    total = sum(
        1
        for (name, _), _v in m.items()
        if name.startswith("cloudtrail_sqs_") and not name.startswith("cloudtrail_sqs_exporter_")
    )
    per = {
        "account": len({k[0] for k in calls} - {OTHER}),
        "region": len({k[1] for k in calls} - {OTHER}),
        "event name": len({k[3] for k in calls} - {OTHER}),
        "category": len({k[4] for k in calls}),
        "error code": len({k[4] for k in errors} - {OTHER}),
    }
    n = len(calls) + len(errors)
    kept = sum(calls.values())
    caps = {
        "account": lim["max_accounts"],
        "region": lim["max_regions"],
        "event name": lim["max_event_names"],
        "category": 2,
        "error code": lim["max_error_codes"],
    }
    return [
        Row(
            "20,000 records, each new in event name, error code, category, account, region: call + error series",
            f"{len(calls):,} + {len(errors):,} = {n:,} (every per-queue family: {total:,}); {kept:,.0f} calls kept",
            f"≤ `max_series` + 3 = {lim['max_series'] + 3:,}; all 20,000 counted",
            r.returncode == 0 and 0 < n <= lim["max_series"] + 3 and kept == 20_000,
        ),
        Row(
            "… distinct values kept per label (the rest read `(other)`)",
            ", ".join(f"{k} {v:,}" for k, v in per.items()),
            ", ".join(f"{k} ≤ {v:,}" for k, v in caps.items()),
            all(per[k] <= caps[k] for k in caps),
        ),
    ]


# -- record isolation -----------------------------------------------------------------------------------------------
def case_records(work: Path) -> list[Row]:
    from test_record_isolation import DEEP, LONE_SURROGATE, sqs_record, trail

    d = work / "records"
    d.mkdir()
    valid = [sqs_record(i) for i in range(8)]
    doc = trail(*valid[:4], LONE_SURROGATE, *valid[4:6], DEEP, *valid[6:])
    (d / "mixed.json.gz").write_bytes(gzip.compress(doc))
    _, m = replay_metrics(d, timeout=120)
    calls = counted(m, "cloudtrail_sqs_api_calls_total")
    invalid = counted(m, RECORDS, outcome="invalid")
    failed = counted(m, OBJECTS, outcome="failed")
    return [
        Row(
            'one trail file: 8 valid SQS records + a lone surrogate (`"\\ud800"`) + a record nested 1,000 deep',
            f"valid counted {calls:.0f} / invalid {invalid:.0f}; file failed {failed:.0f}",
            "8 / 2; 0",
            (calls, invalid, failed) == (8, 2, 0),
        )
    ]


# -- basic auth -----------------------------------------------------------------------------------------------------
def case_auth(work: Path) -> list[Row]:
    import bcrypt
    from prometheus_client import CollectorRegistry

    from exporter.server import MetricsServer
    from exporter.webconfig import MAX_AUTH_WAITERS, WebConfig

    cost = 10
    web = work / "web.yml"
    hashed = bcrypt.hashpw(b"right", bcrypt.gensalt(rounds=cost)).decode()
    web.write_text(json.dumps({"basic_auth_users": {"prom": hashed}}))
    srv = MetricsServer("127.0.0.1", 0, CollectorRegistry(), lambda: (True, "ok"), WebConfig(web), "/metrics")
    srv.start()
    url = f"http://127.0.0.1:{srv.port}/metrics"

    def status(user: str, password: str) -> int:
        req = urllib.request.Request(url)
        req.add_header("Authorization", "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode())
        try:
            with urllib.request.urlopen(req, timeout=30) as r:
                r.read()
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def median(user: str, n: int = 7) -> float:
        times = []
        for i in range(n):
            t = time.perf_counter()
            assert status(user, f"wrong-{i}") == 401
            times.append(time.perf_counter() - t)
        return statistics.median(times)

    try:
        known, unknown = median("prom"), median("nobody")
        t0, cpu0 = time.perf_counter(), time.process_time()
        with ThreadPoolExecutor(40) as pool:
            codes = list(pool.map(lambda i: status("prom", f"guess-{i}"), range(40)))
        flood, cpu = time.perf_counter() - t0, time.process_time() - cpu0
        t = time.perf_counter()
        ok = status("prom", "right")
        after = time.perf_counter() - t
    finally:
        srv.stop()
    diff = 100 * abs(unknown - known) / known
    return [
        Row(
            f"basic auth (bcrypt cost {cost}, in-process server): median reject of 7, unknown user vs known user",
            f"{1000 * unknown:.0f} ms vs {1000 * known:.0f} ms ({diff:.0f} % apart)",
            "within 50 % (was 0.6 ms vs 239 ms)",
            diff < 50,
        ),
        Row(
            "40 concurrent wrong passwords: answers; CPU of server + clients over the flood",
            f"{codes.count(401)} × 401, {codes.count(429)} × 429 at once; {cpu:.1f} s CPU in {flood:.1f} s; "
            f"the right password then {ok} in {1000 * after:.0f} ms",
            f"one bcrypt at a time + ≤ {MAX_AUTH_WAITERS} waiting (`MAX_AUTH_WAITERS`), the rest 429: ≤ ~1 core",
            set(codes) <= {401, 429} and codes.count(429) > 0 and ok == 200 and cpu < 1.5 * flood,
        ),
    ]


# -- OTLP retries after SIGTERM -------------------------------------------------------------------------------------
def case_otlp(work: Path) -> list[Row]:
    import grpc
    from test_otlp_transport import FaultyReceiver

    d = work / "otlp"
    d.mkdir()
    truth = generate(d / "trail", files=10, seed=7, records=200)
    rx = FaultyReceiver()
    rx.fail = (grpc.StatusCode.UNAVAILABLE, None)
    cfg = d / "c.yaml"
    cfg.write_text(
        yaml.safe_dump(
            {
                "state": {"path": str(d / "state" / "exporter.db"), "commit_interval": "200ms"},
                "logs": {"enabled": True, "endpoint": rx.endpoint, "protocol": "grpc", "batch_size": 100},
                "sources": [{"type": "file", "name": "files", "path": str(d / "trail"), "settle": 0}],
            }
        )
    )
    exp = Exporter(cfg, d, env=clean_env())
    try:
        exp.start()
        wait_metric(exp, OBJECTS, len(truth["files"]), source="files")
        time.sleep(2.0)  # batches in their backoff
        before = len(rx.times())
        assert exp.proc is not None
        queued = counted(exp.metrics(), "cloudtrail_sqs_api_calls_total")
        t0 = time.monotonic()
        exp.proc.send_signal(signal.SIGTERM)
        rc = exp.proc.wait(60)
        took = time.monotonic() - t0
        after = len(rx.times()) - before
    finally:
        exp.stop()
        rx.stop()
    text = exp.log.read_text()
    tail = text[text.find("signal 15") :].count("\n") - 1
    return [
        Row(
            f"SIGTERM, gRPC collector failing (UNAVAILABLE), {queued:,.0f} log records waiting: export calls after it",
            f"{after} calls ({before} before); exit {rc} in {took:.1f} s; {tail} log line(s) after the signal",
            "a few, paced; exit 0 within `logs.shutdown_timeout` (10 s) + 1 s (was 1,599 calls)",
            after <= 20 and rc == 0 and took < 11 and tail <= 5,
        )
    ]


# -- poison notifications -------------------------------------------------------------------------------------------
def case_poison(work: Path) -> list[Row]:
    from test_source_s3sqs import make_queue, notifying_bucket, queue_depth, s3_event, source

    d = work / "poison"
    d.mkdir()
    missing = "AWSLogs/111122223333/CloudTrail/us-east-1/2026/11/01/gone.json.gz"
    moto = MotoServer(d).start()
    rows: list[Row] = []
    exps: list[Exporter] = []

    def start(name: str, url: str) -> Exporter:
        """A daemon reading `url` with an `s3-sqs` source, its state its own."""
        cfg = d / f"{name}.yaml"
        state = {"path": str(d / f"{name}.db"), "commit_interval": "200ms"}
        cfg.write_text(yaml.safe_dump({"state": state, "sources": [source(moto, url)]}))
        exp = Exporter(cfg, d, env=aws_env())
        exps.append(exp)
        return exp.start()

    try:
        sqs = moto.client("sqs")
        # no dead-letter queue: three messages name the same missing object
        url = notifying_bucket(moto)
        truth = write_batch(Generator(seed=51), d / "trail", 4, extras=False)
        upload_tree(moto.client("s3"), "trail", d / "trail")
        for _ in range(3):
            sqs.send_message(QueueUrl=url, MessageBody=json.dumps(s3_event("trail", missing, "abc")))
        exp = start("a", url)
        m = wait_metric(exp, OBJECTS, 4, source="notes", outcome="ok")
        gone = poll(lambda: queue_depth(moto, url) == 0, 30, 0.3)
        time.sleep(3)  # three retry_visibility periods
        m = exp.metrics()
        failed = counted(m, OBJECTS, source="notes", outcome="failed")
        lines = exp.log.read_text().count(": NoSuchKey; counted as failed")
        rows.append(
            Row(
                "`s3-sqs`, no DLQ: 3 notifications of one missing key (NoSuchKey, moto_server): "
                "`objects_total{failed}`; messages deleted; log lines; the 4 valid objects",
                f"{failed:.0f}; {'yes' if gone is not None else 'NO'} (queue empty); {lines}; {exact(m, truth)}",
                "1; yes; 1; exact",
                (failed, lines) == (1, 1) and gone is not None and exact(m, truth) == "exact",
            )
        )
        exp.stop()
        # with a dead-letter queue: the message is received maxReceiveCount times, then moved
        receives = 4
        dlq_url, dlq_arn = make_queue(moto, "notes-dlq")
        url2 = sqs.create_queue(
            QueueName="notes-redrive",
            Attributes={
                "VisibilityTimeout": "30",
                "RedrivePolicy": json.dumps({"deadLetterTargetArn": dlq_arn, "maxReceiveCount": str(receives)}),
            },
        )["QueueUrl"]
        sqs.send_message(QueueUrl=url2, MessageBody=json.dumps(s3_event("trail", missing, "abc")))
        exp2 = start("b", url2)
        moved = poll(lambda: queue_depth(moto, dlq_url) == 1, 60, 0.3)
        m = exp2.metrics()
        failed = counted(m, OBJECTS, source="notes", outcome="failed")
        rows.append(
            Row(
                f"`s3-sqs` with a DLQ (maxReceiveCount {receives}): one missing key, received until SQS moves it: "
                "`objects_total{failed}`; where the message went",
                f"{failed:.0f}; " + (f"in the DLQ after {moved:.1f} s" if moved is not None else "NOT in the DLQ"),
                "1 (per object, not per receive); the DLQ",
                failed == 1 and moved is not None,
            )
        )
    finally:
        for e in exps:
            e.stop()
        moto.stop()
    return rows


# -- counters across a restart --------------------------------------------------------------------------------------
def case_restart(work: Path) -> list[Row]:
    from test_monotonic import SlowReceiver, counters, restart_config, scrape_into

    d = work / "restart"
    d.mkdir()
    truth = generate(d / "trail", files=20, seed=41, records=100)
    rx = SlowReceiver(free_port()).start()
    cfg = d / "c.yaml"
    cfg.write_text(yaml.safe_dump(restart_config(d, rx.endpoint)))
    exp = Exporter(cfg, d, env=clean_env())
    seen: dict[Any, float] = {}

    def scrape() -> bool:
        return scrape_into(exp.url, seen)

    try:
        exp.start()
        wait_metric(exp, OBJECTS, len(truth["files"]), source="files")
        scrape()
        at_stop = seen.get((LOGS, (("outcome", "exported"),)), 0.0)
        assert exp.proc is not None
        exp.proc.send_signal(signal.SIGTERM)
        during = 0
        while exp.proc.poll() is None and scrape():
            during += 1
            time.sleep(0.05)
        rc = exp.stop()
        exp.start()
        after = counters(http_get(exp.url + "/metrics")[1])
        acked = counted(parse_metrics(http_get(exp.url + "/metrics")[1]), LOGS, outcome="exported")
    finally:
        exp.stop()
        rx.stop()
    backwards = [k for k, v in seen.items() if after.get(k, 0.0) < v]
    flushed = seen.get((LOGS, (("outcome", "exported"),)), 0.0) - at_stop
    return [
        Row(
            f"counters across SIGTERM + restart ({len(seen)} counter series; {during} scrapes during the shutdown "
            f"flush, which exported {flushed:,.0f} more log records)",
            f"{len(backwards)} lower after the restart; exit {rc}; `log_records_total{{exported}}` {acked:,.0f} "
            f"vs {rx.count:,} acknowledged by the collector",
            "none lower; equal",
            not backwards and rc == 0 and acked == rx.count and during > 0,
        )
    ]


CASES: dict[str, Callable[[Path], list[Row]]] = {
    "disk": case_disk,
    "owner": case_owner,
    "secrets": case_secrets,
    "labels": case_labels,
    "records": case_records,
    "auth": case_auth,
    "otlp": case_otlp,
    "poison": case_poison,
    "restart": case_restart,
}
QUICK = ("owner", "secrets", "records")


def commit() -> str:
    r = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    dirty = subprocess.run(["git", "status", "--porcelain", "--", "exporter"], cwd=ROOT, capture_output=True, text=True)
    return (r.stdout.strip() or "unknown") + (" (exporter/ modified)" if dirty.stdout.strip() else "")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--only", help="comma-separated case names: " + ",".join(CASES))
    ap.add_argument("--quick", action="store_true", help="only " + ", ".join(QUICK) + " (error messages only)")
    ap.add_argument("--work", type=Path, help="working directory, kept (default: a temporary one, removed)")
    args = ap.parse_args(argv)
    names = args.only.split(",") if args.only else list(QUICK if args.quick else CASES)
    unknown = set(names) - set(CASES)
    if unknown:
        ap.error(f"unknown case(s): {', '.join(sorted(unknown))}")
    work = args.work or Path(tempfile.mkdtemp(prefix="ctsqs-guarantees-"))
    work.mkdir(parents=True, exist_ok=True)
    rows: list[tuple[str, Row]] = []
    t0 = time.monotonic()
    try:
        for name in names:
            print(f"{name} …", file=sys.stderr, flush=True)
            t = time.monotonic()
            try:
                got = case_secrets(work, quick=True) if (name == "secrets" and args.quick) else CASES[name](work)
            except Exception as exc:  # one broken case is reported, the others still run
                got = [Row("(the case failed)", f"{type(exc).__name__}: {str(exc)[:200]}", "", False)]
            rows += [(name, r) for r in got]
            print(f"{name}: {time.monotonic() - t:.1f} s", file=sys.stderr, flush=True)
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)
    print("\n| case | measured | figure | should be |\n|---|---|---|---|")
    for name, r in rows:
        mark = "" if r.ok else " **✗**"
        print(f"| {name} | {r.what} | {r.figure}{mark} | {r.want} |")
    bad = [name for name, r in rows if not r.ok]
    print(f"\ncommit {commit()}; {time.monotonic() - t0:.0f} s; Python {sys.version.split()[0]}, {os.cpu_count()} CPUs")
    if bad:
        print(f"not as promised: {', '.join(dict.fromkeys(bad))}", file=sys.stderr)
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
