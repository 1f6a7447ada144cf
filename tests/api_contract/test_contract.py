"""The contract the OpenAPI document states (api/contract.py), read as a client reads it and checked against what
the API answers: the statuses and headers of each operation, one error shape, OPTIONS and Allow, and the links."""

from __future__ import annotations

import re
from typing import Any

import httpx
import jsonschema
import pytest

from api.errors import ErrorBody
from domain.dates import EARLIEST, LATEST
from tests.conftest import MakeUser

METHODS = ("get", "put", "post", "patch", "delete")
# A value each path parameter takes, so a path can be called as documented.
SAMPLE_PARAMETERS = {"report_id": "3f0b8a8e-6b52-4b8e-9a36-0d2f7c2d1e11", "month": "2026-01"}


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (path, method, operation)
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method in METHODS
    ]


def headers_of(operation: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {p["name"]: p for p in operation.get("parameters", []) if p["in"] == "header"}


def resolved(document: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        *_, kind, name = node["$ref"].split("/")
        node = document["components"][kind][name]
    return node


def validator(document: dict[str, Any]) -> jsonschema.Draft202012Validator:
    """ErrorBody as the document declares it, its references resolved against the document."""
    schema = {"$ref": "#/components/schemas/ErrorBody", "components": document["components"]}
    return jsonschema.Draft202012Validator(schema)


def test_every_operation_documents_the_statuses_its_shape_implies(document: dict[str, Any]) -> None:
    missing = []
    for path, method, operation in operations(document):
        documented = {int(code) for code in operation["responses"]}
        implied = set()
        if operation.get("security"):  # a bearer token is asked for: it may be missing, or not enough
            implied |= {401, 403}
        if "{" in path:
            implied.add(404)
        if "requestBody" in operation:
            implied |= {400, 413, 422}
        if any(p["name"] != "X-Request-ID" for p in operation.get("parameters", [])):
            implied.add(422)
        if method != "get":
            implied.add(409)
        if "If-Match" in headers_of(operation):
            implied |= {412, 428}
        if implied - documented:
            missing.append(f"{method.upper()} {path}: {sorted(implied - documented)}")
    assert missing == []


def test_if_match_is_a_required_header_and_the_answer_tags_the_new_version(document: dict[str, Any]) -> None:
    taking = {
        operation["operationId"]: headers_of(operation)["If-Match"]
        for _, _, operation in operations(document)
        if "If-Match" in headers_of(operation)
    }
    assert {"expenses-update", "revenue-update", "invoices-update", "customers-update", "budgets-revise"} <= set(taking)
    assert all(header["required"] for header in taking.values())


def test_statuses_the_shape_cannot_tell_are_declared(document: dict[str, Any]) -> None:
    by_id = {operation["operationId"]: operation for _, _, operation in operations(document)}
    assert "429" in by_id["auth-login"]["responses"] and "401" in by_id["auth-login"]["responses"]
    assert "429" in by_id["auth-change-password"]["responses"]
    assert "429" not in by_id["expenses-create"]["responses"]  # no rate limit there
    assert "503" in by_id["expenses-submit"]["responses"]  # the workflow engine, or an aborted transaction
    assert "503" not in by_id["expenses-list"]["responses"]  # a read in autocommit: neither
    assert "304" in by_id["expenses-get"]["responses"]


def test_every_error_is_one_shape_with_an_example_that_fits_it(document: dict[str, Any]) -> None:
    check = validator(document)
    errors = []
    for path, method, operation in operations(document):
        for code, response in operation["responses"].items():
            if int(code) < 400:
                continue
            media = response.get("content", {}).get("application/json", {})
            if media.get("schema") != {"$ref": "#/components/schemas/ErrorBody"}:
                errors.append(f"{method.upper()} {path} {code}: not ErrorBody")
                continue
            example = media.get("example")
            if example is None or list(check.iter_errors(example)):
                errors.append(f"{method.upper()} {path} {code}: example {example!r}")
            ErrorBody.model_validate(example)
            if int(code) in (429, 503) and "Retry-After" not in response.get("headers", {}):
                errors.append(f"{method.upper()} {path} {code}: no Retry-After")
    assert errors == []
    assert "HTTPValidationError" not in document["components"]["schemas"]  # FastAPI's own 422 shape is never sent


def test_every_response_declares_its_request_id_and_a_redirect_its_location(document: dict[str, Any]) -> None:
    for _, _, operation in operations(document):
        assert "X-Request-ID" in headers_of(operation)
        for code, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert {"X-Request-ID", "Cache-Control"} <= set(headers), (operation["operationId"], code)
            redirect = code.startswith("3") and code != "304"
            assert ("Location" in headers) == redirect, (operation["operationId"], code)


def test_an_etag_pattern_takes_weak_tags_and_versioned_ones(document: dict[str, Any]) -> None:
    declared = document["paths"]["/api/v1/expenses/{entry_id}"]["get"]["responses"]["200"]["headers"]["ETag"]
    pattern = re.compile(resolved(document, declared)["schema"]["pattern"])
    for tag in ('W/"Zm9v_-"', '"7"', '"7.QmFy-_"'):
        assert pattern.match(tag), tag
    assert not pattern.match("7")


async def test_errors_as_sent_fit_the_document(client: httpx.AsyncClient, document: dict[str, Any]) -> None:
    check = validator(document)
    anonymous = await client.get("/api/v1/users/me")
    assert anonymous.status_code == 401
    assert anonymous.headers["www-authenticate"] == "Bearer"
    assert list(check.iter_errors(anonymous.json())) == []
    assert anonymous.json()["request_id"] == anonymous.headers["x-request-id"]
    unparseable = await client.post("/api/v1/auth/login", content=b"{", headers={"content-type": "application/json"})
    assert unparseable.status_code in (400, 422)
    assert list(check.iter_errors(unparseable.json())) == []


def _callable(path: str) -> str:
    return re.sub(r"\{(\w+)\}", lambda m: SAMPLE_PARAMETERS.get(m.group(1), "1"), path)


async def test_options_allows_exactly_the_documented_methods(
    client: httpx.AsyncClient, document: dict[str, Any]
) -> None:
    wrong = []
    for path, item in document["paths"].items():
        documented = {method.upper() for method in item if method in METHODS}
        for form in (_callable(path), _callable(path).rstrip("/") if path.endswith("/") else _callable(path) + "/"):
            answer = await client.options(form)
            allow = {method.strip() for method in answer.headers.get("allow", "").split(",") if method.strip()}
            if answer.status_code != 204 or allow != documented | {"OPTIONS"}:
                wrong.append(f"OPTIONS {form}: {answer.status_code} Allow {sorted(allow)}, documented {documented}")
    assert wrong == []


async def test_an_undocumented_method_is_405_naming_every_documented_one(client: httpx.AsyncClient) -> None:
    # /expenses/ has POST and GET on two routes: Starlette alone would name only the first route's method.
    answer = await client.request("PUT", "/api/v1/expenses/")
    assert answer.status_code == 405
    assert {method.strip() for method in answer.headers["allow"].split(",")} == {"GET", "POST", "OPTIONS"}
    assert answer.json()["error"]["code"] == "method_not_allowed"


def test_links_name_real_operations_and_parameters(document: dict[str, Any]) -> None:
    by_id = {operation["operationId"]: (path, operation) for path, _, operation in operations(document)}
    count = 0
    for path, _, operation in operations(document):
        for code, response in operation["responses"].items():
            for name, link in response.get("links", {}).items():
                count += 1
                assert link["operationId"] == name and name in by_id, name
                target_path, target = by_id[name]
                names = {p["name"] for p in target.get("parameters", [])}
                for parameter, expression in link.get("parameters", {}).items():
                    assert parameter.removeprefix("header.") in names, (name, parameter)
                    if expression == "$response.body#/id":
                        body = response["content"]["application/json"]["schema"]
                        assert "id" in resolved(document, body)["properties"], (operation["operationId"], code)
                    elif expression.startswith("$request.path."):
                        assert "{" + expression.removeprefix("$request.path.") + "}" in path
    assert count > 100


@pytest.mark.parametrize(
    ("source", "target"),
    [
        ("expenses-create", "expenses-submit"),
        ("expenses-submit", "expenses-approve"),
        ("expenses-get", "expenses-update"),
        ("revenue-create", "revenue-reject"),
        ("reports-generate", "reports-get"),
        ("reports-generate", "reports-download"),
        ("invoices-create", "invoices-submit"),
        ("customers-create", "customers-update"),
        ("customers-create", "invoices-create"),
        ("budgets-create", "budgets-revise"),
        ("users-create", "users-get"),
    ],
)
def test_the_chains_a_client_follows_are_linked(document: dict[str, Any], source: str, target: str) -> None:
    operation = next(operation for _, _, operation in operations(document) if operation["operationId"] == source)
    targets = {name for response in operation["responses"].values() for name in response.get("links", {})}
    assert target in targets


def test_the_get_to_update_link_hands_over_the_etag(document: dict[str, Any]) -> None:
    get = document["paths"]["/api/v1/expenses/{entry_id}"]["get"]
    link = get["responses"]["200"]["links"]["expenses-update"]
    assert link["parameters"] == {"entry_id": "$request.path.entry_id", "header.If-Match": "$response.header.ETag"}


@pytest.mark.parametrize("entry_date", [0, "0", "0001-01-01", "1999-12-31", "2101-01-01", "2026-02-30", "20260101"])
async def test_a_date_outside_the_books_is_a_clear_422(
    client: httpx.AsyncClient, make_user: MakeUser, entry_date: object
) -> None:
    user = await make_user("employee")
    body = {"amount": "12.50", "category": "travel", "entry_date": entry_date}
    answer = await client.post("/api/v1/expenses/", json=body, headers=user.headers)
    assert answer.status_code == 422, answer.text
    message = answer.json()["error"]["message"]
    assert message.startswith("entry_date: ")
    assert str(EARLIEST) in message or "YYYY-MM-DD" in message or "no calendar date" in message


def test_the_date_pattern_is_the_range_the_api_takes(document: dict[str, Any]) -> None:
    schema = document["components"]["schemas"]["ExpenseCreate"]["properties"]["entry_date"]
    pattern = re.compile(schema["pattern"])
    assert pattern.match(str(EARLIEST)) and pattern.match(str(LATEST)) and pattern.match("2024-02-29")
    for outside in ("1999-12-31", "2101-01-01", "2026-02-29", "2100-02-29", "2026-04-31", "0"):
        assert not pattern.match(outside), outside
