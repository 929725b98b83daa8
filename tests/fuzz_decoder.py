"""Coverage-guided fuzzing of the decoder with atheris (libFuzzer):

    python tests/fuzz_decoder.py -runs=200000 [corpus_dir]

Any exception escaping `extract` is a crash. The seeds are the shared fixtures."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from exporter.pipeline import extract


def one_input(data: bytes) -> None:
    res, events = extract(data)
    if res.outcome not in ("ok", "skipped", "failed") or res.sqs != len(events):
        raise AssertionError(res)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
