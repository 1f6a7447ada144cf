"""The interactive docs, served by the app itself: Swagger UI at /docs and ReDoc at /redoc.

FastAPI's own pages load their scripts and styles from a CDN, so they are blank on a machine without internet or
where policy forbids third-party hosts. These load them from the fastapi-offline package's files (we use its
assets, not its FastAPI factory), and a Content-Security-Policy keeps every request the pages make on this
origin: ReDoc's sidebar shows its vendor's logo from a CDN, and Swagger UI would call an online validator.
"""

from __future__ import annotations

import base64
import hashlib
import re
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html, get_swagger_ui_oauth2_redirect_html
from starlette.requests import Request
from starlette.responses import HTMLResponse, Response
from starlette.staticfiles import StaticFiles
from starlette.types import Scope

SWAGGER_UI_PATH = "/docs"
OAUTH2_REDIRECT_PATH = "/docs/oauth2-redirect"
REDOC_PATH = "/redoc"
# Outside /api; under /docs, so the request middleware treats the assets like the pages they belong to.
ASSETS_PATH = "/docs/assets"
PASSWORD_SCHEME = "OAuth2Password"
_BEARER_SCHEME = "HTTPBearer"  # the scheme api/deps.py reads the token with

_INLINE_SCRIPT = re.compile(r"<script>(.*?)</script>", re.DOTALL)


class _DocsAssets(StaticFiles):
    """The package's files, revalidated by ETag on each load (the middleware's default `no-store` would make a
    browser fetch 3 MB of scripts on every visit)."""

    def file_response(self, full_path: Any, stat_result: Any, scope: Scope, status_code: int = 200) -> Response:
        response = super().file_response(full_path, stat_result, scope, status_code)
        response.headers["cache-control"] = "no-cache"
        return response


def _with_policy(page: HTMLResponse) -> HTMLResponse:
    """Only this origin, for everything the page loads or calls. The page's own inline script (Swagger UI's set-up)
    is allowed by its hash, so no other inline script runs. ReDoc builds its search worker from a blob and styles
    itself with inline <style> tags, as does Swagger UI."""
    body = bytes(page.body).decode()
    hashes = "".join(
        f" 'sha256-{base64.b64encode(hashlib.sha256(script.encode()).digest()).decode()}'"
        for script in _INLINE_SCRIPT.findall(body)
    )
    page.headers["content-security-policy"] = (
        f"default-src 'none'; script-src 'self'{hashes}; style-src 'self' 'unsafe-inline'; "
        "img-src 'self' data:; font-src 'self' data:; connect-src 'self'; worker-src blob:; "
        "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"
    )
    return page


def _root(request: Request) -> str:
    """The path prefix a proxy mounts the app under (uvicorn --root-path), as FastAPI's own pages use it."""
    return str(request.scope.get("root_path", "")).rstrip("/")


def serve_docs(app: FastAPI) -> None:
    """Swagger UI (with its OAuth2 redirect page) and ReDoc at FastAPI's usual URLs, from local files. Call it only
    when the app serves its OpenAPI document (the DOCS_ENABLED setting)."""
    openapi_url = app.openapi_url
    if openapi_url is None:
        raise ValueError("the docs need the OpenAPI document: create the app with an openapi_url")
    app.mount(ASSETS_PATH, _DocsAssets(packages=[("fastapi_offline", "static")]), name="docs-assets")

    async def swagger_ui(request: Request) -> HTMLResponse:
        root = _root(request)
        return _with_policy(
            get_swagger_ui_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - Swagger UI",
                swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
                swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
                swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                oauth2_redirect_url=root + OAUTH2_REDIRECT_PATH,
                init_oauth=app.swagger_ui_init_oauth,
                # No badge from the online validator (its image is fetched from swagger.io for non-local hosts).
                swagger_ui_parameters={"validatorUrl": None, **(app.swagger_ui_parameters or {})},
            )
        )

    async def oauth2_redirect(request: Request) -> HTMLResponse:
        return _with_policy(get_swagger_ui_oauth2_redirect_html())

    async def redoc(request: Request) -> HTMLResponse:
        root = _root(request)
        return _with_policy(
            get_redoc_html(
                openapi_url=root + openapi_url,
                title=f"{app.title} - ReDoc",
                redoc_js_url=f"{root}{ASSETS_PATH}/redoc.standalone.js",
                redoc_favicon_url=f"{root}{ASSETS_PATH}/favicon.png",
                with_google_fonts=False,
            )
        )

    # Plain routes, like FastAPI's own docs pages: not in the schema, and not API routes needing a permission.
    app.add_route(SWAGGER_UI_PATH, swagger_ui, include_in_schema=False)
    app.add_route(OAUTH2_REDIRECT_PATH, oauth2_redirect, include_in_schema=False)
    app.add_route(REDOC_PATH, redoc, include_in_schema=False)


def declare_password_sign_in(app: FastAPI, token_url: str) -> None:
    """Declare the OAuth2 password flow of `token_url` as a second way to get the bearer token each protected
    operation takes, so Swagger UI's Authorize dialog signs in with a username and password (the login route
    accepts the OAuth2 form). Pasting a token (HTTPBearer) stays possible, and is the way for accounts with
    two-factor sign-in, whose login answers a challenge instead of a token."""
    build = app.openapi

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = build()  # FastAPI caches it in app.openapi_schema: amend that copy once
            schema.setdefault("components", {}).setdefault("securitySchemes", {})[PASSWORD_SCHEME] = {
                "type": "oauth2",
                "description": f"Sign in with a username (or email) and password at {token_url}.",
                "flows": {"password": {"tokenUrl": token_url, "scopes": {}}},
            }
            for path in schema.get("paths", {}).values():
                for operation in path.values():
                    requirements = operation.get("security") if isinstance(operation, dict) else None
                    if requirements and {_BEARER_SCHEME: []} in requirements:
                        requirements.append({PASSWORD_SCHEME: []})
        assert app.openapi_schema is not None
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
