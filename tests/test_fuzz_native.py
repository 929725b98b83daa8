"""Coverage-guided fuzzing of the C extension (tests/fuzz/): a short run of each target on the build with
libFuzzer's instrumentation and ASan + UBSan, then its corpus replayed for leaks; and, on the ordinary
build, the kept corpus (seeds and regression inputs) through the same oracles."""

from __future__ import annotations

import sys
from pathlib import Path

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
