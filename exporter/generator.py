"""Realistic CloudTrail trail files with ground truth, for tests, the demo and the benchmark.

The ground truth is computed from the generator's own model of each call (who called which queue,
when), never by running the exporter's decoder, so comparing the two is a real check.

    python -m exporter.generator --out DIR --files 20 --seed 1
"""

from __future__ import annotations

import argparse
import gzip
import random
import uuid
import zlib
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import msgspec

WINDOWS = (("15m", 900.0), ("1h", 3600.0), ("24h", 86400.0))
NO_QUEUE = "(none)"

# name → (weight, category, read_only)
SQS_EVENTS: dict[str, tuple[int, str, bool]] = {
    "SendMessage": (250, "Data", False),
    "ReceiveMessage": (300, "Data", True),
    "DeleteMessage": (150, "Data", False),
    "SendMessageBatch": (60, "Data", False),
    "DeleteMessageBatch": (60, "Data", False),
    "ChangeMessageVisibility": (40, "Data", False),
    "ChangeMessageVisibilityBatch": (20, "Data", False),
    "GetQueueAttributes": (30, "Management", True),
    "GetQueueUrl": (20, "Management", True),
    "ListQueues": (10, "Management", True),
    "ListQueueTags": (4, "Management", True),
    "ListDeadLetterSourceQueues": (3, "Management", True),
    "ListMessageMoveTasks": (3, "Management", True),
    "SetQueueAttributes": (5, "Management", False),
    "CreateQueue": (3, "Management", False),
    "DeleteQueue": (2, "Management", False),
    "PurgeQueue": (2, "Management", False),
    "TagQueue": (2, "Management", False),
    "UntagQueue": (2, "Management", False),
    "AddPermission": (2, "Management", False),
    "RemovePermission": (2, "Management", False),
    "StartMessageMoveTask": (2, "Management", False),
    "CancelMessageMoveTask": (2, "Management", False),
}
ERRORS = (
    ("AccessDenied", "User is not authorized to perform this action"),
    ("AWS.SimpleQueueService.NonExistentQueue", "The specified queue does not exist."),
    ("InvalidParameterValue", "Value for parameter is invalid."),
    ("KMS.AccessDeniedException", "The ciphertext refers to a customer master key that does not exist."),
    ("ThrottlingException", "Rate exceeded"),
)
OTHER_EVENTS = (
    ("s3.amazonaws.com", "GetObject", "Data"),
    ("s3.amazonaws.com", "PutObject", "Data"),
    ("ec2.amazonaws.com", "DescribeInstances", "Management"),
    ("kms.amazonaws.com", "Decrypt", "Management"),
    ("sts.amazonaws.com", "AssumeRole", "Management"),
    ("lambda.amazonaws.com", "Invoke", "Data"),
    ("sns.amazonaws.com", "Publish", "Data"),
    ("dynamodb.amazonaws.com", "GetItem", "Data"),
)
SERVICES = ("sns.amazonaws.com", "events.amazonaws.com", "s3.amazonaws.com", "lambda.amazonaws.com")
AGENTS = (
    "aws-sdk-java/2.25.1 Linux/5.10 OpenJDK_64-Bit_Server_VM/17.0.9",
    "Boto3/1.34.2 md/Botocore#1.34.2 ua/2.0 os/linux#5.15 md/arch#x86_64 lang/python#3.11.7",
    "aws-sdk-go-v2/1.24.0 os/linux lang/go#1.21.5 api/sqs#1.29.0",
    "aws-cli/2.15.0 Python/3.11.6 Linux/6.1 exe/x86_64.amzn.2023",
)


@dataclass
class Principal:
    kind: str  # IAMUser | AssumedRole | AWSService
    account: str
    name: str
    session: str = ""

    @property
    def role_key(self) -> str:
        if self.kind == "AWSService":
            return self.name
        if self.kind == "AssumedRole":
            return f"arn:aws:iam::{self.account}:role/{self.name}"
        return f"arn:aws:iam::{self.account}:user/{self.name}"

    @property
    def arn_key(self) -> str:
        if self.kind == "AssumedRole":
            return f"arn:aws:sts::{self.account}:assumed-role/{self.name}/{self.session}"
        return self.role_key


@dataclass
class Truth:
    calls: Counter = field(default_factory=Counter)
    errors: Counter = field(default_factory=Counter)
    batch: Counter = field(default_factory=Counter)
    # (account, region, queue) → principal → newest time, per granularity
    seen: dict[str, dict[tuple[str, str, str], dict[str, float]]] = field(
        default_factory=lambda: {"role": defaultdict(dict), "arn": defaultdict(dict)}
    )
    newest: dict[tuple[str, str], float] = field(default_factory=dict)
    records: Counter = field(default_factory=Counter)
    objects: Counter = field(default_factory=Counter)
    files: list[str] = field(default_factory=list)

    def principals(self, granularity: str) -> dict[tuple[str, str, str, str], int]:
        out = {}
        for (acct, region, queue), seen in self.seen[granularity].items():
            newest = self.newest[(acct, region)]
            for label, width in WINDOWS:
                out[(acct, region, queue, label)] = sum(1 for t in seen.values() if t > newest - width)
        return out

    def to_json(self) -> dict[str, Any]:
        return {
            "calls": [[*k, v] for k, v in sorted(self.calls.items())],
            "errors": [[*k, v] for k, v in sorted(self.errors.items())],
            "batch": [[*k, v] for k, v in sorted(self.batch.items())],
            "principals": {g: [[*k, v] for k, v in sorted(self.principals(g).items())] for g in ("role", "arn")},
            "newest": [[*k, v] for k, v in sorted(self.newest.items())],
            "records": dict(self.records),
            "objects": dict(self.objects),
            "files": self.files,
        }


class Generator:
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
        self, out: Path, files: int, records_per_file: int = 100, spread_hours: float = 6.0, extras: bool = True
    ) -> Truth:
        """Write `files` trail files spread over accounts × regions; with `extras`, a digest file and
        an Insight file per account/region too (skipped objects)."""
        out = Path(out)
        slots = [(a, r) for a in self.accounts for r in self.regions]
        per_slot = max(1, files // len(slots))
        step = timedelta(hours=spread_hours) / per_slot
        for i in range(files):
            acct, region = slots[i % len(slots)]
            t0 = self.start + step * (i // len(slots))
            path = out / self.key(acct, region, t0)
            self.write_file(path, acct, region, t0, step, records_per_file)
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
    def _identity(self, p: Principal, caller_acct: str) -> dict[str, Any]:
        if p.kind == "AWSService":
            return {"type": "AWSService", "invokedBy": p.name}
        # one access key per user / role session, as with real credentials
        key_id = f"{'AKIA' if p.kind == 'IAMUser' else 'ASIA'}{zlib.crc32(p.arn_key.encode()):016X}"
        if p.kind == "IAMUser":
            return {
                "type": "IAMUser",
                "principalId": f"AIDA{zlib.crc32(p.name.encode()):012d}",
                "arn": p.arn_key,
                "accountId": caller_acct,
                "accessKeyId": key_id,
                "userName": p.name,
            }
        ident: dict[str, Any] = {
            "type": "AssumedRole",
            "principalId": f"AROA{zlib.crc32(p.name.encode()):012d}:{p.session}",
            "arn": p.arn_key,
            "accountId": caller_acct,
            "accessKeyId": key_id,
        }
        if self.rng.random() < 0.9:  # some producers omit sessionContext
            ident["sessionContext"] = {
                "sessionIssuer": {
                    "type": "Role",
                    "principalId": f"AROA{zlib.crc32(p.name.encode()):012d}",
                    "arn": p.role_key,
                    "accountId": caller_acct,
                    "userName": p.name,
                },
                "attributes": {"creationDate": "2026-11-01T00:00:00Z", "mfaAuthenticated": "false"},
            }
        return ident

    def _url(self, acct: str, region: str, queue: str) -> str:
        r = self.rng.random()
        if r < 0.8:
            host = f"sqs.{region}.amazonaws.com"
        elif r < 0.9:
            host = "queue.amazonaws.com" if region == "us-east-1" else f"{region}.queue.amazonaws.com"
        else:
            host = f"vpce-0a1b2c3d4e5f-abcdefgh.sqs.{region}.vpce.amazonaws.com"
        return f"https://{host}/{acct}/{queue}"

    def sqs_record(self, acct: str, region: str, t: datetime) -> dict[str, Any]:
        rng = self.rng
        name = rng.choices(self._names, self._weights)[0]
        _, category, read_only = SQS_EVENTS[name]
        queue = rng.choice(self.queues[(acct, region)])
        # one call in ten comes from another account (cross-account producers / consumers)
        caller_acct = acct if rng.random() < 0.9 else rng.choice(self.accounts)
        p = rng.choice(self.principals[caller_acct])
        arn = f"arn:aws:sqs:{region}:{acct}:{queue}"
        url = self._url(acct, region, queue)
        params: dict[str, Any] | None = {"queueUrl": url}
        response: dict[str, Any] | None = None
        label = queue
        with_resources = category == "Data" or rng.random() < 0.5
        entries = 0
        if name == "SendMessage":
            params = {"queueUrl": url, "messageBody": "HIDDEN_DUE_TO_SECURITY_REASONS"}
            if queue.endswith(".fifo"):
                params["messageGroupId"] = f"g{rng.randrange(8)}"
                params["messageDeduplicationId"] = uuid.UUID(int=rng.getrandbits(128)).hex
            response = {"messageId": str(uuid.UUID(int=rng.getrandbits(128))), "mD5OfMessageBody": "0" * 32}
        elif name == "ReceiveMessage":
            params = {"queueUrl": url, "maxNumberOfMessages": rng.choice((1, 10)), "waitTimeSeconds": 20}
        elif name in ("DeleteMessage", "ChangeMessageVisibility"):
            params = {"queueUrl": url, "receiptHandle": "AQEB" + "x" * 40}
            if name == "ChangeMessageVisibility":
                params["visibilityTimeout"] = 30
        elif name.endswith("Batch"):
            entries = rng.randint(1, 10)
            items = [{"id": str(i), "receiptHandle": "AQEB" + "y" * 40} for i in range(entries)]
            if name == "SendMessageBatch":
                items = [{"id": str(i), "messageBody": "HIDDEN_DUE_TO_SECURITY_REASONS"} for i in range(entries)]
            params = {"queueUrl": url, "entries": items}
            response = {"successful": [{"id": str(i)} for i in range(entries)], "failed": []}
        elif name in ("CreateQueue", "GetQueueUrl"):
            params = {"queueName": queue}
            with_resources = False
            if name == "CreateQueue":
                params["attributes"] = {"FifoQueue": "true"} if queue.endswith(".fifo") else {}
                response = {"queueUrl": url}
        elif name == "ListQueues":
            params = {"queueNamePrefix": "o"} if rng.random() < 0.5 else None
            label = NO_QUEUE
            with_resources = False
        elif name in ("ListMessageMoveTasks", "StartMessageMoveTask"):
            if name == "ListMessageMoveTasks" and rng.random() < 0.3:
                params, label = {}, NO_QUEUE
            else:
                params = {"sourceArn": arn}
            with_resources = False
        elif name == "CancelMessageMoveTask":
            params = {"taskHandle": "eyJ0YXNrSWQiOiIx"}
            label = NO_QUEUE
            with_resources = False
        elif name == "SetQueueAttributes":
            params = {"queueUrl": url, "attributes": {"VisibilityTimeout": "60"}}
        error = rng.choice(ERRORS) if rng.random() < self.error_rate else None
        rec: dict[str, Any] = {
            "eventVersion": "1.09",
            "userIdentity": self._identity(p, caller_acct),
            "eventTime": t.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "eventSource": "sqs.amazonaws.com",
            "eventName": name,
            "awsRegion": region,
            "sourceIPAddress": p.name if p.kind == "AWSService" else f"10.{rng.randrange(256)}.{rng.randrange(256)}.7",
            "userAgent": p.name if p.kind == "AWSService" else rng.choice(AGENTS),
            "requestParameters": params,
            "responseElements": None if error else response,
            "requestID": str(uuid.UUID(int=rng.getrandbits(128))),
            "eventID": str(uuid.UUID(int=rng.getrandbits(128))),
            "readOnly": read_only,
            "eventType": "AwsApiCall",
            "managementEvent": category == "Management",
            "recipientAccountId": acct,
            "eventCategory": category,
            "tlsDetails": {
                "tlsVersion": "TLSv1.3",
                "cipherSuite": "TLS_AES_128_GCM_SHA256",
                "clientProvidedHostHeader": f"sqs.{region}.amazonaws.com",
            },
        }
        if error:
            rec["errorCode"], rec["errorMessage"] = error
        if with_resources and label != NO_QUEUE:
            rec["resources"] = [{"accountId": acct, "type": "AWS::SQS::Queue", "ARN": arn}]
        if category == "Management" and rng.random() < 0.1:
            # records from before eventVersion 1.08 carry neither eventCategory nor managementEvent
            rec["eventVersion"] = "1.06"
            for k in ("eventCategory", "managementEvent", "readOnly", "tlsDetails"):
                rec.pop(k, None)
        if caller_acct != acct and p.kind != "AWSService":
            rec["sharedEventID"] = str(uuid.UUID(int=rng.getrandbits(128)))

        tt = self.truth
        ts = t.timestamp()
        tt.records["sqs"] += 1
        tt.calls[(acct, region, label, name, category)] += 1
        if error:
            tt.errors[(acct, region, label, name, error[0])] += 1
        if entries:
            tt.batch[(acct, region, label, name)] += entries
        if ts > tt.newest.get((acct, region), 0.0):
            tt.newest[(acct, region)] = ts
        for gran, key in (("role", p.role_key), ("arn", p.arn_key)):
            seen = tt.seen[gran][(acct, region, label)]
            if ts > seen.get(key, 0.0):
                seen[key] = ts
        return rec

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
    ap = argparse.ArgumentParser(prog="python -m exporter.generator", description=__doc__.splitlines()[0])
    ap.add_argument("--out", required=True, type=Path)
    ap.add_argument("--files", type=int, default=20)
    ap.add_argument("--records", type=int, default=100, help="records per file")
    ap.add_argument("--accounts", type=int, default=2)
    ap.add_argument("--regions", default="us-east-1,eu-west-1")
    ap.add_argument("--queues", type=int, default=8, help="queues per account and region")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--spread-hours", type=float, default=6.0)
    ap.add_argument("--no-extras", action="store_true", help="no digest / Insight files")
    ap.add_argument("--truth", type=Path, help="where to write ground truth (default OUT.truth.json)")
    a = ap.parse_args(argv)
    gen = Generator(seed=a.seed, accounts=a.accounts, regions=tuple(a.regions.split(",")), queues_per_account=a.queues)
    truth = gen.write(a.out, a.files, a.records, a.spread_hours, extras=not a.no_extras)
    (a.truth or a.out.with_name(a.out.name + ".truth.json")).write_bytes(msgspec.json.encode(truth.to_json()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
