"""What must hold across processes when several API and worker processes share one Temporal and one database
(tests/reliability/fleet.py), each check a function the fault run calls and a result that names its problems:

- the notification stream of a user connected to one API process receives what decisions made through another
  caused, and a reconnect after its process was killed (Last-Event-ID) loses none (`StreamWatcher`, `stream_check`);
- a policy edit applied through the admin API on one process takes effect in every process, timed
  (`policy_edit_reaches_every_process`);
- the sign-in throttle lets exactly its limit through in total, not per process (`login_throttle_holds_across_apis`);
- each recipient gets each entry's email once (`mail_per_recipient_and_entry`).

How the app implements each: the stream is fed by PostgreSQL LISTEN/NOTIFY on one connection per API process, and
replays from the database after the `Last-Event-ID` it is given (api/routes/notifications.py); every process holds
its own Casbin enforcer and reloads changed files by itself, the first to apply a change audits it
(core/authz.py, domain/policies/versions.py); the throttle counts in the `rate_limit_hits` table
(domain/auth/rate_limits.py); mail goes once per message key through the outbox ledger (domain/mail/delivery.py).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg

from tests.bench.approvals import Actor
from tests.reliability.fleet import PASSWORD, Fleet, FleetClient
from tests.services import SmtpSink

STREAM = "/api/v1/notifications/stream"

# --- the notification stream ------------------------------------------------------------------------------------


class StreamWatcher:
    """A user's notification stream held open on one API process, as a browser's EventSource holds it: when the
    connection breaks (its process killed) it reconnects to the same process, sending the last `id` it saw as
    `Last-Event-ID`, until stopped."""

    def __init__(self, api_url: str, user: Actor, retry_seconds: float = 0.3) -> None:
        self.api_url = api_url
        self.user = user
        self.retry_seconds = retry_seconds
        self.last_id: str | None = None
        self.received: list[tuple[int, dict[str, object]]] = []  # (id, the notification as sent)
        self.connections = 0
        self.resumed_with: list[str | None] = []  # the Last-Event-ID sent on each reconnect (None: had none)
        self.outages: list[tuple[datetime, datetime]] = []  # (connection lost, stream open again), wall clock
        self.refusals: Counter[str] = Counter()  # why connecting failed meanwhile (refused, a status)
        self.connected = asyncio.Event()
        self._lost_at: datetime | None = None
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=httpx.Timeout(5.0, read=None)) as http:
            while True:
                headers = dict(self.user.headers)
                if self.last_id is not None:
                    headers["Last-Event-ID"] = self.last_id
                try:
                    async with http.stream("GET", self.api_url + STREAM, headers=headers) as response:
                        if response.status_code != 200:
                            self.refusals[str(response.status_code)] += 1
                        else:
                            if self.connections:
                                self.resumed_with.append(headers.get("Last-Event-ID"))
                            self.connections += 1
                            await self._read(response)
                except httpx.ConnectError:
                    self.refusals["connection refused"] += 1
                except httpx.HTTPError:
                    pass  # the stream broke (its process died): reconnect
                if self._lost_at is None and self.connections:
                    self._lost_at = datetime.now(UTC)
                await asyncio.sleep(self.retry_seconds)

    async def _read(self, response: httpx.Response) -> None:
        block: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line != "":
                name, _, value = line.partition(":")
                block[name] = value.removeprefix(" ")
                continue
            if "id" in block:  # as EventSource does: any block's id, the first (retry) block's included
                self.last_id = block["id"]
            if "retry" in block:  # the first block: subscribed again
                if self._lost_at is not None:
                    self.outages.append((self._lost_at, datetime.now(UTC)))
                    self._lost_at = None
                self.connected.set()
            if block.get("event") == "notification":
                self.received.append((int(block["id"]), json.loads(block["data"])))
            block = {}


@dataclass
class StreamCheck:
    api: str  # the process the stream was held on
    user_id: int
    stored: int = 0  # the user's notifications in the database
    received: int = 0  # notifications the stream delivered
    missing: list[int] = field(default_factory=list)  # stored, never delivered
    doubled: list[int] = field(default_factory=list)  # delivered more than once
    # Of the delivered ones, by the API process the decision that caused them was made through ("unknown": the
    # approve call's answer was lost to a fault, and a later call found the entry approved).
    delivered_by_decision_api: dict[str, int] = field(default_factory=dict)
    connections: int = 0
    resumed_with: list[str | None] = field(default_factory=list)
    created_while_disconnected: int = 0  # delivered on reconnect, from the database (Last-Event-ID)
    refusals: dict[str, int] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if self.missing:
            # Below an id the client had already been sent when it reconnected: committed after a newer one (ids are
            # drawn at insert, not in commit order), which a reconnect's replay (ids above Last-Event-ID) skips.
            resumed = [int(value) for value in self.resumed_with if value is not None and value.isdigit()]
            skipped = [n for n in self.missing if resumed and n < max(resumed)]
            found.append(
                f"the stream on {self.api} never delivered notifications {self.missing[:20]}"
                + (f" ({len(skipped)} of them below a Last-Event-ID it reconnected with)" if skipped else "")
            )
        if self.doubled:
            found.append(f"the stream on {self.api} delivered notifications twice: {self.doubled[:20]}")
        if self.stored == 0:
            found.append(f"the user watched on {self.api} got no notifications at all: nothing was checked")
        if None in self.resumed_with:
            found.append(f"a reconnect to {self.api} had no Last-Event-ID to send")
        return found


async def stream_check(
    watcher: StreamWatcher,
    database_url: str,
    decided_through: dict[int, str],
    api_name: str,
    wait_seconds: float = 20,
) -> StreamCheck:
    """Wait (up to `wait_seconds`) for the stream to deliver every notification the database holds for its user,
    then compare: each exactly once. `decided_through`: entry id -> the API its decision was made through."""
    deadline = time.monotonic() + wait_seconds
    while True:
        with psycopg.connect(database_url) as conn:
            rows = conn.execute(
                "SELECT id, (data->>'entry_id')::bigint FROM notifications WHERE user_id = %s ORDER BY id",
                (watcher.user.id,),
            ).fetchall()
        stored = {int(notification): entry for notification, entry in rows}
        delivered = Counter(notification for notification, _ in watcher.received)
        if set(stored) <= set(delivered) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    check = StreamCheck(api=api_name, user_id=watcher.user.id, stored=len(stored), received=len(watcher.received))
    check.missing = sorted(set(stored) - set(delivered))
    check.doubled = sorted(n for n, count in delivered.items() if count > 1)
    check.delivered_by_decision_api = dict(
        sorted(Counter(decided_through.get(stored.get(n) or 0, "unknown") for n in delivered).items())
    )
    check.connections = watcher.connections
    check.resumed_with = list(watcher.resumed_with)
    check.refusals = dict(watcher.refusals)
    created = {n: datetime.fromisoformat(str(payload["created_at"])) for n, payload in watcher.received}
    check.created_while_disconnected = sum(
        1 for at in created.values() if any(lost <= at <= back for lost, back in watcher.outages)
    )
    return check


# --- a policy edit ----------------------------------------------------------------------------------------------

# The edit: employees may no longer read exchange rates. Nothing the run does needs it, and every API process
# answers GET /fx/rates for an employee with 403 once its enforcer holds the new policy.
REMOVED_RULE = "p, employee, fx_rate, read, *"
PROBE = "/api/v1/fx/rates"
_POLICY_INFO = re.compile(r'finance_policy_info\{version="([^"]+)"\}')


@dataclass
class PolicyCheck:
    version_before: str = ""
    version_after: str = ""  # what POST /admin/policies/reload answered
    reload_status: int = 0
    # Seconds from the file edit until each process reported the new version (None: not within the wait).
    seconds_until_in_force: dict[str, float | None] = field(default_factory=dict)
    # Each API's answer to an employee reading exchange rates, once it reported the new version (403 expected).
    probe_after: dict[str, int] = field(default_factory=dict)
    audit_rows: int = 0  # policy.changed rows for the new version: one, whichever process applied it first

    def problems(self) -> list[str]:
        found = []
        if self.reload_status != 200 or not self.version_after or self.version_after == self.version_before:
            found.append(f"the policy reload answered {self.reload_status} (version {self.version_after!r})")
        late = [name for name, seconds in self.seconds_until_in_force.items() if seconds is None]
        if late:
            found.append(f"the edited policy never took effect in {late}")
        allowed = {name: status for name, status in self.probe_after.items() if status != 403}
        if allowed:
            found.append(f"the rule removed still answered in {allowed} (403 expected)")
        if self.audit_rows != 1:
            found.append(f"{self.audit_rows} policy.changed audit rows for the edit (one expected)")
        return found


async def _version_of(http: httpx.AsyncClient, metrics_url: str) -> str | None:
    with contextlib.suppress(httpx.HTTPError):
        found = _POLICY_INFO.search((await http.get(metrics_url, timeout=2)).text)
        return found.group(1) if found else None
    return None


async def policy_edit_reaches_every_process(
    fleet: Fleet, client: FleetClient, superadmin: Actor, employee: Actor, wait_seconds: float = 15
) -> PolicyCheck:
    """Remove REMOVED_RULE from the fleet's policy.csv, reload through the admin API of the first process, and time
    until each process (every API's /metrics and every worker's business metrics) enforces the new version; each
    API must then refuse the removed permission."""
    check = PolicyCheck()
    processes = {member.name: url for member, url in zip(fleet.apis, fleet.api_urls, strict=True)}
    metrics = {name: f"{url}/metrics" for name, url in processes.items()}
    metrics |= {member.name: member.ready_url for member in fleet.workers}
    policy_file = Path(fleet.env["POLICY_DIR"]) / "policy.csv"
    async with httpx.AsyncClient() as http:
        before = {name: await _version_of(http, url) for name, url in metrics.items()}
        check.version_before = ",".join(sorted({v or "?" for v in before.values()}))
        text = policy_file.read_text()
        assert REMOVED_RULE in text, f"{REMOVED_RULE!r} is not in {policy_file}"
        policy_file.write_text(text.replace(REMOVED_RULE + "\n", ""))
        edited = time.monotonic()
        reloaded = await client.post(
            "/api/v1/admin/policies/reload", headers=superadmin.headers, prefer=0
        )  # the first API applies it at once; the others find the changed file by themselves
        check.reload_status = reloaded.status_code
        check.version_after = str(reloaded.json().get("version", "")) if reloaded.status_code == 200 else ""

        async def until_in_force(name: str, url: str) -> None:
            while (seconds := time.monotonic() - edited) < wait_seconds:
                if check.version_after and await _version_of(http, url) == check.version_after:
                    check.seconds_until_in_force[name] = round(seconds, 2)
                    if name in processes:
                        probe = await http.get(processes[name] + PROBE, headers=employee.headers, timeout=10)
                        check.probe_after[name] = probe.status_code
                    return
                await asyncio.sleep(0.05)
            check.seconds_until_in_force[name] = None

        await asyncio.gather(*(until_in_force(name, url) for name, url in metrics.items()))
    with psycopg.connect(fleet.database_url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM audit_log WHERE action = 'policy.changed' AND resource_id = %s",
            (check.version_after,),
        ).fetchone()
    check.audit_rows = int(row[0]) if row else 0
    return check


# --- the sign-in throttle ---------------------------------------------------------------------------------------


@dataclass
class ThrottleCheck:
    limit: int
    attempts: int = 0
    let_through: int = 0  # answered as a sign-in attempt (401 for the wrong password), not 429
    throttled: int = 0
    answers_by_api: dict[str, dict[str, int]] = field(default_factory=dict)

    def problems(self) -> list[str]:
        found = []
        if self.let_through != self.limit:
            found.append(
                f"the sign-in throttle let {self.let_through} of {self.attempts} attempts through across the API "
                f"processes; its limit is {self.limit} in total"
            )
        if self.let_through + self.throttled != self.attempts:
            found.append(f"sign-in attempts answered otherwise than 401 or 429: {self.answers_by_api}")
        return found


async def login_throttle_holds_across_apis(client: FleetClient, username: str, limit: int) -> ThrottleCheck:
    """Three times the limit of wrong-password sign-ins for one account, all at once, alternating the API
    processes: exactly `limit` are let through (401) in total, the rest are 429. The counters run in fixed
    one-minute windows: the burst starts well inside one."""
    into_minute = time.time() % 60
    if into_minute > 50:  # ten seconds for the burst, on a busy machine
        await asyncio.sleep(60.2 - into_minute)
    attempts = 3 * limit
    body = {"username": username, "password": "not-" + PASSWORD}
    answers = await asyncio.gather(
        *(client.post("/api/v1/auth/login", json=body, prefer=n % len(client.api_urls)) for n in range(attempts))
    )
    check = ThrottleCheck(limit=limit, attempts=attempts)
    check.let_through = sum(1 for answer in answers if answer.status_code == 401)
    check.throttled = sum(1 for answer in answers if answer.status_code == 429)
    by_api: dict[str, Counter[str]] = {}
    for answer in answers:
        by_api.setdefault(f"api{client.api_of(answer) + 1}", Counter())[str(answer.status_code)] += 1
    check.answers_by_api = {api: dict(counts) for api, counts in sorted(by_api.items())}
    return check


# --- mail -------------------------------------------------------------------------------------------------------

# The readable part of an approval mail's Message-ID starts with its workflow id (domain/mail/delivery.py
# message_id_for, from the notice's key: domain/approvals/notices.py).
_WORKFLOW_OF_MESSAGE = re.compile(r"^<?(approval-[a-z]+-\d+)-")


@dataclass
class MailCheck:
    expected: int = 0  # (recipient, entry) pairs: the approver on submission, the owner on approval
    delivered: int = 0  # pairs that got mail
    missing: list[str] = field(default_factory=list)
    doubled: dict[str, int] = field(default_factory=dict)  # pair -> distinct messages (more than one: doubled)
    unexpected: list[str] = field(default_factory=list)

    def problems(self) -> list[str]:
        found = []
        if self.missing:
            found.append(f"{len(self.missing)} recipients never got an entry's mail: {self.missing[:10]}")
        if self.doubled:
            found.append(
                f"recipients got an entry's mail as more than one message: {dict(list(self.doubled.items())[:10])}"
            )
        if self.unexpected:
            found.append(f"mail to recipients no decision concerned: {self.unexpected[:10]}")
        return found


def mail_per_recipient_and_entry(smtp: SmtpSink, database_url: str, ids: list[int]) -> MailCheck:
    """Each entry's approver and owner each got exactly one message about it (copies of one message, the same
    Message-ID, are the fault run's own check; here two different messages for one pair would be a double no
    mail client collapses)."""
    with psycopg.connect(database_url) as conn:
        rows = conn.execute(
            "SELECT e.id, e.workflow_id, lower(o.email), lower(a.email) FROM entries e "
            "JOIN users o ON o.id = e.owner_id JOIN approval_requests r ON r.entry_id = e.id "
            "JOIN approval_steps s ON s.request_id = r.id JOIN users a ON a.id = s.approver_id "
            "WHERE e.id = ANY(%s)",
            (ids,),
        ).fetchall()
    entry_of = {str(workflow_id): int(entry) for entry, workflow_id, _, _ in rows}
    expected = {(owner, int(entry)) for entry, _, owner, _ in rows} | {
        (approver, int(entry)) for entry, _, _, approver in rows
    }
    messages: dict[tuple[str, int], set[str]] = {}
    unexpected = []
    for message, (_, recipients) in zip(smtp.messages, smtp.envelopes, strict=True):
        message_id = str(message["Message-ID"])
        found = _WORKFLOW_OF_MESSAGE.match(message_id)
        entry = entry_of.get(found.group(1)) if found else None
        for recipient in recipients:
            pair = (recipient.lower(), entry or 0)
            if pair in expected:
                messages.setdefault(pair, set()).add(message_id)
            else:
                unexpected.append(f"{recipient} ({message_id})")
    check = MailCheck(expected=len(expected), delivered=len(messages), unexpected=unexpected)
    check.missing = sorted(f"{who} #{entry}" for who, entry in expected - set(messages))
    check.doubled = {f"{who} #{entry}": len(ids_) for (who, entry), ids_ in sorted(messages.items()) if len(ids_) > 1}
    return check
