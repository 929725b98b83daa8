"""One realistic SQS CloudTrail record at a time, with the ground truth updated from the generator's own model."""

from __future__ import annotations

import random
import uuid
import zlib
from datetime import datetime
from typing import Any

import msgspec

from .model import AGENTS, ERRORS, NO_QUEUE, SQS_EVENTS, Principal, Truth


class SqsRecords:
    """The record-making half of Generator: needs `rng`, `accounts`, `queues`, `principals`, `truth`."""

    rng: random.Random
    accounts: list[str]
    error_rate: float
    queues: dict[tuple[str, str], list[str]]
    principals: dict[str, list[Principal]]
    truth: Truth
    _names: list[str]
    _weights: list[int]

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
        exposure = encryption = None
        if name in ("SetQueueAttributes", "CreateQueue") and params is not None:
            exposure, encryption = self._access_attributes(acct, params.setdefault("attributes", {}))
        elif name == "AddPermission":
            grantee = acct if rng.random() < 0.5 else self._foreign_account()
            params = {"queueUrl": url, "label": f"grant-{rng.randrange(100)}", "aWSAccountIds": [grantee]}
            params["actions"] = ["SendMessage"]
            exposure = "account" if grantee == acct else "cross_account"
        elif name == "RemovePermission":
            params = {"queueUrl": url, "label": f"grant-{rng.randrange(100)}"}
            exposure = "removed"
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
        outcome = "error" if error else "success"
        for gran, key in (("role", p.role_key), ("arn", p.arn_key)):
            seen = tt.seen[gran][(acct, region, label)]
            if ts > seen.get(key, 0.0):
                seen[key] = ts
            tt.principal_calls[gran][(acct, region, label, key, outcome)] += 1
        if p.kind != "AWSService" and caller_acct != acct:
            tt.cross_account[(acct, region, label, caller_acct, name)] += 1
        if not error and exposure is not None:
            tt.policy_changes[(acct, region, label, exposure)] += 1
        if not error and encryption is not None:
            tt.encryption_changes[(acct, region, label, encryption)] += 1
        return rec

    def _foreign_account(self) -> str:
        """An account outside the trail (a partner or vendor account)."""
        return f"{999900000000 + self.rng.randrange(10000):012d}"

    def _access_attributes(self, acct: str, attrs: dict[str, Any]) -> tuple[str | None, str | None]:
        """Sometimes a policy and / or encryption setting in CreateQueue / SetQueueAttributes attributes;
        returns the exposure and encryption they set (None where they set none)."""
        rng = self.rng
        exposure = encryption = None
        r = rng.random()
        if r < 0.3:
            kind = rng.choice(("public", "cross_account", "account", "removed", "unknown", "conditioned"))
            exposure = "account" if kind == "conditioned" else kind
            stmt: dict[str, Any] = {"Effect": "Allow", "Action": "sqs:SendMessage", "Resource": "*"}
            if kind == "public":
                stmt["Principal"] = rng.choice(("*", {"AWS": "*"}))
            elif kind == "cross_account":
                stmt["Principal"] = {"AWS": f"arn:aws:iam::{self._foreign_account()}:root"}
            elif kind == "account":
                stmt["Principal"] = {"AWS": [f"arn:aws:iam::{acct}:role/app-worker", acct]}
            elif kind == "conditioned":
                stmt["Principal"] = {"Service": "sns.amazonaws.com"} if rng.random() < 0.5 else "*"
                stmt["Condition"] = {"ArnEquals": {"aws:SourceArn": f"arn:aws:sns:us-east-1:{acct}:topic"}}
            if kind == "removed":
                attrs["Policy"] = ""
            elif kind == "unknown":
                attrs["Policy"] = '{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", '
            else:
                attrs["Policy"] = msgspec.json.encode({"Version": "2012-10-17", "Statement": [stmt]}).decode()
        r = rng.random()
        if r < 0.1:
            attrs["KmsMasterKeyId"] = "alias/aws/sqs"
            encryption = "sse_kms"
        elif r < 0.2:
            attrs["SqsManagedSseEnabled"] = "true"
            encryption = "sse_sqs"
        elif r < 0.25:
            attrs["SqsManagedSseEnabled"] = "false"
            encryption = "none"
        return exposure, encryption
