"""Build the instrumented extension (tests/fuzz/instrumented.py) and fuzz each target, then replay the corpus
looking for leaks. Exit status 0 only when no run found anything.

    python tests/fuzz/run.py [--time SECONDS] [--runs N] [--work DIR] [--target scan|encode|all] [-- FLAGS]

SECONDS is per target (libFuzzer's -max_total_time); FLAGS go to libFuzzer as they are (e.g. -jobs=2,
-max_len=65536). DIR (default $TMPDIR/cloudtrail-sqs-exporter-fuzz) keeps the build, each target's
growing corpus (seeded from tests/fuzz/corpus/TARGET, which is only read) and the artifacts (crash-*,
timeout-*, oom-*)."""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
import instrumented  # noqa: E402

TARGETS = ("scan", "encode")
# what a sanitizer, libFuzzer or an oracle prints when it finds something
FINDING = re.compile(
    r"ERROR: (AddressSanitizer|LeakSanitizer|UndefinedBehaviorSanitizer|libFuzzer)|runtime error:|"
    r"Uncaught Python exception|Test unit written to|LEAK:"
)


@dataclass
class Outcome:
    target: str
    ok: bool
    runs: int
    coverage: int  # libFuzzer's cov: at the end (edges of the C)
    log: str


def fuzz(target: str, env: dict[str, str], work: Path, seconds: int, runs: int | None, flags: list[str]) -> Outcome:
    corpus, artifacts = work / "corpus" / target, work / "artifacts" / target
    corpus.mkdir(parents=True, exist_ok=True)
    artifacts.mkdir(parents=True, exist_ok=True)
    seeds = HERE / "corpus" / target
    cmd = [sys.executable, str(HERE / "fuzz.py"), target, f"-max_total_time={seconds}", "-max_len=8192"]
    cmd += [f"-artifact_prefix={artifacts}/", "-rss_limit_mb=4096", "-timeout=30", "-print_final_stats=1"]
    cmd += [f"-runs={runs}"] if runs is not None else []
    cmd += [*flags, str(corpus), str(seeds)]  # new inputs go to the first directory only
    r = subprocess.run(cmd, env={**os.environ, **env}, capture_output=True, text=True, cwd=work)
    log = r.stdout + r.stderr
    done = re.findall(r"stat::number_of_executed_units:\s*(\d+)", log)
    cov = re.findall(r"\bcov: (\d+)", log)
    ok = r.returncode == 0 and not FINDING.search(log) and bool(done)
    return Outcome(target, ok, int(done[-1]) if done else 0, int(cov[-1]) if cov else 0, log)


def leaks(target: str, env: dict[str, str], work: Path, sample: int | None = None) -> Outcome:
    """The target's kept corpus and the inputs the runs added (all, or an even `sample` of them),
    replayed for leaks."""
    added = sorted(p for p in (work / "corpus" / target).iterdir() if p.is_file())
    if sample is not None and len(added) > sample:
        added = added[:: -(-len(added) // sample)]
    cmd = [sys.executable, str(HERE / "fuzz.py"), target, "--leaks", str(HERE / "corpus" / target)]
    cmd += [str(p) for p in added]
    # no quarantine here (it is what finds a use after free while fuzzing): freed blocks are reused as
    # by glibc, so the C's pointer-keyed tuple cache meets the same addresses again and settles as it
    # does in production (see targets.leaked)
    asan = env["ASAN_OPTIONS"] + ":quarantine_size_mb=0:thread_local_quarantine_size_kb=0"
    r = subprocess.run(cmd, env={**os.environ, **env, "ASAN_OPTIONS": asan}, capture_output=True, text=True, cwd=work)
    log = r.stdout + r.stderr
    m = re.search(r"leak check: (\d+) inputs", log)
    ok = r.returncode == 0 and not FINDING.search(log) and m is not None
    return Outcome(f"{target} (leaks)", ok, int(m.group(1)) if m else 0, 0, log)


def run(work: Path, targets: list[str], seconds: int, runs: int | None, flags: list[str]) -> list[Outcome]:
    env = instrumented.build(work / "build")
    out = []
    for t in targets:
        out.append(fuzz(t, env, work, seconds, runs, flags))
        out.append(leaks(t, env, work))
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--time", type=int, default=300, help="seconds per target (default 300)")
    p.add_argument("--runs", type=int, default=None, help="stop each target after this many inputs")
    p.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "cloudtrail-sqs-exporter-fuzz")
    p.add_argument("--target", choices=[*TARGETS, "all"], default="all")
    p.add_argument("flags", nargs="*", help="libFuzzer flags, after --")
    a = p.parse_args()
    work = a.work.resolve()
    targets = list(TARGETS) if a.target == "all" else [a.target]
    start = time.monotonic()
    results = run(work, targets, a.time, a.runs, a.flags)
    for o in results:
        (work / f"{o.target.split()[0]}{'-leaks' if 'leaks' in o.target else ''}.log").write_text(o.log)
        cov = f", cov {o.coverage}" if o.coverage else ""
        print(f"{o.target}: {'ok' if o.ok else 'FINDING'} ({o.runs} inputs{cov})")
        if not o.ok:
            print("\n".join(o.log.splitlines()[-60:]))
    print(f"{time.monotonic() - start:.0f}s; artifacts in {work / 'artifacts'}")
    return 0 if all(o.ok for o in results) else 1


if __name__ == "__main__":
    raise SystemExit(main())
