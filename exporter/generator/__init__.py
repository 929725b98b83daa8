"""Realistic CloudTrail trail files with ground truth, for tests, the demo and the benchmark.

The ground truth is computed from the generator's own model of each call (who called which queue,
when), never by running the exporter's decoder, so comparing the two is a real check.

    python -m exporter.generator --out DIR --files 20 --seed 1
"""

from __future__ import annotations

import argparse
import gzip
import random
import sys
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from .model import AGENTS, OTHER_EVENTS, SERVICES, SQS_EVENTS, Principal, Truth
from .records import SqsRecords

__all__ = ["SQS_EVENTS", "Generator", "Principal", "Truth", "main"]


class Generator(SqsRecords):
    def __init__(
        self,
        seed: int = 1,
        accounts: int = 2,
        regions: tuple[str, ...] = ("us-east-1", "eu-west-1"),
        queues_per_account: int = 8,
        sqs_share: float = 0.5,
        error_rate: float = 0.04,
        start: datetime | None = None,
    ) -> None:
        self.rng = random.Random(seed)
        self.accounts = [f"{111122220000 + i * 1111:012d}" for i in range(accounts)]
        self.regions = list(regions)
        self.sqs_share = sqs_share
        self.error_rate = error_rate
        self.start = start or datetime(2026, 11, 1, tzinfo=UTC)
        self.truth = Truth()
        self.queues: dict[tuple[str, str], list[str]] = {}
        words = ("orders", "payments", "emails", "audit", "ingest", "billing", "events", "jobs", "alerts")
        for acct in self.accounts:
            for region in self.regions:
                names = []
                for i in range(queues_per_account):
                    base = f"{words[i % len(words)]}-{i}"
                    names.append(f"{base}.fifo" if i % 4 == 3 else base)
                    if i % 5 == 0:
                        names.append(f"{base}-dlq")
                self.queues[(acct, region)] = names
        self.principals: dict[str, list[Principal]] = {}
        for acct in self.accounts:
            pool = [Principal("IAMUser", acct, n) for n in ("alice", "bob", "deploy-bot")]
            for role in ("app-worker", "app-api", "batch-job", "admin"):
                for s in range(self.rng.randint(1, 5)):
                    pool.append(Principal("AssumedRole", acct, role, f"i-{self.rng.getrandbits(40):010x}-{s}"))
            pool += [Principal("AWSService", acct, svc) for svc in SERVICES]
            self.principals[acct] = pool
        self._names = list(SQS_EVENTS)
        self._weights = [w for w, _, _ in SQS_EVENTS.values()]

    # -- files -------------------------------------------------------------------------------------
    def write(
        self,
        out: Path,
        files: int,
        records_per_file: int = 100,
        spread_hours: float = 6.0,
        extras: bool = True,
        progress: Callable[[int], None] | None = None,
    ) -> Truth:
        """Write `files` trail files spread over accounts × regions; with `extras`, a digest file and
        an Insight file per account/region too (skipped objects). `progress(n)` after each file."""
        out = Path(out)
        slots = [(a, r) for a in self.accounts for r in self.regions]
        per_slot = max(1, files // len(slots))
        step = timedelta(hours=spread_hours) / per_slot
        for i in range(files):
            acct, region = slots[i % len(slots)]
            t0 = self.start + step * (i // len(slots))
            path = out / self.key(acct, region, t0)
            self.write_file(path, acct, region, t0, step, records_per_file)
            if progress is not None:
                progress(1)
        if extras:
            for acct, region in slots:
                self._write_digest(out, acct, region)
                self._write_insight(out, acct, region)
        return self.truth

    def key(self, acct: str, region: str, t: datetime, kind: str = "CloudTrail") -> str:
        stamp = t.strftime("%Y%m%dT%H%MZ")
        return (
            f"AWSLogs/{acct}/{kind}/{region}/{t:%Y/%m/%d}/"
            f"{acct}_{kind}_{region}_{stamp}_{self.rng.getrandbits(64):016x}.json.gz"
        )

    def write_file(self, path: Path, acct: str, region: str, t0: datetime, span: timedelta, n: int) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        records = self.records(acct, region, t0, span, n)
        path.write_bytes(gzip.compress(msgspec.json.encode({"Records": records}), compresslevel=6))
        self.truth.objects["ok"] += 1
        self.truth.files.append(str(path))

    def records(self, acct: str, region: str, t0: datetime, span: timedelta, n: int) -> list[dict]:
        """n records inside [t0, t0+span), about `sqs_share` of them SQS, with the truth updated."""
        recs = []
        secs = max(1, int(span.total_seconds()))
        for _ in range(n):
            t = t0 + timedelta(seconds=self.rng.randrange(secs))
            if self.rng.random() < self.sqs_share:
                recs.append(self.sqs_record(acct, region, t))
            else:
                recs.append(self.other_record(acct, region, t))
        recs.sort(key=lambda r: r["eventTime"])
        return recs

    # -- records -----------------------------------------------------------------------------------

    def other_record(self, acct: str, region: str, t: datetime) -> dict[str, Any]:
        rng = self.rng
        source, name, category = rng.choice(OTHER_EVENTS)
        p = rng.choice(self.principals[acct])
        ident = self._identity(p, acct)
        if source == "kms.amazonaws.com" and rng.random() < 0.5:
            # SQS-managed SSE calls KMS on the caller's behalf: "sqs.amazonaws.com" appears, but it's KMS
            ident = {"type": "AWSService", "invokedBy": "sqs.amazonaws.com"}
        self.truth.records["other"] += 1
        return {
            "eventVersion": "1.10",
            "userIdentity": ident,
            "eventTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": source,
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": f"10.{rng.randrange(256)}.{rng.randrange(256)}.9",
            "userAgent": rng.choice(AGENTS),
            "requestParameters": {"bucketName": "data", "key": f"k/{rng.getrandbits(32)}"},
            "responseElements": None,
            "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
            "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
            "readOnly": True,
            "eventType": "AwsApiCall",
            "managementEvent": category == "Management",
            "recipientAccountId": acct,
            "eventCategory": category,
        }

    def _write_digest(self, out: Path, acct: str, region: str) -> None:
        path = out / self.key(acct, region, self.start, "CloudTrail-Digest")
        path.parent.mkdir(parents=True, exist_ok=True)
        body = {
            "awsAccountId": acct,
            "digestStartTime": "2026-11-01T00:00:00Z",
            "digestEndTime": "2026-11-01T01:00:00Z",
            "digestS3Bucket": "trail",
            "logFiles": [],
        }
        path.write_bytes(gzip.compress(msgspec.json.encode(body)))
        self.truth.objects["skipped"] += 1
        self.truth.files.append(str(path))

    def _write_insight(self, out: Path, acct: str, region: str) -> None:
        """An Insight file: `Records` whose events name SQS but are not API calls."""
        path = out / self.key(acct, region, self.start, "CloudTrail-Insight")
        path.parent.mkdir(parents=True, exist_ok=True)
        rec = {
            "eventVersion": "1.08",
            "eventTime": "2026-11-01T00:10:00Z",
            "awsRegion": region,
            "eventID": str(uuid.UUID(int=self.rng.getrandbits(128))),
            "eventType": "AwsCloudTrailInsight",
            "recipientAccountId": acct,
            "sharedEventID": "x",
            "eventSource": "sqs.amazonaws.com",
            "eventName": "SendMessage",
            "insightDetails": {
                "state": "Start",
                "eventSource": "sqs.amazonaws.com",
                "eventName": "SendMessage",
                "insightType": "ApiCallRateInsight",
            },
            "eventCategory": "Insight",
        }
        path.write_bytes(gzip.compress(msgspec.json.encode({"Records": [rec]})))
        self.truth.objects["ok"] += 1
        self.truth.records["other"] += 1
        self.truth.files.append(str(path))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        prog="python -m exporter.generator",
        description=__doc__.splitlines()[0],
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    ap.add_argument("--out", required=True, type=Path, help="directory to write the AWSLogs/ tree into")
    ap.add_argument("--files", type=int, default=20, help="trail files to write")
    ap.add_argument("--records", type=int, default=100, help="records per file")
    ap.add_argument("--accounts", type=int, default=2, help="accounts")
    ap.add_argument("--regions", default="us-east-1,eu-west-1", help="comma-separated regions")
    ap.add_argument("--queues", type=int, default=8, help="queues per account and region")
    ap.add_argument("--seed", type=int, default=1, help="random seed (same seed, same files)")
    ap.add_argument("--spread-hours", type=float, default=6.0, help="event time span of the files")
    ap.add_argument("--no-extras", action="store_true", help="no digest / Insight files")
    ap.add_argument("--truth", type=Path, help="where to write ground truth (default: OUT.truth.json)")
    ap.add_argument("--quiet", "-q", action="store_true", help="no progress bar and no summary")
    a = ap.parse_args(argv)
    gen = Generator(seed=a.seed, accounts=a.accounts, regions=tuple(a.regions.split(",")), queues_per_account=a.queues)
    truth_path = a.truth or a.out.with_name(a.out.name + ".truth.json")
    started = time.monotonic()
    with Progress(
        TextColumn("generating"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("files"),
        TimeElapsedColumn(),
        console=Console(stderr=True),
        disable=a.quiet or not sys.stderr.isatty(),
    ) as bar:
        task = bar.add_task("files", total=a.files)
        truth = gen.write(
            a.out, a.files, a.records, a.spread_hours, extras=not a.no_extras, progress=lambda n: bar.advance(task, n)
        )
    truth_path.write_bytes(msgspec.json.encode(truth.to_json()))
    if not a.quiet:
        print(
            f"wrote {len(truth.files)} files ({sum(truth.records.values())} records, {truth.records['sqs']} SQS) "
            f"under {a.out} in {time.monotonic() - started:.1f}s; ground truth: {truth_path}",
            file=sys.stderr,
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
