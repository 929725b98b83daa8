"""Wiring: settings → sinks, counters, pipeline, sources, HTTP server. Used by `run` and `replay`."""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
from prometheus_client import CollectorRegistry, PlatformCollector, ProcessCollector

from .config import Settings
from .filters import Filters
from .interfaces import Sink
from .pipeline import Pipeline
from .selfmetrics import SelfMetrics
from .server import MetricsServer, exposition, split_address
from .sinks.metrics import Aggregate, AggregateCollector
from .sources import Context, Source, build
from .sources.file import trail_files
from .state import StateStore
from .webconfig import WebConfig

if TYPE_CHECKING:
    from .sinks.logs import LogSink

log = logging.getLogger(__name__)


def make_aggregate(settings: Settings) -> Aggregate:
    m = settings.metrics
    return Aggregate(
        max_queues=m.max_queues,
        granularity=m.principal_granularity,
        max_principals_per_queue=m.max_principals_per_queue,
    )


def make_filters(settings: Settings) -> Filters:
    m = settings.metrics
    return Filters(m.include_queues, m.exclude_queues, m.include_accounts, m.exclude_accounts)


def make_log_sink(settings: Settings, counters: SelfMetrics, block: bool = False) -> LogSink | None:
    from .sinks import otel_env

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
    sinks: list[Sink] = [agg] if log_sink is None else [agg, log_sink]
    st = settings.state
    return Pipeline(
        sinks, store, counters, make_filters(settings), st.commit_interval, max_failure=st.max_checkpoint_failure
    )


class App:
    """The daemon: sources in threads feeding one pipeline; /metrics served from the aggregate."""

    def __init__(self, settings: Settings) -> None:
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
            self.registry.register(SharedCollector(self.shared))
        ctx = Context(self.pipeline, self.store, settings, self.shared)
        self.sources: list[Source] = [build(cfg, ctx) for cfg in settings.sources]
        host, port = settings.listen_address
        web = WebConfig(settings.web_config_file) if settings.web_config_file else None
        self.server = MetricsServer(host, port, self.registry, self.ready, web, settings.telemetry_path)
        self.health: MetricsServer | None = None
        if settings.health_listen:
            h_host, h_port = split_address(settings.health_listen)
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


def iter_inputs(targets: Iterable[str]) -> Iterator[tuple[str, Any]]:
    """(name, loader) for each object named on the replay command line: files, directories, s3:// URLs."""
    for target in targets:
        if target.startswith("s3://"):
            from .sources.s3 import iter_s3_url  # boto3 only when asked for

            yield from iter_s3_url(target)
            continue
        p = Path(target)
        if not p.exists():
            yield target, None
            continue
        for f in trail_files(p):
            yield str(f), f.read_bytes


def replay(
    targets: list[str], settings: Settings, output: str = "prometheus", progress: bool | None = None
) -> tuple[str, int]:
    """One pass over the targets; returns (rendered metrics, number of objects that failed)."""
    agg = make_aggregate(settings)
    counters = SelfMetrics()
    sink = make_log_sink(settings, counters, block=True)  # a batch run waits for the collector, never drops
    pipeline = make_pipeline(settings, agg, counters, sink)
    source = "replay"
    pipeline.register(source)
    failed = 0
    items = list(iter_inputs(targets))
    show = sys.stderr.isatty() if progress is None else progress
    bar = None
    if show:
        from rich.progress import Progress

        bar = Progress(transient=True, console=None)
        bar.start()
        task = bar.add_task("replay", total=len(items))
    try:
        for name, load in items:
            if load is None:
                print(f"replay: {name}: no such file or directory", file=sys.stderr)
                pipeline.count_object(source, "failed")
                failed += 1
                continue
            try:
                data = load()
            except Exception as exc:
                print(f"replay: {name}: cannot read: {exc}", file=sys.stderr)
                pipeline.count_object(source, "failed")
                failed += 1
                continue
            res = pipeline.process(data, source, name)
            if res.outcome == "failed":
                print(f"replay: {name}: {res.reason}", file=sys.stderr)
                failed += 1
            if bar is not None:
                bar.advance(task)
    finally:
        if bar is not None:
            bar.stop()
        if sink is not None:
            sink.shutdown(86400.0)  # a batch run waits until every record is exported or has failed
    registry = CollectorRegistry(auto_describe=False)
    registry.register(AggregateCollector(agg, counters=counters))
    return render(registry, output), failed


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
    # what a scrape without an Accept header gets: generate_latest's bytes, ~10x sooner (server.exposition)
    return exposition(registry, "")[0].decode()
