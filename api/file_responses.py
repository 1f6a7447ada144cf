"""How a route that hands over a file declares its 200: bytes (`application/octet-stream`) first, so a generated
client returns the file as it came instead of parsing it, then each type the file may have. The route sets
`response_class=Response`, or FastAPI would list `application/json` as well."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

_BINARY = {"schema": {"type": "string", "format": "binary"}}


def file_responses(
    media_types: Iterable[str], others: Mapping[int, str], description: str = "the file"
) -> dict[int | str, dict[str, Any]]:
    """The `responses` of a file download: the 200 with its types, and each other status with its description."""
    content = {"application/octet-stream": _BINARY, **{media.split(";")[0]: _BINARY for media in media_types}}
    return {200: {"description": description, "content": content}, **{
        status: {"description": text} for status, text in others.items()
    }}  # fmt: skip
