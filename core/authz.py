"""The Casbin enforcer wrapper: load, validate, hot reload, and deny when the evaluator fails.

Policy files are data that ops edit while the system runs. A changed file is validated in a fresh enforcer
before it replaces the one in force; a broken file is refused with a log line and the old policy stays.
"""

from __future__ import annotations

import hashlib
import logging
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path

import casbin
from casbin.persist.adapters.string_adapter import StringAdapter

log = logging.getLogger(__name__)

UNLIMITED = "*"
_DECISION_CACHE_SIZE = 10_000  # roles x permissions is small; amounts vary, so the cache is bounded
KNOWN_ROLES = ("superadmin", "admin", "manager", "accountant", "employee")
MODEL_FILE = "model.conf"
POLICY_FILE = "policy.csv"
MAX_POLICY_FILE_BYTES = 256 * 1024  # the shipped policy.csv is about 3 KB; a proposal (preview) is bounded by this


@dataclass(frozen=True)
class Decision:
    allowed: bool
    rule: str | None  # the policy line that allowed it, for the audit row


@dataclass(frozen=True)
class ReloadResult:
    changed: bool
    version: str
    error: str | None = None
    previous: str = ""  # the version in force in this process before the reload
    refused_version: str | None = None  # the version of the files refused (None when they could not be read)


class PolicyError(ValueError):
    """Policy files refused, naming the file and line when one is to blame (`reason` is the message without them)."""

    def __init__(self, reason: str, *, file: str | None = None, line: int | None = None) -> None:
        where = f"{file} line {line}: " if file and line else f"{file}: " if file else ""
        super().__init__(where + reason)
        self.reason = reason
        self.file = file
        self.line = line


@dataclass(frozen=True)
class PolicyFiles:
    """The text of model.conf and policy.csv, validated, loaded and versioned together."""

    model: str
    policy: str

    @property
    def version(self) -> str:
        digest = hashlib.sha256(self.model.encode() + b"\0" + self.policy.encode()).hexdigest()
        return digest[:16]

    @classmethod
    def read(cls, model_path: Path, policy_path: Path) -> PolicyFiles:
        return cls(model=read_policy_file(model_path, MODEL_FILE), policy=read_policy_file(policy_path, POLICY_FILE))


def read_policy_file(path: Path, name: str | None = None) -> str:
    """A policy file's text; PolicyError (named `name`, by default the file's name) when unreadable or not UTF-8."""
    name = name or path.name
    try:
        if path.stat().st_size > MAX_POLICY_FILE_BYTES:
            raise PolicyError(f"is larger than {MAX_POLICY_FILE_BYTES} bytes", file=name)
        raw = path.read_bytes()
    except OSError as exc:
        raise PolicyError(f"cannot be read ({exc.strerror})", file=name) from exc
    try:
        return raw.decode("utf-8")  # bytes as they are (no newline translation): the version hashes the same bytes
    except UnicodeDecodeError as exc:
        raise PolicyError("is not UTF-8 text", file=name, line=raw[: exc.start].count(b"\n") + 1) from exc


def within_limit(requested: str, limit: str) -> bool:
    """Matcher function: a plain permission ("*") or an amount at most the policy's limit."""
    if limit == UNLIMITED:
        return True
    if requested == UNLIMITED:
        return False
    return Decimal(requested) <= Decimal(limit)


def _build(files: PolicyFiles) -> casbin.Enforcer:
    """An enforcer over `files`, or PolicyError naming what is wrong and where: the one validation every load,
    reload and preview goes through."""
    for name, text in ((MODEL_FILE, files.model), (POLICY_FILE, files.policy)):
        if len(text.encode()) > MAX_POLICY_FILE_BYTES:
            raise PolicyError(f"is larger than {MAX_POLICY_FILE_BYTES} bytes", file=name)
    _check_policy_lines(files.policy)
    try:
        model = casbin.Enforcer.new_model(text=files.model)
    except Exception as exc:  # casbin's config parser says "line N" in its message
        found = re.search(r"line (\d+)", str(exc))
        raise PolicyError(f"cannot be parsed: {exc}", file=MODEL_FILE, line=int(found[1]) if found else None) from exc
    try:
        enforcer = casbin.Enforcer(model, StringAdapter(files.policy))
    except Exception as exc:  # casbin raises assorted types for a model missing a section
        raise PolicyError(f"the policy files cannot be loaded: {type(exc).__name__}: {exc}", file=MODEL_FILE) from exc
    enforcer.add_function("within_limit", within_limit)
    _trial_run(enforcer, files)
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


def _trial_run(enforcer: casbin.Enforcer, files: PolicyFiles) -> None:
    matcher_line = _line_where(files.model, lambda line: re.match(r"m\s*=", line) is not None)
    for request, expected in _TRIAL_REQUESTS:
        try:
            allowed, explain = enforcer.enforce_ex(*request)
        except Exception as exc:
            raise PolicyError(
                f"cannot be evaluated ({type(exc).__name__}: {exc}) for the request {list(request)}",
                file=MODEL_FILE,
                line=matcher_line,
            ) from exc
        if expected is not None and bool(allowed) != expected:
            verdict = "allows" if allowed else "denies"
            reason = f"the policy {verdict} {list(request)}, which must be {'allowed' if expected else 'denied'}"
            if allowed and explain:  # a policy line granted it: name that line
                raise PolicyError(reason, file=POLICY_FILE, line=_line_of_rule(files.policy, ["p", *explain]))
            raise PolicyError(reason, file=MODEL_FILE, line=matcher_line)


def _fields(line: str) -> list[str]:
    return [field.strip() for field in line.split(",")]


def _line_of_rule(text: str, fields: list[str]) -> int | None:
    return _line_where(text, lambda line: _fields(line) == fields)


def _line_where(text: str, matches: Callable[[str], bool]) -> int | None:
    for number, line in enumerate(text.split("\n"), start=1):
        if matches(line.strip()):
            return number
    return None


_VALUE = re.compile(r"[A-Za-z0-9_.*-]+")


def _check_policy_lines(text: str) -> None:
    """Every line of policy.csv, checked with its number. Casbin would skip a line it does not recognise (a
    missing `p, `) and take a short one, so each line is checked here first, as casbin splits it."""
    if not text.strip():
        raise PolicyError("is empty", file=POLICY_FILE)
    for number, raw in enumerate(text.split("\n"), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue

        def refuse(reason: str, number: int = number) -> PolicyError:
            return PolicyError(reason, file=POLICY_FILE, line=number)

        fields = _fields(line)
        for field in fields:
            if not _VALUE.fullmatch(field):
                raise refuse(f"the value {field!r} is empty or has characters other than letters, digits, _ . * -")
        kind = fields[0]
        if kind == "p":
            if len(fields) != 5:
                raise refuse(f"a permission has 4 fields (p, role, resource, action, argument), not {len(fields) - 1}")
            role, argument = fields[1], fields[4]
            if role not in KNOWN_ROLES:
                raise refuse(f"unknown role {role!r} (the roles are {', '.join(KNOWN_ROLES)})")
            if argument != UNLIMITED:
                try:
                    amount = Decimal(argument)
                except InvalidOperation as exc:
                    raise refuse(f"the argument {argument!r} is neither * nor an amount") from exc
                if not amount.is_finite() or amount < 0:
                    raise refuse(f"the amount {argument!r} is negative or not finite")
        elif kind == "g":
            if len(fields) != 3:
                raise refuse(f"a role line has 2 fields (g, member, inherits-from), not {len(fields) - 1}")
            for role in fields[1:]:
                if role not in KNOWN_ROLES:
                    raise refuse(f"unknown role {role!r} (the roles are {', '.join(KNOWN_ROLES)})")
        else:
            raise refuse(f"a line starts with p (a permission) or g (a role), not {kind!r}")


class Authorizer:
    """The policy in force: decisions, limits, and reloads of the files in `policy_dir`.

    Given `files`, it holds those instead and is never reloaded: a trial of a proposal (what it would decide)."""

    def __init__(self, policy_dir: Path, files: PolicyFiles | None = None) -> None:
        self.model_path = policy_dir / MODEL_FILE
        self.policy_path = policy_dir / POLICY_FILE
        self.trial = files is not None
        self.files = files or PolicyFiles.read(self.model_path, self.policy_path)
        self._lock = threading.RLock()
        self._enforcer = _build(self.files)
        self.version = self.files.version
        self._mtimes = (0, 0) if self.trial else self._current_mtimes()
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

    def permissions_of(self, role: str) -> set[tuple[str, str]]:
        """The (resource, action) pairs the role holds, its inherited ones included, approval limits left out."""
        with self._lock:
            enforcer = self._enforcer
        return {
            (rule[1], rule[2])
            for rule in enforcer.get_implicit_permissions_for_user(role)
            if len(rule) == 4 and rule[1] != "approval_limit"
        }

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

    def _current_mtimes(self) -> tuple[int, int]:
        return (self.model_path.stat().st_mtime_ns, self.policy_path.stat().st_mtime_ns)

    def reload(self) -> ReloadResult:
        """Validate the files on disk and swap them in; on any error keep the policy in force."""
        if self.trial:
            raise RuntimeError("a trial authorizer holds a proposal: it is never reloaded")
        previous = self.version
        files: PolicyFiles | None = None
        try:
            files = PolicyFiles.read(self.model_path, self.policy_path)
            candidate = _build(files)
        except Exception as exc:
            log.error("policy reload refused, keeping version %s in force: %s", previous, exc)
            refused = files.version if files is not None else None
            result = ReloadResult(False, previous, str(exc), previous, refused)
        else:
            with self._lock:
                self._enforcer = candidate
                self._decisions = {}
                self.files = files
                self.version = files.version
            changed = files.version != previous
            log.info("policy reloaded: version %s (changed=%s)", files.version, changed)
            result = ReloadResult(changed=changed, version=files.version, previous=previous)
        try:
            self._mtimes = self._current_mtimes()
        except OSError:
            pass
        for listener in self.on_reload:
            listener(result)
        return result

    def reload_if_changed(self) -> ReloadResult | None:
        """Reload when either file's modification time moved (the watcher's poll; domain/policies/versions.py)."""
        try:
            mtimes = self._current_mtimes()
        except OSError as exc:
            log.error("policy files unreadable, keeping version %s: %s", self.version, exc)
            return None
        if mtimes == self._mtimes:
            return None
        return self.reload()
