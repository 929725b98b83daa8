"""Mutated trail files through the C scanner and encoder, for a build with AddressSanitizer and
UndefinedBehaviorSanitizer (tests/test_native_asan.py runs it; any report aborts the process):

    python tests/asan_mutate.py ITERATIONS SEED FILE...
"""

from __future__ import annotations

import contextlib
import gzip
import random
import sys
from types import SimpleNamespace

import msgspec

from exporter import _native
from exporter.decode import scan

MARKS = [b'"', b"\\", b"{", b"[", b"]", b"\\u", b"\\ud83d", b"\xff", b"\xc3", b",", b":", b"null", b"}", b"1e999"]


def mutate(rng: random.Random, doc: bytes) -> bytes:
    d = bytearray(doc)
    for _ in range(rng.randint(1, 8)):
        if not d:
            break
        i = rng.randrange(len(d))
        op = rng.random()
        if op < 0.4:
            d[i] = rng.randrange(256)
        elif op < 0.6:
            del d[i : i + rng.randint(1, 50)]
        elif op < 0.8:
            d[i:i] = rng.choice(MARKS)
        else:
            del d[i:]
    return bytes(d)


def main() -> int:
    iterations, seed, paths = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3:]
    rng = random.Random(seed)
    docs = []
    for p in paths:
        data = open(p, "rb").read()  # noqa: SIM115
        docs.append((gzip.decompress(data) if data[:2] == b"\x1f\x8b" else data)[:200_000])
    scanner = _native.Scanner(scan.derived, scan.principals_of, scan.parse_time)
    encoder = _native.LogEncoder(
        SimpleNamespace(
            source_ip=2,
            user_agent=2,
            access_key_id=2,
            params=((b"receiptHandle", 2), (b"entries", 1)),
            hasher=lambda v: "sha256:x",
            hash_key=b"key",
            decode=msgspec.json.decode,
            batch_records=100,
            batch_bytes=1 << 20,
        )
    )
    for _ in range(iterations):
        b = mutate(rng, rng.choice(docs))
        for keep in (True, False):
            with contextlib.suppress(scan.Declined):  # an Identity Center caller: the msgspec path's
                scanner.scan(b, keep)
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            encoder.body(b)
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            encoder.record(b, 1, 2, (b"", b"", b""))
    print("ok", iterations, _native.__file__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
