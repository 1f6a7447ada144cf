"""What the deployment artefacts must agree with, read from the code rather than written again: the search
attributes the workflows upsert, the task queues the worker serves, how long a worker drains on SIGTERM, the
health routes, the settings the app reads."""

from __future__ import annotations

import re
import shlex

from api.routes.health import router as health_router
from core.settings import PROJECT_ROOT
from core.temporal import search_attribute_flags
from workflows.contracts import APPROVALS_QUEUE, BACKUPS_QUEUE, REPORTS_QUEUE, SEARCH_ATTRIBUTES

DEPLOY = PROJECT_ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
# The task queues worker.py serves (workflows/contracts.py names them; core/temporal.py prefixes them).
APP_QUEUES = {APPROVALS_QUEUE, REPORTS_QUEUE, BACKUPS_QUEUE}
HEALTH_PATHS = {route.path for route in health_router.routes}  # type: ignore[attr-defined]


def app_search_attributes() -> dict[str, str]:
    """Name -> type, as `temporal operator search-attribute create --type` spells it."""
    flags = search_attribute_flags(SEARCH_ATTRIBUTES)[1::2]
    return dict(flag.split("=", 1) for flag in flags)


def registered_search_attributes(script: str) -> dict[str, str]:
    """Name -> type of what a setup script's `for attribute in Name=Type ...` loop registers."""
    loops = re.findall(r"^\s*for attribute in (.+?); do$", script, flags=re.MULTILINE)
    assert len(loops) == 1, f"expected one `for attribute in ...` loop, found {len(loops)}"
    return dict(pair.split("=", 1) for pair in shlex.split(loops[0]))


def worker_drain_seconds() -> float:
    """How long worker.py lets running activities finish after SIGTERM (Worker's graceful_shutdown_timeout)."""
    found = re.findall(
        r"graceful_shutdown_timeout=timedelta\(seconds=(\d+(?:\.\d+)?)\)", (PROJECT_ROOT / "worker.py").read_text()
    )
    assert len(found) == 1, "worker.py: graceful_shutdown_timeout=timedelta(seconds=N) not found; update this test"
    return float(found[0])


def queues_of(command: list[str]) -> set[str]:
    """The task queues a `python worker.py --queues a,b` command serves."""
    assert command[:2] == ["python", "worker.py"], command
    position = command.index("--queues")
    return set(command[position + 1].split(","))


def tls_flag(script: str, flag: str) -> str:
    """The value a setup script passes the `temporal` CLI for `--tls-...` `flag`."""
    found = set(re.findall(rf"{re.escape(flag)} (\S+?)[\"\s]", script))
    assert len(found) == 1, f"{flag}: {found}"
    return found.pop()
