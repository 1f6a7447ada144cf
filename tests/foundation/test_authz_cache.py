"""Cached policy decisions never outlive the policy that made them."""

from __future__ import annotations

import shutil
from pathlib import Path

from core.authz import Authorizer
from core.settings import PROJECT_ROOT


def test_a_reload_replaces_cached_decisions(tmp_path: Path) -> None:
    policies = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", policies)
    authorizer = Authorizer(policies)
    assert authorizer.enforce("employee", "entry", "create").allowed
    assert not authorizer.enforce("employee", "audit", "read").allowed
    assert authorizer.enforce("manager", "approval_limit", "approve", "9999.99").allowed

    text = (policies / "policy.csv").read_text().replace("p, employee, entry, create, *\n", "")
    (policies / "policy.csv").write_text(
        text + "\np, employee, audit, read, *\np, manager, approval_limit, approve, 5.00\n"
    )
    (policies / "policy.csv").write_text(
        (policies / "policy.csv").read_text().replace("p, manager, approval_limit, approve, 10000.00\n", "")
    )
    authorizer.reload()

    assert not authorizer.enforce("employee", "entry", "create").allowed
    assert authorizer.enforce("employee", "audit", "read").allowed
    assert not authorizer.enforce("manager", "approval_limit", "approve", "9999.99").allowed
