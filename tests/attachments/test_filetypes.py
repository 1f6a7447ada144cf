"""The type check on its own: what a file's first bytes say, against its name (no services needed)."""

from __future__ import annotations

import struct

import pytest

from domain.attachments.filetypes import clean_filename, receipt_type
from domain.errors import ValidationFailed
from tests.attachments.conftest import ELF, HEIC, JPEG, PDF, PNG, TEXT, WEBP


def _ftyp(major: bytes, *compatible: bytes) -> bytes:
    body = major + b"\x00\x00\x00\x00" + b"".join(compatible)
    return struct.pack(">I", 8 + len(body)) + b"ftyp" + body


@pytest.mark.parametrize(
    ("content", "name", "expected"),
    [
        (PDF, "a.pdf", "application/pdf"),
        (JPEG, "a.jpeg", "image/jpeg"),
        (JPEG, "a.JPG", "image/jpeg"),
        (PNG, "a.png", "image/png"),
        (WEBP, "a.webp", "image/webp"),
        (HEIC, "IMG_0001.HEIC", "image/heic"),
        (_ftyp(b"mif1", b"mif1", b"heic"), "a.heif", "image/heic"),  # a HEIF whose images are HEVC: HEIC
    ],
)
def test_receipt_types_are_known_by_their_bytes(content: bytes, name: str, expected: str) -> None:
    assert receipt_type(content, name).content_type == expected


@pytest.mark.parametrize(
    ("content", "name", "reason"),
    [
        (PDF, "a.png", "extension_mismatch"),
        (PNG, "a", "extension_mismatch"),
        (ELF, "a.pdf", "executable"),
        (_ftyp(b"avif", b"mif1", b"avif"), "a.heic", "type_not_allowed"),  # AVIF is no receipt type
        (b"PK\x03\x04" + b"\x00" * 26, "a.pdf", "type_not_allowed"),  # a ZIP archive
        (TEXT, "a.pdf", "unknown_type"),
    ],
)
def test_other_files_are_refused_with_what_was_found(content: bytes, name: str, reason: str) -> None:
    with pytest.raises(ValidationFailed) as refused:
        receipt_type(content, name)
    assert refused.value.details["reason"] == reason


@pytest.mark.parametrize(
    ("given", "kept"),
    [("C:\\Users\\me\\scan.pdf", "scan.pdf"), ("../../etc/r.png", "r.png"), ("tab\there.pdf", "tabhere.pdf")],
)
def test_a_filename_keeps_only_its_own_printable_name(given: str, kept: str) -> None:
    assert clean_filename(given) == kept


@pytest.mark.parametrize("given", ["", "../", "x" * 252 + ".pdf"])
def test_an_empty_or_overlong_filename_is_refused(given: str) -> None:
    with pytest.raises(ValidationFailed):
        clean_filename(given)
