"""A reports worker in its own process whose rendering is slow (small batches, a pause after each), so a test can
kill it with SIGKILL in the middle of a report. Configured by the environment like the real worker."""

from __future__ import annotations

import asyncio

import activities.reports
from activities.reports import ReportActivities
from core.settings import Settings
from core.temporal import connect, task_queues
from worker import build_deps, build_workers, worker_plan


async def _slow_batch(self: ReportActivities, rows: int) -> None:
    print(f"rendered {rows}", flush=True)
    await asyncio.sleep(0.25)


async def main() -> None:
    activities.reports.BATCH_SIZE = 50
    ReportActivities.after_batch = _slow_batch  # type: ignore[method-assign]
    settings = Settings()
    client = await connect(settings.temporal)
    deps = build_deps(settings)
    reports_queue = task_queues(settings.temporal).reports
    plans = [plan for plan in worker_plan(deps) if plan.task_queue == reports_queue]
    workers = build_workers(client, plans)
    print("ready", flush=True)
    await asyncio.gather(*(worker.run() for worker in workers))


if __name__ == "__main__":
    asyncio.run(main())
