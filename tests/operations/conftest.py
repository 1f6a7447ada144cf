"""The operators' view: the metrics the API and the worker serve, read back as Prometheus reads them."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from activities.deps import ActivityDeps
from api.deps import AppServices
from core.settings import Settings, TemporalSettings
from tests.services import free_port
from worker import serve_business_metrics

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def parse(text: str) -> Samples:
    """Every sample of an exposition, by name and labels, parsed by Prometheus' own client parser."""
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
async def http(api_url: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=api_url, timeout=30) as client:
        yield client


@pytest.fixture
def fresh_gauges(app_services: AppServices) -> Iterator[None]:
    """The API's database gauges read at every scrape (their cache would hide what a test just did)."""
    gauges = app_services.database_gauges
    ttl, gauges.ttl = gauges.ttl, 0.0
    yield
    gauges.ttl = ttl


@pytest.fixture
def worker_metrics_url(settings: Settings, activity_deps: ActivityDeps) -> Iterator[str]:
    """The worker's business metrics endpoint, served as worker.py serves it (the session's workers run in this
    process, so it shows their counters)."""
    port = free_port()
    temporal = TemporalSettings(worker_business_metrics_port=port, worker_metrics_host="127.0.0.1")
    stop = serve_business_metrics(settings.model_copy(update={"temporal": temporal}), activity_deps.authorizer)
    yield f"http://127.0.0.1:{port}/metrics"
    stop()


async def scrape(client: httpx.AsyncClient, url: str) -> Samples:
    response = await client.get(url)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return parse(response.text)
