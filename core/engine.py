"""The workflow engine as the rest of the code meets it: start a workflow, send it an update or a signal, ask it a
query, keep a schedule. One Temporal client, connected lazily (so the API starts, and reads work, while Temporal is
down), every call bounded by the RPC timeout, and Temporal's failures turned into the few outcomes a caller can act
on (the exceptions below). Workflows are named by their type name; payloads are the contracts (pydantic models).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from temporalio.client import (
    Client,
    Schedule,
    ScheduleActionStartWorkflow,
    ScheduleAlreadyRunningError,
    ScheduleBackfill,
    ScheduleCalendarSpec,
    ScheduleOverlapPolicy,
    SchedulePolicy,
    ScheduleRange,
    ScheduleSpec,
    ScheduleState,
    ScheduleUpdate,
    ScheduleUpdateInput,
    WorkflowUpdateFailedError,
    WorkflowUpdateRPCTimeoutOrCancelledError,
)
from temporalio.common import (
    SearchAttributeKey,
    SearchAttributePair,
    TypedSearchAttributes,
    WorkflowIDConflictPolicy,
    WorkflowIDReusePolicy,
)
from temporalio.exceptions import ApplicationError, WorkflowAlreadyStartedError
from temporalio.service import RPCError, RPCStatusCode

from core.settings import TemporalSettings
from core.temporal import TaskQueues, connect, task_queues

log = logging.getLogger(__name__)
T = TypeVar("T")


class EngineUnavailable(Exception):
    """The engine could not be reached or did not answer in time; the call changed nothing."""


class UpdateUnanswered(Exception):
    """An update's answer did not come in time: the engine may still apply it (repeat it with the same id)."""


class UpdateRefused(Exception):
    """The workflow refused the update; `kind` is the refusal's type (workflows.contracts.REFUSALS)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


class WorkflowGone(Exception):
    """No running workflow has this id (it ended, or never started)."""


def search_attributes(values: dict[str, str | int]) -> TypedSearchAttributes:
    """Typed search attributes from plain values: a str is a Keyword, an int an Int."""
    pairs: list[SearchAttributePair[Any]] = []
    for name, value in values.items():
        key: SearchAttributeKey[Any] = (
            SearchAttributeKey.for_int(name) if isinstance(value, int) else SearchAttributeKey.for_keyword(name)
        )
        pairs.append(SearchAttributePair(key, value))
    return TypedSearchAttributes(pairs)


# What the Temporal UI can show of a workflow without its history (Temporal's user metadata): the server keeps
# these sizes comfortably (the summary is one line of the list view; the details are markdown on the detail view).
SUMMARY_CHARS = 200
DETAILS_CHARS = 4000


@dataclass(frozen=True)
class UserMetadata:
    """A workflow's static summary and details, set when it starts: what it is about, for the operator reading the
    Temporal UI. Names are fine (the UI's readers see them in the app too); secrets never."""

    summary: str
    details: str = ""

    def fitted(self) -> UserMetadata:
        summary = self.summary if len(self.summary) <= SUMMARY_CHARS else self.summary[: SUMMARY_CHARS - 1] + "…"
        details = self.details if len(self.details) <= DETAILS_CHARS else self.details[: DETAILS_CHARS - 1] + "…"
        return UserMetadata(summary, details)


class WorkflowEngine:
    def __init__(self, settings: TemporalSettings, client: Client | None = None) -> None:
        self.settings = settings
        self.queues: TaskQueues = task_queues(settings)
        self.timeout = timedelta(seconds=settings.rpc_timeout_seconds)
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        """The connected client; EngineUnavailable while Temporal cannot be reached."""
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(connect(self.settings), timeout=5)
                except (TimeoutError, RPCError, RuntimeError, OSError) as exc:
                    log.warning("Temporal unreachable at %s: %s", self.settings.address, exc)
                    raise EngineUnavailable("the workflow engine is unreachable") from exc
        return self._client

    async def check(self) -> bool:
        try:
            client = await self.client()
            await client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception:
            return False
        return True

    async def _bounded(self, call: Any, deadline: timedelta | None = None) -> Any:
        """Await an RPC with a hard deadline a little past its own timeout (a hung channel must not hang us)."""
        return await asyncio.wait_for(call, timeout=(deadline or self.timeout).total_seconds() + 1)

    async def start(
        self,
        workflow: str,
        argument: object,
        *,
        workflow_id: str,
        task_queue: str,
        attributes: dict[str, str | int] | None = None,
        on_running: Literal["keep", "replace"] = "keep",
        metadata: UserMetadata | None = None,
    ) -> bool:
        """Start `workflow` under its business key. A closed run of the id never blocks a new one; a running one is
        kept (the start counts as done: False) or, `on_running="replace"`, terminated and replaced atomically by the
        server. `metadata`: what the Temporal UI shows of it. True when this call started it."""
        client = await self.client()
        shown = metadata.fitted() if metadata is not None else None
        try:
            await self._bounded(
                client.start_workflow(
                    workflow,
                    argument,
                    id=workflow_id,
                    task_queue=task_queue,
                    search_attributes=search_attributes(attributes) if attributes else None,
                    rpc_timeout=self.timeout,
                    id_reuse_policy=WorkflowIDReusePolicy.ALLOW_DUPLICATE,
                    id_conflict_policy=WorkflowIDConflictPolicy.TERMINATE_EXISTING
                    if on_running == "replace"
                    else WorkflowIDConflictPolicy.FAIL,
                    static_summary=shown.summary if shown else None,
                    static_details=(shown.details or None) if shown else None,
                )
            )
        except WorkflowAlreadyStartedError:
            return False
        except (RPCError, TimeoutError) as error:
            log.warning("could not start %s: %s", workflow_id, error)
            raise EngineUnavailable(f"could not start {workflow_id}") from error
        return True

    async def update(self, workflow_id: str, name: str, argument: object, *, update_id: str, result_type: type[T]) -> T:
        """Send an update and wait for its result. Raises UpdateRefused (the workflow said no), UpdateUnanswered (it
        may still apply), WorkflowGone or EngineUnavailable."""
        client = await self.client()
        handle = client.get_workflow_handle(workflow_id)
        try:
            result: T = await self._bounded(
                handle.execute_update(name, argument, id=update_id, result_type=result_type, rpc_timeout=self.timeout)
            )
            return result
        except WorkflowUpdateFailedError as failure:
            cause = failure.cause
            if isinstance(cause, ApplicationError) and cause.type:
                raise UpdateRefused(cause.type, cause.message) from failure
            raise UpdateRefused("Conflict", f"the workflow refused the update: {cause}") from failure
        except (WorkflowUpdateRPCTimeoutOrCancelledError, TimeoutError) as error:
            raise UpdateUnanswered(workflow_id) from error
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise WorkflowGone(workflow_id) from error
            raise UpdateUnanswered(workflow_id) from error

    async def signal(self, workflow_id: str, name: str, argument: object) -> None:
        """Deliver a signal. Raises WorkflowGone or EngineUnavailable."""
        client = await self.client()
        try:
            await self._bounded(
                client.get_workflow_handle(workflow_id).signal(name, argument, rpc_timeout=self.timeout)
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                raise WorkflowGone(workflow_id) from error
            raise EngineUnavailable(f"could not signal {workflow_id}") from error
        except TimeoutError as error:
            raise EngineUnavailable(f"could not signal {workflow_id}") from error

    async def query(self, workflow_id: str, name: str, result_type: type[T], *, seconds: float = 2) -> T | None:
        """The workflow's answer, or None when it cannot give one now: a read must not fail because the engine is
        away."""
        try:
            client = await self.client()
            call = client.get_workflow_handle(workflow_id).query(
                name, result_type=result_type, rpc_timeout=timedelta(seconds=seconds)
            )
            result: T = await self._bounded(call, timedelta(seconds=seconds))
            return result
        except Exception as error:
            log.info("no answer to %s from %s: %s", name, workflow_id, error)
            return None

    async def run_status(self, workflow_id: str) -> str | None:
        """The status of the id's latest run (RUNNING, COMPLETED, FAILED, CANCELED, TERMINATED, CONTINUED_AS_NEW,
        TIMED_OUT), or None when the engine has no run of it. EngineUnavailable when it cannot answer."""
        client = await self.client()
        try:
            description = await self._bounded(
                client.get_workflow_handle(workflow_id).describe(rpc_timeout=self.timeout)
            )
        except RPCError as error:
            if error.status == RPCStatusCode.NOT_FOUND:
                return None
            raise EngineUnavailable(f"could not describe {workflow_id}") from error
        except TimeoutError as error:
            raise EngineUnavailable(f"could not describe {workflow_id}") from error
        return description.status.name if description.status is not None else None

    async def terminate(self, workflow_id: str, reason: str) -> bool:
        """Best effort: True when a running workflow was terminated."""
        try:
            client = await self.client()
            handle = client.get_workflow_handle(workflow_id)
            await self._bounded(handle.terminate(reason=reason, rpc_timeout=timedelta(seconds=2)), timedelta(seconds=2))
        except (EngineUnavailable, RPCError, TimeoutError) as error:
            log.info("did not terminate %s: %s", workflow_id, error)
            return False
        log.warning("terminated %s: %s", workflow_id, reason)
        return True

    # --- schedules ------------------------------------------------------------------------------------
    # Standing Temporal Schedules, by id. Every call is bounded like the rest; Temporal's answers become
    # ScheduleRefused (an invalid schedule: 422 at the API), ScheduleMissing, or EngineUnavailable.

    async def put_schedule(self, schedule_id: str, schedule: ScheduledStart) -> bool:
        """Create the schedule, or bring an existing one to `schedule` (spec, action, paused state and note): a
        schedule that is already there counts as success and is reconciled. True when this call created it."""
        client = await self.client()
        wanted = _temporal_schedule(schedule)
        with _schedule_errors(schedule_id):
            try:
                await self._bounded(client.create_schedule(schedule_id, wanted, rpc_timeout=self.timeout))
                return True
            except ScheduleAlreadyRunningError:
                pass

            def replace(_: ScheduleUpdateInput) -> ScheduleUpdate:
                return ScheduleUpdate(schedule=wanted)

            # A describe and an update: two round trips.
            handle = client.get_schedule_handle(schedule_id)
            await self._bounded(handle.update(replace, rpc_timeout=self.timeout), self.timeout * 2)
            return False

    async def add_schedule(
        self, schedule_id: str, schedule: ScheduledStart, *, backfill: tuple[datetime, datetime] | None = None
    ) -> bool:
        """Create the schedule unless it is there already (then it is left as it is: no reconciling). `backfill`
        (start, end): when this call creates it, also run at once the times of its spec between the two (the runs
        it would have made had it existed then; they do not count against `remaining_actions`). True when this call
        created it."""
        client = await self.client()
        wanted = _temporal_schedule(schedule)
        catch_up = (
            [ScheduleBackfill(start_at=backfill[0], end_at=backfill[1], overlap=ScheduleOverlapPolicy.ALLOW_ALL)]
            if backfill is not None
            else []
        )
        with _schedule_errors(schedule_id):
            try:
                await self._bounded(
                    client.create_schedule(schedule_id, wanted, backfill=catch_up, rpc_timeout=self.timeout)
                )
            except ScheduleAlreadyRunningError:
                return False
        return True

    async def delete_schedule(self, schedule_id: str) -> bool:
        """False when there was no such schedule (deleting twice is harmless)."""
        client = await self.client()
        try:
            with _schedule_errors(schedule_id):
                await self._bounded(client.get_schedule_handle(schedule_id).delete(rpc_timeout=self.timeout))
        except ScheduleMissing:
            return False
        return True

    async def pause_schedule(self, schedule_id: str, note: str) -> None:
        """Raises ScheduleMissing when the engine has no such schedule."""
        client = await self.client()
        with _schedule_errors(schedule_id):
            await self._bounded(client.get_schedule_handle(schedule_id).pause(note=note, rpc_timeout=self.timeout))

    async def resume_schedule(self, schedule_id: str, note: str) -> None:
        """Raises ScheduleMissing when the engine has no such schedule."""
        client = await self.client()
        with _schedule_errors(schedule_id):
            await self._bounded(client.get_schedule_handle(schedule_id).unpause(note=note, rpc_timeout=self.timeout))

    async def trigger_schedule(self, schedule_id: str) -> None:
        """Start the schedule's action now, even while an earlier run still runs. Raises ScheduleMissing."""
        client = await self.client()
        handle = client.get_schedule_handle(schedule_id)
        with _schedule_errors(schedule_id):
            await self._bounded(handle.trigger(overlap=ScheduleOverlapPolicy.ALLOW_ALL, rpc_timeout=self.timeout))

    async def schedule_runs(self, schedule_id: str, count: int = 5) -> ScheduleRuns | None:
        """The next and the most recent action times, or None when the engine cannot tell now: they are extras on
        a read, which must not fail or wait because the engine is away."""
        try:
            client = await self.client()
            handle = client.get_schedule_handle(schedule_id)
            description = await self._bounded(handle.describe(rpc_timeout=self.timeout))
        except (EngineUnavailable, RPCError, TimeoutError) as error:
            log.info("no runs of schedule %s: %s", schedule_id, error)
            return None
        info = description.info
        return ScheduleRuns(
            next=list(info.next_action_times[:count]),
            recent=[action.scheduled_at for action in info.recent_actions[-count:]],
        )


# --- schedules: what the methods above take, answer and raise ------------------------------------------


@dataclass(frozen=True)
class Calendar:
    """Midnight, in the schedule's time zone, of every day that matches each field (an empty field matches any
    day). A value is a number or a `range` of them with its step (`range(2000, 2097, 4)`: every fourth year)."""

    months: tuple[int | range, ...] = ()
    days_of_month: tuple[int | range, ...] = ()
    days_of_week: tuple[int | range, ...] = ()  # 0 Sunday ... 6 Saturday
    years: tuple[int | range, ...] = ()


@dataclass(frozen=True)
class ScheduledStart:
    """A standing schedule: start `workflow` with `argument` as `workflow_id` on `task_queue` at every time of
    `cron` (or of `calendars`) in `timezone`, from `start_at` on, at most `remaining_actions` times (None: no
    limit). A run that falls due while the previous one still runs is skipped (overlap SKIP); runs missed while the
    engine was down are made up within `catchup_window` (None: the engine's default)."""

    workflow: str
    argument: object
    workflow_id: str
    task_queue: str
    cron: str | None
    timezone: str
    execution_timeout: timedelta
    catchup_window: timedelta | None = None
    paused: bool = False
    note: str | None = None
    calendars: tuple[Calendar, ...] = ()
    start_at: datetime | None = None
    remaining_actions: int | None = None
    metadata: UserMetadata | None = None  # what the Temporal UI shows of each run it starts


@dataclass(frozen=True)
class ScheduleRuns:
    next: list[datetime]
    recent: list[datetime]


class ScheduleRefused(Exception):
    """The engine refused the schedule as invalid (a cron expression or time zone it does not accept)."""


class ScheduleMissing(Exception):
    """The engine has no schedule with this id (deleted, or lost with a development server's state)."""


def _ranges(values: tuple[int | range, ...], default: ScheduleRange | None = None) -> list[ScheduleRange]:
    if not values:
        return [default] if default is not None else []
    return [
        ScheduleRange(value.start, value[-1], value.step) if isinstance(value, range) else ScheduleRange(value)
        for value in values
    ]


def _calendar_spec(calendar: Calendar) -> ScheduleCalendarSpec:
    midnight = [ScheduleRange(0)]
    return ScheduleCalendarSpec(
        second=midnight,
        minute=midnight,
        hour=midnight,
        day_of_month=_ranges(calendar.days_of_month, ScheduleRange(1, 31)),
        month=_ranges(calendar.months, ScheduleRange(1, 12)),
        day_of_week=_ranges(calendar.days_of_week, ScheduleRange(0, 6)),
        year=_ranges(calendar.years),
    )


def _temporal_schedule(schedule: ScheduledStart) -> Schedule:
    shown = schedule.metadata.fitted() if schedule.metadata is not None else None
    return Schedule(
        action=ScheduleActionStartWorkflow(
            schedule.workflow,
            schedule.argument,
            id=schedule.workflow_id,
            task_queue=schedule.task_queue,
            execution_timeout=schedule.execution_timeout,
            static_summary=shown.summary if shown else None,
            static_details=(shown.details or None) if shown else None,
        ),
        spec=ScheduleSpec(
            cron_expressions=[schedule.cron] if schedule.cron else [],
            calendars=[_calendar_spec(calendar) for calendar in schedule.calendars],
            start_at=schedule.start_at,
            time_zone_name=schedule.timezone,
        ),
        policy=SchedulePolicy(overlap=ScheduleOverlapPolicy.SKIP, catchup_window=schedule.catchup_window),
        state=ScheduleState(
            paused=schedule.paused,
            note=schedule.note,
            limited_actions=schedule.remaining_actions is not None,
            remaining_actions=schedule.remaining_actions or 0,
        ),
    )


@contextmanager
def _schedule_errors(schedule_id: str) -> Iterator[None]:
    try:
        yield
    except RPCError as error:
        if error.status == RPCStatusCode.NOT_FOUND:
            raise ScheduleMissing(schedule_id) from error
        if error.status == RPCStatusCode.INVALID_ARGUMENT:
            raise ScheduleRefused(error.message) from error
        log.warning("schedule %s: %s", schedule_id, error)
        raise EngineUnavailable(f"could not change schedule {schedule_id}") from error
    except TimeoutError as error:
        raise EngineUnavailable(f"could not change schedule {schedule_id}") from error
