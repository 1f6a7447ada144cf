"""The Grafana dashboard and the Prometheus alert rules in deploy/: the dashboard is well-formed for the panel types it
uses and plots only metrics the API and the worker really export (read from their live endpoints); the rules pass
`promtool check rules`, and their unit tests (deploy/prometheus/alerts.test.yml) pass `promtool test rules`."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from core.settings import PROJECT_ROOT
from tests.operations.conftest import scrape

DASHBOARD = PROJECT_ROOT / "deploy" / "grafana" / "finance-ops.json"
RULES = PROJECT_ROOT / "deploy" / "prometheus"
# The panel types the dashboard may use (Grafana's built-in ones), and what each must carry.
PANEL_TYPES = {"stat", "timeseries", "bargauge", "table"}
# Series Prometheus makes itself, not the app.
PROMETHEUS_SERIES = {"up"}
PROMQL_WORDS = {
    "sum", "max", "min", "avg", "count", "by", "without", "rate", "increase", "histogram_quantile", "absent", "or",
    "and", "unless", "on", "ignoring", "le", "job", "instance", "level", "age", "outcome", "event", "version",
    "format", "humanizeDuration",
}  # fmt: skip
_IDENTIFIER = re.compile(r"\b[a-zA-Z_][a-zA-Z0-9_]*\b")


def metric_names(expr: str) -> set[str]:
    """The series an expression reads: its identifiers that are neither PromQL nor a label, string or duration."""
    bare = re.sub(r'"[^"]*"', "", expr)  # label values
    bare = re.sub(r"\[[^\]]*\]", "", bare)  # ranges: [1h]
    bare = re.sub(r"\{[^}]*\}", "", bare)  # matchers
    return {name for name in _IDENTIFIER.findall(bare) if name not in PROMQL_WORDS and not name[0].isdigit()}


async def exported_names(http: httpx.AsyncClient, worker_metrics_url: str) -> set[str]:
    samples = {**await scrape(http, "/metrics"), **await scrape(http, worker_metrics_url)}
    return {name for name, _ in samples} | PROMETHEUS_SERIES


def test_the_metric_name_reader_reads_what_an_expression_reads() -> None:
    assert metric_names('sum by (le) (rate(a_bucket{job="x"}[1h])) or absent(up{job="finance-worker"})') == {
        "a_bucket",
        "up",
    }


async def test_the_dashboard_plots_what_the_app_exports(http: httpx.AsyncClient, worker_metrics_url: str) -> None:
    dashboard: dict[str, Any] = json.loads(DASHBOARD.read_text())
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    assert [item["name"] for item in dashboard["templating"]["list"]] == ["datasource"]
    exported = await exported_names(http, worker_metrics_url)
    panels: list[dict[str, Any]] = dashboard["panels"]
    assert len({panel["id"] for panel in panels}) == len(panels) > 0
    plotted: set[str] = set()
    for panel in panels:
        where = f"panel {panel.get('title')!r}"
        assert panel["type"] in PANEL_TYPES, where
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, where
        assert {"x", "y", "w", "h"} <= set(panel["gridPos"]), where
        assert panel["targets"], where
        for target in panel["targets"]:
            assert target["refId"] and target["datasource"] == panel["datasource"], where
            names = metric_names(target["expr"])
            assert names, f"{where}: {target['expr']}"
            assert names <= exported, f"{where} reads {sorted(names - exported)}, which nothing exports"
            plotted |= names
    # Every business metric is on it.
    wanted = {
        "finance_approvals_pending", "finance_approvals_past_escalation", "finance_approval_decisions_total",
        "finance_approval_sla_events_total", "finance_report_runs_total",
        "finance_report_render_duration_seconds_bucket",
        "finance_backup_last_success_age_seconds", "finance_restore_drill_last_success_age_seconds",
        "finance_restore_drill_last_failed", "finance_emails_total", "finance_policy_info", "up",
    }  # fmt: skip
    assert wanted <= plotted, sorted(wanted - plotted)


async def test_the_alert_rules_read_what_the_app_exports(http: httpx.AsyncClient, worker_metrics_url: str) -> None:
    rules = yaml.safe_load((RULES / "alerts.yml").read_text())["groups"][0]["rules"]
    exported = await exported_names(http, worker_metrics_url)
    assert {rule["alert"] for rule in rules} >= {
        "FinanceBackupMissing",
        "FinanceRestoreDrillFailed",
        "FinanceApprovalsPastEscalation",
        "FinanceWorkerDown",
    }
    for rule in rules:
        assert metric_names(rule["expr"]) <= exported, rule["alert"]
        runbook = rule["annotations"]["runbook"]
        anchor = runbook.split("#")[1]
        operations = (PROJECT_ROOT / "docs" / "operations.md").read_text()
        assert f"### {rule['alert']}" in operations and anchor == rule["alert"].lower(), runbook


def _promtool() -> str:
    found = shutil.which("promtool")
    if found is None:
        pytest.skip("no promtool: `make promtool` installs Debian's prometheus package (as root, with apt-get)")
    return found


def test_promtool_accepts_the_alert_rules() -> None:
    result = subprocess.run([_promtool(), "check", "rules", "alerts.yml"], cwd=RULES, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS: 5 rules found" in result.stdout


def test_the_alert_rules_pass_their_unit_tests() -> None:
    """Backup age, worker down (and absent), failed drill, approvals past escalation (alerts.test.yml)."""
    result = subprocess.run(
        [_promtool(), "test", "rules", "alerts.test.yml"], cwd=RULES, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_wrong_expectation_fails_the_unit_tests(tmp_path: Path) -> None:
    """The rule tests can fail: the backup alert expected ten minutes too early."""
    tests = (RULES / "alerts.test.yml").read_text().replace("- eval_time: 75m", "- eval_time: 66m", 1)
    (tmp_path / "alerts.yml").write_text((RULES / "alerts.yml").read_text())
    (tmp_path / "alerts.test.yml").write_text(tests)
    result = subprocess.run(
        [_promtool(), "test", "rules", "alerts.test.yml"], cwd=tmp_path, capture_output=True, text=True
    )
    assert result.returncode != 0 and "FinanceBackupMissing" in result.stdout + result.stderr
