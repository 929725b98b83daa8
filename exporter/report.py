"""What `replay` tells a person at the end (stderr), and the exit code it ends with.

stdout stays pure exposition or JSON, so `replay … > metrics.prom` keeps working; the summary is for the
terminal (or a CI log) and names what went wrong with the first few failed inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

from rich.console import Console
from rich.table import Table

EXIT_OK = 0
EXIT_SOME_FAILED = 1
EXIT_USAGE = 2
EXIT_NOTHING_READ = 3

SHOW_FAILURES = 5
TOP = 5


@dataclass
class ReplayReport:
    read: int = 0  # inputs decoded (outcome ok)
    skipped: int = 0  # inputs holding no records (digests, Insight summaries, unknown shapes)
    failed: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)  # (input, reason), the first few
    records: Counter[str] = field(default_factory=Counter)  # sqs / other / invalid
    calls: int = 0  # SQS calls counted (after filters)
    seconds: float = 0.0
    top_calls: list[tuple[str, int]] = field(default_factory=list)
    top_errors: list[tuple[str, int]] = field(default_factory=list)

    def add_failure(self, name: str, reason: str | None) -> None:
        self.failed += 1
        if len(self.failures) < SHOW_FAILURES:
            self.failures.append((name, reason or "unreadable"))

    @property
    def inputs(self) -> int:
        return self.read + self.skipped + self.failed

    def exit_code(self) -> int:
        """0: every input read; 1: some failed (what was read is still printed); 3: nothing could be
        read — no input found, or every input failed."""
        if self.inputs == 0 or self.failed == self.inputs:
            return EXIT_NOTHING_READ
        return EXIT_SOME_FAILED if self.failed else EXIT_OK


def top_queues(counts: Iterable[tuple[tuple[str, ...], int]], n: int = TOP) -> list[tuple[str, int]]:
    """The `n` queues with the highest totals from (labels, count) pairs whose labels start with
    account, region, queue."""
    per_queue: Counter[str] = Counter()
    for labels, count in counts:
        per_queue[f"{labels[2]} ({labels[0]}, {labels[1]})"] += count
    return per_queue.most_common(n)


def summarize(
    report: ReplayReport, calls: Mapping[tuple[str, ...], int], errors: Mapping[tuple[str, ...], int]
) -> None:
    report.calls = sum(calls.values())
    report.top_calls = top_queues(calls.items())
    report.top_errors = top_queues(errors.items())


def render(report: ReplayReport, stream: TextIO) -> None:
    """The closing summary: a few lines of text and two small tables."""
    console = Console(file=stream, highlight=False, soft_wrap=True)
    r = report.records
    console.print(
        f"replay: {report.inputs} inputs: {report.read} read, {report.skipped} skipped, {report.failed} failed; "
        f"records: {r['sqs']} SQS, {r['other']} other, {r['invalid']} invalid; "
        f"{report.calls} SQS calls counted in {report.seconds:.1f}s"
    )
    for name, reason in report.failures:
        console.print(f"  failed: {name}: {reason}")
    if report.failed > len(report.failures):
        console.print(f"  … and {report.failed - len(report.failures)} more failed inputs")
    if report.inputs == 0:
        console.print("  no input found: check the path or the S3 prefix")
    for title, rows in (("top queues by calls", report.top_calls), ("top queues by errors", report.top_errors)):
        if not rows:
            continue
        table = Table(title=title, title_justify="left", show_edge=False, pad_edge=False)
        table.add_column("queue (account, region)")
        table.add_column("count", justify="right")
        for name, count in rows:
            table.add_row(name, f"{count:,}")
        console.print(table)
