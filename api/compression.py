"""gzip for JSON answers above a size, for clients that accept it: a list of entries shrinks about sevenfold.

Only whole JSON bodies are compressed. Starlette's GZipMiddleware would also compress streamed bodies (file
downloads, whose declared Content-Length it drops, and receipts of any type) chunk by chunk; here a response whose
body comes in more than one message (a download, the Server-Sent Events stream) or that is not `application/json`
passes untouched, so nothing is buffered that should flow, and a file keeps its bytes as stored.
"""

from __future__ import annotations

import gzip

from starlette.datastructures import Headers, MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

MINIMUM_BYTES = 1024  # below this the gzip header and the CPU cost more than the bytes saved
LEVEL = 6  # zlib's default: close to level 9's size on JSON at a fraction of its CPU
_JSON = "application/json"


def accepts_gzip(accept_encoding: str | None) -> bool:
    """Whether `Accept-Encoding` allows gzip (named, or `*`, with a q-value above 0; `gzip;q=0` refuses it)."""
    named: float | None = None
    anything: float | None = None
    for part in (accept_encoding or "").split(","):
        coding, _, params = part.strip().partition(";")
        quality = 1.0
        for param in params.split(";"):
            key, _, value = param.strip().partition("=")
            if key.strip().lower() == "q":
                try:
                    quality = float(value)
                except ValueError:
                    quality = 0.0
        coding = coding.strip().lower()
        if coding in ("gzip", "x-gzip"):
            named = quality
        elif coding == "*":
            anything = quality
    chosen = named if named is not None else anything
    return chosen is not None and chosen > 0


class JsonGZipMiddleware:
    def __init__(self, app: ASGIApp, minimum_bytes: int = MINIMUM_BYTES, level: int = LEVEL) -> None:
        self.app = app
        self.minimum_bytes = minimum_bytes
        self.level = level

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        gzip_ok = accepts_gzip(Headers(scope=scope).get("accept-encoding"))
        start: Message | None = None

        async def compressing(message: Message) -> None:
            nonlocal start
            if message["type"] == "http.response.start":
                headers = Headers(raw=message.get("headers", []))
                is_json = headers.get("content-type", "").partition(";")[0].strip().lower() == _JSON
                if is_json and "content-encoding" not in headers and message["status"] not in (204, 206, 304):
                    start = message  # held until the first body message says whether the body is whole
                    return
            elif message["type"] == "http.response.body" and start is not None:
                held, start = start, None
                body = message.get("body", b"")
                headers = MutableHeaders(raw=list(held.get("headers", [])))
                if not message.get("more_body", False):
                    headers.add_vary_header("Accept-Encoding")
                    if gzip_ok and len(body) >= self.minimum_bytes:
                        body = gzip.compress(body, self.level, mtime=0)
                        headers["content-encoding"] = "gzip"
                        headers["content-length"] = str(len(body))
                await send({**held, "headers": headers.raw})
                await send({**message, "body": body})
                return
            await send(message)

        await self.app(scope, receive, compressing)
