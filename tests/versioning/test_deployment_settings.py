"""Worker versioning is off unless WORKER_DEPLOYMENT_NAME says otherwise; on, every worker of one build reports the
same version, and each workflow type moves between builds the way its owner chose."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from pydantic import ValidationError
from temporalio.common import VersioningBehavior, WorkerDeploymentVersion
from temporalio.workflow import _Definition

from core.settings import DatabaseSettings, Environment, Settings, SmtpSettings, StorageSettings, TemporalSettings
from worker import WORKFLOW_CODE, build_deps, deployment_config, worker_plan, workflow_code_digest

# Every workflow type the workers run, with how it moves between builds when the workers are versioned. A new type
# lands here on purpose: pinned (the default) keeps the build it started on alive until it ends.
BEHAVIOURS = {
    "EntryApprovalWorkflow": VersioningBehavior.PINNED,  # days at most; no patch needed for a change
    "InvoiceWorkflow": VersioningBehavior.AUTO_UPGRADE,  # weeks of reminders: moves, so changes are patched
}


def test_unversioned_unless_a_deployment_name_is_set(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("WORKER_DEPLOYMENT_NAME", "WORKER_BUILD_ID"):
        monkeypatch.delenv(name, raising=False)
    assert deployment_config(TemporalSettings()) is None
    # A build id alone (an image sets it whatever the environment) turns nothing on.
    monkeypatch.setenv("WORKER_BUILD_ID", "1.4.2")
    assert deployment_config(TemporalSettings()) is None


def test_the_image_tag_names_the_build(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WORKER_DEPLOYMENT_NAME", "finance-ops")
    monkeypatch.setenv("WORKER_BUILD_ID", "1.4.2")
    config = deployment_config(TemporalSettings())
    assert config is not None and config.use_worker_versioning
    assert config.version == WorkerDeploymentVersion("finance-ops", "1.4.2")
    assert config.default_versioning_behavior == VersioningBehavior.PINNED


def test_without_a_build_id_the_workflow_code_names_it(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WORKER_DEPLOYMENT_NAME", "finance-ops")
    monkeypatch.delenv("WORKER_BUILD_ID", raising=False)
    config = deployment_config(TemporalSettings())
    assert config is not None
    assert config.version.build_id == f"workflows-{workflow_code_digest()}"
    # The same code elsewhere (another replica, another checkout) is the same build; any change is another.
    copy = tmp_path / "workflows"
    shutil.copytree(WORKFLOW_CODE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    assert workflow_code_digest(copy) == workflow_code_digest()
    approval = copy / "approval.py"
    approval.write_text(approval.read_text() + "\n# a change\n")
    assert workflow_code_digest(copy) != workflow_code_digest()


def test_a_deployment_name_with_a_dot_is_refused_by_name() -> None:
    # Temporal writes a version `<deployment>.<build id>` and splits it at the first dot.
    with pytest.raises(ValidationError, match="WORKER_DEPLOYMENT_NAME='finance.ops' contains a dot"):
        TemporalSettings(worker_deployment_name="finance.ops")
    assert TemporalSettings(worker_deployment_name="finance-ops", worker_build_id="1.4.2").worker_build_id == "1.4.2"


def _registered(temporal: TemporalSettings, tmp_path: Path) -> dict[str, VersioningBehavior]:
    """Workflow type -> the behaviour its class declares, as worker.py registers them over every queue (its deps
    built as the worker builds them; nothing here connects to the database)."""
    settings = Settings(
        environment=Environment.TEST,
        db=DatabaseSettings(url="postgresql://nobody@127.0.0.1:1/unused"),
        temporal=temporal,
        storage=StorageSettings(bucket="", local_dir=tmp_path / "storage"),
        smtp=SmtpSettings(host="", mail_dir=tmp_path / "mail"),
    )
    definitions = [
        _Definition.must_from_class(cls) for plan in worker_plan(build_deps(settings)) for cls in plan.workflows
    ]
    return {d.name or "": d.versioning_behavior or VersioningBehavior.UNSPECIFIED for d in definitions}


def test_each_workflow_type_moves_between_builds_as_chosen(tmp_path: Path) -> None:
    temporal = TemporalSettings(worker_deployment_name="finance-ops", worker_build_id="1.4.2")
    config = deployment_config(temporal)
    assert config is not None
    declared = _registered(temporal, tmp_path)
    assert set(BEHAVIOURS) <= set(declared)
    for name, behaviour in declared.items():
        effective = config.default_versioning_behavior if behaviour == VersioningBehavior.UNSPECIFIED else behaviour
        wanted = BEHAVIOURS.get(name, VersioningBehavior.PINNED)
        assert effective == wanted, f"{name}: decide how it moves between builds (workflows/approval.py says how)"


def test_unversioned_workers_declare_no_behaviour(tmp_path: Path) -> None:
    """Temporal fails every workflow task whose worker declares a behaviour without being versioned ("versioning
    behavior cannot be specified without deployment options being set with versioned mode"): the approvals would
    hang in dev and the tests."""
    declared = _registered(TemporalSettings(worker_deployment_name=""), tmp_path)
    assert set(BEHAVIOURS) <= set(declared)
    assert set(declared.values()) == {VersioningBehavior.UNSPECIFIED}
