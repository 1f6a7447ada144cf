"""A file's size, SHA-256 and first bytes, taken as its bytes go by, with the hard size cap: the one reading of a
receipt, whether it comes in a request's body or is read back from object storage after a presigned upload."""

from __future__ import annotations

import hashlib
from typing import BinaryIO

from domain.attachments.filetypes import HEAD_BYTES
from domain.errors import TooLarge

CHUNK_BYTES = 1 << 16


def too_large(max_bytes: int) -> TooLarge:
    return TooLarge(
        f"the file is larger than {max_bytes} bytes (ATTACHMENT_MAX_BYTES); nothing was stored",
        max_bytes=max_bytes,
    )


class Probe:
    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self.head = b""
        self._digest = hashlib.sha256()

    def feed(self, chunk: bytes) -> None:
        """Take the next bytes; TooLarge the moment the file passes the cap (the caller stops reading)."""
        self.size += len(chunk)
        if self.size > self.max_bytes:
            raise too_large(self.max_bytes)
        if len(self.head) < HEAD_BYTES:
            self.head += chunk[: HEAD_BYTES - len(self.head)]
        self._digest.update(chunk)

    @property
    def sha256(self) -> str:
        return self._digest.hexdigest()


def probe_stream(handle: BinaryIO, max_bytes: int) -> Probe:
    """Read `handle` to its end (or to the cap) through a probe; blocking, for a thread."""
    probe = Probe(max_bytes)
    try:
        while chunk := handle.read(CHUNK_BYTES):
            probe.feed(chunk)
    finally:
        handle.close()
    return probe
