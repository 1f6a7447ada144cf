"""The engine floor that `make bench` sets the approval figures against.

The least work Temporal can do for one approval: start a workflow, send it one Update carrying the decision, run
one activity that records it, complete. Client and worker share this process and use nothing of the project,
so the figures are the engine's own on the same server in the same run. Measures throughput at a concurrency and
the Update's round trip (from the start's answer to the Update's), after a warm-up of WARM_UP workflows.

    python tests/bench/floor.py [ADDRESS] [COUNT] [CONCURRENCY]

Prints one JSON line last: floor_workflows, concurrency, seconds, per_second, update_p50_ms, update_p95_ms (the
keys and shape of the floor script the earlier figures in docs/benchmarks.md were measured with).
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import sys
import time
import uuid
from datetime import timedelta

from temporalio import activity, workflow
from temporalio.client import Client
from temporalio.worker import Worker

WARM_UP = 20


@activity.defn
async def record_decision(decision: str) -> str:
    return decision


@workflow.defn
class FloorApproval:
    def __init__(self) -> None:
        self.decision: str | None = None

    @workflow.update
    def decide(self, decision: str) -> str:
        self.decision = decision
        return decision

    @workflow.run
    async def run(self) -> str:
        await workflow.wait_condition(lambda: self.decision is not None)
        return await workflow.execute_activity(
            record_decision, self.decision, start_to_close_timeout=timedelta(seconds=10)
        )


async def approve_one(client: Client, task_queue: str, update_seconds: list[float]) -> None:
    handle = await client.start_workflow(FloorApproval.run, id=f"floor-{uuid.uuid4()}", task_queue=task_queue)
    sent = time.perf_counter()
    await handle.execute_update(FloorApproval.decide, "approved")
    update_seconds.append(time.perf_counter() - sent)
    await handle.result()


async def measure(address: str, count: int, concurrency: int) -> dict[str, float]:
    client = await Client.connect(address)
    task_queue = f"floor-{uuid.uuid4()}"
    slots = asyncio.Semaphore(concurrency)
    update_seconds: list[float] = []

    async def limited() -> None:
        async with slots:
            await approve_one(client, task_queue, update_seconds)

    async with Worker(client, task_queue=task_queue, workflows=[FloorApproval], activities=[record_decision]):
        await asyncio.gather(*(limited() for _ in range(min(WARM_UP, count))))
        update_seconds.clear()
        began = time.perf_counter()
        await asyncio.gather(*(limited() for _ in range(count)))
        elapsed = time.perf_counter() - began
    ordered = sorted(update_seconds)
    return {
        "floor_workflows": count,
        "concurrency": concurrency,
        "seconds": round(elapsed, 3),
        "per_second": round(count / elapsed, 2),
        "update_p50_ms": round(statistics.median(ordered) * 1000, 2),
        "update_p95_ms": round(ordered[int(0.95 * (len(ordered) - 1))] * 1000, 2),
    }


def main(argv: list[str]) -> None:
    address = argv[0] if argv else "127.0.0.1:7233"
    count = int(argv[1]) if len(argv) > 1 else 500
    concurrency = int(argv[2]) if len(argv) > 2 else 50
    print(json.dumps(asyncio.run(measure(address, count, concurrency))), flush=True)
    # Skip the interpreter's teardown: the SDK's native threads have been seen to abort it (PyGILState_Release)
    # after the figures were printed, which the caller would take for a failed run.
    os._exit(0)


if __name__ == "__main__":  # the workflow sandbox re-imports this module: nothing may run on import
    main(sys.argv[1:])
