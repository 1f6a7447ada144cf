"""schemathesis hooks for tests/security/test_contract_fuzz.py (loaded through `hooks` in schemathesis.toml).

One thing only: the failures that are not the contract's fault, each allowed narrowly (one check, the status, the
error's own words or field) with the reason. Everything a schema can say is in the schema instead (api/contract.py,
domain/dates.py, domain/money.py); what is left is a rule between two fields, a row that must exist, a secret, or
today's date, which OpenAPI has no words for: a request that looks valid to a generator is rightly refused.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

import schemathesis

SCHEMA_VALID_REJECTED = "ST202"  # positive_data_acceptance
RESPONSE_VIOLATES_SCHEMA = "ST108"  # response_schema_conformance
DELETED_STILL_AVAILABLE = "ST301"  # use_after_free
# DELETE /users/{id} deactivates: the account stays, readable with `is_active: false`, as the audit log and the
# entries it owns name it (docs/api.md, "Sign-in and users").
SOFT_DELETED = ("users-get", "users-list-team")


@dataclass(frozen=True)
class Allowed:
    check: str  # the failure's code
    status: int
    says: str  # a regular expression the error's message (or its field) must match
    why: str
    operations: str = ".*"  # operation ids, a regular expression


ALLOWED = (
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"Idempotency-Key was already used for a different request",
        "the generator draws few distinct keys; a key reused for another request is 422 (IETF idempotency draft)",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"^field=cursor$|cursor or offset, not both|cursor is (not|no) |this cursor",
        "a cursor is the server's signed token (a drawn one is refused), and OpenAPI cannot say `cursor` excludes "
        "`offset`",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"current_password is incorrect|^field=current_password$",
        "the account's password is a secret no schema gives",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"must be before|must be after|must not be after|must not be before|the maximum is \d+",
        "an order between two fields (since < until, from <= to, issue <= due, starts < ends): no OpenAPI keyword",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"no active user|not found|no such|does not exist|unknown (customer|account|user)",
        "a body's reference to a row (a manager, a customer, an account) that does not exist: state, not shape",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"more decimal places than|has no minor units|decimal places",
        "an amount's places depend on its currency, in another field or on the invoice: no OpenAPI keyword",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"and today|today or later|in the past|in the future",
        "a bound that moves with today's date (a rate's day, a schedule's first run)",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"addresses of the organisation|needs an expense or a revenue account|is an? \w+ account|nobody above you in "
        r"the manager tree|needs DATEV_",
        "what the organisation's domains are, which type an account has, who is above the caller, which exports are "
        "configured (DATEV's numbers are settings): data, not shape",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        412,
        r"changed since you read it|If-Match must be",
        "If-Match names the version read: a drawn one is stale (the stateful phase hands over the real ETag)",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"cannot deactivate yourself",
        "the caller's own id, which no schema knows",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"must not exceed",
        "an amount's ceiling is a setting (MAX_ENTRY_AMOUNT and the like), not a constant of the document",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"no exchange rate from",
        "a foreign amount needs the rate of its day, which is data (imported or set by hand)",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"special-use or reserved name",
        "an email address at a special-use domain (RFC 6761, `.test`, `.invalid`) is refused; `format: email` "
        "cannot say so",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"the workflow engine refused the schedule|the file is empty|one file per request|not a receipt|"
        r"unknown time zone",
        "what a cron expression's fields may hold is the workflow engine's judgement, the time zones are the "
        "machine's tz database (an enum of them breaks generated clients: GMT0, GMT+0 and GMT-0 are one name to "
        "them); an upload's bytes are judged as they arrive",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"total must be greater than 0|in the base currency only|has no key|line \d+ is too large",
        "a sum over lines (or a line's quantity times its price), a report type's currency, a mapping's key per its "
        "kind: rules across fields",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"applies to the ledger only|does not apply to|not for (receivables|budget_vs_actual)|needs a scope|"
        r"mapped twice",
        "which filters a report type takes, a budget's scope (one of two fields), one account per mapping: rules "
        "across fields",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"for type template only|type template needs template_id|filters do not apply to a template|"
        r"has no field '|names either a field or a bucket|^field=definition|has either a value or a param",
        "a template's id and parameters go with type `template` only, and a definition's fields, groups and "
        "formulas are judged against its dataset's (another field's) whitelist: rules between fields",
    ),
    Allowed(
        SCHEMA_VALID_REJECTED,
        422,
        r"the proposed policy is refused",
        "a proposed policy is a file whose lines are judged as Casbin reads them (named by line): the document can "
        "only say it is text of a bounded size",
    ),
)


def _error_text(response: Any) -> list[str]:
    """The error's message and `field=<its field>`, from the ErrorBody (empty when the body is none)."""
    try:
        body = json.loads(response.content or b"{}")
    except ValueError:
        return []
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        return []
    texts = [str(error.get("message", ""))]
    details = error.get("details")
    if isinstance(details, dict) and "field" in details:
        texts.append(f"field={details['field']}")
    if isinstance(details, dict) and "reason" in details:
        texts.append(f"reason={details['reason']}")
    return texts


def _is_file_download(case: Any) -> bool:
    success = case.operation.definition.raw.get("responses", {}).get("200", {})
    return "application/octet-stream" in success.get("content", {})


def is_allowed(code: str, operation_id: str, status: int, texts: list[str]) -> bool:
    return any(
        allowed.check == code
        and allowed.status == status
        and re.fullmatch(allowed.operations, operation_id)
        and any(re.search(allowed.says, text) for text in texts)
        for allowed in ALLOWED
    )


@schemathesis.hook
def filter_failure(context: Any, failure: Any, case: Any, response: Any) -> bool:
    """Keep a failure unless ALLOWED names it."""
    if failure.code == RESPONSE_VIOLATES_SCHEMA and "fields" in (case.query or {}):
        # `?fields=` asks for sparse items (api/fieldsets.py): the document describes the whole item, whose required
        # fields a sparse one leaves out by request.
        return False
    if failure.code == RESPONSE_VIOLATES_SCHEMA and _is_file_download(case):
        # A report's file may be JSON: the document declares every file as bytes (api/file_responses.py), so that
        # generated clients hand it over as it came; schemathesis then reads the JSON as a document, not a string.
        return False
    operation_id = str(case.operation.definition.raw.get("operationId", ""))
    if failure.code == DELETED_STILL_AVAILABLE and operation_id in SOFT_DELETED:
        return False
    return not is_allowed(failure.code, operation_id, response.status_code, _error_text(response))
