"""A Temporal dev server of this package's own, for the rolling-deploy test: it sets a worker deployment's current
version (state the session's server should not carry), and it refreshes a version's drainage status every second
rather than every few minutes, so "drained" is reached within the test."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence

import pytest
from temporalio.api.deployment.v1 import WorkerDeploymentVersion as VersionMessage
from temporalio.api.deployment.v1 import WorkerDeploymentVersionInfo
from temporalio.api.enums.v1 import VersionDrainageStatus, VersioningBehavior
from temporalio.api.workflow.v1 import WorkflowExecutionVersioningInfo
from temporalio.api.workflowservice.v1 import (
    DescribeWorkerDeploymentVersionRequest,
    SetWorkerDeploymentCurrentVersionRequest,
)
from temporalio.client import Client, WorkflowHandle
from temporalio.common import WorkerDeploymentVersion
from temporalio.service import RPCError
from temporalio.worker import Worker

from tests.services import start_temporal_dev_server

# Server defaults: refresh every 3 minutes, after a 3-minute grace for visibility to catch up.
FAST_DRAINAGE = [
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusRefreshInterval="1s"',
    "--dynamic-config-value",
    'matching.wv.VersionDrainageStatusVisibilityGracePeriod="1s"',
]


@pytest.fixture(scope="module")
async def versioned_temporal() -> AsyncIterator[Client]:
    async with await start_temporal_dev_server(*FAST_DRAINAGE) as env:
        yield env.client


@contextlib.asynccontextmanager
async def running(workers: Sequence[Worker]) -> AsyncIterator[Callable[[], Awaitable[None]]]:
    """Run these Workers for the block, which gets what stops them earlier (a build retired: its workers shut
    down, draining, as when its Deployment is deleted); stopped however the block ends."""
    tasks = [asyncio.create_task(worker.run()) for worker in workers]

    async def stop() -> None:
        if all(task.done() for task in tasks):
            return
        await asyncio.gather(*(worker.shutdown() for worker in workers), return_exceptions=True)
        await asyncio.gather(*tasks, return_exceptions=True)

    try:
        yield stop
    finally:
        await stop()


async def set_current(client: Client, version: WorkerDeploymentVersion, seconds: float = 20) -> None:
    """`temporal worker deployment set-current-version`: refused until the server has seen this version's workers
    poll (a worker reports its version with its first poll), so retried until then."""
    request = SetWorkerDeploymentCurrentVersionRequest(
        namespace=client.namespace, deployment_name=version.deployment_name, build_id=version.build_id
    )
    async with asyncio.timeout(seconds):
        while True:
            try:
                await client.workflow_service.set_worker_deployment_current_version(request)
                return
            except RPCError:
                await asyncio.sleep(0.1)


async def describe_version(client: Client, version: WorkerDeploymentVersion) -> WorkerDeploymentVersionInfo:
    """`temporal worker deployment describe-version`."""
    request = DescribeWorkerDeploymentVersionRequest(
        namespace=client.namespace,
        deployment_version=VersionMessage(deployment_name=version.deployment_name, build_id=version.build_id),
    )
    response = await client.workflow_service.describe_worker_deployment_version(request)
    return response.worker_deployment_version_info


async def drained(client: Client, version: WorkerDeploymentVersion, seconds: float = 30) -> bool:
    """Whether the server reports `version` drained (no open workflow pinned to it) within `seconds`."""
    deadline = asyncio.get_running_loop().time() + seconds
    while asyncio.get_running_loop().time() < deadline:
        info = await describe_version(client, version)
        if info.drainage_info.status == VersionDrainageStatus.VERSION_DRAINAGE_STATUS_DRAINED:
            return True
        await asyncio.sleep(0.25)
    return False


async def versioning_of(handle: WorkflowHandle, seconds: float = 10) -> WorkflowExecutionVersioningInfo:
    """What `temporal workflow describe` prints under "Versioning Info": its behaviour and version, which the worker
    that completes its first workflow task reports (so waited for until then)."""
    async with asyncio.timeout(seconds):
        while True:
            info = (await handle.describe()).raw_description.workflow_execution_info.versioning_info
            if info.behavior != VersioningBehavior.VERSIONING_BEHAVIOR_UNSPECIFIED:
                return info
            await asyncio.sleep(0.05)


def visibility_name(version: WorkerDeploymentVersion) -> str:
    """How the TemporalWorkerDeploymentVersion search attribute writes a version: `<deployment>:<build id>`."""
    return f"{version.deployment_name}:{version.build_id}"
