"""The C scanner alone on a 200-file corpus: `Scanner.scan` over every file in memory, best of N.

    python -m bench.scan [--so PATH] [--repeat 7]

`--so` loads another build of `exporter._native` (e.g. one compiled from an older `_native.c`), to
compare two builds of the scanner on the same corpus, alternating runs because the machine drifts.
"""

from __future__ import annotations

import argparse
import importlib.util
import sys
import time

from isal import igzip


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--so", help="a build of exporter._native to load instead of the installed one")
    ap.add_argument("--repeat", type=int, default=7)
    args = ap.parse_args(argv)
    if args.so:
        spec = importlib.util.spec_from_file_location("exporter._native", args.so)
        assert spec is not None and spec.loader is not None
        mod = importlib.util.module_from_spec(spec)
        sys.modules["exporter._native"] = mod
        spec.loader.exec_module(mod)
    from bench.corpus import Spec, build
    from exporter.decode import scan

    if scan.scanner is None:
        print("the C scanner is not built (python setup.py build_ext --inplace)", file=sys.stderr)
        return 2
    corpus = build(Spec("scan200", files=200, records_per_file=1000, extras=False))
    datas = [igzip.decompress(p.read_bytes()) for p in corpus.paths]
    best, calls = float("inf"), 0
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        calls = sum(len(scan.scanner.scan(d, False)[0]) for d in datas)
        best = min(best, time.perf_counter() - t0)
    mb = sum(map(len, datas)) / 1e6
    print(f"{len(datas)} files, {mb:.0f} MB, {calls:,} SQS calls: best of {args.repeat} {best * 1000:.0f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
