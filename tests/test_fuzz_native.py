"""Coverage-guided fuzzing of the C extension (tests/fuzz/): a short run of each target on the build with
libFuzzer's instrumentation and ASan + UBSan, then its corpus replayed for leaks; and, on the ordinary
build, the kept corpus (seeds and regression inputs) through the same oracles."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

FUZZ = Path(__file__).parent / "fuzz"
sys.path.insert(0, str(FUZZ))

import targets  # noqa: E402

SECONDS, RUNS = 30, 200_000  # per target: whichever comes first
LEAK_SAMPLE = 60  # of the inputs the run added, replayed for leaks with the kept corpus


def corpus(target: str) -> list[Path]:
    return sorted(p for p in (FUZZ / "corpus" / target).iterdir() if p.is_file())


def test_corpus_is_small_and_has_both_targets() -> None:
    files = corpus("scan") + corpus("encode")
    assert corpus("scan") and corpus("encode")
    assert sum(p.stat().st_size for p in files) < 1 << 20


@pytest.mark.skipif(not targets.loaded(), reason="the C extension is not built")
@pytest.mark.parametrize("target", ["scan", "encode"])
def test_kept_inputs_pass_the_oracles(target: str) -> None:
    """Every seed and regression input: the C agrees with Python or declines (no sanitizers here; the
    slow test below replays them under ASan and UBSan as libFuzzer's first step)."""
    oracle = targets.scan_oracle if target == "scan" else targets.encode_oracle
    for p in corpus(target):
        oracle(p.read_bytes())


@pytest.mark.skipif(not targets.loaded(), reason="the C extension is not built")
def test_the_oracles_see_a_wrong_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    """A scanner or an encoder that answers differently from Python is an AssertionError (a finding)."""
    delivery = next(d for d in (p.read_bytes() for p in corpus("scan")) if (targets.scanned(d, True) or [0, 0])[1])
    record = (FUZZ / "corpus" / "encode" / "seed-record-0").read_bytes()
    targets.scan_oracle(delivery)
    targets.encode_oracle(record)

    def one_call_short(data: bytes, keep_raw: bool) -> Any:
        res, calls, raws = real_scanned(data, keep_raw)
        res.sqs -= 1
        return res, calls[1:], raws[1:]

    real_scanned = targets.scanned
    with monkeypatch.context() as m:
        m.setattr(targets, "scanned", one_call_short)
        with pytest.raises(AssertionError):
            targets.scan_oracle(delivery)
    enc = targets._encoding(targets.pairs()[0].fast)
    body, record_of = enc.native, enc.native_record

    def body_with_a_byte_more(raw: bytes) -> tuple[bytes, bytes]:
        kv, attrs = body(raw)
        return kv + b"\0", attrs

    def record_with_a_byte_more(*args: Any) -> bytes:
        return bytes(record_of(*args)) + b"\0"

    for name, wrong in (("native", body_with_a_byte_more), ("native_record", record_with_a_byte_more)):
        with monkeypatch.context() as m:
            m.setattr(enc, name, wrong)
            with pytest.raises(AssertionError):
                targets.encode_oracle(record)
    targets.encode_oracle(record)


def test_the_leak_check_sees_memory_kept_per_call() -> None:
    import tracemalloc

    kept: list[bytes] = []
    tracemalloc.start()
    try:
        assert targets.leaked(lambda d: kept.append(d * 50), b"xy") >= 100
        assert targets.leaked(lambda d: None, b"xy") == 0
    finally:
        tracemalloc.stop()


@pytest.mark.slow
def test_short_fuzzing_run_finds_nothing(tmp_path: Path) -> None:
    pytest.importorskip("atheris")
    import instrumented
    import run

    try:
        env = instrumented.build(tmp_path / "build")
    except instrumented.Unavailable as exc:
        pytest.skip(str(exc))
    for target in run.TARGETS:
        o = run.fuzz(target, env, tmp_path, SECONDS, RUNS, [])
        assert o.ok, o.log[-6000:]
        # libFuzzer's own, fed by the instrumented extension of this build (not atheris' Python coverage)
        assert "INFO: Using preloaded libfuzzer" in o.log
        assert f"fuzzing {target} in {tmp_path / 'build' / 'tree' / 'exporter'}" in o.log
        assert "inline 8-bit counters" in o.log and o.coverage > 100, o.log[:3000]
        assert o.runs > len(corpus(target)), o.log[-3000:]
        leaks = run.leaks(target, env, tmp_path, sample=LEAK_SAMPLE)
        assert leaks.ok and leaks.runs >= len(corpus(target)), leaks.log[-6000:]
