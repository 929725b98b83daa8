"""Coverage-guided fuzzing of the decoder with atheris (libFuzzer):

    python tests/fuzz_decoder.py -runs=200000 [corpus_dir]

Any exception escaping `extract` is a crash, and so is the C log-body encoder disagreeing with the
Python one on any input it accepts. The seeds are the shared fixtures."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from exporter.pipeline import extract

from exporter import config
from exporter.sinks.logs import LogSink
from exporter.sinks.metrics import Aggregate


class NullTransport:
    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        return True, False, 0, ""

    def close(self) -> None:
        pass


SINK = LogSink(config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9"), Aggregate(), transport=NullTransport())
NATIVE = SINK.native


def same_body(raw: bytes) -> None:
    if NATIVE is None:
        return
    try:
        fast = NATIVE(raw)
    except ValueError:
        return  # refused: the Python encoder decides
    SINK.native = None
    try:
        slow = SINK.fields(raw)
    finally:
        SINK.native = NATIVE
    if fast != slow:
        raise AssertionError(f"C and Python encoders disagree on {raw[:200]!r}")


def one_input(data: bytes) -> None:
    res, events = extract(data)
    if res.outcome not in ("ok", "skipped", "failed") or res.sqs != len(events):
        raise AssertionError(res)
    same_body(data)
    for raw, _ in events:
        same_body(raw)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
