"""Prometheus rules: promtool check/test, the SPEC recording rule, annotations, runbook, unit-test coverage.

That every rule expression also runs against a real Prometheus which scraped the exporter is
checked in tests/test_dashboard.py, next to the dashboard queries (one Prometheus for both).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from deploytools import PROMTOOL, ROOT, RULES, RULES_TEST, RUNBOOK

SPEC_RECORD = "cloudtrail_sqs:api_error_ratio:rate5m"
# the placeholder base of runbook_url in rules.yml (the chart's prometheusRule.runbookBaseURL replaces it)
RUNBOOK_BASE = "https://cloudtrail-sqs-exporter.invalid/docs/runbook.md"
SPEC_EXPR = (
    "sum by (account_id, region, queue) (rate(cloudtrail_sqs_api_errors_total[5m])) / "
    "sum by (account_id, region, queue) (rate(cloudtrail_sqs_api_calls_total[5m]))"
)
SPEC_FILE = ROOT.parent / "shared" / "SPEC.md"


def _rules() -> list[dict[str, Any]]:
    return [r for g in yaml.safe_load(RULES.read_text())["groups"] for r in g["rules"]]


def _alerts() -> list[dict[str, Any]]:
    return [r for r in _rules() if "alert" in r]


def _norm(expr: str) -> str:
    return " ".join(expr.split())


def test_promtool_check_rules() -> None:
    result = subprocess.run([PROMTOOL, "check", "rules", str(RULES)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"SUCCESS: {len(_rules())} rules found" in result.stdout + result.stderr


def test_promtool_check_rules_can_fail(tmp_path: Path) -> None:
    bad = tmp_path / "rules.yml"
    bad.write_text(RULES.read_text().replace("sum by (account_id", "sum by (account_id(", 1))
    result = subprocess.run([PROMTOOL, "check", "rules", str(bad)], capture_output=True, text=True)
    assert result.returncode != 0


@pytest.mark.slow
def test_promtool_unit_tests_pass() -> None:
    result = subprocess.run(
        [PROMTOOL, "test", "rules", RULES_TEST.name], capture_output=True, text=True, cwd=RULES_TEST.parent
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout + result.stderr


def test_promtool_unit_tests_catch_a_broken_alert(tmp_path: Path) -> None:
    """The unit tests fail when an alert's threshold moves (here: error ratio 5% -> 50%)."""
    tests = yaml.safe_load(RULES_TEST.read_text())
    tests["tests"] = [t for t in tests["tests"] if "baseline" not in t["name"]]  # the 8-day group is slow
    (tmp_path / RULES_TEST.name).write_text(yaml.safe_dump(tests))
    text = RULES.read_text()
    assert ") > 0.05\n" in text
    (tmp_path / "rules.yml").write_text(text.replace(") > 0.05\n", ") > 0.5\n", 1))
    result = subprocess.run([PROMTOOL, "test", "rules", RULES_TEST.name], capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode != 0
    assert "CloudtrailSqsErrorRatioHigh" in result.stdout + result.stderr


def test_spec_recording_rule_is_exact() -> None:
    (rule,) = [r for r in _rules() if r.get("record") == SPEC_RECORD]
    assert _norm(rule["expr"]) == SPEC_EXPR


def test_spec_recording_rule_matches_spec_md() -> None:
    if not SPEC_FILE.exists():
        pytest.skip(f"{SPEC_FILE} not beside the repository")
    text = _norm(SPEC_FILE.read_text())
    assert f"`{SPEC_RECORD} = {SPEC_EXPR}`" in text


EXPECTED_ALERTS = {
    "CloudtrailSqsErrorRatioHigh",
    "CloudtrailSqsAccessDeniedBurst",
    "CloudtrailSqsDistinctPrincipalsAboveBaseline",
    "CloudtrailSqsCallRateAnomaly",
    "CloudtrailSqsExporterStalled",
    "CloudtrailSqsExporterDown",
    "CloudtrailSqsDeliveryLagHigh",
    "CloudtrailSqsSourceFailing",
    "CloudtrailSqsLogsDropping",
    "CloudtrailSqsQueueMadePublic",
    "CloudtrailSqsEncryptionTurnedOff",
    "CloudtrailSqsNewCallerAccount",
    "CloudtrailSqsPrincipalErrorRatioHigh",
    "CloudtrailSqsCheckpointFailing",
}


def test_the_alerts_the_issue_asks_for_exist() -> None:
    assert {a["alert"] for a in _alerts()} == EXPECTED_ALERTS


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_alert_has_summary_description_severity_runbook(alert: str) -> None:
    (rule,) = [a for a in _alerts() if a["alert"] == alert]
    ann = rule["annotations"]
    assert ann["summary"].strip() and ann["description"].strip()
    # the description names the series it is about
    assert re.search(r"\{\{ \$labels\.\w+ \}\}", ann["description"]), ann["description"]
    assert rule["labels"]["severity"] in {"warning", "critical"}
    anchor = alert.lower()
    assert ann["runbook_url"] == f"{RUNBOOK_BASE}#{anchor}"  # absolute; the base is configurable
    headings = {h.strip().lower() for h in re.findall(r"^#+\s+(.+)$", RUNBOOK.read_text(), re.M)}
    assert anchor in headings, f"docs/runbook.md has no section '{alert}'"


def _alert_cases() -> dict[str, list[list[dict[str, Any]]]]:
    cases: dict[str, list[list[dict[str, Any]]]] = {}
    for group in yaml.safe_load(RULES_TEST.read_text())["tests"]:
        for case in group.get("alert_rule_test", []):
            cases.setdefault(case["alertname"], []).append(case.get("exp_alerts") or [])
    return cases


@pytest.mark.parametrize("alert", sorted(EXPECTED_ALERTS))
def test_every_alert_has_unit_tests_firing_and_not_firing(alert: str) -> None:
    cases = _alert_cases().get(alert, [])
    assert any(exp for exp in cases), f"{alert}: no promtool case where it fires"
    assert any(not exp for exp in cases), f"{alert}: no promtool case where it must stay silent"


def test_no_rule_names_a_scrape_job() -> None:
    """Rules select the exporter by its own metrics, so any job name works (issue: `up{job=~...}`)."""
    for group in yaml.safe_load(RULES.read_text())["groups"]:
        for rule in group["rules"]:
            assert not re.search(r"job\s*=~?", rule["expr"]), rule.get("alert") or rule.get("record")
