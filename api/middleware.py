"""Pure ASGI middleware: request id, body size limit, security headers, access log and Prometheus metrics."""

from __future__ import annotations

import json
import logging
import re
import time
import uuid
from collections.abc import Sequence

from prometheus_client import Counter, Histogram
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.errors import internal_error_response, log_unhandled
from core.logging import request_id_var

log = logging.getLogger("api.access")

REQUESTS = Counter("http_requests_total", "HTTP requests", ["method", "route", "status"])
LATENCY = Histogram(
    "http_request_duration_seconds",
    "HTTP request latency",
    ["method", "route"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)

_SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"cache-control", b"no-store"),
    (b"content-security-policy", b"default-src 'none'; frame-ancestors 'none'"),
    (b"strict-transport-security", b"max-age=31536000; includeSubDomains"),
]
# The interactive docs load their own scripts and styles; everything else gets the strict policy.
_DOCS_PATHS = ("/docs", "/redoc")


class RequestContextMiddleware:
    """Assigns a request id (or keeps a safe one from the client), logs the request, records metrics,
    adds security headers, and refuses bodies over the limit with 413 before the app reads them.

    It also answers unhandled exceptions with the JSON 500 itself: Starlette's own catch-all runs in the outermost
    middleware, after this one has reset the request id, so its response and log line would carry none."""

    def __init__(
        self, app: ASGIApp, max_body_bytes: int, larger_bodies: Sequence[tuple[str, re.Pattern[str], int]] = ()
    ) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        # (method, path pattern, limit): the routes that take a file (a receipt) and refuse it beyond its own cap.
        self.larger_bodies = tuple(larger_bodies)

    def _limit_for(self, method: str, path: str) -> int:
        for allowed_method, pattern, limit in self.larger_bodies:
            if method == allowed_method and pattern.fullmatch(path):
                return limit
        return self.max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        incoming = headers.get(b"x-request-id", b"").decode("latin-1")
        request_id = incoming if _SAFE_REQUEST_ID.match(incoming) else uuid.uuid4().hex
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_holder = {"status": 500}
        path: str = scope["path"]
        max_body_bytes = self._limit_for(scope["method"], path)

        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > max_body_bytes:
            await self._too_large(send, request_id, max_body_bytes)
            request_id_var.reset(token)
            return

        received = 0
        too_large = False
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received, too_large
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > max_body_bytes:
                    too_large = True
                    raise _BodyTooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
                status_holder["status"] = message["status"]
                extra = [(b"x-request-id", request_id.encode())]
                if not path.startswith(_DOCS_PATHS):
                    extra += SECURITY_HEADERS
                else:
                    extra += [pair for pair in SECURITY_HEADERS if pair[0] != b"content-security-policy"]
                existing = {name.lower() for name, _ in message.get("headers", [])}
                message["headers"] = list(message.get("headers", [])) + [
                    pair for pair in extra if pair[0] not in existing
                ]
            await send(message)

        try:
            await self.app(scope, limited_receive, send_with_headers)
        except _BodyTooLarge:
            await self._too_large(send, request_id, max_body_bytes)
            status_holder["status"] = 413
        except Exception as exc:
            log_unhandled(exc)
            if response_started:
                # Part of the body is out: re-raise so the server drops the connection and the client sees a
                # broken response rather than a complete-looking truncated one.
                raise
            status_holder["status"] = 500
            await internal_error_response()(scope, receive, send_with_headers)
        finally:
            elapsed = time.perf_counter() - started
            route = scope.get("route")
            route_path = getattr(route, "path", "unmatched")
            REQUESTS.labels(scope["method"], route_path, str(status_holder["status"])).inc()
            LATENCY.labels(scope["method"], route_path).observe(elapsed)
            log.info(
                "%s %s %s",
                scope["method"],
                path,
                status_holder["status"],
                extra={
                    "method": scope["method"],
                    "path": path,
                    "status": status_holder["status"],
                    "duration_ms": round(elapsed * 1000, 2),
                },
            )
            request_id_var.reset(token)
            del too_large

    async def _too_large(self, send: Send, request_id: str, max_body_bytes: int) -> None:
        body = json.dumps(
            {
                "error": {
                    "code": "payload_too_large",
                    "message": f"request body exceeds {max_body_bytes} bytes",
                    "details": None,
                },
                "request_id": request_id,
            }
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 413,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                    (b"x-request-id", request_id.encode()),
                    *SECURITY_HEADERS,
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})


class _BodyTooLarge(Exception):
    pass
