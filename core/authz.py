"""The Casbin enforcer wrapper: load, validate, hot reload, and deny when the evaluator fails.

Policy files are data that ops edit while the system runs. A changed file is validated in a fresh enforcer
before it replaces the one in force; a broken file is refused with a log line and the old policy stays.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import casbin

log = logging.getLogger(__name__)

UNLIMITED = "*"
_DECISION_CACHE_SIZE = 10_000  # roles x permissions is small; amounts vary, so the cache is bounded
KNOWN_ROLES = ("superadmin", "admin", "manager", "accountant", "employee")


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None  # the policy line that allowed it, for the audit row


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    version: str
    error: str | None = None


class PolicyError(ValueError):
    pass


def within_limit(requested: str, limit: str) -> bool:
    """Matcher function: a plain permission ("*") or an amount at most the policy's limit."""
    if limit == UNLIMITED:
        return True
    if requested == UNLIMITED:
        return False
    return Decimal(requested) <= Decimal(limit)


def _read_version(model_path: Path, policy_path: Path) -> str:
    digest = hashlib.sha256(model_path.read_bytes() + b"\0" + policy_path.read_bytes()).hexdigest()
    return digest[:16]


def _build(model_path: Path, policy_path: Path) -> casbin.Enforcer:
    try:
        enforcer = casbin.Enforcer(str(model_path), str(policy_path))
    except Exception as exc:  # casbin raises assorted types for unreadable or malformed files
        raise PolicyError(f"the policy files cannot be loaded: {type(exc).__name__}: {exc}") from exc
    enforcer.add_function("within_limit", within_limit)
    _validate(enforcer)
    _trial_run(enforcer)
    return enforcer


# Requests whose answers no sane policy changes, evaluated before a new model goes live. Casbin compiles the
# matcher only when it first enforces, so a syntax error or an unknown function in model.conf would otherwise be
# accepted and then make every check raise: everyone denied, including the superadmin's reload that would fix it.
_TRIAL_REQUESTS: tuple[tuple[tuple[str, str, str, str], bool | None], ...] = (
    (("superadmin", "policy", "reload", UNLIMITED), True),  # the way back from a bad policy stays open
    (("employee", "policy", "reload", UNLIMITED), False),  # a matcher that allows everything is no policy
    (("nobody", "policy", "reload", UNLIMITED), False),  # a role outside the hierarchy gets nothing
    (("manager", "approval_limit", "approve", "1.00"), None),  # an amount goes through within_limit: any answer
)


def _trial_run(enforcer: casbin.Enforcer) -> None:
    for request, expected in _TRIAL_REQUESTS:
        try:
            allowed, _ = enforcer.enforce_ex(*request)
        except Exception as exc:
            raise PolicyError(
                f"model.conf cannot be evaluated ({type(exc).__name__}: {exc}) for the request {list(request)}"
            ) from exc
        if expected is not None and bool(allowed) != expected:
            verdict = "allows" if allowed else "denies"
            raise PolicyError(
                f"the policy {verdict} {list(request)}, which must be {'allowed' if expected else 'denied'}"
            )


def _validate(enforcer: casbin.Enforcer) -> None:
    for rule in enforcer.get_policy():
        if len(rule) != 4:
            raise PolicyError(f"policy line {rule} must have 4 fields: role, resource, action, argument")
        role, _resource, _action, argument = rule
        if role not in KNOWN_ROLES:
            raise PolicyError(f"policy line {rule} names an unknown role {role!r}")
        if argument != UNLIMITED:
            try:
                amount = Decimal(argument)
            except InvalidOperation as exc:
                raise PolicyError(f"policy line {rule} has an argument that is neither * nor an amount") from exc
            if not amount.is_finite() or amount < 0:
                raise PolicyError(f"policy line {rule} has a negative or non-finite amount")
    for member, parent in enforcer.get_grouping_policy():
        for role in (member, parent):
            if role not in KNOWN_ROLES:
                raise PolicyError(f"role line g, {member}, {parent} names an unknown role {role!r}")


class Authorizer:
    def __init__(self, policy_dir: Path) -> None:
        self.model_path = policy_dir / "model.conf"
        self.policy_path = policy_dir / "policy.csv"
        self._lock = threading.RLock()
        self._enforcer = _build(self.model_path, self.policy_path)
        self.version = _read_version(self.model_path, self.policy_path)
        self._mtimes = self._current_mtimes()
        self.on_reload: list[Callable[[ReloadResult], None]] = []
        # Casbin re-parses its matcher on every enforce() (about a quarter of the API's CPU under load), and the
        # answers only change with the policy: cache them per loaded policy, emptied on every swap.
        self._decisions: dict[tuple[str, str, str, str], Decision] = {}
        self._limits: tuple[casbin.Enforcer, dict[str, dict[str, str | None]]] | None = None

    # --- decisions ---------------------------------------------------------------------------------

    def enforce(self, role: str, resource: str, action: str, argument: str = UNLIMITED) -> Decision:
        key = (role, resource, action, argument)
        with self._lock:
            enforcer = self._enforcer
            cached = self._decisions.get(key)
        if cached is not None:
            return cached
        try:
            allowed, explain = enforcer.enforce_ex(role, resource, action, argument)
        except Exception:  # an evaluator error must never grant access (and is not cached: it may be transient)
            log.exception("policy evaluation failed for %s %s %s; denying", role, resource, action)
            return Decision(False, None)
        decision = Decision(bool(allowed), ", ".join(explain) if allowed and explain else None)
        with self._lock:
            if self._enforcer is enforcer:  # not swapped meanwhile
                if len(self._decisions) >= _DECISION_CACHE_SIZE:
                    self._decisions.clear()
                self._decisions[key] = decision
        return decision

    def allows(self, role: str, resource: str, action: str) -> bool:
        return self.enforce(role, resource, action).allowed

    def limit_for(self, role: str, action: str = "approve") -> str | None:
        """The highest amount a role may approve ("*" when unlimited), or None when it may not approve."""
        with self._lock:
            enforcer = self._enforcer
        best: str | None = None
        for rule in enforcer.get_implicit_permissions_for_user(role):
            if len(rule) != 4 or rule[1] != "approval_limit" or rule[2] != action:
                continue
            argument = rule[3]
            if argument == UNLIMITED:
                return UNLIMITED
            if best is None or Decimal(argument) > Decimal(best):
                best = argument
        return best

    def limits_snapshot(self) -> dict[str, dict[str, str | None]]:
        """Every role's approval and auto-approval limit: pinned into a request for its whole life. Computed once
        per loaded policy (each submission asks; walking casbin's implicit permissions cost a millisecond)."""
        with self._lock:
            enforcer, cached = self._enforcer, self._limits
        if cached is None or cached[0] is not enforcer:
            limits = {
                role: {"approve": self.limit_for(role, "approve"), "auto_approve": self.limit_for(role, "auto_approve")}
                for role in KNOWN_ROLES
            }
            cached = (enforcer, limits)
            with self._lock:
                if self._enforcer is enforcer:  # not swapped meanwhile
                    self._limits = cached
        return {role: dict(limits) for role, limits in cached[1].items()}  # a copy: callers pin it into requests

    # --- reloading ---------------------------------------------------------------------------------

    def _current_mtimes(self) -> tuple[float, float]:
        return (self.model_path.stat().st_mtime_ns, self.policy_path.stat().st_mtime_ns)

    def reload(self) -> ReloadResult:
        """Validate the files on disk and swap them in; on any error keep the policy in force."""
        try:
            version = _read_version(self.model_path, self.policy_path)
            candidate = _build(self.model_path, self.policy_path)
        except Exception as exc:
            log.error("policy reload refused, keeping version %s in force: %s", self.version, exc)
            result = ReloadResult(changed=False, version=self.version, error=str(exc))
        else:
            with self._lock:
                changed = version != self.version
                self._enforcer = candidate
                self._decisions = {}
                self.version = version
            log.info("policy reloaded: version %s (changed=%s)", version, changed)
            result = ReloadResult(changed=changed, version=version)
        try:
            self._mtimes = self._current_mtimes()
        except OSError:
            pass
        for listener in self.on_reload:
            listener(result)
        return result

    def reload_if_changed(self) -> ReloadResult | None:
        try:
            mtimes = self._current_mtimes()
        except OSError as exc:
            log.error("policy files unreadable, keeping version %s: %s", self.version, exc)
            return None
        if mtimes == self._mtimes:
            return None
        return self.reload()

    async def watch(self, interval_seconds: float = 2.0) -> None:
        """Poll the files and reload on change; runs for the life of the process."""
        while True:
            await asyncio.sleep(interval_seconds)
            self.reload_if_changed()
