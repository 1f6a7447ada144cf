"""The attachments upkeep's activity: remove the presigned uploads never completed (domain/attachments/upkeep.py),
page by page, one short transaction per upload.

A removal that fails (the store refuses a delete, a statement fails) leaves its row for the next run, and the rest
go on; the attempt then fails, naming them, so the run retries and, failing still, shows in the Temporal UI. Each
attempt starts over from the first id: what is removed is gone, and what failed is looked at again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from domain.attachments import upkeep
from domain.audit.service import AuditContext
from domain.errors import ValidationFailed
from workflows.contracts import AttachmentActivity, AttachmentUpkeepInput, AttachmentUpkeepSummary

log = logging.getLogger(__name__)


class AttachmentActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    @activity.defn(name=AttachmentActivity.REMOVE_ABANDONED)
    async def remove_abandoned(self, job: AttachmentUpkeepInput) -> AttachmentUpkeepSummary:
        try:
            grace = upkeep.checked_grace(self.deps.settings.attachments, job.grace_seconds)
        except ValidationFailed as refused:
            raise ApplicationError(refused.message, type="ValidationFailed", non_retryable=True) from refused
        context = AuditContext(workflow_id=activity.info().workflow_id)
        summary = AttachmentUpkeepSummary()
        failed: dict[int, str] = {}
        after_id = 0
        while True:
            async with self.deps.db.transaction() as tx:
                page = await upkeep.abandoned_page(tx, grace, after_id, job.batch)
            for attachment_id in page:
                try:
                    async with self.deps.db.transaction() as tx:
                        removed = await upkeep.remove_abandoned(tx, self.deps.storage, attachment_id, grace, context)
                except Exception as error:  # this one stays for the next run; the others go on
                    log.warning("could not remove the abandoned upload %s", attachment_id, exc_info=True)
                    failed[attachment_id] = f"{type(error).__name__}: {error}"
                else:
                    if removed is None:
                        summary.left += 1
                    else:
                        summary.removed.append(removed.id)
                activity.heartbeat(attachment_id)
            if len(page) < job.batch:
                break
            after_id = page[-1]
        if failed:
            raise ApplicationError(
                f"removed {len(summary.removed)} abandoned uploads; {len(failed)} could not be removed and stay "
                f"for the next run: {dict(list(failed.items())[:10])}",
                type="AbandonedUploadsLeft",
            )
        return summary

    def all(self) -> list[Callable[..., object]]:
        return [self.remove_abandoned]
