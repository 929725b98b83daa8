"""(c), (c)/(a) and (d) of bench/run.py for several source trees, paired: the same corpus, runs alternating.

    python -m bench.logs_paired TREE [TREE ...] [--rounds 5] [--corpus DIR]

Each TREE is a checkout with its extension built in place (`python setup.py build_ext --inplace`); its
`cloudtrail-sqs-exporter replay` runs with PYTHONPATH=TREE, on CPU 0, once without logs (c) and once with
OTLP/gRPC logs to bench/otlp_sink.py on CPU 1 (d), as bench/run.py runs them. The trees take turns within a
round (the order reversed every other round) because this machine's speed drifts from minute to minute.
Prints, per tree, the median CPU seconds (user + sys) of (c) and (d), (c)/(a) as bench/run.py pairs it (the
gunzip floor (a), in this process on CPU 0, measured right before and right after each (c) run), (d) in log
records per CPU second, and the median of (d) - (c) per round: what the log path costs on top of the metrics.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench import inproc, procs
from bench.corpus import OUT, trail_files


def cpu_of(cmd: list[str], tree: str, last: list[float]) -> float:
    """CPU seconds of one run: the growth of this process's children's total."""
    env = procs.clean_env()
    env["PYTHONPATH"] = tree
    subprocess.run(cmd, cwd=tree, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)
    ru = resource.getrusage(resource.RUSAGE_CHILDREN)
    total = ru.ru_utime + ru.ru_stime
    cpu, last[0] = total - last[0], total
    return cpu


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("trees", nargs="+")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--corpus", help="a corpus directory of bench/out/corpus (default: the full one)")
    args = ap.parse_args(argv)
    found = sorted((OUT / "corpus").glob("main-*"))
    if not args.corpus and not found:
        ap.error("no corpus in bench/out/corpus: run `python bench/run.py` once, or give --corpus")
    corpus = Path(args.corpus) if args.corpus else found[0]
    sqs = json.loads((corpus / "meta.json").read_text())["sqs"]
    replay = ["taskset", "-c", "0", sys.executable, "-m", "exporter", "replay", str(corpus)]
    runs: dict[tuple[str, str], list[float]] = {(t, m): [] for t in args.trees for m in "cda"}
    blobs = [p.read_bytes() for p in trail_files(corpus / "trail")]

    def floor() -> float:
        return inproc.timed(lambda: inproc.floor_reader(blobs))[0]

    last = [0.0]
    tmp = Path(tempfile.mkdtemp())
    sink = procs.OtlpSink(1)
    # the floor on the core the replays run on (after the receiver started: its threads would inherit it)
    os.sched_setaffinity(0, {0})
    try:
        cfg = tmp / "logs.yaml"
        cfg.write_text(
            f"log_level: warning\nlogs: {{enabled: true, endpoint: 'http://127.0.0.1:{sink.port}', protocol: grpc}}\n"
        )
        for r in range(args.rounds):
            for tree in args.trees if r % 2 == 0 else args.trees[::-1]:
                a = floor()
                runs[(tree, "c")].append(cpu_of(replay, tree, last))
                runs[(tree, "a")].append((a + floor()) / 2 / runs[(tree, "c")][-1])
                before = sink.counts()["records"]
                runs[(tree, "d")].append(cpu_of([*replay, "--config", str(cfg)], tree, last))
                time.sleep(0.2)  # the receiver's last request may still be counting
                got = sink.counts()["records"] - before
                if got != sqs:
                    raise RuntimeError(f"{tree}: the receiver got {got} log records of {sqs}")
    finally:
        sink.close()
        shutil.rmtree(tmp, ignore_errors=True)
    for tree in args.trees:
        c, d = runs[(tree, "c")], runs[(tree, "d")]
        extra = statistics.median(b - a for a, b in zip(c, d, strict=True))
        print(
            f"{tree}: (c) {statistics.median(c):.2f} s, (c)/(a) {statistics.median(runs[(tree, 'a')]):.3f} "
            f"({', '.join(f'{x:.3f}' for x in runs[(tree, 'a')])}), (d) {statistics.median(d):.2f} s = "
            f"{sqs / statistics.median(d):,.0f} logs/s (repeats {', '.join(f'{sqs / x:,.0f}' for x in d)}); "
            f"(d) - (c) {extra:.2f} s"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
