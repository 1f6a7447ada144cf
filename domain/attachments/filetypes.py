"""What a receipt's file is, decided from its first bytes (never from its name or the Content-Type a client sends),
and whether its name agrees.

`filetype` reads the signatures (PDF's `%PDF`, PNG's and JPEG's magic numbers, WebP's RIFF header, HEIC's ISO-BMFF
`ftyp` brands) and names executables as such, so a program renamed `.pdf` is told apart from a document.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import PurePosixPath, PureWindowsPath

import filetype

from domain.errors import ValidationFailed

# filetype reads at most this many bytes from the start: enough for every signature it knows.
HEAD_BYTES = 8192


@dataclass(frozen=True)
class ReceiptType:
    content_type: str
    label: str  # how a person names it
    extensions: tuple[str, ...]  # the first is the canonical one


RECEIPT_TYPES: dict[str, ReceiptType] = {
    kind.content_type: kind
    for kind in (
        ReceiptType("application/pdf", "PDF", ("pdf",)),
        ReceiptType("image/jpeg", "JPEG", ("jpg", "jpeg")),
        ReceiptType("image/png", "PNG", ("png",)),
        ReceiptType("image/webp", "WebP", ("webp",)),
        ReceiptType("image/heic", "HEIC", ("heic", "heif")),
    )
}
ALLOWED = ", ".join(kind.label for kind in RECEIPT_TYPES.values())
_EXECUTABLES = frozenset(
    {"application/x-executable", "application/x-msdownload", "application/x-mach-binary", "application/x-elf",
     "application/x-sharedlib", "application/vnd.microsoft.portable-executable", "application/x-dosexec"}
)  # fmt: skip
MAX_FILENAME = 255


def clean_filename(name: str) -> str:
    """The file's own name, without any folders a browser or a client put before it, and without control
    characters; 422 when nothing is left or it is too long."""
    base = PureWindowsPath(PurePosixPath(name.strip()).name).name
    base = "".join(char for char in base if char.isprintable()).strip()
    if not base or base in (".", ".."):
        raise ValidationFailed("the file needs a name (with its extension, such as receipt.pdf)", field="filename")
    if len(base) > MAX_FILENAME:
        raise ValidationFailed(f"the filename is longer than {MAX_FILENAME} characters", field="filename")
    return base


def extension_of(filename: str) -> str:
    suffix = PurePosixPath(filename).suffix
    return suffix[1:].lower() if suffix else ""


def check_extension(filename: str) -> None:
    """Refuse early (before any byte is read) a name whose extension no receipt type has."""
    extension = extension_of(filename)
    if not any(extension in kind.extensions for kind in RECEIPT_TYPES.values()):
        raise ValidationFailed(
            f"{filename!r} does not end in the extension of a receipt type ({ALLOWED}: "
            f"{', '.join('.' + kind.extensions[0] for kind in RECEIPT_TYPES.values())})",
            field="filename",
            extension=extension,
        )


def receipt_type(head: bytes, filename: str) -> ReceiptType:
    """The receipt type the file's first bytes show, when it is one of the five and the name's extension agrees;
    422 naming what was found otherwise."""
    found = filetype.guess(head) if head else None
    extension = extension_of(filename)
    if found is None:
        raise ValidationFailed(
            f"the file's content is not a receipt type we recognise (only {ALLOWED} are accepted), whatever its "
            f"name ({filename!r}) says",
            field="file",
            reason="unknown_type",
        )
    kind = RECEIPT_TYPES.get(found.mime)
    if kind is None:
        what = "an executable program" if found.mime in _EXECUTABLES else f"{found.mime} (.{found.extension})"
        raise ValidationFailed(
            f"the file is {what}, not a receipt: only {ALLOWED} are accepted",
            field="file",
            reason="executable" if found.mime in _EXECUTABLES else "type_not_allowed",
            detected=found.mime,
        )
    if extension not in kind.extensions:
        raise ValidationFailed(
            f"the file's content is {kind.label} ({kind.content_type}) but its name ends in "
            f"{'.' + extension if extension else 'no extension'}; name it .{kind.extensions[0]}",
            field="filename",
            reason="extension_mismatch",
            detected=kind.content_type,
            extension=extension,
        )
    return kind
