"""Report downloads redirect to a presigned link the user's browser can follow: signed for the store's public
address (S3_PUBLIC_ENDPOINT_URL), while the app itself keeps talking to the store by its internal address."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import boto3
import httpx
import pytest

from core.settings import StorageSettings
from core.storage import S3Storage
from tests.services import free_port, s3_server


@pytest.fixture(scope="module")
def endpoint() -> Iterator[str]:
    with s3_server() as url:
        yield url


def _storage(endpoint: str, public: str = "") -> S3Storage:
    bucket = f"downloads-{secrets.token_hex(4)}"
    boto3.client(
        "s3", endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="t", aws_secret_access_key="t"
    ).create_bucket(Bucket=bucket)
    settings = StorageSettings(
        bucket=bucket,
        endpoint_url=endpoint,
        public_endpoint_url=public,
        access_key_id="test",
        secret_access_key="test",
    )
    return S3Storage(settings)


def test_links_are_signed_for_the_public_address_and_work_there(endpoint: str, tmp_path: Path) -> None:
    # The same server under another name, as the host reaches MinIO on 127.0.0.1 and the app on http://minio:9000.
    public = endpoint.replace("127.0.0.1", "localhost")
    storage = _storage(endpoint, public)
    report = tmp_path / "pnl.csv"
    report.write_text("month,net\n2026-11,699.51\n")
    storage.put_file("reports/1/pnl.csv", report, "text/csv")

    link = storage.presigned_url("reports/1/pnl.csv", "pnl.csv")
    assert link is not None and urlsplit(link).netloc == urlsplit(public).netloc
    assert "X-Amz-Signature=" in link
    fetched = httpx.get(link)
    assert fetched.status_code == 200 and fetched.text == report.read_text()


def test_the_app_keeps_using_the_internal_address(endpoint: str, tmp_path: Path) -> None:
    nowhere = f"http://127.0.0.1:{free_port()}"  # nothing listens: only a browser would go there
    storage = _storage(endpoint, nowhere)
    report = tmp_path / "r.json"
    report.write_text("{}")
    storage.put_file("reports/2/r.json", report)
    assert storage.exists("reports/2/r.json")
    link = storage.presigned_url("reports/2/r.json", "r.json")
    assert link is not None and link.startswith(nowhere + "/")


def test_without_a_public_address_links_use_the_endpoint(endpoint: str) -> None:
    link = _storage(endpoint).presigned_url("reports/3/r.pdf", "r.pdf")
    assert link is not None and link.startswith(endpoint + "/")
