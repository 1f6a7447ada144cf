"""`ETag` and `If-None-Match` on the reads a phone repeats (entries, lists, the dashboard, notifications).

A route opts in with the `ConditionalGet` dependency (it also declares the If-None-Match header in the OpenAPI
document). The middleware below then reads the route's 200 JSON body, keeps only the `?fields=` the client chose
(api/fieldsets.py), and tags it: `W/"<digest>"`, a hash of the body as sent, so anything that changes what the
client would see (a row, a rate, a count) changes the tag, and nothing else does. A client that sends the tag back
in If-None-Match gets 304 with no body while the answer is the same. The tag is weak: a gzipped and a plain copy of
one answer carry the same one.

A route that tags its answer itself with a row version (an entry's `"7"`, which If-Match takes) keeps it, with the
body's digest after a dot (`"7.<digest>"`): If-Match reads the version before the dot, and an answer that changes
without its row (a draft's indicative rate, a dismissed duplicate) still gets a new tag.

Answers stay `Cache-Control: no-store` (finance data is not left in shared caches or a browser's disk cache): the
app keeps its own copy, and sends its tag itself.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterable, Iterator
from typing import Annotated, Any

from fastapi import Depends, Header, Request
from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from api.fieldsets import SCOPE_KEY as FIELDS_KEY
from api.fieldsets import keep_fields

SCOPE_KEY = "finance.conditional_get"
_JSON = "application/json"
# What a 304 keeps of the 200's headers (RFC 9110, 15.4.5): the validator and what a cache would need.
_KEPT_ON_304 = {"etag", "cache-control", "vary", "content-location", "date", "expires"}


async def conditional_get(
    request: Request,
    if_none_match: Annotated[
        str | None,
        Header(
            alias="If-None-Match",
            description="the ETag of the copy you hold: 304 with no body while the answer is still the same",
        ),
    ] = None,
) -> None:
    request.scope[SCOPE_KEY] = True


ConditionalGet = Annotated[None, Depends(conditional_get)]

# A weak digest (`W/"<digest>"`), or a row's version with the digest after a dot (`"7.<digest>"`).
ETAG_PATTERN = r'^(W/)?"[0-9A-Za-z._-]+"$'
ETAG_HEADER: dict[str, Any] = {
    "description": "this answer's validator: send it in If-None-Match to be told 304 while nothing changed (on an "
    "entry it starts with the entry's version, and If-Match takes it whole)",
    "required": True,
    "schema": {"type": "string", "pattern": ETAG_PATTERN},
}
NOT_MODIFIED: dict[str, Any] = {
    "description": "Not Modified: the copy whose ETag you sent in If-None-Match is still the answer (no body)",
    "headers": {"ETag": ETAG_HEADER},
}


def _calls(dependant: Any) -> Iterator[object]:
    for dependency in dependant.dependencies:
        yield dependency.call
        yield from _calls(dependency)


def declare_conditional_gets(routes: Iterable[Any]) -> None:
    """In the OpenAPI document: the 304 and the ETag of every route that takes If-None-Match."""
    for route in routes:
        if conditional_get in _calls(route.dependant):
            route.responses[304] = NOT_MODIFIED
            success = route.responses.setdefault(200, {})
            # Only JSON answers are tagged: a route that may also answer a file (the audit log's CSV) tags only
            # its JSON, so there the header is optional.
            files = set(success.get("content", {})) - {_JSON}
            success.setdefault("headers", {})["ETag"] = {**ETAG_HEADER, "required": not files}


def digest(body: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(body).digest()[:16]).rstrip(b"=").decode()


def tag_for(body: bytes, route_tag: str | None) -> str:
    """The ETag of a body: the route's own version tag with the body's digest after a dot, or a weak digest."""
    if route_tag:
        opaque = route_tag.removeprefix("W/").strip('"')
        return f'"{opaque}.{digest(body)}"'
    return f'W/"{digest(body)}"'


def _opaque(tag: str) -> str:
    return tag.strip().removeprefix("W/").strip('"')


def matches(if_none_match: str | None, tag: str) -> bool:
    """Whether If-None-Match names this tag (weak comparison, as RFC 9110 asks of If-None-Match) or is `*`."""
    if not if_none_match:
        return False
    wanted = _opaque(tag)
    return any(part.strip() == "*" or _opaque(part) == wanted for part in if_none_match.split(","))


class ConditionalGetMiddleware:
    """Sparse fieldsets and ETags for the routes that asked for them; every other response passes untouched."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "GET":
            await self.app(scope, receive, send)
            return
        start: Message | None = None
        chunks: list[bytes] = []

        async def shaped(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                media = Headers(raw=message.get("headers", [])).get("content-type", "")
                wanted = scope.get(SCOPE_KEY) or scope.get(FIELDS_KEY)
                if wanted and message["status"] == 200 and media.partition(";")[0].strip() == _JSON:
                    start = message  # held until the body is whole
                    return
            elif message["type"] == "http.response.body" and start is not None:
                chunks.append(message.get("body", b""))
                if message.get("more_body", False):
                    return
                await self._answer(scope, start, b"".join(chunks), send)
                return
            await send(message)

        await self.app(scope, receive, shaped)

    async def _answer(self, scope: Scope, start: Message, body: bytes, send: Send) -> None:
        headers = MutableHeaders(raw=list(start.get("headers", [])))
        fields = scope.get(FIELDS_KEY)
        if fields:
            body = json.dumps(
                keep_fields(json.loads(body), fields), ensure_ascii=False, allow_nan=False, separators=(",", ":")
            ).encode()
            headers["content-length"] = str(len(body))
        if scope.get(SCOPE_KEY):
            tag = tag_for(body, headers.get("etag"))
            headers["etag"] = tag
            if matches(Headers(scope=scope).get("if-none-match"), tag):
                kept = [(name, value) for name, value in headers.raw if name.decode("latin-1") in _KEPT_ON_304]
                await send({"type": "http.response.start", "status": 304, "headers": kept})
                await send({"type": "http.response.body", "body": b""})
                return
        await send({**start, "headers": headers.raw})
        await send({"type": "http.response.body", "body": body})
