"""What the generator writes from: the SQS APIs and their weights, callers, and the ground truth it keeps."""

from __future__ import annotations

from collections import Counter, defaultdict
from dataclasses import dataclass, field
from typing import Any

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
    # access map: granularity → (account, region, queue, principal, outcome) → calls (no cap applied)
    principal_calls: dict[str, Counter] = field(default_factory=lambda: {"role": Counter(), "arn": Counter()})
    # (account, region, queue, caller account, event name) → calls from another account
    cross_account: Counter = field(default_factory=Counter)
    policy_changes: Counter = field(default_factory=Counter)  # (account, region, queue, exposure)
    encryption_changes: Counter = field(default_factory=Counter)  # (account, region, queue, encryption)

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
            "principal_calls": {g: [[*k, v] for k, v in sorted(c.items())] for g, c in self.principal_calls.items()},
            "cross_account": [[*k, v] for k, v in sorted(self.cross_account.items())],
            "policy_changes": [[*k, v] for k, v in sorted(self.policy_changes.items())],
            "encryption_changes": [[*k, v] for k, v in sorted(self.encryption_changes.items())],
        }
