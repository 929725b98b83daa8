"""The Grafana dashboard, and every PromQL expression of the dashboard and of the rules, against a
real Prometheus that scraped a real exporter replaying generated CloudTrail files."""

from __future__ import annotations

import json
import math
import re
import shutil
import sys
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import (
    DASHBOARD,
    ROOT,
    RULES,
    Prometheus,
    free_port,
    generate_trail,
    http_get,
    process,
    prometheus_server,
    tail,
    wait_for,
)

SPEC_METRICS = {
    "cloudtrail_sqs_api_calls_total",
    "cloudtrail_sqs_api_errors_total",
    "cloudtrail_sqs_batch_entries_total",
    "cloudtrail_sqs_distinct_principals",
    "cloudtrail_sqs_delivery_lag_seconds_bucket",
    "cloudtrail_sqs_last_event_timestamp_seconds",
    "cloudtrail_sqs_exporter_records_total",
    "cloudtrail_sqs_exporter_objects_total",
    "cloudtrail_sqs_exporter_source_errors_total",
    "cloudtrail_sqs_exporter_log_records_total",
    "cloudtrail_sqs_exporter_build_info",
    "cloudtrail_sqs_principal_calls_total",
    "cloudtrail_sqs_cross_account_calls_total",
    "cloudtrail_sqs_queue_policy_changes_total",
    "cloudtrail_sqs_queue_encryption_changes_total",
}
RECORDED = {r["record"] for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"] if "record" in r}


def _dashboard() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def _panels() -> list[dict[str, Any]]:
    return [p for p in _dashboard()["panels"] if p["type"] != "row"]


def _targets() -> list[tuple[str, str]]:
    return [(p["title"], t["expr"]) for p in _panels() for t in p["targets"]]


# ---------------------------------------------------------------------------- static checks


def test_template_variables() -> None:
    variables = {v["name"]: v for v in _dashboard()["templating"]["list"]}
    assert list(variables) == ["datasource", "job", "instance", "account", "region", "queue", "logs"]
    # the exporter is found by its own build_info, whatever its scrape job is called
    assert variables["job"]["definition"] == "label_values(cloudtrail_sqs_exporter_build_info, job)"
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name, label in (("account", "account_id"), ("region", "region"), ("queue", "queue")):
        v = variables[name]
        assert v["type"] == "query" and v["multi"] and v["includeAll"] and v["allValue"] == ".*"
        assert v["definition"].startswith("label_values(") and v["definition"].endswith(f", {label})")
        assert v["datasource"]["uid"] == "${datasource}"


def test_every_panel_uses_the_datasource_variable() -> None:
    for p in _panels():
        assert p["datasource"]["uid"] == "${datasource}", p["title"]
        assert p["targets"], p["title"]
        for t in p["targets"]:
            assert t["datasource"]["uid"] == "${datasource}", p["title"]


def test_panels_cover_the_issue() -> None:
    titles = " | ".join(p["title"] for p in _panels()).lower()
    for words in (
        "call rate per queue by event name",
        "error ratio",
        "top error codes",
        "distinct principals per window",
        "batch entries",
        "delivery lag",
        "records / s",
        "objects / s",
        "source errors",
        "log records",
        "principals of the selected queue",
        "cross-account calls",
        "exposure and encryption changes",
    ):
        assert words in titles, words


def test_who_is_calling_row() -> None:
    """The access map: a table of the queue's principals (calls, errors, share), cross-account callers, and
    exposure / encryption changes as annotations."""
    panels = {p["title"]: p for p in _panels()}
    table = panels["Principals of the selected queue (dashboard range)"]
    assert table["type"] == "table" and [t["refId"] for t in table["targets"]] == ["A", "B", "C"]
    names = table["transformations"][1]["options"]["renameByName"]
    assert set(names.values()) == {"calls", "errors", "share"}
    annotations = {a["name"]: a for a in _dashboard()["annotations"]["list"]}
    assert "cloudtrail_sqs_queue_policy_changes_total" in annotations["Queue exposure changes"]["expr"]
    assert "cloudtrail_sqs_queue_encryption_changes_total" in annotations["Queue encryption changes"]["expr"]


def test_counters_are_summed_without_instance_and_pod() -> None:
    """Several replicas add up: every counter is aggregated with `sum without (instance, pod)`."""
    for title, expr in _targets():
        for counter in re.findall(r"cloudtrail_sqs_\w+_total|cloudtrail_sqs_\w+_bucket", expr):
            assert "sum without (instance, pod)" in expr, f"{title}: {counter} in {expr}"
        assert not re.search(r"\b(max|avg|min)\b[^()]*\([^()]*\w+_total", expr), f"{title}: {expr}"


def test_queries_use_only_known_series() -> None:
    for title, expr in _targets():
        for name in re.findall(r"\b(cloudtrail_sqs[:\w]*)", expr):
            assert name in SPEC_METRICS | RECORDED, f"{title}: unknown series {name}"


def test_every_selector_of_the_exporter_honours_job_and_instance() -> None:
    """Each series of the exporter is selected with `$job`/`$instance` (taken from build_info), never by a
    hard-wired job name; the recording rule's output is already aggregated over them."""
    for title, expr in _targets():
        assert not re.search(r'job\s*=~?\s*"(?!\$job)', expr), f"{title}: a hard-wired job in {expr}"
        for selector in re.findall(r"\bcloudtrail_sqs_\w+(\{[^}]*\})?", expr):
            assert 'job=~"$job"' in selector and 'instance=~"$instance"' in selector, f"{title}: {expr}"


def test_wide_panels_are_top_n_and_lifecycle_is_annotated() -> None:
    panels = {p["title"]: p for p in _panels()}
    for title in ("Call rate per queue by event name (top 20)", "Batch entries / s (top 20)"):
        assert all(t["expr"].startswith("topk(20, ") for t in panels[title]["targets"]), title
    links = panels["Call rate per queue by event name (top 20)"]["fieldConfig"]["defaults"]["links"]
    assert links[0]["url"].startswith("/explore?left=") and "__field.labels.queue" in links[0]["url"]
    (lifecycle,) = [
        a for a in _dashboard()["annotations"]["list"] if a.get("name") == "Queue lifecycle and configuration"
    ]
    for event in (
        "CreateQueue",
        "DeleteQueue",
        "PurgeQueue",
        "SetQueueAttributes",
        "AddPermission",
        "RemovePermission",
    ):
        assert event in lifecycle["expr"]


def test_per_queue_panels_honour_the_variables() -> None:
    for title, expr in _targets():
        if re.search(r"cloudtrail_sqs_(api_|batch_|distinct_)|cloudtrail_sqs:", expr):
            for var in ("$account", "$region", "$queue"):
                assert var in expr, f"{title}: {expr} ignores {var}"


def test_panels_do_not_overlap() -> None:
    taken: set[tuple[int, int]] = set()
    for p in _dashboard()["panels"]:
        g = p["gridPos"]
        assert g["x"] + g["w"] <= 24, p["title"]
        cells = {(x, y) for x in range(g["x"], g["x"] + g["w"]) for y in range(g["y"], g["y"] + g["h"])}
        assert not cells & taken, f"{p['title']} overlaps another panel"
        taken |= cells


def test_panel_ids_are_unique() -> None:
    ids = [p["id"] for p in _dashboard()["panels"]]
    assert len(ids) == len(set(ids))


# ---------------------------------------------------------------------------- live stack


@dataclass
class Live:
    prom: Prometheus
    exporter_url: str
    workdir: Path
    labels: dict[str, str] = field(default_factory=dict)


RATE_INTERVAL = "5m"  # covers the whole test run; rate() only needs two scrapes in it


JOB = "ctsqs"


def prom_regex_escape(value: str) -> str:
    """As Grafana escapes a variable value for a Prometheus regex: `\\` before regex specials."""
    return re.sub(r"([\\^$.|?*+()\[\]{}])", r"\\\\\1", value)


def substitute(expr: str, selection: dict[str, str] | None = None) -> str:
    """Grafana's variables → what Grafana would send. `selection` picks one value per variable."""
    sel = selection or {}
    out = expr.replace("$__rate_interval", RATE_INTERVAL).replace("$__range", "10m").replace("$__interval", "1s")
    for var in ("account", "region", "queue", "instance", "job"):
        out = out.replace(f"${var}", prom_regex_escape(sel[var]) if var in sel else ".*")
    assert "$" not in out, out
    return out


def _finite(result: list[dict[str, Any]]) -> bool:
    return any(math.isfinite(float(s["value"][1])) for s in result if "value" in s)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Live]:
    """exporter `run` on a watched directory of generated trail files + Prometheus scraping it.

    A first batch is there at start; a second one lands after Prometheus has scraped a few times,
    so every rate() in the dashboard sees the counters move.
    """
    work = tmp_path_factory.mktemp("live")
    watched = work / "trail"
    generate_trail(watched / "batch1", files=6, seed=101)
    # a file that is not gzip: counted as a failed object, never fatal
    broken = watched / "batch1" / "AWSLogs" / "broken_CloudTrail_eu-west-1_20261101T0000Z_x.json.gz"
    broken.write_bytes(b"not gzip at all")
    later = generate_trail(work / "later", files=6, seed=202)

    port = free_port()
    config = {
        "listen": f"127.0.0.1:{port}",
        "state": {"path": str(work / "state" / "exporter.db")},
        "sources": [{"type": "file", "path": str(watched), "poll_interval": "1s", "settle": "0s"}],
    }
    (work / "config.yaml").write_text(yaml.safe_dump(config))
    url = f"http://127.0.0.1:{port}"
    log = work / "exporter.log"
    with process(
        [sys.executable, "-m", "exporter", "run", "--config", str(work / "config.yaml")], log, cwd=work
    ) as exp:

        def exporter_has_calls() -> bool:
            if exp.poll() is not None:
                raise AssertionError(f"exporter exited {exp.returncode}:\n{tail(log)}")
            code, body = http_get(url + "/metrics")
            return code == 200 and "cloudtrail_sqs_api_calls_total{" in body

        wait_for(exporter_has_calls, 60, "exporter /metrics with api calls")
        # a scrape job named like nothing in the dashboard or rules: they must not depend on it
        with prometheus_server(work / "prometheus", [f"127.0.0.1:{port}"], [RULES], job=JOB) as prom:
            # two scrapes of the first batch, then the second batch
            wait_for(
                lambda: prom.query("count_over_time(cloudtrail_sqs_exporter_build_info[1m]) >= 2"),
                60,
                "two scrapes of the exporter",
            )
            shutil.copytree(later, work / "staging")
            (work / "staging").rename(watched / "batch2")
            wait_for(
                lambda: (
                    _finite(prom.query("sum(rate(cloudtrail_sqs_api_calls_total[5m])) > 0"))
                    and _finite(prom.query("sum(rate(cloudtrail_sqs_delivery_lag_seconds_count[5m])) > 0"))
                    and _finite(prom.query("cloudtrail_sqs:api_error_ratio:rate5m >= 0"))
                ),
                90,
                "the second batch to be scraped and recorded",
            )
            yield Live(prom=prom, exporter_url=url, workdir=work)


def _label_values(live: Live, definition: str, selection: dict[str, str] | None = None) -> list[str]:
    m = re.fullmatch(r"label_values\((.+), (\w+)\)", definition)
    assert m, definition
    data = live.prom.api(f"label/{m.group(2)}/values", [("match[]", substitute(m.group(1), selection))])
    return list(data)


@pytest.mark.slow
def test_template_variable_queries_return_values(live: Live) -> None:
    variables = [v for v in _dashboard()["templating"]["list"] if v["type"] == "query"]
    selection: dict[str, str] = {}
    for v in variables:  # account, then region for that account, then queue for both
        values = _label_values(live, v["definition"], selection)
        assert values, f"variable {v['name']}: {v['definition']} returned nothing"
        selection[v["name"]] = values[0]


@pytest.mark.slow
@pytest.mark.parametrize("title", [p["title"] for p in _panels()])
def test_every_dashboard_panel_returns_series(live: Live, title: str) -> None:
    (panel,) = [p for p in _panels() if p["title"] == title]
    results = {t["expr"]: live.prom.query(substitute(t["expr"])) for t in panel["targets"]}
    assert any(_finite(r) for r in results.values()), f"{title}: no series with a value: {results}"


@pytest.mark.slow
def test_dashboard_queries_run_for_a_single_selection(live: Live) -> None:
    variables = [v for v in _dashboard()["templating"]["list"] if v["type"] == "query"]
    selection: dict[str, str] = {}
    for v in variables:
        selection[v["name"]] = _label_values(live, v["definition"], selection)[0]
    answered = 0
    for _title, expr in _targets():
        answered += bool(live.prom.query(substitute(expr, selection)))
    # one queue of one account/region: the per-queue call-rate panels at least have data
    assert answered >= len(_targets()) // 2, answered


def _rule_exprs() -> list[tuple[str, str]]:
    out = []
    for g in yaml.safe_load(RULES.read_text())["groups"]:
        for r in g["rules"]:
            out.append((r.get("record") or r["alert"], r["expr"]))
    return out


@pytest.mark.slow
@pytest.mark.parametrize(("name", "expr"), _rule_exprs(), ids=[n for n, _ in _rule_exprs()])
def test_every_rule_expression_runs(live: Live, name: str, expr: str) -> None:
    live.prom.query(expr)  # raises on a parse or evaluation error


@pytest.mark.slow
def test_prometheus_loaded_and_evaluates_the_rules(live: Live) -> None:
    groups = live.prom.api("rules", {})["groups"]
    loaded = {r["name"]: r for g in groups for r in g["rules"]}
    expected = {n for n, _ in _rule_exprs()}
    assert set(loaded) == expected
    for name, rule in loaded.items():
        assert rule["health"] in ("ok", "unknown"), (name, rule.get("lastError"))
    # the 1s groups have run at least once by now
    recorded = loaded["cloudtrail_sqs:api_error_ratio:rate5m"]
    assert recorded["health"] == "ok"
    assert live.prom.query("cloudtrail_sqs:api_error_ratio:rate5m"), "the SPEC recording rule produced nothing"


@pytest.mark.slow
def test_exporter_up_for_the_down_alert(live: Live) -> None:
    """CloudtrailSqsExporterDown's selection (build_info, not a job name) finds the exporter's target."""
    (up,) = live.prom.query("up and on (job, instance) last_over_time(cloudtrail_sqs_exporter_build_info[1d])")
    assert up["metric"]["job"] == JOB and up["value"][1] == "1"
    annotations = _dashboard()["annotations"]["list"]
    lifecycle = next(a for a in annotations if a.get("name") == "Queue lifecycle and configuration")
    live.prom.query(substitute(lifecycle["expr"]))  # runs (the generator may not have made such events)


def test_repo_root_is_where_the_dashboard_lives() -> None:
    assert DASHBOARD.is_relative_to(ROOT)


@pytest.mark.slow
def test_access_annotations_select_series(live: Live) -> None:
    """The exposure / encryption annotations select series the exporter exports (their increase over a
    Grafana interval is only non-zero where a change happened between two scrapes)."""
    for a in _dashboard()["annotations"]["list"]:
        if a.get("name") in ("Queue exposure changes", "Queue encryption changes"):
            selector = re.search(r"cloudtrail_sqs_\w+_total\{[^}]*\}", a["expr"])
            assert selector is not None
            assert live.prom.query(substitute(selector.group(0))), a["name"]
