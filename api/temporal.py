"""The API's one Temporal client, connected lazily so the API starts (and reads work) while Temporal is down."""

from __future__ import annotations

import asyncio
import logging
from datetime import timedelta

from temporalio.client import Client
from temporalio.service import RPCError

from core.settings import TemporalSettings
from core.temporal import TaskQueues, connect, task_queues
from domain.errors import ServiceUnavailable

log = logging.getLogger(__name__)


class TemporalGateway:
    def __init__(self, settings: TemporalSettings, client: Client | None = None) -> None:
        self.settings = settings
        self.queues: TaskQueues = task_queues(settings)
        self._client = client
        self._lock = asyncio.Lock()

    async def client(self) -> Client:
        if self._client is not None:
            return self._client
        async with self._lock:
            if self._client is None:
                try:
                    self._client = await asyncio.wait_for(connect(self.settings), timeout=5)
                except (TimeoutError, RPCError, RuntimeError, OSError) as exc:
                    log.warning("Temporal unreachable at %s: %s", self.settings.address, exc)
                    raise ServiceUnavailable("the workflow engine is unreachable; try again shortly") from exc
        return self._client

    async def check(self) -> bool:
        try:
            client = await self.client()
            await client.service_client.check_health(timeout=timedelta(seconds=2))
        except Exception:
            return False
        return True
