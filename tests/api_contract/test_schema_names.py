"""Schema names: plain and unique. Two models of one name make FastAPI fall back to a module path
(`domain__reports__schemas__Period`), and openapi-python-client then drops every operation that uses it."""

from __future__ import annotations

import json
import re
from typing import Any

import httpx

from tests.conftest import PASSWORD, MakeUser

PLAIN = re.compile(r"^[A-Z][A-Za-z0-9]*$")  # no module path, no `__`, no -Input/-Output variant


def test_every_schema_has_a_plain_name_of_its_own(document: dict[str, Any]) -> None:
    schemas: dict[str, Any] = document["components"]["schemas"]
    assert len(schemas) > 50, "the document's schemas were not found"
    assert sorted(name for name in schemas if not PLAIN.match(name)) == []
    # A name taken by another model keeps its title and gains a prefix or suffix: title and name part ways.
    assert {name: schema.get("title", name) for name, schema in schemas.items()} == {name: name for name in schemas}
    referenced = set(re.findall(r'"#/components/schemas/([^"]+)"', json.dumps(document)))
    assert referenced - set(schemas) == set()


def test_the_login_body_is_one_type(document: dict[str, Any]) -> None:
    body = document["paths"]["/api/v1/auth/login"]["post"]["requestBody"]
    assert body["content"] == {"application/json": {"schema": {"$ref": "#/components/schemas/LoginRequest"}}}
    assert set(document["components"]["schemas"]["LoginRequest"]["required"]) == {"username", "password"}


async def test_the_oauth2_password_form_still_signs_in(client: httpx.AsyncClient, make_user: MakeUser) -> None:
    """What Swagger's Authorize dialog and OAuth2 libraries send: the form, with the grant and its extras."""
    user = await make_user("employee")
    form = {"grant_type": "password", "username": user.username, "password": PASSWORD, "scope": "", "client_id": "x"}
    signed_in = await client.post("/api/v1/auth/login", data=form)
    assert signed_in.status_code == 200, signed_in.text
    assert signed_in.json()["token_type"] == "bearer"
    me = await client.get("/api/v1/users/me", headers={"Authorization": f"Bearer {signed_in.json()['access_token']}"})
    assert me.json()["id"] == user.id

    wrong = await client.post("/api/v1/auth/login", data={**form, "password": "not-the-password"})
    assert wrong.status_code == 401
    other_grant = await client.post("/api/v1/auth/login", data={**form, "grant_type": "client_credentials"})
    assert other_grant.status_code == 422 and "grant_type" in other_grant.text
    no_password = await client.post("/api/v1/auth/login", data={"username": user.username})
    assert no_password.status_code == 422 and "password" in no_password.text
    as_json = await client.post("/api/v1/auth/login", json={"username": user.email, "password": PASSWORD})
    assert as_json.status_code == 200, as_json.text
    extra_in_json = await client.post("/api/v1/auth/login", json={**form})
    assert extra_in_json.status_code == 422  # JSON is the declared body: unknown fields are refused
