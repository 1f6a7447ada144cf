"""deploy/compose.production.yml: Temporal's own server on PostgreSQL with SQL visibility, its schema and the app's
search attributes set up before anything uses them, mutual TLS between the app and Temporal, nothing published
beyond localhost, secrets only from the environment or docker secrets. Checked as a file: no Docker engine here."""

from __future__ import annotations

import re
from functools import cache

import yaml

from tests.deploy.app_facts import (
    APP_QUEUES,
    DEPLOY,
    app_search_attributes,
    queues_of,
    registered_search_attributes,
    tls_flag,
    worker_drain_seconds,
)
from tests.foundation.compose_spec import compose_spec_problems, published_ports
from tests.foundation.setting_names import setting_names
from tests.foundation.test_compose import REQUIRED_SETTINGS

ONE_SHOTS = {"temporal-db-role", "temporal-schema", "temporal-setup", "migrate"}
WORKERS = ("worker-approvals", "worker-reports")
APP_SERVICES = ("api", *WORKERS)


@cache
def _compose() -> dict:
    return yaml.safe_load((DEPLOY / "compose.production.yml").read_text())


def _services() -> dict:
    return _compose()["services"]


def _script(name: str) -> str:
    """A one-shot's shell script as the shell receives it (compose turns $$ into $)."""
    return _services()[name]["command"][0].replace("$$", "$")


def _tag(image: str) -> str:
    return image.rsplit(":", 1)[1]


def test_the_file_follows_the_compose_specification() -> None:
    problems = compose_spec_problems(_compose())
    assert not problems, problems


def test_only_localhost_is_published_and_postgres_not_at_all() -> None:
    published = {name: published_ports(service) for name, service in _services().items() if service.get("ports")}
    assert set(published) == {"api", "temporal", "temporal-ui"}, published
    for name, ports in published.items():
        for port in ports:
            assert port.startswith("127.0.0.1:"), f"{name} publishes {port} beyond localhost"


def test_temporal_runs_its_own_server_image_on_postgres_with_sql_visibility() -> None:
    services = _services()
    server = services["temporal"]
    assert server["image"].startswith("temporalio/server:"), "no auto-setup image in production"
    environment = server["environment"]
    assert environment["DB"] == "postgres12" and environment["POSTGRES_SEEDS"] == "postgres"
    assert environment["ENABLE_ES"] == "false" and environment["VISIBILITY_DBNAME"] == "temporal_visibility"
    assert int(environment["NUM_HISTORY_SHARDS"]) >= 4, "set explicitly: it cannot change after the first start"
    # The schema tool of the same Temporal version, as a one-shot the server waits for.
    schema = services["temporal-schema"]
    assert schema["image"] == f"temporalio/admin-tools:{_tag(server['image'])}"
    assert server["depends_on"] == {"temporal-schema": {"condition": "service_completed_successfully"}}
    script = _script("temporal-schema")
    assert "temporal-sql-tool --plugin postgres12" in script
    assert "setup-schema -v 0.0" in script and "update-schema -d" in script
    assert "/etc/temporal/schema/postgresql/v12/$schema/versioned" in script
    assert "temporal:temporal temporal_visibility:visibility" in script, "both stores get their schema"
    # Temporal's own login, not the owner of the app's tables.
    assert environment["POSTGRES_USER"] == "temporal" != services["postgres"]["environment"]["POSTGRES_USER"]
    assert schema["depends_on"] == {"temporal-db-role": {"condition": "service_completed_successfully"}}


def test_the_setup_registers_exactly_the_apps_search_attributes_in_the_apps_namespace() -> None:
    setup = _services()["temporal-setup"]
    assert registered_search_attributes(_script("temporal-setup")) == app_search_attributes()
    namespace = setup["environment"]["NAMESPACE"]
    for name in APP_SERVICES:
        assert _services()[name]["environment"]["TEMPORAL_NAMESPACE"] == namespace
    assert 'namespace create -n "$NAMESPACE"' in _script("temporal-setup")
    assert setup["depends_on"] == {"temporal": {"condition": "service_healthy"}}


def test_the_app_starts_after_migrations_and_temporal_setup() -> None:
    for name in APP_SERVICES:
        waits = {dependency: spec["condition"] for dependency, spec in _services()[name]["depends_on"].items()}
        assert waits == {
            "migrate": "service_completed_successfully",
            "temporal-setup": "service_completed_successfully",
        }


def test_every_dependency_waits_on_a_condition_and_every_long_running_service_is_checked() -> None:
    for name, service in _services().items():
        for dependency, spec in service.get("depends_on", {}).items():
            assert spec["condition"] in ("service_healthy", "service_completed_successfully"), (name, dependency)
            if spec["condition"] == "service_healthy":
                assert "healthcheck" in _services()[dependency], f"{name} waits on {dependency}'s health, never checked"
        if name in ONE_SHOTS:
            assert service.get("restart") == "no", f"{name} would run again and again"
        else:
            assert service.get("restart") == "unless-stopped", name
    for name in ("postgres", "temporal", *APP_SERVICES):
        assert "healthcheck" in _services()[name], name
    assert "/health/ready" in _services()["api"]["healthcheck"]["test"][-1]


def test_the_app_talks_to_temporal_over_mutual_tls() -> None:
    services = _services()
    server = services["temporal"]["environment"]
    assert server["TEMPORAL_TLS_REQUIRE_CLIENT_AUTH"] == "true"
    assert server["TEMPORAL_TLS_FRONTEND_CERT"] and server["TEMPORAL_TLS_CLIENT1_CA_CERT"]
    declared = set(_compose()["secrets"])

    def mounted(service: str, path: str) -> None:
        assert path.startswith("/run/secrets/"), path
        secret = path.removeprefix("/run/secrets/")
        assert secret in services[service]["secrets"] and secret in declared, f"{service}: {path} is not mounted"

    for name in (*APP_SERVICES, "migrate"):
        environment = services[name]["environment"]
        if name == "migrate":
            continue  # no Temporal client there
        assert environment["TEMPORAL_TLS"] == "true"
        for setting in (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
        ):
            mounted(name, environment[setting])
        assert environment["TEMPORAL_TLS_SERVER_NAME"] == server["TEMPORAL_TLS_FRONTEND_SERVER_NAME"]
    for setting in ("TEMPORAL_TLS_SERVER_CA_CERT", "TEMPORAL_TLS_SERVER_CERT", "TEMPORAL_TLS_FRONTEND_KEY"):
        mounted("temporal", server[setting])
    ui = services["temporal-ui"]["environment"]
    assert ui["TEMPORAL_TLS_ENABLE_HOST_VERIFICATION"] == "true"
    for setting in ("TEMPORAL_TLS_CA", "TEMPORAL_TLS_CERT", "TEMPORAL_TLS_KEY"):
        mounted("temporal-ui", ui[setting])
    script = _script("temporal-setup")
    for flag in ("--tls-ca-path", "--tls-cert-path", "--tls-key-path"):
        mounted("temporal-setup", tls_flag(script, flag))
    assert tls_flag(script, "--tls-server-name") == server["TEMPORAL_TLS_FRONTEND_SERVER_NAME"]
    # Every `temporal` command of the script carries the TLS flags.
    commands = re.findall(r"temporal operator [^|&;\n]*", script)
    assert commands and all("$tls" in command for command in commands), commands


def test_secrets_come_from_the_environment_or_docker_secrets() -> None:
    secret_name = re.compile(r"PASSWORD|PWD|SECRET|HMAC|API_KEY")
    for name, service in _services().items():
        for variable, value in service.get("environment", {}).items():
            if secret_name.search(variable):
                assert value == "" or re.fullmatch(r"\$\{\w+(:\?[^}]*|:-)\}", value), f"{name}: {variable}={value}"
    for secret in _compose()["secrets"].values():
        assert secret["file"].startswith("${TLS_DIR:-./tls}/"), secret


def test_app_services_get_every_setting_they_need_and_only_known_ones() -> None:
    known = setting_names()
    needed = REQUIRED_SETTINGS - {"S3_ENDPOINT_URL"} | {"AUDIT_HMAC_KEY", "TEMPORAL_NAMESPACE", "TEMPORAL_TLS"}
    for name in APP_SERVICES:
        environment = set(_services()[name]["environment"])
        assert needed <= environment, f"{name} misses {needed - environment}"
        assert environment <= known, f"{name} sets variables the app never reads: {environment - known}"


def test_one_image_and_the_workers_serve_every_queue_between_them() -> None:
    services = _services()
    images = {services[name]["image"] for name in (*APP_SERVICES, "migrate")}
    assert len(images) == 1 and not images.pop().endswith(":latest")
    served = [queues_of(services[name]["command"]) for name in WORKERS]
    assert set().union(*served) == APP_QUEUES, served
    assert not set.intersection(*served), "a queue split over two worker services cannot be scaled apart"


def _seconds(duration: str) -> float:
    number, unit = re.fullmatch(r"(\d+)(s|m)", duration).groups()  # type: ignore[union-attr]
    return float(number) * (60 if unit == "m" else 1)


def test_docker_waits_for_a_clean_stop() -> None:
    """Docker sends SIGKILL 10 s after SIGTERM unless told otherwise: less than a worker's drain."""
    for name in WORKERS:
        assert _seconds(_services()[name]["stop_grace_period"]) > worker_drain_seconds() + 10, name
    api = _services()["api"]
    graceful = float(api["command"][api["command"].index("--timeout-graceful-shutdown") + 1])
    assert _seconds(api["stop_grace_period"]) > graceful


def test_the_image_runs_the_same_migrations_as_the_development_stack() -> None:
    development = yaml.safe_load((DEPLOY.parent / "docker-compose.yml").read_text())["services"]
    assert _services()["migrate"]["command"] == development["migrate"]["command"]
