"""One file from a multipart/form-data body, read as it streams in: written to a temporary file through a probe
(size, SHA-256, first bytes) that stops the read the moment the file passes its cap.

The body is parsed here, part by part, rather than by Starlette's form parser, which would spool the whole body
first (and any number of parts) before the handler could refuse it.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import ClientDisconnect, Request

from domain.attachments.probe import Probe
from domain.attachments.service import Received
from domain.errors import ValidationFailed

FILE_FIELD = "file"
# Room for the multipart framing around the file (boundaries, part headers): the body limit of an upload route is
# its file cap plus this.
FRAMING_BYTES = 64 * 1024
_MAX_HEADER_BYTES = 8 * 1024


def _refusal(message: str) -> ValidationFailed:
    return ValidationFailed(message, field=FILE_FIELD)


class _Parts:
    """The parser's callbacks, collected as events for the reader to act on between writes (no I/O in them)."""

    def __init__(self) -> None:
        self.events: list[tuple[str, bytes]] = []
        self._field = b""
        self._value = b""
        self.headers: dict[bytes, bytes] = {}

    def callbacks(self) -> dict[str, object]:
        return {
            "on_part_begin": self._begin,
            "on_header_field": self._header_field,
            "on_header_value": self._header_value,
            "on_header_end": self._header_end,
            "on_headers_finished": lambda: self.events.append(("headers", b"")),
            "on_part_data": lambda data, start, end: self.events.append(("data", bytes(data[start:end]))),
            "on_part_end": lambda: self.events.append(("end", b"")),
            "on_end": lambda: self.events.append(("done", b"")),
        }

    def _begin(self) -> None:
        self.headers = {}

    def _header_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _header_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]
        if len(self._value) > _MAX_HEADER_BYTES:
            raise _refusal("a part's header is too long")

    def _header_end(self) -> None:
        self.headers[self._field.lower()] = self._value
        self._field = self._value = b""


@contextlib.asynccontextmanager
async def received_file(request: Request, max_bytes: int) -> AsyncIterator[Received]:
    """The one part named `file` of the request's multipart body, in a temporary file removed afterwards. 422 for
    another shape of body, 413 (probe) past `max_bytes`: the read stops there and nothing is kept."""
    content_type, options = parse_options_header(request.headers.get("content-type", ""))
    boundary = options.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise _refusal("send the file as multipart/form-data, in one part named file")
    parts = _Parts()
    parser = MultipartParser(boundary, parts.callbacks())  # type: ignore[arg-type]
    probe = Probe(max_bytes)
    handle, name = tempfile.mkstemp(prefix="receipt-")
    path = Path(name)
    filename: str | None = None
    in_file = done = False
    try:
        with os.fdopen(handle, "wb") as sink:
            try:
                async for chunk in request.stream():
                    parser.write(chunk)
                    for event, data in parts.events:
                        if event == "headers":
                            if filename is not None:
                                raise _refusal("send one file per request, in one part named file")
                            filename, in_file = _file_part(parts.headers), True
                        elif event == "data" and in_file:
                            probe.feed(data)
                            sink.write(data)
                        elif event == "end":
                            in_file = False
                        elif event == "done":
                            done = True
                    parts.events.clear()
            except MultipartParseError as error:
                raise _refusal(f"the multipart body cannot be read: {error}") from error
            except ClientDisconnect as error:
                raise _refusal("the upload was cut off before the file was complete") from error
        if filename is None or not done:
            raise _refusal("the body has no complete part named file (multipart/form-data)")
        yield Received(path, filename, probe)
    finally:
        await asyncio.to_thread(path.unlink, missing_ok=True)


def _file_part(headers: dict[bytes, bytes]) -> str:
    """The filename of a part that must be the file (any other part is refused: the body has nothing else)."""
    disposition, options = parse_options_header(headers.get(b"content-disposition", b""))
    name = options.get(b"name", b"").decode("utf-8", "replace")
    if disposition != b"form-data" or name != FILE_FIELD:
        raise _refusal(f"unexpected part {name!r}: the body holds one part, named file")
    filename = options.get(b"filename")
    if not filename:
        raise _refusal("the file part has no filename (its extension must match its content)")
    return filename.decode("utf-8", "replace")
