"""No counter goes backwards across a restart: log outcomes counted by the shutdown flush are saved by
the final checkpoint. Scraped while the daemon shuts down (a slow collector keeps the flush going) and
again after it restarts on the same state."""

from __future__ import annotations

import signal
import time
from pathlib import Path
from typing import Any

import pytest
import yaml
from awsfixtures import counted, wait_metric
from otlp_receiver import Receiver
from util import Exporter, free_port, generate, http_get, parse_metrics

OBJECTS = "cloudtrail_sqs_exporter_objects_total"
LOGS = "cloudtrail_sqs_exporter_log_records_total"


class SlowReceiver(Receiver):
    """A collector that takes a while per request, so the daemon is still flushing when asked to stop."""

    def _add(self, request: Any) -> None:
        time.sleep(0.15)
        super()._add(request)


def counters(text: str) -> dict[Any, float]:
    """The exporter's own counter samples (process_* counters restart with the process by design)."""
    own = parse_metrics(text).items()
    return {k: v for k, v in own if k[0].startswith("cloudtrail_sqs") and k[0].endswith("_total")}


def scrape_into(url: str, seen: dict[Any, float]) -> bool:
    """One scrape of /metrics, keeping each counter's highest value in `seen`; False once it no longer answers."""
    try:
        code, body, _ = http_get(url + "/metrics", timeout=2)
    except OSError:
        return False
    if code != 200:
        return False
    for k, v in counters(body).items():
        seen[k] = max(seen.get(k, 0.0), v)
    return True


def restart_config(d: Path, endpoint: str) -> dict[str, Any]:
    """A daemon reading d/trail with its state in d/state and logs to `endpoint`, checkpointing often."""
    return {
        "state": {"path": str(d / "state" / "exporter.db"), "commit_interval": "100ms"},
        "logs": {
            "enabled": True,
            "endpoint": endpoint,
            "batch_size": 100,
            "flush_interval": "100ms",
            "shutdown_timeout": "60s",
        },
        "sources": [{"type": "file", "name": "files", "path": str(d / "trail"), "settle": 0}],
    }


@pytest.mark.slow
def test_no_counter_goes_backwards_across_a_restart(tmp_path: Path, exporter_proc: list) -> None:
    truth = generate(tmp_path / "trail", files=20, seed=41, records=100)
    rx = SlowReceiver(free_port()).start()
    try:
        cfg = tmp_path / "c.yaml"
        cfg.write_text(yaml.safe_dump(restart_config(tmp_path, rx.endpoint)))
        exp = Exporter(cfg, tmp_path)
        exporter_proc.append(exp)
        exp.start()
        wait_metric(exp, OBJECTS, len(truth["files"]), source="files")  # every outcome
        seen: dict[Any, float] = {}

        def scrape() -> bool:
            return scrape_into(exp.url, seen)

        assert scrape()
        at_stop = seen[(LOGS, (("outcome", "exported"),))]
        assert exp.proc is not None
        exp.proc.send_signal(signal.SIGTERM)
        during = 0
        give_up = time.monotonic() + 90  # the flush bound (60 s) and then some: a stall fails here
        while exp.proc.poll() is None and scrape():
            assert time.monotonic() < give_up, "the daemon did not stop after SIGTERM"
            during += 1
            time.sleep(0.05)
        assert during >= 2, "no scrape landed while the daemon was shutting down"
        exported = seen[(LOGS, (("outcome", "exported"),))]
        assert exported > at_stop, "the shutdown flush exported nothing: the test would prove nothing"
        assert exp.stop() == 0

        exp.start()
        after = counters(http_get(exp.url + "/metrics")[1])
        backwards = {k: (v, after.get(k)) for k, v in seen.items() if after.get(k, 0.0) < v}
        assert not backwards, backwards
        # every record the collector acknowledged, the last ones included, is counted after the restart
        assert counted(parse_metrics(http_get(exp.url + "/metrics")[1]), LOGS, outcome="exported") == rx.count
    finally:
        rx.stop()
