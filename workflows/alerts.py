"""What every operational workflow does when it gives up: tell the operators, in-app and by email, and name the
reason an activity failed with. Deterministic: the side effects are activities named in workflows/contracts.py."""

from __future__ import annotations

from datetime import timedelta

from temporalio import workflow
from temporalio.common import RetryPolicy
from temporalio.exceptions import ActivityError

with workflow.unsafe.imports_passed_through():
    from workflows.contracts import EMAIL_RETRY, EMAIL_TIMEOUT, SEND_EMAIL, EmailJob, OperatorAlert

ALERT_TIMEOUT = timedelta(seconds=60)
ALERT_RETRY = RetryPolicy(initial_interval=timedelta(seconds=1), maximum_interval=timedelta(seconds=30))


def failure_reason(error: ActivityError) -> str:
    """What an activity failed with, as a person reads it (its message, not the wrapper's)."""
    cause = error.cause
    return str(getattr(cause, "message", None) or cause or error)


async def alert_operators(activity: str, alert: OperatorAlert, template: str, context: dict[str, object]) -> None:
    """The in-app notification (`activity` picks who gets it and returns their ids), then one email to them."""
    user_ids = await workflow.execute_activity(
        activity,
        alert,
        result_type=list[int],
        start_to_close_timeout=ALERT_TIMEOUT,
        retry_policy=ALERT_RETRY,
        summary=f"alert the operators in the app: {alert.event_type}",
    )
    if not user_ids:
        return
    await workflow.execute_activity(
        SEND_EMAIL,
        EmailJob(
            message_key=alert.dedup_key,
            template=template,
            to_user_ids=user_ids,
            event_type=alert.event_type,
            context={"title": alert.title, "body": alert.body, "link": alert.link, **context},
        ),
        start_to_close_timeout=EMAIL_TIMEOUT,
        retry_policy=EMAIL_RETRY,
        summary=f"email {template} to {len(user_ids)} operator(s)",
    )
