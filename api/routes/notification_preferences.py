"""Your email preferences: per event type, whether a notification also comes by email."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends

from api.deps import Authorize, Grant, TxDep
from domain.audit.service import diff, record
from domain.notifications import service
from domain.notifications.events import ALWAYS_EMAILED, CONFIGURABLE_EVENTS, EVENT_TYPES
from domain.notifications.schemas import EmailPreferencesIn, EmailPreferencesOut

router = APIRouter(prefix="/users/me/notification-preferences", tags=["notifications"])


def _out(email: dict[str, bool]) -> EmailPreferencesOut:
    return EmailPreferencesOut(
        email=email,
        event_types={name: EVENT_TYPES[name] for name in CONFIGURABLE_EVENTS},
        always_emailed=sorted(ALWAYS_EMAILED),
    )


@router.get("", response_model=EmailPreferencesOut, summary="Your email preferences")
async def get_preferences(
    grant: Annotated[Grant, Depends(Authorize("notification", "read"))], tx: TxDep
) -> EmailPreferencesOut:
    return _out(await service.email_preferences(tx, grant.user.id))


@router.put(
    "",
    response_model=EmailPreferencesOut,
    summary="Turn email on or off per event type",
    description="The event types you list are set; the others keep their setting. In-app notifications stay on.",
)
async def put_preferences(
    body: EmailPreferencesIn,
    grant: Annotated[Grant, Depends(Authorize("notification", "update"))],
    tx: TxDep,
) -> EmailPreferencesOut:
    before, after = await service.set_email_preferences(tx, grant.user.id, body.email)
    changes = diff(before, after)
    if changes:
        await record(tx.sql, grant.audit, "notification_preferences.update", "user", grant.user.id, changes)
    return _out(after)
