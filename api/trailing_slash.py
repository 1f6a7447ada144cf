"""Every path answers with and without its trailing slash, directly: no redirect.

The product README writes `POST /api/v1/reports/` and `GET /api/v1/users/me`; clients copy whichever form they
read, and many do not follow a redirect on POST (or drop the body and the Authorization header when they do). So
a path that matches no route is tried once more in its other form, in this process, before it is a 404. Routes
and the OpenAPI document keep one form each; a request that matches a route as sent costs nothing extra.
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.types import Receive, Scope, Send

_TRIED = "finance_ops.slash_form_as_sent"  # a scope key: the path as sent, while its other form is tried


def other_form(path: str) -> str:
    return path.rstrip("/") if path.endswith("/") else f"{path}/"


def answer_both_slash_forms(app: FastAPI) -> None:
    """Turn Starlette's redirect into an internal second try of the other form (the router's fallback)."""
    router = app.router
    router.redirect_slashes = False
    not_found = router.default

    async def try_other_form(scope: Scope, receive: Receive, send: Send) -> None:
        if _TRIED in scope:  # the other form matches nothing either: a 404 for the path as sent
            scope["path"], scope["raw_path"] = scope.pop(_TRIED)
            await not_found(scope, receive, send)
            return
        path: str = scope["path"]
        if scope["type"] != "http" or not path.rstrip("/"):
            await not_found(scope, receive, send)
            return
        raw_path: bytes = scope.get("raw_path") or path.encode()
        # In place, not a copy: the middleware reads the matched route from this scope for its metrics.
        scope[_TRIED] = (path, raw_path)
        scope["path"], scope["raw_path"] = other_form(path), other_form(raw_path.decode("latin-1")).encode("latin-1")
        await router.app(scope, receive, send)

    router.default = try_other_form
