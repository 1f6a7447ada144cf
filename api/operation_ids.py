"""Operation ids, the names every generated client gives its methods: `<resource>-<action>` in kebab case.

The resource is the route's first tag; the action is the endpoint's function name without the words that repeat the
resource (`list_reports` under `reports` is `reports-list`). Where that would read badly, ACTIONS names the action.
One rule for the whole API, applied by `create_app()` (FastAPI's `generate_unique_id_function`), which also refuses
to start with a documented operation the rule could not name, or two operations of one id.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from fastapi.routing import APIRoute
from fastapi.utils import generate_unique_id

OPERATION_ID = re.compile(r"^[a-z]+(-[a-z]+)+$")

# (resource, endpoint name) -> action, where the derived action would read badly or says too little.
ACTIONS: dict[tuple[str, str], str] = {
    ("health", "health"): "live",
    ("expenses", "list_entries"): "list",
    ("revenue", "list_entries"): "list",
    ("expenses", "dismiss"): "dismiss-duplicate",
    ("receipts", "list_attachments"): "list",
    ("delegation", "get_delegate"): "get",
    ("delegation", "set_delegate"): "set",
    ("delegation", "delete_delegate"): "delete",
    ("users", "me"): "get-me",
    ("users", "team"): "list-team",
    # The product README's words: "Generate report", "Download report" (its POST); GET serves the same file.
    ("reports", "request_report"): "generate",
    ("reports", "download_report_post"): "download",
    ("reports", "download_report"): "get-file",
    ("budgets", "budget_versions"): "list-versions",
    ("invoices", "invoice_pdf"): "get-pdf",
}


class OperationIdError(RuntimeError):
    """A documented route whose operation id does not follow the rule, or that shares one with another."""


def _words(text: str) -> list[str]:
    return [word for word in re.split(r"[^a-z0-9]+", text.lower()) if word]


def operation_id(route: APIRoute) -> str:
    """`<resource>-<action>`; FastAPI's own id where the rule cannot name the route (no tag, no action left), which
    `check_operation_ids` then refuses for a documented route.

    It never raises: FastAPI calls it lazily, on a route's first request, where an error would be a 500."""
    if not route.tags:
        return generate_unique_id(route)
    resource = "-".join(_words(str(route.tags[0])))
    action = ACTIONS.get((resource, route.name))
    if action is None:
        nouns = set(resource.split("-"))
        action = "-".join(word for word in _words(route.name) if word not in nouns and f"{word}s" not in nouns)
    identifier = f"{resource}-{action}"
    return identifier if OPERATION_ID.match(identifier) else generate_unique_id(route)


def check_operation_ids(routes: Iterable[Any]) -> None:
    """Every documented operation has a `<resource>-<action>` id of its own, or the app does not start: two
    operations with one id make a generated client drop one of them."""
    documented = [route for route in routes if route.include_in_schema]
    unnamed = sorted(
        f"{sorted(route.methods)} {route.path}: {route.unique_id}"
        for route in documented
        if not OPERATION_ID.match(route.unique_id)
    )
    if unnamed:
        raise OperationIdError(
            "operation ids that are no <resource>-<action> (tag the route, or name its action in ACTIONS): "
            + "; ".join(unnamed)
        )
    counts = Counter(route.unique_id for route in documented)
    shared = sorted(identifier for identifier, count in counts.items() if count > 1)
    if shared:
        raise OperationIdError("operation ids used by more than one route: " + ", ".join(shared))
