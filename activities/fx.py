"""Exchange-rate activities: fetch an ECB rates file, parse it and store its days (domain/fx/imports.py) in one
transaction; and alert the admins when the import gives up.

A fetch that fails (the network, a 5xx, a timeout) raises, and the workflow's retry policy tries again; a document
that is not an ECB rates file is non-retryable (fetching it again gives the same). `file://` URLs are read too, so a
development stack can import a local sample.
"""

from __future__ import annotations

import asyncio
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from temporalio import activity
from temporalio.exceptions import ApplicationError

from activities.deps import ActivityDeps
from domain.audit.service import AuditContext
from domain.fx import ecb, imports
from domain.models.user import Role
from domain.notifications.service import notify_operators
from workflows.contracts import ECB_FORMAT_ERROR, FxActivity, FxImportJob, FxImportSummary, OperatorAlert

SCHEMES = ("http", "https", "file")
ALERTED_ROLES = (Role.ADMIN.value, Role.SUPERADMIN.value)


class FetchFailed(Exception):
    """The document could not be fetched now (retryable)."""


def fetch_document(url: str, timeout_seconds: float, max_bytes: int = ecb.MAX_BYTES) -> bytes:
    """The body at `url` (http, https or file), at most `max_bytes`; EcbFormatError when it is larger or the URL
    is not one we fetch, FetchFailed when it cannot be read now."""
    scheme = urlsplit(url).scheme.lower()
    if scheme not in SCHEMES:
        raise ecb.EcbFormatError(f"the URL {url!r} is not http(s) or file: FX_RATES_URL / FX_RATES_HISTORY_URL")
    request = urllib.request.Request(url, headers={"User-Agent": "finance-ops fx import"})  # noqa: S310 - checked
    try:
        with urllib.request.urlopen(request, timeout=timeout_seconds) as response:  # noqa: S310 - scheme checked
            body: bytes = response.read(max_bytes + 1)
    except urllib.error.HTTPError as error:
        raise FetchFailed(f"{url}: HTTP {error.code} {error.reason}") from None
    except (urllib.error.URLError, OSError, TimeoutError) as error:
        reason = getattr(error, "reason", error)
        raise FetchFailed(f"{url}: {reason}") from None
    if len(body) > max_bytes:
        raise ecb.EcbFormatError(f"{url}: more than {max_bytes} bytes; an ECB rates file is far smaller")
    return body


class FxActivities:
    def __init__(self, deps: ActivityDeps) -> None:
        self.deps = deps

    def url_for(self, job: FxImportJob) -> str:
        if job.url:
            return job.url
        fx = self.deps.settings.fx
        return fx.history_url if job.which == "history" else fx.rates_url

    @activity.defn(name=FxActivity.IMPORT)
    async def import_rates(self, job: FxImportJob) -> FxImportSummary:
        """Fetch, parse and store one ECB file; the summary of the days stored, already there and refused."""
        url = self.url_for(job)
        attempt = activity.info().attempt
        timeout = self.deps.settings.fx.fetch_timeout_seconds
        try:
            document = await asyncio.to_thread(fetch_document, url, timeout)
            parsed = ecb.parse(document)
        except ecb.EcbFormatError as error:
            raise ApplicationError(f"{url}: {error}", type=ECB_FORMAT_ERROR, non_retryable=True) from None
        except FetchFailed as error:
            activity.logger.warning("fx import attempt %d: %s", attempt, error)
            raise ApplicationError(str(error), type="FetchFailed") from None
        async with self.deps.db.transaction() as tx:
            summary = await imports.store(tx.sql, AuditContext(workflow_id=job.workflow_id), parsed, url, attempt)
        activity.logger.info(
            "fx import from %s: %d days stored, %d already there, %d refused",
            url,
            len(summary.stored),
            len(summary.already_there),
            len(summary.refused),
        )
        return summary

    @activity.defn(name=FxActivity.ALERT_ADMINS)
    async def alert_admins(self, alert: OperatorAlert) -> list[int]:
        """An in-app notification to every active admin and superadmin, once per dedup key; their ids."""
        async with self.deps.db.transaction() as tx:
            return await notify_operators(tx.sql, ALERTED_ROLES, **alert.model_dump())

    def all(self) -> list[Callable[..., Any]]:
        return [self.import_rates, self.alert_admins]
