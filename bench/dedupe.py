"""Memory and state size of `metrics.dedupe_window` at a given event rate.

    python -m bench.dedupe [--events 1000000] [--hours 1] [--window 2h] [--again-after 600]

Feeds synthetic eventIDs through `exporter.dedupe.Dedupe` with a real `StateStore` on a simulated clock,
the way the pipeline does: deliveries of `--batch` events, a checkpoint (ops in the transaction, then
`committed()`) every simulated second. Each event arrives a second time `--again-after` seconds later
(the complete path bringing what the fresh path already counted; 0: once only). Reports the peak RSS
growth of this process, the state file's size (with its WAL), the rows kept, and the wall time.
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

from exporter.config import parse_duration
from exporter.dedupe import Dedupe
from exporter.state import StateStore

_MOD = 1 << 128
_ODD = 0x9E3779B97F4A7C15F39CC0605CEDC835  # odd: k → k·_ODD mod 2¹²⁸ is one-to-one, so every id differs
_SALT = 0x5EED


def rss_kib() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


class Clock:
    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def run(events_per_hour: int, hours: float, window: float, again_after: float, batch: int, work: Path) -> dict:
    path = work / "state.db"
    store = StateStore(path)
    clock = Clock(1.8e9)
    d = Dedupe(window, store, clock=clock)
    total = int(events_per_hour * hours)
    seconds = int(hours * 3600)
    per_second = total / seconds
    lag = int(again_after)

    def ids(second: int) -> list[str]:
        """The ids of the events of one simulated second, made again on demand (held by nobody but
        Dedupe, so the RSS figure is dedupe's)."""
        if not 0 <= second < seconds:
            return []
        lo, hi = int(second * per_second), int((second + 1) * per_second)
        return [str(uuid.UUID(int=(k * _ODD + _SALT) % _MOD)) for k in range(lo, hi)]

    base = rss_kib()
    t0 = time.monotonic()
    made = new = dup = 0
    for s in range(seconds + lag + 1):
        clock.t = 1.8e9 + s
        fresh = ids(s)
        made += len(fresh)
        arriving = fresh + (ids(s - lag) if lag else [])
        for i in range(0, len(arriving), batch):
            flags = d.new(arriving[i : i + batch])
            k = sum(flags)
            new += k
            dup += len(flags) - k
        store.commit(d.ops())
        d.committed()
    wall = time.monotonic() - t0
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    rows = store.query("SELECT count(*) FROM events")[0][0]
    store.close()
    size = sum(p.stat().st_size for p in (path, path.with_name(path.name + "-wal")) if p.exists())
    return {
        "events": made,
        "counted": new,
        "duplicates": dup,
        "rows": rows,
        "state_bytes": size,
        "peak_rss_delta_kib": peak - base,
        "wall_seconds": wall,
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--events", type=int, default=1_000_000, help="events per simulated hour")
    ap.add_argument("--hours", type=float, default=1.0)
    ap.add_argument("--window", default="2h")
    ap.add_argument("--again-after", type=float, default=600.0, help="seconds until the second copy (0: none)")
    ap.add_argument("--batch", type=int, default=100, help="events per delivery")
    args = ap.parse_args(argv)
    window = parse_duration(args.window)
    with tempfile.TemporaryDirectory(prefix="dedupe-bench-") as tmp:
        r = run(args.events, args.hours, window, args.again_after, args.batch, Path(tmp))
    print(
        f"dedupe_window {args.window}, {args.events:,} events/hour for {args.hours:g} h"
        f" (each again after {args.again_after:g} s):\n"
        f"  {r['events']:,} events, {r['counted']:,} counted, {r['duplicates']:,} duplicates dropped\n"
        f"  state file {r['state_bytes'] / 1e6:.1f} MB ({r['rows']:,} ids kept),"
        f" peak RSS +{r['peak_rss_delta_kib'] / 1024:.1f} MiB, {r['wall_seconds']:.0f} s"
    )
    return 0 if r["counted"] == r["events"] else 1


if __name__ == "__main__":
    sys.exit(main())
