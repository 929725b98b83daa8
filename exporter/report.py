"""What `replay` tells a person at the end (stderr), and the exit code it ends with.

stdout stays pure exposition or JSON, so `replay … > metrics.prom` keeps working; the summary is for the
terminal (or a CI log) and names what went wrong with the first few failed inputs.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TextIO

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
    left_out: dict[str, int] = field(default_factory=dict)  # files in a directory that are no deliveries, by reason
    logs: dict[str, int] | None = None  # log records by outcome (exported / dropped / failed) when export is on

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
        logs_failed = self.logs is not None and (self.logs.get("failed", 0) or self.logs.get("dropped", 0))
        return EXIT_SOME_FAILED if self.failed or logs_failed else EXIT_OK


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


def render_nothing_read(report: ReplayReport, stream: TextIO) -> None:
    """When nothing could be read, the summary is the reason: one line per failed input (the first few),
    or the hint that no input was found."""
    if report.inputs == 0:
        left = sum(report.left_out.values())
        why = f" ({left} files left out: {_reasons(report.left_out)})" if left else ""
        print(f"replay: no input found{why}: check the path or the S3 prefix", file=stream)
        return
    for name, reason in report.failures:
        print(f"replay: {name}: {reason}", file=stream)
    if report.failed > len(report.failures):
        print(f"replay: … and {report.failed - len(report.failures)} more; nothing could be read", file=stream)


def _reasons(counts: Mapping[str, int]) -> str:
    return ", ".join(f"{n} {reason}" for reason, n in sorted(counts.items()))


def render(report: ReplayReport, stream: TextIO) -> None:
    """The closing summary: a few lines of text and two small tables."""
    if report.exit_code() == EXIT_NOTHING_READ:
        render_nothing_read(report, stream)
        return
    r = report.records
    lines = [
        f"replay: {report.inputs} inputs: {report.read} read, {report.skipped} skipped, {report.failed} failed; "
        f"records: {r['sqs']} SQS, {r['other']} other, {r['invalid']} invalid; "
        f"{report.calls} SQS calls counted in {report.seconds:.{2 if report.seconds < 10 else 0}f}s"
    ]
    lines += [f"  failed: {name}: {reason}" for name, reason in report.failures]
    if report.failed > len(report.failures):
        lines.append(f"  … and {report.failed - len(report.failures)} more failed inputs")
    if report.left_out:
        lines.append(f"  left out {sum(report.left_out.values())} files: {_reasons(report.left_out)}")
    if report.logs is not None:
        lg = report.logs
        hint = " (--log-level warning shows why)" if lg.get("failed") or lg.get("dropped") else ""
        lines.append(
            f"  logs: {lg.get('exported', 0)} records exported, {lg.get('failed', 0)} failed, "
            f"{lg.get('dropped', 0)} dropped{hint}"
        )
    for title, rows in (("top queues by calls", report.top_calls), ("top queues by errors", report.top_errors)):
        if rows:
            lines += table(title, ("queue (account, region)", "count"), [(name, f"{n:,}") for name, n in rows])
    print("\n".join(lines), file=stream)


def table(title: str, header: tuple[str, str], rows: list[tuple[str, str]]) -> list[str]:
    """A two-column table as text: names left, figures right, box-drawing rules between them. Plain text
    (no markup is interpreted, no terminal is probed), so a file name with brackets prints as it is and a
    start-up does not pay for a rendering library."""
    left = max(len(header[0]), *(len(a) for a, _ in rows))
    right = max(len(header[1]), *(len(b) for _, b in rows))
    out = [title, f"{header[0]:<{left}} ┃ {header[1]:>{right}}", "━" * (left + 1) + "╇" + "━" * (right + 1)]
    out += [f"{a:<{left}} │ {b:>{right}}" for a, b in rows]
    return out
