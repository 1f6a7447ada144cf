"""The project's backups worker in a process of its own, so a test can SIGKILL it in the middle of an upload.

Configured by the environment like the real worker, plus BACKUP_WORK_DIR (where dumps wait for their upload; a
restarted worker must find the dump there to resume). It prints `uploaded <n>` after each part is uploaded and
heartbeated; with HANG_AFTER_PART=<n> it stops after that part, keeping the attempt alive until it is killed.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

from activities.backups import BackupActivities
from core.settings import Settings
from core.temporal import connect, task_queues
from worker import build_deps, build_workers, worker_plan


async def main() -> None:
    hang_after = int(os.environ.get("HANG_AFTER_PART", "0"))

    async def after_part(number: int) -> None:
        print(f"uploaded {number}", flush=True)
        if number == hang_after:
            await asyncio.Event().wait()  # mid-upload: parts 1..n stored and heartbeated, the rest not sent

    settings = Settings()
    client = await connect(settings.temporal)
    deps = build_deps(settings)
    backups = BackupActivities(deps, work_dir=Path(os.environ["BACKUP_WORK_DIR"]), after_part=after_part)
    plans = [plan for plan in worker_plan(deps) if plan.task_queue == task_queues(settings.temporal).backups]
    for plan in plans:  # the project's plan, with the backup activities of this instance
        plan.activities = [
            fn for fn in plan.activities if not isinstance(getattr(fn, "__self__", None), BackupActivities)
        ] + backups.all()
    workers = build_workers(client, plans)
    print("ready", flush=True)
    await asyncio.gather(*(worker.run() for worker in workers))


if __name__ == "__main__":
    asyncio.run(main())
