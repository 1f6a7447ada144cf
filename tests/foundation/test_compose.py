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


def _major(image: str) -> str:
    return image.split(":", 1)[1].split(".", 1)[0].split("-", 1)[0]


def test_the_image_has_the_pg_dump_of_the_servers_major_version() -> None:
    """pg_dump refuses a newer server: the client in the image must match the postgres service."""
    services = _compose()["services"]
    server_major = _major(services["postgres"]["image"])
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "postgresql-client-${PG_MAJOR}" in dockerfile and "apt.postgresql.org" in dockerfile
    assert f"ARG PG_MAJOR={server_major}" in dockerfile
    assert services["api"]["build"]["args"]["PG_MAJOR"] == server_major
    for name in APP_SERVICES:
        assert services[name]["environment"]["PG_BIN_DIR"] == f"/usr/lib/postgresql/{server_major}/bin"


def test_one_api_process_per_container_and_worker_metrics_reachable() -> None:
    services = _compose()["services"]
    command = services["api"]["command"]
    # Prometheus counters live in the process; several uvicorn workers would each answer /metrics for themselves.
    assert "--workers" not in command or "PROMETHEUS_MULTIPROC_DIR" in services["api"]["environment"]
    worker = services["worker"]["environment"]
    assert worker["WORKER_METRICS_HOST"] == "0.0.0.0" and worker["WORKER_METRICS_PORT"] in services["worker"]["expose"]


def test_ops_edit_the_policies_of_the_running_containers() -> None:
    services = _compose()["services"]
    for name in APP_SERVICES:
        policy_dir = services[name]["environment"]["POLICY_DIR"]
        mounts = [volume.split(":") for volume in services[name].get("volumes", [])]
        assert any(source == "./policies" and target == policy_dir for source, target, *_ in mounts), name
