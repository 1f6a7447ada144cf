"""Request and response shapes for receipts on expenses."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from domain.entries.schemas import Storable
from domain.json_numbers import JSON_INTEGER

Filename = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255), Storable]


class AttachmentOut(BaseModel):
    """A receipt: `pending` while a presigned upload is under way, `stored` once its bytes are checked."""

    model_config = ConfigDict(from_attributes=True)

    id: int
    entry_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str | None
    status: str
    uploaded_by_id: int
    created_at: datetime
    stored_at: datetime | None
    download_url: str | None = None


class AttachmentList(BaseModel):
    items: list[AttachmentOut]


class UploadStart(BaseModel):
    """A presigned upload asked for: the file's name and its size (the store refuses more than the limit)."""

    model_config = ConfigDict(extra="forbid")

    filename: Filename
    size_bytes: Annotated[int, Field(ge=1, le=5 * 1024**3), JSON_INTEGER]


class UploadTicket(BaseModel):
    """Where the browser sends the file: a multipart POST of `fields` then the file (as the last part, `file`) to
    `url`, before `expires_at`; then POST `complete_url`."""

    attachment: AttachmentOut
    url: str
    fields: dict[str, str]
    max_bytes: int
    expires_at: datetime
    complete_url: str
