"""Several API and worker processes of one system against one Temporal server and one PostgreSQL database, as a
deployment with replicas runs them: the same secret, task queues and folders; each process its own ports and log.

    with running_cluster(database_url, address, work, apis=2, workers=[None, None]) as cluster:
        cluster.api_urls      # one per API process (a load client spreads over them)
        cluster.stack()       # a Stack view of one API, for the functions of tests/bench/approvals.py

`workers` names each worker process's queues (`worker.py --queues`): None serves every queue, "approvals" only the
decisions, "reports,backups" the heavy work beside them.
"""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from tests.bench.cpu import database_backends, pids_with_arguments
from tests.bench.stack import (
    Stack,
    stack_env,
    start_api,
    start_worker,
    stop_process,
    wait_for_health,
)
from tests.services import free_port, migrate


@dataclass
class Cluster:
    temporal_address: str
    database_url: str
    env: dict[str, str]
    api_urls: list[str]
    apis: list[subprocess.Popen[bytes]] = field(default_factory=list)
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    worker_queues: list[str | None] = field(default_factory=list)

    def stack(self, api: int = 0) -> Stack:
        """One API process (and the first worker) as a Stack: make_team, approve_latency and the like take one."""
        return Stack(
            self.api_urls[api], self.temporal_address, self.database_url, self.env, self.workers[0], self.apis[api]
        )

    def worker_env(self) -> dict[str, str]:
        """Two workers on one host cannot share their metrics ports (docs/operations.md): each gets free ones."""
        return self.env | {"WORKER_METRICS_PORT": str(free_port()), "WORKER_BUSINESS_METRICS_PORT": str(free_port())}

    def processes(self) -> dict[str, Callable[[], list[int]]]:
        """The process groups whose CPU an approval costs, for tests/bench/cpu.py: every API process, every worker
        process, the Temporal server and the database's backends (re-listed when asked: pools open more)."""
        port = self.temporal_address.rpartition(":")[2]
        return {
            "API": lambda: [api.pid for api in self.apis],
            "worker": lambda: [worker.pid for worker in self.workers],
            "Temporal server": lambda: pids_with_arguments("start-dev", port),
            "PostgreSQL": lambda: database_backends(self.database_url),
        }

    def describe(self) -> str:
        queues = ", ".join(queue or "all queues" for queue in self.worker_queues)
        return f"{len(self.apis)} API + {len(self.workers)} worker processes ({queues})"


@contextlib.contextmanager
def running_cluster(
    database_url: str,
    temporal_address: str,
    log_dir: Path,
    *,
    apis: int = 1,
    workers: Sequence[str | None] = (None,),
    extra_env: dict[str, str] | None = None,
    worker_nice: Sequence[int] = (),
) -> Iterator[Cluster]:
    """`apis` API processes and one worker process per entry of `workers`, started together and stopped (SIGTERM,
    then SIGKILL after 30 s) however the block ends. Logs go to `log_dir` as bench-api-N.log, bench-worker-N.log.
    `worker_nice[i]`, when given, is the i-th worker's niceness (0: as the others)."""
    if apis < 1 or not workers:
        raise ValueError("a cluster needs at least one API and one worker process")
    migrate(database_url)
    env = stack_env(database_url, temporal_address, log_dir, extra_env)
    cluster = Cluster(temporal_address, database_url, env, api_urls=[])
    try:
        for index, queues in enumerate(workers):
            nice = worker_nice[index] if index < len(worker_nice) else 0
            cluster.workers.append(
                start_worker(cluster.worker_env(), log_dir, queues, log_name=f"bench-worker-{index}.log", nice=nice)
            )
            cluster.worker_queues.append(queues)
        for index in range(apis):
            port = free_port()
            cluster.apis.append(start_api(env, log_dir, port, log_name=f"bench-api-{index}.log"))
            cluster.api_urls.append(f"http://127.0.0.1:{port}")
        for url in cluster.api_urls:
            wait_for_health(f"{url}/health")
        yield cluster
    finally:
        everyone = [*cluster.apis, *cluster.workers]
        for process in everyone:  # all drain at once, not one after the other
            if process.poll() is None:
                process.terminate()
        for process in everyone:
            stop_process(process)
