"""Mutated trail files through the C scanner and encoder, for a build with AddressSanitizer and
UndefinedBehaviorSanitizer (tests/test_native_asan.py runs it; any report aborts the process):

    python tests/asan_mutate.py ITERATIONS SEED FILE...
"""

from __future__ import annotations

import contextlib
import gzip
import random
import sys

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
    hasher = (lambda v: "sha256:x", b"key")
    args = (2, 2, 2, ((b"receiptHandle", 2), (b"entries", 1)), hasher, msgspec.json.decode)
    for _ in range(iterations):
        b = mutate(rng, rng.choice(docs))
        for keep in (True, False):
            scanner.scan(b, keep)
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            _native.encode_body(b, *args)
        with contextlib.suppress(ValueError, TypeError, OverflowError):
            _native.encode_record(b, *args, 1, 2, b"", b"", b"")
    print("ok", iterations, _native.__file__)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
