"""Temporal connection, task queue names, and the server flags that register search attributes."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path
from typing import Any

from temporalio.client import Client
from temporalio.common import SearchAttributeKey
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.runtime import PrometheusConfig, Runtime, TelemetryConfig
from temporalio.service import TLSConfig

from core.settings import TemporalSettings
from workflows.contracts import APPROVALS_QUEUE, BACKUPS_QUEUE, REPORTS_QUEUE, task_queue_name


def search_attribute_flags(keys: Iterable[SearchAttributeKey[Any]]) -> list[str]:
    """`--search-attribute Name=Type` arguments for `temporal server start-dev`, for these keys (the workflows'
    contracts declare theirs: workflows.contracts.SEARCH_ATTRIBUTES)."""
    names = {"KEYWORD": "Keyword", "INT": "Int"}
    flags: list[str] = []
    for key in keys:
        flags += ["--search-attribute", f"{key.name}={names[key.indexed_value_type.name]}"]
    return flags


class TaskQueues:
    NAMES = (APPROVALS_QUEUE, REPORTS_QUEUE, BACKUPS_QUEUE)  # what `worker.py --queues` takes

    def __init__(self, prefix: str) -> None:
        self.approvals = task_queue_name(prefix, APPROVALS_QUEUE)
        self.reports = task_queue_name(prefix, REPORTS_QUEUE)
        self.backups = task_queue_name(prefix, BACKUPS_QUEUE)


def task_queues(settings: TemporalSettings) -> TaskQueues:
    return TaskQueues(settings.task_queue_prefix)


def tls_config(settings: TemporalSettings) -> TLSConfig | bool:
    """TLS as the settings describe it (checked when they were loaded), or False for a plain connection."""
    if not settings.uses_tls:
        return False

    def read(path: Path | None) -> bytes | None:
        return path.read_bytes() if path else None

    return TLSConfig(
        server_root_ca_cert=read(settings.tls_server_ca_cert_path),  # None: the system's trust store
        domain=settings.tls_server_name or None,
        client_cert=read(settings.tls_client_cert_path),
        client_private_key=read(settings.tls_client_key_path),
    )


async def connect(settings: TemporalSettings, runtime: Runtime | None = None) -> Client:
    """A client with the pydantic data converter (the default one cannot carry Decimal), over TLS (mutual, with an
    API key) when the settings say so."""
    return await Client.connect(
        settings.address,
        namespace=settings.namespace,
        data_converter=pydantic_data_converter,
        runtime=runtime,
        tls=tls_config(settings),
        api_key=settings.api_key or None,
    )


def metrics_runtime(port: int, host: str = "127.0.0.1") -> Runtime:
    """A runtime exporting the SDK's metrics for Prometheus on `host`:`port` (WORKER_METRICS_HOST/_PORT).

    Loopback by default; in a container the scraper is elsewhere, so compose sets 0.0.0.0."""
    bind = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"  # an IPv6 address needs brackets
    return Runtime(telemetry=TelemetryConfig(metrics=PrometheusConfig(bind_address=bind)))


def rpc_timeout(settings: TemporalSettings) -> timedelta:
    return timedelta(seconds=settings.rpc_timeout_seconds)
