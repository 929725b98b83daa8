"""The benchmark: one command, one core, ratios against a floor and a baseline measured in the same run.

    python bench/run.py             # ~600k-record corpus (built once, cached in bench/out/), 3 repeats
    python bench/run.py --quick     # small corpus, seconds (the CI smoke test)
    python bench/run.py --big       # also: peak RSS replaying ~1 GB of trail files touching 1,000 queues
    python bench/run.py --soak 10   # also: RSS of `run` over 10 minutes on a directory that keeps filling

Rates are records per CPU second of the measured code (user + sys), so other load on the machine
moves them less than wall time would; wall-clock rates are reported next to them. Figures are medians.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import corpus, inproc, procs
from bench.corpus import OUT, Corpus

TARGETS = {
    "c_over_a": 0.15,
    "c_over_b": 3.0,
    "d_logs_per_s": 50_000,
    "startup_s": 1.5,
    "big_rss_mb": 150,
    "scrape_ms": 100,
    "soak_growth_pct": 10,
}


def machine() -> dict[str, Any]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "cpu_model": model,
        "nproc": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
    }


def med(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def measure_inproc(c: Corpus, repeats: int) -> dict[str, Any]:
    blobs = [p.read_bytes() for p in c.paths]
    out: dict[str, Any] = {}
    for label, fn in (
        ("a_reader", inproc.floor_reader),
        ("a_decompressobj", inproc.floor_decompressobj),
        ("b_naive", inproc.naive),
    ):
        runs = [inproc.timed(lambda fn=fn: fn(blobs)) for _ in range(repeats)]
        out[label] = {"cpu": med([r[0] for r in runs]), "wall": med([r[1] for r in runs])}
    # the floor is the faster of the two streaming variants
    best = min(("a_reader", "a_decompressobj"), key=lambda k: out[k]["cpu"])
    out["a"] = {**out[best], "variant": best}
    out["b"] = out["b_naive"]
    return out


def measure_replay(
    c: Corpus,
    repeats: int,
    tag: str,
    config: Path | None = None,
    sink: Any = None,
    floor: Callable[[], float] | None = None,
) -> dict:
    """`replay` of the corpus, `repeats` times; with `floor`, the floor is measured again right before and
    right after each repeat (CPU seconds), so each repeat has a ratio to a floor taken under the same
    machine conditions (their mean: this machine's speed can change within the seconds of one repeat)."""
    cmd = [*procs.exporter_cmd(), "replay", str(c.root)]
    if config is not None:
        cmd += ["--config", str(config)]
    runs = []
    for i in range(repeats):
        before = sink.counts()["records"] if sink else 0
        floor_before = floor() if floor is not None else 0.0
        r = procs.run(cmd, OUT / "logs", f"{tag}-{i}")
        floor_after = floor() if floor is not None else 0.0
        if r.rc != 0:
            raise RuntimeError(f"{' '.join(cmd)} exited {r.rc}:\n{r.stderr[-2000:]}")
        sqs = procs.value(r.stdout, "cloudtrail_sqs_exporter_records_total", outcome="sqs")
        if sqs != c.sqs:
            raise RuntimeError(f"replay counted {sqs} SQS records, the generator wrote {c.sqs}")
        run: dict[str, Any] = {"wall": r.wall, "cpu": r.cpu, "maxrss_mb": r.maxrss_mb}
        if floor is not None:
            run["floor_cpu"] = floor_before
            run["floor_cpu_after"] = floor_after
            # same records: the ratio of rates is the inverse ratio of times
            run["c_over_a"] = (floor_before + floor_after) / 2 / r.cpu
        if sink is not None:
            time.sleep(0.2)
            run["received"] = sink.counts()["records"] - before
            for outcome in ("exported", "dropped", "failed"):
                run[outcome] = procs.value(r.stdout, "cloudtrail_sqs_exporter_log_records_total", outcome=outcome)
        runs.append(run)
    res = {k: med([r[k] for r in runs]) for k in runs[0]}
    res["runs"] = runs
    return res


def measure_logs(c: Corpus, repeats: int, cpu: int | None, decode_all: bool = False) -> dict[str, Any]:
    """(d): the receiver counts records from the protobuf framing and decodes one request in 16 to check
    the count; with `decode_all` it decodes every request (see bench/otlp_sink.py for why that differs)."""
    try:
        import exporter.sinks.logs.sink  # noqa: F401
    except ImportError as exc:
        return {"skipped": f"logs sink not available: {exc}"}
    sink = procs.OtlpSink(cpu, decode_all)
    try:
        cfg = OUT / "logs.yaml"
        cfg.write_text(
            f"log_level: warning\nlogs: {{enabled: true, endpoint: 'http://127.0.0.1:{sink.port}', protocol: grpc}}\n"
        )
        res = measure_replay(c, repeats, "d-all" if decode_all else "d", cfg, sink)
        got = sink.counts()
        if got["mismatches"] or not got["decoded"]:
            raise RuntimeError(f"the receiver's framing count disagrees with its protobuf decode: {got}")
        res["receiver_decoded"] = got["decoded"]
        return res
    finally:
        sink.close()


def measure_startup(one: Corpus, repeats: int) -> dict[str, Any]:
    cmd = [*procs.exporter_cmd(), "replay", str(one.root)]
    times = [procs.time_to_first_byte(cmd) for _ in range(repeats)]
    return {"wall": med(times), "min": min(times), "runs": times}


def rate(n: int, secs: float) -> float:
    return n / secs if secs > 0 else float("nan")


def report(res: dict[str, Any]) -> str:
    c: dict[str, Any] = res["corpus"]
    n = c["records"]
    rows: list[tuple[str, str, str, str, str]] = []

    def row(name: str, figure: str, wall: str = "", target: str = "", ok: bool | None = None) -> None:
        rows.append((name, figure, wall, target, "" if ok is None else ("met" if ok else "NOT met")))

    a, b, cc = res["a"], res["b"], res["c"]
    ra, rb, rc = rate(n, a["cpu"]), rate(n, b["cpu"]), rate(n, cc["cpu"])
    row("(a) gunzip floor, isal streaming", f"{ra:,.0f} rec/s", f"{rate(n, a['wall']):,.0f}")
    row("(b) naive gzip+json+Counter", f"{rb:,.0f} rec/s", f"{rate(n, b['wall']):,.0f}")
    row("(c) replay, whole process", f"{rc:,.0f} rec/s", f"{rate(n, cc['wall']):,.0f}")
    row("    (c)/(a)", f"{rc / ra:.3f}", f"{a['wall'] / cc['wall']:.3f}", "≥ 0.15", rc / ra >= TARGETS["c_over_a"])
    if "c_over_a" in cc:  # each replay against floors measured just before and after it: less exposed to drift
        paired = cc["c_over_a"]
        spread = ", ".join(f"{r['c_over_a']:.3f}" for r in cc["runs"])
        row("    (c)/(a), paired per repeat", f"{paired:.3f}", f"({spread})", "≥ 0.15", paired >= TARGETS["c_over_a"])
    row("    (c)/(b)", f"{rc / rb:.2f}", f"{b['wall'] / cc['wall']:.2f}", "≥ 3", rc / rb >= TARGETS["c_over_b"])
    row("    peak RSS (c)", f"{cc['maxrss_mb']:.0f} MB")
    row("    start-up to first byte", f"{res['startup']['wall']:.2f} s", "", "≤ 1.5 s", res["startup"]["wall"] <= 1.5)
    d = res.get("d", {})
    if "skipped" in d:
        row("(d) replay + OTel logs", d["skipped"])
    elif d:
        rd = rate(c["sqs"], d["cpu"])
        # records the sink dropped or failed, or that never reached the receiver, whichever is more
        drops = max(d["dropped"] + d["failed"], c["sqs"] - d["received"])
        ok = rd >= TARGETS["d_logs_per_s"] and drops == 0
        row("(d) replay + OTel logs (gRPC)", f"{rd:,.0f} logs/s", f"{rate(c['sqs'], d['wall']):,.0f}", "≥ 50k", ok)
        row("    received / dropped", f"{d['received']:,.0f} / {drops:,.0f}", "", "0 drops", drops == 0)
        row("    peak RSS (d)", f"{d['maxrss_mb']:.0f} MB")
    full = res.get("d_decode_all", {})
    if full and "skipped" not in full:
        row("    (d), receiver decoding every request", f"{rate(c['sqs'], full['cpu']):,.0f} logs/s")
    s = res["scrape"]
    row(
        f"/metrics scrape, {s['series']:,} series",
        f"{s['text']['ms']:.1f} ms",
        f"gzip {s['text_gzip']['ms']:.1f}, OM {s['openmetrics']['ms']:.1f}",
        "< 100 ms",
        max(s["text"]["ms"], s["text_gzip"]["ms"], s["openmetrics"]["ms"]) < TARGETS["scrape_ms"],
    )
    row("    promtool check metrics", s["promtool"])
    if "big" in res:
        g = res["big"]
        row(
            f"--big: {g['compressed_gb']:.2f} GB gz ({g['uncompressed_gb']:.1f} GB JSON), {g['queues']:,} queues",
            f"{g['maxrss_mb']:.0f} MB peak RSS",
            f"{rate(g['records'], g['cpu']):,.0f} rec/s",
            "≤ 150 MB",
            g["maxrss_mb"] <= TARGETS["big_rss_mb"],
        )
    if "soak" in res:
        k = res["soak"]
        if "growth_mb" in k:
            row(
                f"--soak {k['minutes']:g} min, {k['files']:,} files: RSS warm / last / max",
                f"{k['rss_warm_mb']:.0f} / {k['rss_last_mb']:.0f} / {k['rss_max_mb']:.0f} MB",
                f"{k['growth_mb']:+.1f} MB ({k['growth_pct']:+.0f}%)",
                "flat (≤ +10%)",
                k["growth_pct"] <= TARGETS["soak_growth_pct"],
            )
    head = ("measurement", "figure (per CPU second)", "wall clock", "target", "")
    widths = [max(len(r[i]) for r in [*rows, head]) for i in range(5)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(head, widths, strict=True))]
    lines.append("  ".join("-" * w for w in widths))
    lines += ["  ".join(v.ljust(w) for v, w in zip(r, widths, strict=True)).rstrip() for r in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="small corpus, one repeat: a smoke test in seconds")
    ap.add_argument("--big", action="store_true", help="also replay ~1 GB of trail files touching 1,000 queues")
    ap.add_argument("--soak", type=float, metavar="MINUTES", help="also soak `run` on a filling directory")
    ap.add_argument("--repeat", type=int, help="repeats per measurement (default 3, 1 with --quick)")
    ap.add_argument("--cpu", type=int, default=0, help="the core to measure on (default 0)")
    a = ap.parse_args(argv)
    repeats = a.repeat or (1 if a.quick else 3)
    cpus = sorted(os.sched_getaffinity(0))
    core = a.cpu if a.cpu in cpus else cpus[0]
    other = next((c for c in cpus if c != core), None)
    os.sched_setaffinity(0, {core})  # this process and every child it starts (except the OTLP sink)

    main_c = corpus.build(corpus.QUICK if a.quick else corpus.MAIN)
    one = corpus.build(corpus.ONE)
    res: dict[str, Any] = {
        "mode": "quick" if a.quick else "full",
        "machine": machine() | {"measured_on_cpu": core},
        "command": " ".join(["python bench/run.py", *(argv if argv is not None else sys.argv[1:])]),
        "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "repeats": repeats,
        "corpus": {
            "name": main_c.root.parent.name,
            "files": main_c.files,
            "records": main_c.records,
            "sqs": main_c.sqs,
            "compressed_mb": main_c.compressed_bytes / 1e6,
            "uncompressed_mb": main_c.uncompressed_bytes / 1e6,
        },
        "targets": TARGETS,
    }
    print(
        f"corpus: {main_c.records:,} records ({main_c.sqs:,} SQS) in {main_c.files} files, "
        f"{main_c.compressed_bytes / 1e6:.0f} MB gz / {main_c.uncompressed_bytes / 1e6:.0f} MB JSON",
        flush=True,
    )
    print("(a)/(b) in-process …", flush=True)
    res.update(measure_inproc(main_c, repeats))
    print("(c) replay …", flush=True)
    blobs = [p.read_bytes() for p in main_c.paths]
    floor_fn = getattr(inproc, "floor_" + res["a"]["variant"].removeprefix("a_"))
    res["c"] = measure_replay(main_c, repeats, "c", floor=lambda: inproc.timed(lambda: floor_fn(blobs))[0])
    res["startup"] = measure_startup(one, max(3, repeats))
    print("(d) replay with OTel logs …", flush=True)
    res["d"] = measure_logs(main_c, repeats, other)
    res["d_decode_all"] = measure_logs(main_c, repeats, other, decode_all=True)
    print("scrape …", flush=True)
    res["scrape"] = inproc.scrape(inproc.scrape_aggregate(), repeats=3 if a.quick else 15)
    if a.big:
        big = corpus.build(corpus.BIG_BASE)
        print("--big replay …", flush=True)
        r = measure_replay(big, 1, "big")
        r.update(
            records=big.records,
            compressed_gb=big.compressed_bytes / 1e9,
            uncompressed_gb=big.uncompressed_bytes / 1e9,
            queues=_queues(big),
        )
        res["big"] = r
    if a.soak:
        from bench.soak import soak

        print(f"--soak {a.soak:g} min …", flush=True)
        res["soak"] = soak(corpus.build(corpus.SOAK_POOL), a.soak, OUT / "soak")
    res["finished"] = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    table = report(res)
    print()
    print(table)
    m = res["machine"]
    if a.quick:
        print("\n--quick: a smoke run; start-up dominates on so small a corpus, so the ratios mean nothing here")
    print(f"\n{m['cpu_model']}, nproc {m['nproc']}, Python {m['python']}; measured on CPU {core}; median of {repeats}")
    path = OUT / ("results-quick.json" if a.quick else "results.json")
    path.write_text(json.dumps(res, indent=1) + "\n")
    print(f"results: {path}")
    if "soak" in res:  # its own file too: a later --quick run (the CI smoke test) must not lose it
        soak_path = OUT / "results-soak.json"
        soak_path.write_text(json.dumps({k: res[k] for k in ("machine", "command", "started", "soak")}, indent=1))
        print(f"soak: {soak_path}")
    return 0


def _queues(c: Corpus) -> int:
    truth = json.loads((c.root.parent / "truth.json").read_text())
    return len({tuple(row[:3]) for row in truth["calls"] if row[2] != "(none)"})


if __name__ == "__main__":
    raise SystemExit(main())
