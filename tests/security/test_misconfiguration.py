"""OWASP API8 (security misconfiguration): production hides internals, CORS is strict, docs can be turned off."""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import AsyncIterator

import httpx
import pytest
from fastapi import APIRouter, Depends, FastAPI

from api.app import create_app
from api.deps import AppServices, Public
from core.settings import AuthSettings, Environment, Settings


def _settings(base: Settings, **overrides: object) -> Settings:
    settings = base.model_copy(deep=True)
    for key, value in overrides.items():
        setattr(settings, key, value)
    return settings


async def _client(app: FastAPI, services: AppServices) -> AsyncIterator[httpx.AsyncClient]:
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://testserver") as http:
            yield http


@pytest.fixture
def production(settings: Settings) -> Settings:
    return _settings(
        settings,
        environment=Environment.PRODUCTION,
        docs_enabled=False,
        cors_origins="https://finance.example.com",
        auth=AuthSettings(secret_key=secrets.token_urlsafe(48), bcrypt_rounds=12, allow_registration=None),
    )


async def test_production_hides_stack_traces_docs_and_foreign_origins(
    production: Settings, app_services: AppServices
) -> None:
    services = dataclasses.replace(app_services, settings=production)
    app = create_app(services=services)
    boom = APIRouter()

    @boom.get("/boom", dependencies=[Depends(Public("test route that fails"))])
    async def fail() -> None:
        raise RuntimeError("secret internal detail /etc/passwd")

    app.include_router(boom)
    async for http in _client(app, services):
        failed = await http.get("/boom")
        assert failed.status_code == 500
        assert "secret internal detail" not in failed.text and "Traceback" not in failed.text
        assert failed.json()["error"]["code"] == "internal_error"

        for path in ("/docs", "/redoc", "/openapi.json"):
            assert (await http.get(path)).status_code == 404

        foreign = await http.options(
            "/health", headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "GET"}
        )
        assert "access-control-allow-origin" not in foreign.headers
        allowed = await http.get("/health", headers={"Origin": "https://finance.example.com"})
        assert allowed.headers["access-control-allow-origin"] == "https://finance.example.com"

        headers = (await http.get("/health")).headers
        assert headers["strict-transport-security"].startswith("max-age=")
        assert headers["content-security-policy"].startswith("default-src 'none'")
        assert "server" not in {key.lower() for key in headers if headers[key].lower().startswith("uvicorn")}


async def test_unknown_method_and_media_type_get_clear_4xx(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert response.status_code == 405
    assert response.json()["error"]["code"] == "method_not_allowed"
