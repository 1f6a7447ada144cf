"""`make bench` carries its own engine floor: the script runs from the repository alone and prints what the
approval section reads (the keys of the figures measured before it, so they stay comparable)."""

from __future__ import annotations

from temporalio.testing import WorkflowEnvironment

from tests.bench import approvals


def test_the_floor_runs_from_the_repository_and_reports_its_figures(temporal_env: WorkflowEnvironment) -> None:
    assert approvals.FLOOR_SCRIPT.is_relative_to(approvals.PROJECT_ROOT)
    address = temporal_env.client.service_client.config.target_host
    figures = approvals.temporal_floor(address, count=30, concurrency=5, attempts=1)  # a crash fails the test
    assert set(figures) == {"floor_workflows", "concurrency", "seconds", "per_second", "update_p50_ms", "update_p95_ms"}
    assert (figures["floor_workflows"], figures["concurrency"]) == (30, 5)
    assert figures["per_second"] > 0 and 0 < figures["update_p50_ms"] <= figures["update_p95_ms"]
