"""Wiring: settings → sinks, counters, pipeline, sources, HTTP server. Used by `run` and `replay`."""

from __future__ import annotations

import contextlib
import logging
import sys
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import msgspec
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from .config import Settings
from .decode.reader import read_file, set_limit
from .dedupe import Dedupe
from .explain import explain
from .filters import Filters
from .interfaces import Sink
from .pipeline import Pipeline
from .report import ReplayReport, summarize
from .selfmetrics import SelfMetrics
from .sinks.metrics import Aggregate, AggregateCollector, exposition
from .sinks.metrics.caps import LabelCaps
from .sources import Context, Source, build
from .sources.activity import attach_lag
from .sources.file import trail_files
from .state import StateStore

if TYPE_CHECKING:
    from .sinks.logs import LogSink

log = logging.getLogger(__name__)


def make_aggregate(settings: Settings) -> Aggregate:
    m = settings.metrics
    return Aggregate(
        max_queues=m.max_queues,
        granularity=m.principal_granularity,
        max_principals_per_queue=m.max_principals_per_queue,
        max_principals=m.max_principals,
        caps=LabelCaps(m.max_event_names, m.max_error_codes, m.max_accounts, m.max_regions, m.max_series),
        max_principal_series=m.max_principals_per_queue_series,
        max_caller_accounts=m.max_caller_accounts,
    )


def make_filters(settings: Settings) -> Filters:
    m = settings.metrics
    return Filters(m.include_queues, m.exclude_queues, m.include_accounts, m.exclude_accounts)


def make_log_sink(settings: Settings, counters: SelfMetrics, block: bool = False) -> LogSink | None:
    from .sinks.logs import settings as otel_env

    # OTEL_SDK_DISABLED / OTEL_LOGS_EXPORTER decide over logs.enabled, as the OTel SDK spec says
    if not otel_env.logs_exporters(settings.logs.enabled):
        if (reason := otel_env.off_reason()) is not None:
            log.info("OTel logs: export off (%s)", reason)
        return None
    from .sinks.logs import build_log_sink  # the encoders and transports only loaded when logs are on

    return build_log_sink(settings.logs, counters, block)


def make_pipeline(
    settings: Settings, agg: Aggregate, counters: SelfMetrics, log_sink: LogSink | None, store: StateStore | None = None
) -> Pipeline:
    set_limit(settings.limits.max_object_bytes)
    sinks: list[Sink] = [agg] if log_sink is None else [agg, log_sink]
    window = settings.metrics.dedupe_window
    dedupe = Dedupe(window, store) if window else None
    st = settings.state
    return Pipeline(
        sinks,
        store,
        counters,
        make_filters(settings),
        st.commit_interval,
        dedupe=dedupe,
        max_failure=st.max_checkpoint_failure,
    )


class App:
    """The daemon: sources in threads feeding one pipeline; /metrics served from the aggregate."""

    def __init__(self, settings: Settings) -> None:
        # the HTTP server and the web config (bcrypt, YAML) only here: `replay` starts without them
        from .server import MetricsServer, split_address
        from .webconfig import WebConfig

        self.settings = settings
        self.store = StateStore(settings.state.path)
        self.agg = make_aggregate(settings)
        self.counters = SelfMetrics()
        self.sink = make_log_sink(settings, self.counters)
        self.pipeline = make_pipeline(settings, self.agg, self.counters, self.sink, self.store)
        self.registry = CollectorRegistry(auto_describe=False)
        self.registry.register(AggregateCollector(self.agg, self.pipeline.lock, self.counters))
        ProcessCollector(registry=self.registry)
        PlatformCollector(registry=self.registry)
        self.shared = _connect_shared(settings, self.store)
        if self.shared is not None:
            from .shared import SharedCollector

            self.agg.shared = self.shared
            self.agg.access.admit = self.shared.admit_principal
            if self.pipeline.dedupe is not None:  # ids claimed across replicas too
                self.pipeline.dedupe.shared = self.shared
                self.pipeline.dedupe.reclaim()
            self.registry.register(SharedCollector(self.shared))
        ctx = Context(self.pipeline, self.store, settings, self.shared)
        self.sources: list[Source] = [build(cfg, ctx) for cfg in settings.sources]
        attach_lag(self.sources, self.agg, self.pipeline.lock)
        host, port = settings.listen_address
        web = WebConfig(settings.web_config_file) if settings.web_config_file else None
        with _listening(settings.listen):
            self.server = MetricsServer(host, port, self.registry, self.ready, web, settings.telemetry_path)
        self.health: MetricsServer | None = None
        if settings.health_listen:
            h_host, h_port = split_address(settings.health_listen)
            with _listening(settings.health_listen):
                self.health = MetricsServer(h_host, h_port, self.registry, self.ready, health_only=True)
        self.stop = threading.Event()
        self.threads: list[threading.Thread] = []

    def ready(self) -> tuple[bool, str]:
        results = [s.health(self.settings.unready_after) for s in self.sources]
        results.append(self.pipeline.health(self.settings.unready_after))
        if self.shared is not None:
            results.append(self.shared.health())
        return all(ok for ok, _ in results), "\n".join(d for _, d in results)

    def _keep_shared(self) -> None:
        """Send what a Redis outage held back, and notice when Redis returns."""
        assert self.shared is not None
        while not self.stop.wait(1.0):
            with self.pipeline.lock:
                batch = self.shared.take()
            if self.shared.send(batch):
                self.shared.ping()  # idle replicas notice an outage too

    def start(self) -> None:
        self.server.start()
        log.info("serving %s on %s", self.settings.telemetry_path, self.settings.listen)
        if self.health is not None:
            self.health.start()
            log.info("serving /healthz and /readyz for probes on %s", self.settings.health_listen)
        for src in self.sources:
            t = threading.Thread(target=src.run, args=(self.stop,), name=f"source-{src.name}", daemon=True)
            t.start()
            self.threads.append(t)
        if self.shared is not None:
            threading.Thread(target=self._keep_shared, name="redis", daemon=True).start()

    def shutdown(self, grace: float = 20.0) -> None:
        """Stop taking work, let sources finish their current object, save state, flush logs."""
        self.stop.set()
        for t in self.threads:
            t.join(grace)
        self.pipeline.checkpoint(force=True)  # the sources' work, saved before the (bounded) log flush
        if self.sink is not None:
            self.sink.shutdown()
            # the flush counts log outcomes (exported, dropped): saved too, or they reset at the next start
            self.pipeline.checkpoint(force=True)
        if self.shared is not None:
            with self.pipeline.lock:
                batch = self.shared.take()
            self.shared.send(batch)
        self.server.stop()
        if self.health is not None:
            self.health.stop()
        self.store.close()


class ListenError(Exception):
    """A listener that cannot be opened; the message names its address."""


@contextlib.contextmanager
def _listening(address: str) -> Iterator[None]:
    try:
        yield
    except OSError as exc:
        raise ListenError(f"cannot listen on {address}: {explain(exc, address)}") from exc


def _connect_shared(settings: Settings, store: StateStore) -> Any:
    if not settings.state.redis_url:
        return None
    from .shared import SharedState

    st = settings.state
    shared = SharedState(st.redis_url, lease=st.redis_lease, retention=st.redis_retention)
    # objects this replica counted just before it stopped may lack their "done" mark (a crash between
    # the SQLite commit and the Redis write): set it now, before another replica's lease could expire
    shared.mark_done(store.objects_since(time.time() - st.redis_lease))
    return shared


Loader = Callable[[], bytes]


def iter_inputs(
    targets: Iterable[str], skipped: dict[str, int] | None = None
) -> Iterator[tuple[str, Loader | BaseException]]:
    """(name, loader) for each object named on the replay command line: files, directories, s3:// URLs.
    A target that cannot be listed (missing path, S3 error) comes as (target, the exception), after any
    objects listed before the failure; files a directory holds but that are no deliveries are counted in
    `skipped` by reason."""
    for target in targets:
        try:
            if target.startswith("s3://"):
                from .sources.s3 import iter_s3_url  # boto3 only when asked for

                yield from iter_s3_url(target)
                continue
            p = Path(target)
            if not p.exists():
                raise FileNotFoundError(target)
            for f in trail_files(p, skipped):
                yield str(f), partial(read_file, f)
        except Exception as exc:
            log.debug("cannot list %s", target, exc_info=True)
            yield target, exc


def replay(
    targets: list[str], settings: Settings, output: str = "prometheus", progress: bool | None = None
) -> tuple[str, int]:
    """One pass over the targets; returns (rendered metrics, number of inputs that failed)."""
    text, report = replay_report(targets, settings, output, progress)
    return text, report.failed


def replay_report(
    targets: list[str], settings: Settings, output: str = "prometheus", progress: bool | None = None
) -> tuple[str, ReplayReport]:
    """One pass over the targets; returns the rendered metrics and what a person is told at the end.
    While it runs, stdout belongs to the metrics alone: anything else printing there (the console log
    exporter) goes to stderr."""
    started = time.monotonic()
    report = ReplayReport()
    agg = make_aggregate(settings)
    counters = SelfMetrics()
    err = sys.stderr
    with contextlib.redirect_stdout(err):
        sink = make_log_sink(settings, counters, block=True)  # a batch run waits for the collector, never drops
        pipeline = make_pipeline(settings, agg, counters, sink)
        pipeline.register(_REPLAY)
        bar = _Bar(err.isatty() if progress is None else progress, err)
        try:
            items = bar.listing(iter_inputs(targets, report.left_out))
            bar.reading(len(items))
            for name, load in items:
                _replay_one(pipeline, report, name, load)
                bar.advance()
        finally:
            bar.stop()
            if sink is not None:
                sink.shutdown(86400.0)  # a batch run waits until every record is exported or has failed
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregateCollector(agg, counters=counters))
    with pipeline.lock:
        summarize(report, agg.calls, agg.errors)
    if sink is not None:
        report.logs = dict(counters.log_records)
    report.seconds = time.monotonic() - started
    return render(registry, output), report


_REPLAY = "replay"


def _replay_one(pipeline: Pipeline, report: ReplayReport, name: str, load: Loader | BaseException) -> None:
    if isinstance(load, BaseException):  # the target could not be listed
        pipeline.count_object(_REPLAY, "failed")
        report.add_failure(name, explain(load, name))
        return
    try:
        data = load()
    except Exception as exc:
        log.debug("cannot read %s", name, exc_info=True)
        pipeline.count_object(_REPLAY, "failed")
        report.add_failure(name, f"cannot read: {explain(exc, name)}")
        return
    res = pipeline.process(data, _REPLAY, name)
    report.records.update(sqs=res.sqs, other=res.other, invalid=res.invalid)
    if res.outcome == "failed":
        report.add_failure(name, res.reason)
    elif res.outcome == "skipped":
        report.skipped += 1
    else:
        report.read += 1


class _Bar:
    """The progress shown on a terminal: the listing (a count), then the reading (a bar). It stays on
    screen when done, as the last line before the summary."""

    def __init__(self, show: bool, stream: TextIO) -> None:
        self.progress: Any = None
        self.task: Any = None
        if show:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

            self.progress = Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=Console(file=stream),
                transient=False,
            )
            self.progress.start()

    def listing(self, inputs: Iterable[tuple[str, Any]]) -> list[tuple[str, Any]]:
        if self.progress is None:
            return list(inputs)
        task = self.progress.add_task("listing", total=None)
        items = []
        for item in inputs:
            items.append(item)
            self.progress.advance(task)
        self.progress.update(task, total=len(items), description=f"listed {len(items):,} inputs")
        return items

    def reading(self, total: int) -> None:
        if self.progress is not None:
            self.task = self.progress.add_task("reading", total=total)

    def advance(self) -> None:
        if self.task is not None:
            self.progress.advance(self.task)

    def stop(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def render(registry: CollectorRegistry, output: str) -> str:
    if output == "json":
        metrics = []
        for fam in registry.collect():
            metrics.append(
                {
                    "name": fam.name,
                    "type": fam.type,
                    "help": fam.documentation,
                    "samples": [{"name": s.name, "labels": s.labels, "value": s.value} for s in fam.samples],
                }
            )
        return msgspec.json.format(msgspec.json.encode({"metrics": metrics}).decode(), indent=1) + "\n"
    # what a scrape without an Accept header gets: generate_latest's bytes, rendered as /metrics renders them
    return exposition(registry, "")[0].decode()
