"""A broken model.conf never goes live, and an evaluator that fails denies instead of granting."""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import pytest

from core.authz import Authorizer, PolicyError
from core.settings import PROJECT_ROOT

GOOD_MATCHER = 'm = g(r.sub, p.sub) && r.obj == p.obj && (p.act == "*" || r.act == p.act) && within_limit(r.arg, p.arg)'


@pytest.fixture
def policies(tmp_path: Path) -> Path:
    copy = tmp_path / "policies"
    shutil.copytree(PROJECT_ROOT / "policies", copy)
    assert GOOD_MATCHER in (copy / "model.conf").read_text(), "the test edits the shipped matcher"
    return copy


def _with_matcher(policies: Path, matcher: str) -> None:
    model = policies / "model.conf"
    model.write_text(model.read_text().replace(GOOD_MATCHER, matcher))


def _still_the_good_policy(authorizer: Authorizer) -> None:
    assert authorizer.allows("superadmin", "policy", "reload")
    assert authorizer.allows("employee", "profile", "read")
    assert not authorizer.allows("employee", "audit", "read")
    assert authorizer.enforce("manager", "approval_limit", "approve", "9999.99").allowed


@pytest.mark.parametrize(
    ("matcher", "reason"),
    [
        ("m = g(r.sub, p.sub) && (r.obj == p.obj", "cannot be evaluated"),  # syntax error
        ("m = g(r.sub, p.sub) && r.obj == p.obj && no_such_function(r.arg)", "cannot be evaluated"),
        ("m = r.sub == r.sub", "allows ['employee', 'policy', 'reload', '*']"),  # everyone may do everything
        ("m = r.sub == p.obj", "denies ['superadmin', 'policy', 'reload', '*']"),  # nobody may do anything
    ],
    ids=["syntax-error", "unknown-function", "allows-everything", "denies-everything"],
)
def test_a_broken_model_is_refused_and_the_old_policy_stays(
    policies: Path, matcher: str, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    authorizer = Authorizer(policies)
    version = authorizer.version
    _with_matcher(policies, matcher)

    result = authorizer.reload()

    assert result.error is not None and reason in result.error, result.error
    assert authorizer.version == version
    _still_the_good_policy(authorizer)
    assert any("policy reload refused" in record.getMessage() for record in caplog.records)


def test_a_broken_model_stops_the_process_at_start(policies: Path) -> None:
    _with_matcher(policies, "m = g(r.sub, p.sub) && no_such_function(r.arg)")
    with pytest.raises(PolicyError, match="no_such_function"):
        Authorizer(policies)


def test_an_evaluator_error_denies_and_is_not_cached(policies: Path, caplog: pytest.LogCaptureFixture) -> None:
    authorizer = Authorizer(policies)
    # A manager may approve up to 10000.00; an argument that is no amount makes within_limit raise inside casbin.
    with caplog.at_level(logging.ERROR, logger="core.authz"):
        assert authorizer.enforce("manager", "approval_limit", "approve", "not-an-amount").allowed is False
    assert any("denying" in record.getMessage() for record in caplog.records)

    real = authorizer._enforcer.enforce_ex
    calls = {"n": 0}

    def flaky(*request: str) -> object:
        calls["n"] += 1
        if calls["n"] == 1:
            raise RuntimeError("evaluator crashed")
        return real(*request)

    authorizer._enforcer.enforce_ex = flaky  # type: ignore[method-assign]
    assert authorizer.enforce("employee", "entry", "create").allowed is False  # the crash denies
    assert authorizer.enforce("employee", "entry", "create").allowed is True  # and was not remembered
