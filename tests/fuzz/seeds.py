"""Writes the seed corpus (tests/fuzz/corpus/{scan,encode}/seed-*) from the shipped sample, the test
fixtures, generator output and a few odd cases. Regression inputs (crash-*, named by the finding) are
added by hand and never rewritten here.

    python tests/fuzz/seeds.py
"""

from __future__ import annotations

import gzip
import json
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path.insert(0, str(ROOT))

from exporter.generator import Generator  # noqa: E402

MAX = 6_000  # bytes per seed: libFuzzer mutates small inputs much faster

ODD_DELIVERIES = [
    b'{"Records":[]}',
    b'{"Records":[{}]}',
    b' {"Records" : [ {"eventSource":"sqs.amazonaws\\u002ecom","eventName":"SendMessage"} ] } ',
    b'{"Records":[{"eventSource":"sqs.amazonaws.com","eventSource":"sqs.amazonaws.com"}]}',
    b'{"Records":[{"eventSource":"sqs.amazonaws.com","eventName":"\\ud83d\\ude00","awsRegion":null}]}',
    b'{"Records":[{"eventSource":"sqs.amazonaws.com","eventType":"AwsCloudTrailInsight"}],"x":[1e999,-0.0]}',
    b'{"logEvents":[{"message":"{\\"eventSource\\":\\"sqs.amazonaws.com\\"}"}]}',
    b'{"eventSource":"sqs.amazonaws.com"}\n{"eventSource":"s3.amazonaws.com"}\n',
]
ODD_RECORDS = [
    b"{}",
    b'{"":null,"\\u0000":1}',
    b'{"eventID":"a","eventID":"b"}',
    b'{"sourceIPAddress":"\\ud800","userAgent":"\\u00e9\\u4e2d","requestParameters":{"entries":[{"Id":"1"}]}}',
    b'{"requestParameters":{"messageBody":"x","MessageBody":"y","receiptHandle":"r","Id":[1,2.5e-3,true]}}',
    b'{"readOnly":true,"userIdentity":{"type":"AssumedRole","accessKeyId":"AKIA"},"n":-12345678901234567890}',
    b'{"a":{"b":{"c":{"d":{"e":{"f":[[[[[[[[{}]]]]]]]]}}}}}}',
]


def write(kind: str, name: str, data: bytes) -> None:
    (HERE / "corpus" / kind / f"seed-{name}").write_bytes(data)


def deliveries() -> list[tuple[str, bytes]]:
    """Small trail files: each real one cut to its first few records (and under MAX bytes)."""
    out = []
    sample = sorted((ROOT / "exporter" / "sample" / "trail").rglob("*.json.gz"))
    with tempfile.TemporaryDirectory() as tmp:
        Generator(seed=7, error_rate=0.3).write(Path(tmp), 4, 40)
        generated = sorted(Path(tmp).rglob("*.json.gz"))
        for i, p in enumerate(sample[::3] + generated):
            doc = json.loads(gzip.decompress(p.read_bytes()))
            if isinstance(doc.get("Records"), list):
                keep = doc["Records"][:4]
                while keep and len(json.dumps({"Records": keep})) > MAX:
                    keep.pop()
                doc = {"Records": keep}
            out.append((f"trail-{i}", json.dumps(doc, separators=(",", ":")).encode()[:MAX]))
    for p in sorted((ROOT / "tests" / "fixtures").rglob("*")):
        if p.is_file() and p.suffix in (".json", ".ndjson") and p.stat().st_size <= MAX:
            out.append((f"fixture-{p.stem[-40:]}", p.read_bytes()))
    return out + [(f"odd-{i}", d) for i, d in enumerate(ODD_DELIVERIES)]


def records(files: list[tuple[str, bytes]]) -> list[tuple[str, bytes]]:
    """One record per seed: the SQS ones of the deliveries above, of every event name seen once."""
    out, seen = [], set()
    for _, data in files:
        try:
            recs = json.loads(data).get("Records")
        except (ValueError, AttributeError):
            continue
        for r in recs if isinstance(recs, list) else []:
            if not isinstance(r, dict):
                continue
            key = (r.get("eventSource"), r.get("eventName"), r.get("errorCode") is None)
            if key in seen:
                continue
            seen.add(key)
            raw = json.dumps(r, separators=(",", ":")).encode()
            if len(raw) <= MAX:
                out.append((f"record-{len(out)}", raw))
    return out + [(f"odd-{i}", d) for i, d in enumerate(ODD_RECORDS)]


def main() -> int:
    for kind in ("scan", "encode"):
        d = HERE / "corpus" / kind
        d.mkdir(parents=True, exist_ok=True)
        for old in d.glob("seed-*"):
            old.unlink()
    files = deliveries()
    for name, data in files:
        write("scan", name, data)
    for name, data in records(files):
        write("encode", name, data)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
