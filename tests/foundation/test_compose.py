"""docker-compose.yml stays honest: every service the app needs is there, and every setting it reads is provided."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

import psycopg
import pytest
import yaml

from core.settings import PROJECT_ROOT, Settings
from core.temporal import search_attribute_flags
from tests.foundation.compose_spec import compose_spec_problems, published_ports
from tests.foundation.setting_names import every_variable_read, setting_names
from tests.foundation.temporal_cli import bare_temporal_server, listed_search_attributes
from tests.services import TEMPORAL_CLI, admin_database_url, scratch_database
from workflows.contracts import SEARCH_ATTRIBUTES

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
            built_here = "build" in service  # the project's own image
            assert ":" in image and not image.endswith(":latest") or built_here, f"{name} image not pinned"
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


# --- the specification, start-up order, healing, exposure --------------------------------------------------------

ONE_SHOTS = ("migrate", "temporal-setup", "minio-setup")


def test_the_file_follows_the_compose_specification() -> None:
    """Validated against the Compose Specification's JSON schema, as check-jsonschema vendors it."""
    problems = compose_spec_problems(_compose())
    assert not problems, problems


def test_every_published_port_listens_on_localhost_only() -> None:
    services = _compose()["services"]
    published = {name: published_ports(service) for name, service in services.items() if service.get("ports")}
    # What an operator on the host reaches: the API, Temporal's gRPC and UI, MinIO's S3 API and console, Mailpit.
    assert {"api", "temporal", "temporal-ui", "minio", "mailpit"} <= set(published)
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"
    assert "127.0.0.1:9000:9000" in published["minio"], "download links point the host's browser to MinIO's S3 API"


def test_the_app_starts_after_migrations_and_setup() -> None:
    services = _compose()["services"]
    assert services["migrate"]["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert "alembic upgrade heads" in " ".join(services["migrate"]["command"])
    for name in APP_SERVICES:
        waits = {dependency: spec["condition"] for dependency, spec in services[name]["depends_on"].items()}
        for one_shot in ONE_SHOTS:
            assert waits.get(one_shot) == "service_completed_successfully", f"{name} must wait for {one_shot}"


def test_long_running_services_restart_and_one_shots_run_once() -> None:
    for name, service in _compose()["services"].items():
        if name in ONE_SHOTS:
            assert service.get("restart", "no") == "no", f"{name} would run again and again"
        else:
            assert service.get("restart") in ("unless-stopped", "always"), f"{name} has no restart policy"


def test_the_api_and_the_worker_have_real_health_checks() -> None:
    services = _compose()["services"]
    api = services["api"]["healthcheck"]["test"]
    assert api[:2] == ["CMD", "python"] and "http://127.0.0.1:8000/health" in api[-1]
    worker = services["worker"]["healthcheck"]["test"]
    port = services["worker"]["environment"]["WORKER_METRICS_PORT"]
    assert worker[:2] == ["CMD", "python"] and f"127.0.0.1:{port}/metrics" in worker[-1]
    # tests/foundation/test_compose_probes.py runs both against real processes.


def _user(url: str) -> str:
    return url.split("://", 1)[1].split(":", 1)[0]


def test_the_app_connects_as_a_role_that_owns_no_table() -> None:
    services = _compose()["services"]
    owner = services["postgres"]["environment"]["POSTGRES_USER"]
    migrate = services["migrate"]["environment"]
    assert _user(migrate["DATABASE_URL"]) == owner, "migrations run as the tables' owner"
    for name in APP_SERVICES:
        url = services[name]["environment"]["DATABASE_URL"]
        assert _user(url) == migrate["APP_DB_USER"] != owner, f"{name} must not connect as the owner"
        assert "${APP_DB_PASSWORD" in url and "${APP_DB_PASSWORD" in migrate["APP_DB_PASSWORD"]
    assert "deploy/grant_app_role.py" in services["migrate"]["command"][-1]


def test_the_migrate_command_migrates_then_grants() -> None:
    """The migrate service's own command line, run as it would run in the image (cwd = the code)."""
    migrate = _compose()["services"]["migrate"]
    role = f"finance_app_{secrets.token_hex(4)}"
    admin = admin_database_url()
    try:
        with scratch_database(admin, "finance_compose") as owner_url:
            env = dict(os.environ, DATABASE_URL=owner_url, APP_DB_USER=role, APP_DB_PASSWORD=secrets.token_hex(8))
            env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # alembic and python on PATH, as in the image
            subprocess.run(migrate["command"], cwd=PROJECT_ROOT, env=env, check=True, capture_output=True)
            with psycopg.connect(owner_url) as conn:
                assert conn.execute("SELECT count(*) FROM alembic_version").fetchone() == (1,)
                allowed = conn.execute(
                    "SELECT has_table_privilege(%(role)s, 'entries', 'INSERT'),"
                    " has_table_privilege(%(role)s, 'audit_log', 'UPDATE')",
                    {"role": role},
                ).fetchone()
            assert allowed == (True, False)
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP ROLE IF EXISTS "{role}"')


def _setup_script() -> str:
    """temporal-setup's script as the shell receives it (compose turns $$ into $)."""
    return _compose()["services"]["temporal-setup"]["command"][0].replace("$$", "$")


def test_temporal_setup_registers_the_projects_search_attributes() -> None:
    env = dict(os.environ, PATH=f"{TEMPORAL_CLI.parent}:{os.environ['PATH']}")
    with bare_temporal_server() as address:
        env["TEMPORAL_ADDRESS"] = address
        first = subprocess.run(["sh", "-c", _setup_script()], env=env, capture_output=True, text=True, timeout=120)
        assert first.returncode == 0, first.stderr
        listed = listed_search_attributes(address)
        expected = dict(
            pair.split("=") for pair in search_attribute_flags(SEARCH_ATTRIBUTES)[1::2]
        )  # what the workflows upsert
        assert {name: listed.get(name) for name in expected} == expected
        again = subprocess.run(["sh", "-c", _setup_script()], env=env, capture_output=True, text=True, timeout=120)
        assert again.returncode == 0, again.stderr  # a restart of the stack finds them there

        # An attribute of the same name but another type is a real problem: the app must not start on it.
        clash = _setup_script().replace("EntryKind=Keyword", "ProjectClash=Keyword")
        subprocess.run(
            [str(TEMPORAL_CLI), "operator", "search-attribute", "create", "--address", address]
            + ["--name", "ProjectClash", "--type", "Int"],
            check=True,
            capture_output=True,
        )
        refused = subprocess.run(["sh", "-c", clash], env=env, capture_output=True, text=True, timeout=120)
        assert refused.returncode != 0 and "ProjectClash" in refused.stderr


def test_docs_in_the_compose_stack_are_what_the_readme_says(monkeypatch: pytest.MonkeyPatch) -> None:
    """Production serves no /docs; the README's URL table says so, and how to turn them on."""
    api = _compose()["services"]["api"]["environment"]
    assert api["APP_ENV"] == "production"
    default = api["DOCS_ENABLED"].removeprefix("${DOCS_ENABLED:-").removesuffix("}")
    for value, served in ((default, False), ("true", True)):
        monkeypatch.setenv("APP_ENV", api["APP_ENV"])
        monkeypatch.setenv("DOCS_ENABLED", value)
        assert Settings().serve_docs is served
    row = next(
        line for line in (PROJECT_ROOT / "README.md").read_text().splitlines() if "/docs" in line and "|" in line
    )
    assert "compose" in row and "DOCS_ENABLED=true" in row
