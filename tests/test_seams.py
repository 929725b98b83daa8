"""The seams of the data path: sources → pipeline → sinks, one way only."""

from __future__ import annotations

import ast
from datetime import timedelta
from pathlib import Path
from typing import Any

import msgspec

from exporter.decode.delivery import decode, decode_records
from exporter.filters import Filters
from exporter.generator import Generator
from exporter.pipeline import Pipeline
from exporter.selfmetrics import SelfMetrics
from exporter.sinks.metrics import Aggregate

PACKAGE = Path(__file__).parents[1] / "exporter"


def imports_of(path: Path) -> set[str]:
    """The exporter modules a module imports, as dotted names relative to the package (`sinks.metrics`)."""
    tree = ast.parse(path.read_text())
    here = path.relative_to(PACKAGE).with_suffix("").parts[:-1]
    out: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = list(here[: len(here) - node.level + 1])
            elif node.module and node.module.startswith("exporter"):
                base = []
            else:
                continue
            module = (node.module or "").removeprefix("exporter").lstrip(".")
            parts = [*base, *module.split(".")] if module else base
            out.add(".".join(parts))
            out.update(".".join([*parts, a.name]) for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name.removeprefix("exporter.") for a in node.names if a.name.startswith("exporter."))
    return out


def modules(folder: str) -> list[Path]:
    return sorted((PACKAGE / folder).glob("*.py"))


def sink_units() -> dict[str, list[Path]]:
    """Each sink and its files: a module of sinks/, or a package with everything under it."""
    out: dict[str, list[Path]] = {}
    for p in sorted((PACKAGE / "sinks").iterdir()):
        if p.suffix == ".py" and p.stem != "__init__":
            out[p.stem] = [p]
        elif (p / "__init__.py").exists():
            out[p.name] = sorted(p.rglob("*.py"))
    return out


def test_dependencies_run_one_way() -> None:
    for path in modules("sources"):
        bad = {m for m in imports_of(path) if m == "pipeline" or m.startswith(("pipeline.", "sinks"))}
        assert not bad, f"{path.name} imports {bad}"
    # a sink is a module of sinks/ or a package holding its own parts; none imports another
    units = sink_units()
    assert len(units["logs"]) > 1
    for name, files in units.items():
        others = {f"sinks.{s}" for s in units if s != name}
        for path in files:
            bad = {m for m in imports_of(path) if any(m == o or m.startswith(o + ".") for o in others)}
            assert not bad, f"{path.relative_to(PACKAGE)} imports {bad}"
    for path in modules("decode"):
        bad = {m for m in imports_of(path) if m.startswith(("sinks", "pipeline"))}
        assert not bad, f"decode/{path.name} imports {bad}"
    bad = {m for m in imports_of(PACKAGE / "pipeline.py") if m.startswith("sinks")}
    assert not bad, f"pipeline.py imports {bad}"


def cloudtrail_records(n: int) -> list[bytes]:
    g = Generator(seed=5, queues_per_account=6)
    return [msgspec.json.encode(r) for r in g.records(g.accounts[0], g.regions[0], g.start, timedelta(hours=1), n)]


def test_records_decode_as_their_log_events_document() -> None:
    """What a CloudWatch source hands over as records counts as the `logEvents` document it replaced."""
    records = cloudtrail_records(300)
    records[7] = b"{not json"
    records[9] = b""
    events = [{"id": str(i), "timestamp": 0, "message": r.decode()} for i, r in enumerate(records)]
    doc = msgspec.json.encode({"logEvents": events})
    for keep_raw in (False, True):
        want = decode(doc, keep_raw=keep_raw)
        got = decode_records(records, keep_raw)
        assert got.result == want.result
        assert got.result.invalid == 2 and got.result.sqs > 0
        assert got.calls == want.calls and got.raws == want.raws


class Recorder:
    wants_raw = True

    def __init__(self) -> None:
        self.calls: list[Any] = []
        self.raws: list[Any] = []

    def consume(self, calls: list[Any], raws: list[Any], observed: float, source: str) -> None:
        assert len(calls) == len(raws)
        self.calls += calls
        self.raws += raws


def test_filters_apply_before_every_sink() -> None:
    records = cloudtrail_records(500)
    filters = Filters(exclude_queues="^orders")
    agg, seen, counters = Aggregate(), Recorder(), SelfMetrics()
    res = Pipeline([agg, seen], counters=counters, filters=filters).process_records(records, "cw")
    assert res.sqs > len(seen.calls) > 0
    assert all(filters.keep(c.labels.account_id, c.labels.queue) for c in seen.calls)
    assert sum(agg.calls.values()) == len(seen.calls)
    assert not any(k[2].startswith("orders") for k in agg.calls)
    assert counters.records[("cw", "sqs")] == res.sqs  # records read count before the filters
