"""Bytes written and time per checkpoint in a steady state with many principals.

    python -m bench.checkpoint [--queues 1000] [--principals 300] [--repeats 5]

Fills an `Aggregate` with `--queues` queues × `--principals` distinct principals each (one call per pair,
within the 24 h window), checkpoints it into a real `StateStore` (the first, full checkpoint), then
`--repeats` times counts one object touching a single queue and checkpoints again — what a daemon does
every `commit_interval` once its state is large. For each checkpoint it reports:

- payload: the bytes handed to SQLite (every bytes/str parameter of the transaction's statements);
- WAL: the growth of the `-wal` file (the pages SQLite actually wrote; the WAL is truncated before each);
- rows: rows inserted, replaced or deleted (`total_changes`);
- time: the wall time of `Pipeline.checkpoint` (snapshot, encoding, the transaction).

Runs against whichever `exporter` is on the path (the same script measures an older tree).
"""

from __future__ import annotations

import argparse
import sqlite3
import statistics
import sys
import tempfile
import time
from collections.abc import Iterable
from pathlib import Path
from typing import Any

from exporter.model import NO_REF, Call, Labels
from exporter.pipeline import Pipeline
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.metrics.aggregate import Aggregate
from exporter.state import Op, StateStore

ACCOUNT, REGION, T0 = "111122223333", "eu-west-1", 1.8e9


def call(queue: int, principal: int, t: float) -> Call:
    role = f"arn:aws:iam::{ACCOUNT}:role/service-role-{principal:05d}"
    labels = Labels(ACCOUNT, REGION, f"orders-{queue:04d}", "SendMessage", "Data")
    return Call(labels, None, 0, t, role, role + "/session", NO_REF)


class _Counting:
    """A connection stand-in for the ops of one transaction: counts the bytes they hand to SQLite."""

    def __init__(self, db: sqlite3.Connection) -> None:
        self.db = db
        self.payload = 0

    def execute(self, sql: str, params: Iterable[Any] = ()) -> Any:
        self.payload += sum(len(p) for p in params if isinstance(p, (bytes, str)))
        return self.db.execute(sql, params)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.db, name)


class Meter:
    def __init__(self, store: StateStore) -> None:
        self.store = store
        self.payload = 0
        self.commit = store.commit
        store.commit = self._commit  # type: ignore[method-assign]

    def _commit(self, ops: Iterable[Op]) -> None:
        counting: list[_Counting] = []

        def wrap(op: Op) -> Op:
            def run(db: sqlite3.Connection) -> None:
                if not counting:
                    counting.append(_Counting(db))
                op(counting[0])  # type: ignore[arg-type]

            return run

        self.commit([wrap(op) for op in ops])
        self.payload = counting[0].payload if counting else 0


def measure(pipeline: Pipeline, store: StateStore, meter: Meter, wal: Path) -> dict[str, float]:
    store.query("PRAGMA wal_checkpoint(TRUNCATE)")
    before = store.query("SELECT total_changes()")[0][0]
    t = time.perf_counter()
    assert pipeline.checkpoint(force=True)
    took = time.perf_counter() - t
    rows = store.query("SELECT total_changes()")[0][0] - before
    return {"payload": meter.payload, "wal": wal.stat().st_size if wal.exists() else 0, "rows": rows, "s": took}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--queues", type=int, default=1000)
    ap.add_argument("--principals", type=int, default=300, help="distinct principals per queue")
    ap.add_argument("--repeats", type=int, default=5, help="one-queue checkpoints after the full one")
    args = ap.parse_args(argv)
    total = args.queues * args.principals
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "state.db"
        store = StateStore(path)
        agg = Aggregate(max_queues=args.queues, max_principals_per_queue=args.principals * 2, max_principals=total * 2)
        pipeline = Pipeline([agg], store, SelfMetrics())
        meter = Meter(store)
        wal = path.with_name(path.name + "-wal")
        t0 = time.perf_counter()
        for q in range(args.queues):
            agg.add_calls([call(q, p, T0 + p) for p in range(args.principals)], T0 + 600, "bench")
        print(f"filled {args.queues:,} queues × {args.principals:,} principals in {time.perf_counter() - t0:.1f} s")
        first = measure(pipeline, store, meter, wal)
        runs = []
        for i in range(args.repeats):
            t = T0 + 1000 + i
            agg.add_calls([call(i % args.queues, args.principals + i, t)], t + 60, "bench")
            pipeline.stage([StateStore.object_op(f"object-{i}", t)])
            runs.append(measure(pipeline, store, meter, wal))
        size = path.stat().st_size
        store.close()

    def show(name: str, m: dict[str, float]) -> None:
        print(
            f"{name:<28} payload {m['payload']:>12,.0f} B   WAL {m['wal']:>12,.0f} B   "
            f"rows {m['rows']:>6,.0f}   {m['s'] * 1000:8.1f} ms"
        )

    show("first checkpoint (full)", first)
    for i, m in enumerate(runs):
        show(f"one queue touched, #{i + 1}", m)
    med = {k: statistics.median(m[k] for m in runs) for k in runs[0]}
    show("one queue touched, median", med)
    print(f"state file {size:,} B; payload ratio one-queue/full {med['payload'] / first['payload']:.4f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
