"""Every delivery shape, built from public records (tests/fixtures/README.md), read with exact counts: as a
file, gzipped, and concatenated with the others (one gzip member each, as Firehose writes them)."""

from __future__ import annotations

import gzip
import json
import logging
import random
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from util import parse_metrics, series

from exporter.decode import scan, shapes
from exporter.decode.delivery import decode, extract, scanned
from exporter.decode.reader import read_delivery
from exporter.decode.record import NO_QUEUE, Identity, Issuer, OnBehalfOf, SessionContext, principals
from exporter.sources.file import trail_files

SHAPES = Path(__file__).parent / "fixtures" / "shapes"
BOM = b"\xef\xbb\xbf"

# fixture → (outcome, sqs, other, invalid)
EXPECTED = {
    # 5 SQS guide management events, the SQS guide's SendMessage, the CloudTrail guide's EC2 example
    "array-of-records.json": ("ok", 6, 1, 0),
    # NDJSON whose lines are whole {"Records": [...]} documents
    "documents.ndjson": ("ok", 5, 0, 0),
    # the SQS guide's five files as published (pretty-printed), back to back with no separator
    "documents-concatenated.json": ("ok", 5, 0, 0),
    # a real envelope (1 S3 record), a real CONTROL_MESSAGE, a DATA_MESSAGE with SendMessage, CreateQueue, EC2
    "cwl-envelopes.ndjson": ("ok", 2, 2, 0),
    "cwl-envelopes.firehose.gz": ("ok", 2, 2, 0),
    # the CloudWatch Logs guide's example as published: its three messages are cut short (invalid JSON)
    "cwl-docs-example.json": ("ok", 0, 0, 3),
    "cwl-control-only.json": ("skipped", 0, 0, 0),
    "eventbridge-s3-createbucket.json": ("ok", 0, 1, 0),
    "eventbridge-sqs.ndjson": ("ok", 6, 0, 0),
    "sns-eventbridge-sqs.json": ("ok", 1, 0, 0),
    # the CLI's ConsoleLogin example and the five SQS management events as CloudTrailEvent strings
    "lookup-events.json": ("ok", 5, 1, 0),
    "bom-document.json": ("ok", 1, 0, 0),
    "bom-panther.ndjson": ("ok", 1, 1, 0),
    "identity-center-users.json": ("ok", 3, 0, 0),
    "aws-account-callers.json": ("ok", 2, 0, 0),
    "listqueues-wildcard.json": ("ok", 1, 0, 0),
}


def counts(data: bytes) -> tuple[str, int, int, int]:
    res, _ = extract(data)
    return res.outcome, res.sqs, res.other, res.invalid


def plain(name: str) -> bytes:
    data = (SHAPES / name).read_bytes()
    return gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data


def test_every_shape_fixture_has_an_expectation() -> None:
    names = {p.name for p in SHAPES.iterdir() if p.is_file() and p.suffix != ".py"}
    assert names == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_as_a_file(name: str) -> None:
    assert counts((SHAPES / name).read_bytes()) == EXPECTED[name]


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_shape_gzipped(name: str) -> None:
    assert counts(gzip.compress(plain(name))) == EXPECTED[name]


def _total(names: list[str]) -> tuple[str, int, int, int]:
    return "ok", *(sum(EXPECTED[n][i] for n in names) for i in (1, 2, 3))  # type: ignore[return-value]


def test_shapes_concatenated_one_gzip_member_each() -> None:
    names = sorted(EXPECTED)
    blob = b"".join(gzip.compress(plain(n)) for n in names)
    assert counts(blob) == _total(names)


def test_shapes_concatenated_without_separators() -> None:
    names = sorted(EXPECTED)
    assert counts(b"".join(plain(n).strip() for n in names)) == _total(names)
    assert counts(b"\n".join(plain(n) for n in names)) == _total(names)


def test_control_message_is_skipped_not_a_record() -> None:
    d = read_delivery((SHAPES / "cwl-control-only.json").read_bytes())
    assert (d.outcome, d.records, d.invalid) == ("skipped", [], 0)
    assert d.reason is not None and "CONTROL_MESSAGE" in d.reason
    u = shapes.unwrap(plain("cwl-envelopes.ndjson"))
    assert (u.skipped, u.kinds, len(u.records)) == (1, {"CONTROL_MESSAGE": 1}, 4)


def test_bom_everywhere() -> None:
    doc = plain("bom-document.json")
    assert doc.startswith(BOM)
    assert counts(doc) == ("ok", 1, 0, 0)
    assert counts(gzip.compress(doc)) == ("ok", 1, 0, 0)
    # the first NDJSON record is not lost to the BOM
    assert counts(plain("bom-panther.ndjson")) == ("ok", 1, 1, 0)
    # files joined together, each with its BOM
    assert counts(doc + b"\n" + doc + doc) == ("ok", 3, 0, 0)


def test_a_broken_value_costs_only_itself() -> None:
    doc = plain("bom-document.json")
    line = json.dumps(json.loads(doc[3:])).encode()
    assert counts(line + b"\n{broken\nnot json either\n" + line + b"\n") == ("ok", 2, 0, 1)
    assert counts(doc + b"\n{broken\n" + doc) == ("ok", 2, 0, 1)
    # a document cut short (the way a half-written file looks) is a failed object, not a few records
    assert counts(doc[: len(doc) // 2]) == ("failed", 0, 0, 0)


@pytest.mark.parametrize(
    "junk",
    [
        b"7\x93\x01\n[\x00garbage\n{\xff",  # a digit reads as a JSON value; lines resume at `[` and `{`
        b'\x00\x01 12 \x02 -3 \n{"a": \n[1, 2] junk',
        random.Random(8).randbytes(4096) + b"\n5\n{\x00",
    ],
)
def test_junk_with_json_looking_bytes_is_a_failed_file(junk: bytes) -> None:
    res, _ = extract(junk)
    assert res.outcome == "failed" and res.sqs == 0, (res.outcome, res.invalid)


def test_random_bytes_are_always_a_failed_file() -> None:
    rng = random.Random(20261130)
    outcomes = {extract(rng.randbytes(4096))[0].outcome for _ in range(300)}
    assert outcomes == {"failed"}


@pytest.mark.parametrize(
    ("data", "outcome"),
    [
        (b"[]", "skipped"),
        (b'["a", 1]', "skipped"),
        (b'{"version": "0", "detail-type": "EC2 Instance State-change Notification", "detail": {}}', "skipped"),
        (b'{"Type": "Notification", "Message": "{\\"s3Bucket\\": \\"b\\", \\"s3ObjectKey\\": [\\"k\\"]}"}', "skipped"),
        (b'{"Events": []}', "ok"),
        (b'{"Records": []}{"Records": []}', "ok"),
    ],
)
def test_containers_without_records(data: bytes, outcome: str) -> None:
    assert counts(data) == (outcome, 0, 0, 0)


def test_lookup_events_without_a_record_string_is_invalid() -> None:
    assert counts(b'{"Events": [{"EventId": "x"}, {"CloudTrailEvent": ""}]}') == ("ok", 0, 0, 2)


def test_concatenation_is_linear() -> None:
    """Thousands of values back to back: each is read once more than a lone one, never the rest each time."""
    line = plain("documents.ndjson").splitlines()[0]
    blob = line * 20_000  # ~14 MB, no separators
    u = shapes.unwrap(blob)
    assert (len(u.records), u.broken) == (20_000, 0)


# -- the fast paths decline every shape but a plain {"Records": [...]} document ---------------------------


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_fast_paths_decline_or_agree(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = (SHAPES / name).read_bytes()
    general, events = extract(data, keep_raw=True)
    want = sorted((e.queue, e.event_name, e.principal_role, e.principal_arn) for _, e in events)
    for native in (True, False):
        if not native:
            monkeypatch.setattr(scan, "scanner", None)
        fast = decode(data, keep_raw=False)
        assert (fast.result.outcome, fast.result.sqs, fast.result.other, fast.result.invalid) == (
            general.outcome,
            general.sqs,
            general.other,
            general.invalid,
        )
        got = sorted((c.labels.queue, c.labels.event_name, c.principal_role, c.principal_arn) for c in fast.calls)
        assert got == want


@pytest.mark.skipif(scan.scanner is None, reason="the C scanner is not built")
@pytest.mark.parametrize(
    "data",
    [
        BOM + b'{"Records": []}',
        b'[{"eventSource": "sqs.amazonaws.com"}]',
        b'{"Records": []}{"Records": []}',
        b'{"Records": []}\n{"Records": []}\n',
        b'{"detail-type": "AWS API Call via CloudTrail", "detail": {"eventSource": "sqs.amazonaws.com"}}',
    ],
)
def test_scanner_declines_other_shapes(data: bytes) -> None:
    assert scan.scanner is not None and scan.scanner.scan(data, False) is None


# -- identity ---------------------------------------------------------------------------------------------


def _principals(name: str) -> tuple[set[str | None], set[str | None]]:
    _, events = extract((SHAPES / name).read_bytes())
    return {e.principal_role for _, e in events}, {e.principal_arn for _, e in events}


def test_identity_center_users_are_told_apart() -> None:
    role, arn = _principals("identity-center-users.json")
    store = "arn:aws:identitystore::123456789012:identitystore/d-9067642ac7"
    want = {f"{store}/user/544894e8-80c1-707f-60e3-3ba6510dfac1", f"{store}/user/94d00cd8-e9e6-4810-b177-b08e84775435"}
    assert role == arn == want


@pytest.mark.skipif(scan.scanner is None, reason="the C scanner is not built")
def test_scanner_rows_decline_identity_center_callers() -> None:
    """The scanner's identity tuple carries no onBehalfOf: such a file goes the msgspec way."""
    data = (SHAPES / "identity-center-users.json").read_bytes()
    assert scan.scanner is not None
    with pytest.raises(scan.Declined):
        scan.scanner.scan(data, False)
    assert scanned(data, False) is None
    assert decode(data, keep_raw=False).result.sqs == 3


def test_aws_account_callers_keyed_on_account_and_principal() -> None:
    role, arn = _principals("aws-account-callers.json")
    want = {"account:123456789012/AIDAJ45Q7YFFAREXAMPLE", "account:111122223333/AIDAJ45Q7YFFAREXAMPLE"}
    assert role == arn == want


def test_wildcard_queue_arn_names_no_queue() -> None:
    _, events = extract((SHAPES / "listqueues-wildcard.json").read_bytes())
    [(_, ev)] = events
    assert (ev.queue, ev.queue_arn, ev.event_name) == (NO_QUEUE, None, "ListQueues")


def _role_session() -> Identity:
    issuer = SessionContext(sessionIssuer=Issuer(arn="arn:aws:iam::123456789012:role/R"))
    return Identity(
        "AssumedRole", "arn:aws:sts::123456789012:assumed-role/R/s", "AROAX:s", "123456789012", None, None, issuer
    )


# the table in docs/identity.md, row by row
@pytest.mark.parametrize(
    ("ident", "role", "arn"),
    [
        (
            Identity("IAMUser", "arn:aws:iam::1:user/A", "AIDA", "1", "A"),
            "arn:aws:iam::1:user/A",
            "arn:aws:iam::1:user/A",
        ),
        (_role_session(), "arn:aws:iam::123456789012:role/R", "arn:aws:sts::123456789012:assumed-role/R/s"),
        (Identity("Root", "arn:aws:iam::1:root", "1", "1"), "arn:aws:iam::1:root", "arn:aws:iam::1:root"),
        (
            Identity("FederatedUser", "arn:aws:sts::1:federated-user/Bob", "1:Bob", "1"),
            "arn:aws:sts::1:federated-user/Bob",
            "arn:aws:sts::1:federated-user/Bob",
        ),
        (Identity("AWSAccount", None, "AROAX:sess", "2"), "account:2/AROAX", "account:2/AROAX:sess"),
        (Identity("AWSService", invokedBy="sns.amazonaws.com"), "sns.amazonaws.com", "sns.amazonaws.com"),
        (
            Identity(
                "IdentityCenterUser",
                accountId="1",
                onBehalfOf=OnBehalfOf("u-1", "arn:aws:identitystore::1:identitystore/d-1"),
            ),
            "arn:aws:identitystore::1:identitystore/d-1/user/u-1",
            "arn:aws:identitystore::1:identitystore/d-1/user/u-1",
        ),
        (
            Identity("IdentityCenterUser", accountId="1", onBehalfOf=OnBehalfOf("u-1")),
            "account:1/user/u-1",
            "account:1/user/u-1",
        ),
        (Identity("Role", "arn:aws:iam::1:role/R", "AROAX", "1"), "arn:aws:iam::1:role/R", "arn:aws:iam::1:role/R"),
        (Identity("Unknown", None, "x", "1", "someone"), "x", "x"),
        (Identity(accountId="1", invokedBy="AWS Internal"), "AWS Internal", "AWS Internal"),
        (Identity("Unknown", accountId="1"), "account:1", "account:1"),
    ],
)
def test_principal_table(ident: Identity, role: str, arn: str) -> None:
    assert principals(ident) == (role, arn)


# -- directory replay -------------------------------------------------------------------------------------

# fixture → the name it is replayed under: upper case, odd and no extensions, gzip without .gz
ODD_NAMES = {
    "array-of-records.json": "attack-sim.JSON",
    "documents.ndjson": "docs.NDJSON",
    "cwl-envelopes.firehose.gz": "firehose-1-2026-11-30-00-00-00-abcd",
    "cwl-control-only.json": "control.log",
    "eventbridge-sqs.ndjson": "eventbridge.txt",
    "sns-eventbridge-sqs.json": "sns_message",
    "lookup-events.json": "lookup-events.out",
    "bom-document.json": "windows-saved.Json",
    "cwl-docs-example.json": "cw/example.LOG",
}


def test_trail_files_reads_every_delivery_and_reports_the_rest(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for src, dst in ODD_NAMES.items():
        (tmp_path / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHAPES / src, tmp_path / dst)
    (tmp_path / "README").write_text("notes, not JSON\n")
    (tmp_path / "empty.dat").write_bytes(b"")
    (tmp_path / ".hidden.json").write_text("{}")
    skipped: dict[str, int] = {}
    with caplog.at_level(logging.INFO, logger="exporter.sources.file"):
        found = {str(p.relative_to(tmp_path)) for p in trail_files(tmp_path, skipped)}
    assert found == set(ODD_NAMES.values())
    assert skipped == {"not JSON or gzip": 1, "empty": 1}
    assert any("skipped 2 files (1 empty, 1 not JSON or gzip)" in r.getMessage() for r in caplog.records)


def test_replay_directory_of_mixed_shapes(tmp_path: Path) -> None:
    for src, dst in ODD_NAMES.items():
        (tmp_path / dst).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(SHAPES / src, tmp_path / dst)
    (tmp_path / "README").write_text("notes, not JSON\n")
    r = subprocess.run(
        [sys.executable, "-m", "exporter", "replay", str(tmp_path)], capture_output=True, text=True, timeout=120
    )
    assert r.returncode == 0, r.stderr
    m = parse_metrics(r.stdout)
    want = {k: sum(EXPECTED[n][i] for n in ODD_NAMES) for i, k in ((1, "sqs"), (2, "other"), (3, "invalid"))}
    assert series(m, "cloudtrail_sqs_exporter_records_total", "outcome") == {(k,): v for k, v in want.items()}
    objects = series(m, "cloudtrail_sqs_exporter_objects_total", "outcome")
    assert objects == {("ok",): len(ODD_NAMES) - 1, ("skipped",): 1, ("failed",): 0}
    calls = series(m, "cloudtrail_sqs_api_calls_total", "queue")
    assert sum(calls.values()) == want["sqs"]
