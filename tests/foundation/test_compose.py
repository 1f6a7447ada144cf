"""docker-compose.yml stays honest: every service the app needs is there, and every setting it reads is provided."""

from __future__ import annotations

from pathlib import Path

import yaml

from core.settings import PROJECT_ROOT
from tests.foundation.setting_names import every_variable_read, setting_names

APP_SERVICES = ("api", "worker")
REQUIRED_SETTINGS = {
    "APP_ENV",
    "DATABASE_URL",
    "SECRET_KEY",
    "TEMPORAL_ADDRESS",
    "AWS_BUCKET_NAME",
    "S3_ENDPOINT_URL",
    "AWS_ACCESS_KEY_ID",
    "AWS_SECRET_ACCESS_KEY",
    "SMTP_HOST",
    "SMTP_PORT",
}


def _compose() -> dict:
    return yaml.safe_load(Path(PROJECT_ROOT / "docker-compose.yml").read_text())


def test_every_needed_service_is_present_with_a_pinned_image() -> None:
    services = _compose()["services"]
    for name in ("postgres", "temporal", "temporal-ui", "minio", "mailpit", "api", "worker"):
        assert name in services, f"docker-compose.yml lacks {name}"
    for name, service in services.items():
        image = service.get("image")
        if image:
            assert ":" in image and not image.endswith(":latest") or name in APP_SERVICES, f"{name} image not pinned"
    assert services["temporal"]["environment"]["DB"].startswith("postgres"), "Temporal must persist to Postgres"


def test_app_services_get_every_setting_and_only_known_ones() -> None:
    known = setting_names()
    services = _compose()["services"]
    for name in APP_SERVICES:
        environment = services[name]["environment"]
        assert REQUIRED_SETTINGS <= set(environment), f"{name} misses {REQUIRED_SETTINGS - set(environment)}"
        unknown = set(environment) - known
        assert not unknown, f"{name} sets variables the app never reads: {unknown}"


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.split("=", 1)[0].lstrip("# ").strip()
        for line in (PROJECT_ROOT / ".env.example").read_text().splitlines()
        if "=" in line
    }
    missing = every_variable_read() - documented
    assert not missing, f".env.example does not document {sorted(missing)}"
