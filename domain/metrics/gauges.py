"""What the operators' dashboard reads from the database, computed when Prometheus scrapes, plus the policy version
in force in the process that answers.

The database gauges (approvals waiting by level and age, those past their escalation time, the age of the last
good backup and drill) are read at most once per `ttl` seconds, however often and by however many scrapers: three
small statements (domain/approvals/repository.pending_by_level_and_age reads only the pending steps, through their
index; domain/backups/service.health reads two tables of a few hundred rows a year). A read that fails or takes
longer than `timeout` keeps the last values, and `finance_metrics_read_age_seconds` says how old they are.

The API serves them (api/routes/health.py): it is up whenever the database is worth asking, and a worker that is
down must not hide an old backup. Every API replica reports the same values: aggregate them with max().
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime

from prometheus_client import REGISTRY, CollectorRegistry
from prometheus_client.core import GaugeMetricFamily, InfoMetricFamily, Metric
from prometheus_client.registry import Collector

from core.authz import Authorizer
from core.db import Database
from domain.approvals import repository as approvals
from domain.backups import service as backups

log = logging.getLogger(__name__)

# The age buckets of a waiting approval (seconds since its step opened) and their label values.
AGE_BOUNDS = [3600.0, 86400.0, 3 * 86400.0, 7 * 86400.0]
AGE_LABELS = ["under_1h", "1h_to_1d", "1d_to_3d", "3d_to_7d", "over_7d"]
TOP_LEVEL = 5  # levels 5 and above share a label ("5+"): chains are short, and a label must stay bounded


def level_label(level: int) -> str:
    return f"{TOP_LEVEL}+" if level >= TOP_LEVEL else str(level)


@dataclass(frozen=True)
class Reading:
    """One read of the database, and when it was taken."""

    at: datetime
    taken: float  # monotonic
    pending: list[approvals.PendingCount]
    backups: backups.BackupHealth


@dataclass(eq=False)  # registered by identity: a registry keys its collectors by hash
class DatabaseGauges(Collector):
    """A Prometheus collector over the last `Reading`; `refresh()` (awaited by the route before it renders the
    page) takes a new one when the last is older than `ttl`."""

    db: Database
    ttl: float = 15.0
    timeout: float = 2.0
    clock: Callable[[], float] = time.monotonic
    _reading: Reading | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def refresh(self) -> None:
        async with self._lock:  # scrapes at once share one read
            if self._reading is not None and self.clock() - self._reading.taken < self.ttl:
                return
            try:
                self._reading = await asyncio.wait_for(self._read(), self.timeout)
            except Exception as error:  # the last values stay, their age says how stale they are
                log.warning("business metrics: could not read the database (%s)", error)

    async def _read(self) -> Reading:
        now = datetime.now(UTC)
        async with self.db.transaction(autocommit=True) as tx:
            pending = await approvals.pending_by_level_and_age(tx.sql, now, AGE_BOUNDS, TOP_LEVEL)
            health = await backups.health(tx)
        return Reading(now, self.clock(), pending, health)

    def collect(self) -> Iterator[Metric]:
        reading = self._reading
        if reading is None:
            return
        age = GaugeMetricFamily("finance_metrics_read_age_seconds", "Seconds since the database gauges below were read")
        age.add_metric([], self.clock() - reading.taken)
        yield age
        yield from self._approvals(reading)
        yield from self._backups(reading)

    def _approvals(self, reading: Reading) -> Iterable[Metric]:
        waiting = GaugeMetricFamily(
            "finance_approvals_pending",
            "Approval steps waiting for a decision, by level of the chain (1 = first) and time waited",
            labels=["level", "age"],
        )
        overdue = GaugeMetricFamily(
            "finance_approvals_past_escalation",
            "Approval steps still waiting past their escalation time (the worker is away, or nobody above may "
            "approve), by level",
            labels=["level"],
        )
        counts: dict[tuple[str, str], int] = {
            (level_label(level), age): 0 for level in range(1, TOP_LEVEL + 1) for age in AGE_LABELS
        }
        late: dict[str, int] = {level_label(level): 0 for level in range(1, TOP_LEVEL + 1)}
        for row in reading.pending:
            level = level_label(row.level)
            counts[level, AGE_LABELS[row.age_bucket]] += row.waiting
            late[level] += row.overdue
        for (level, age_label), value in counts.items():
            waiting.add_metric([level, age_label], value)
        for level, value in late.items():
            overdue.add_metric([level], value)
        return [waiting, overdue]

    def _backups(self, reading: Reading) -> Iterable[Metric]:
        health = reading.backups

        def since(moment: datetime | None) -> float:
            # None yet: infinitely old, so "no backup in 26 hours" holds on an installation that never made one.
            return (reading.at - moment).total_seconds() if moment is not None else math.inf

        backup_age = GaugeMetricFamily(
            "finance_backup_last_success_age_seconds", "Seconds since the last backup completed (+Inf: none yet)"
        )
        backup_age.add_metric([], since(health.last_backup_at))
        drill_age = GaugeMetricFamily(
            "finance_restore_drill_last_success_age_seconds",
            "Seconds since the last restore drill passed (+Inf: none yet)",
        )
        drill_age.add_metric([], since(health.last_drill_passed_at))
        drill_failed = GaugeMetricFamily(
            "finance_restore_drill_last_failed", "1 when the most recent finished restore drill failed, else 0"
        )
        drill_failed.add_metric([], 1.0 if health.last_drill_failed else 0.0)
        return [backup_age, drill_age, drill_failed]


@dataclass(eq=False)  # registered by identity: a registry keys its collectors by hash
class PolicyVersion(Collector):
    """`finance_policy_info{version="..."} 1`: the Casbin policy this process enforces now (it reloads edited files
    by itself; two processes showing two versions for long means one refused the new files)."""

    authorizer: Authorizer

    def collect(self) -> Iterator[Metric]:
        info = InfoMetricFamily("finance_policy", "The authorization policy version in force in this process")
        info.add_metric([], {"version": self.authorizer.version})
        yield info


class _ProcessWide(Collector):
    """Everything registered the usual way in this process (the counters of domain/metrics/events.py, the HTTP
    metrics, the process and Python ones)."""

    def collect(self) -> Iterator[Metric]:
        yield from REGISTRY.collect()


def registry_of(*collectors: Collector) -> CollectorRegistry:
    """A registry that serves the process-wide metrics and these collectors (an app's own, made once per app, so
    a second app in one process, as in tests, does not collide with the first)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(_ProcessWide())
    for collector in collectors:
        registry.register(collector)
    return registry
