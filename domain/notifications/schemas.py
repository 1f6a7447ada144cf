"""What the notification and preference endpoints read and return."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StrictBool, WithJsonSchema

from domain.notifications.events import CONFIGURABLE_EVENTS
from domain.pagination import PageInfo


class NotificationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: int
    event_type: str
    title: str
    body: str
    link: str | None
    data: dict[str, Any]
    created_at: datetime
    read_at: datetime | None


class NotificationPageOut(PageInfo):
    items: list[NotificationOut]
    next_updated_since: datetime | None = Field(
        None,
        description="with `updated_since`: the time to send as `updated_since` on your next sync (it overlaps this "
        "one a little, so a change committed while this one read is not missed)",
    )


class UnreadCountOut(BaseModel):
    unread: int


class ReadAllOut(BaseModel):
    marked_read: int = Field(description="how many notifications were unread and are now read")


class EmailPreferencesOut(BaseModel):
    email: dict[str, bool] = Field(description="per event type: whether you also get an email (in-app is always on)")
    event_types: dict[str, str] = Field(description="what each event type means")
    always_emailed: list[str] = Field(description="security mail that cannot be turned off")


class EmailPreferencesIn(BaseModel):
    """The event types listed are set; the others keep their current setting."""

    model_config = ConfigDict(extra="forbid")

    # The event types one may set, named in the document (the others are refused: unknown, or security mail).
    email: Annotated[
        dict[str, StrictBool],
        WithJsonSchema(
            {
                "type": "object",
                "properties": {event: {"type": "boolean"} for event in CONFIGURABLE_EVENTS},
                "additionalProperties": False,
            }
        ),
    ] = Field(max_length=50, examples=[{"entry_submitted": True, "approval_reminder": False}])
