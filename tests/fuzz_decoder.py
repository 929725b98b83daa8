"""Coverage-guided fuzzing of the decoder with atheris (libFuzzer):

    python tests/fuzz_decoder.py -runs=200000 [corpus_dir]

Any exception escaping `extract` is a crash, and so is either C accelerator (the scanner, the log
encoder) disagreeing with its Python twin on any input it accepts. The seeds are the shared fixtures."""

from __future__ import annotations

import sys

import atheris

with atheris.instrument_imports():
    from exporter.decode.delivery import extract, scanned

from exporter import config
from exporter.decode.record import call_event
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.logs import LogSink


class NullTransport:
    def send(self, body: bytes, timeout: float) -> tuple[bool, bool, int, str]:
        return True, False, 0, ""

    def close(self) -> None:
        pass


SINK = LogSink(config.LogsConfig(enabled=True, endpoint="http://127.0.0.1:9"), SelfMetrics(), transport=NullTransport())
NATIVE = SINK.encoding.native


def same_body(raw: bytes) -> None:
    if NATIVE is None:
        return
    try:
        fast = NATIVE(raw)
    except ValueError:
        return  # refused: the Python encoder decides
    SINK.encoding.native = None
    try:
        slow = SINK.encoding.fields(raw)
    finally:
        SINK.encoding.native = NATIVE
    if fast != slow:
        raise AssertionError(f"C and Python encoders disagree on {raw[:200]!r}")


def same_calls(data: bytes, res: object, events: list) -> None:
    """The C scanner, when it takes a file, must count what the general path counts."""
    got = scanned(data, True)
    if got is None:
        return
    if (
        got[0] != res
        or got[2] != [raw for raw, _ in events]
        or [call_event(c) for c in got[1]] != [ev for _, ev in events]
    ):
        raise AssertionError(f"C scanner and general path disagree on {data[:200]!r}")


def one_input(data: bytes) -> None:
    res, events = extract(data)
    if res.outcome not in ("ok", "skipped", "failed") or res.sqs != len(events):
        raise AssertionError(res)
    same_calls(data, res, events)
    same_body(data)
    for raw, _ in events:
        same_body(raw)


if __name__ == "__main__":
    atheris.Setup(sys.argv, one_input)
    atheris.Fuzz()
