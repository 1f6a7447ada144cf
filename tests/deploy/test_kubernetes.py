"""deploy/kubernetes/: every manifest is valid against the Kubernetes schemas (kubernetes-validate ships them: no
cluster, no network), and the invariants hold that a schema cannot see: resources, probes on the real routes and
ports, non-root read-only pods, secrets only by reference, one image, a drain longer than the worker's, a
PodDisruptionBudget per Deployment, every task queue served, the search attributes the workflows upsert."""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator
from functools import cache
from pathlib import Path

import kubernetes_validate
import pytest
import yaml
from temporalio.common import WorkerDeploymentVersion

from core.settings import TemporalSettings
from tests.deploy.app_facts import (
    APP_QUEUES,
    DEPLOY,
    HEALTH_PATHS,
    KUBERNETES,
    app_search_attributes,
    queues_of,
    registered_search_attributes,
    tls_flag,
    worker_drain_seconds,
)
from tests.foundation.setting_names import setting_names
from worker import deployment_config

# The oldest Kubernetes minor still widely run; every field used here exists there.
KUBERNETES_VERSION = "1.30"
NOT_MANIFESTS = {"kustomization.yaml", "temporal-values.yaml"}
EXAMPLE_SECRETS = "secret.example.yaml"
APP_IMAGE_NAME = "registry.example.com/finance-ops"
# Read by deploy/grant_app_role.py (the migration Job), not by the app's settings.
MIGRATION_VARIABLES = {"APP_DB_USER", "APP_DB_PASSWORD"}


def _files() -> list[Path]:
    return sorted(path for path in KUBERNETES.glob("*.yaml") if path.name not in NOT_MANIFESTS)


@cache
def _documents() -> list[tuple[str, dict]]:
    return [(path.name, document) for path in _files() for document in yaml.safe_load_all(path.read_text()) if document]


def _applied() -> list[dict]:
    """What `kubectl apply -k` sends: everything but the example Secrets."""
    return [document for name, document in _documents() if name != EXAMPLE_SECRETS]


def _of_kind(kind: str) -> list[dict]:
    return [document for document in _applied() if document["kind"] == kind]


def _one(kind: str, name: str) -> dict:
    (found,) = [document for document in _of_kind(kind) if document["metadata"]["name"] == name]
    return found


def _pod_specs() -> Iterator[tuple[str, dict]]:
    for document in _of_kind("Deployment") + _of_kind("Job"):
        yield f"{document['kind']}/{document['metadata']['name']}", document["spec"]["template"]["spec"]


def _containers(spec: dict) -> list[dict]:
    return spec.get("initContainers", []) + spec["containers"]


def _config() -> dict[str, str]:
    return _one("ConfigMap", "finance-ops-config")["data"]


def _example_secrets() -> dict[str, dict[str, str]]:
    return {
        document["metadata"]["name"]: document["stringData"]
        for name, document in _documents()
        if name == EXAMPLE_SECRETS
    }


@pytest.mark.parametrize(
    "document",
    [
        pytest.param(document, id=f"{name}:{document['kind']}/{document['metadata']['name']}")
        for name, document in _documents()
    ],
)
def test_every_manifest_is_valid_against_the_kubernetes_schema(document: dict) -> None:
    # strict: an unknown field (a typo such as `readinesProbe`) fails too, rather than being dropped by the server.
    kubernetes_validate.validate(document, KUBERNETES_VERSION, strict=True)


def test_the_validator_refuses_a_wrong_manifest() -> None:
    """The schemas are there and strict, offline: a misspelt field and a wrong type are refused."""
    deployment = copy.deepcopy(_one("Deployment", "finance-ops-api"))
    container = deployment["spec"]["template"]["spec"]["containers"][0]
    container["readinesProbe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinesProbe"):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)
    deployment = copy.deepcopy(_one("Deployment", "finance-ops-api"))
    deployment["spec"]["replicas"] = "two"
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSION, strict=True)


def test_kustomization_applies_every_manifest_but_the_example_secrets() -> None:
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert set(kustomization["resources"]) == {path.name for path in _files()} - {EXAMPLE_SECRETS}
    (image,) = kustomization["images"]
    assert image["name"] == APP_IMAGE_NAME and image["newTag"] not in ("", "latest")
    assert {document["metadata"].get("namespace") for document in _applied() if document["kind"] != "Namespace"} == {
        kustomization["namespace"]
    }


def test_one_pinned_image_for_the_api_the_workers_and_the_migration() -> None:
    app_images = set()
    for where, spec in _pod_specs():
        for container in _containers(spec):
            image = container["image"]
            name, _, tag = image.rpartition(":")
            assert name and tag and tag != "latest", f"{where}/{container['name']}: {image} is not pinned"
            if name == APP_IMAGE_NAME:
                app_images.add(image)
    assert len(app_images) == 1, app_images
    tag = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["images"][0]["newTag"]
    assert app_images == {f"{APP_IMAGE_NAME}:{tag}"}
    for deployment in _of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        assert {container["image"] for container in _containers(spec)} == app_images, deployment["metadata"]["name"]
    assert _one("Job", "finance-ops-migrate")["spec"]["template"]["spec"]["containers"][0]["image"] in app_images


def test_every_container_has_requests_and_limits() -> None:
    for where, spec in _pod_specs():
        for container in _containers(spec):
            resources = container.get("resources", {})
            for bound in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(resources.get(bound, {})), f"{where}/{container['name']}: {bound}"


def test_pods_run_as_non_root_on_a_read_only_root_filesystem_without_host_access() -> None:
    for where, spec in _pod_specs():
        pod = spec["securityContext"]
        assert pod["runAsNonRoot"] is True and pod["runAsUser"] != 0, where
        assert pod["seccompProfile"] == {"type": "RuntimeDefault"}, where
        assert spec["automountServiceAccountToken"] is False, where
        for host in ("hostNetwork", "hostPID", "hostIPC"):
            assert not spec.get(host), f"{where}: {host}"
        assert not [volume for volume in spec.get("volumes", []) if "hostPath" in volume], where
        for container in _containers(spec):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, f"{where}/{container['name']}"
            assert context["readOnlyRootFilesystem"] is True, f"{where}/{container['name']}"
            assert context["capabilities"] == {"drop": ["ALL"]}, f"{where}/{container['name']}"
            assert not [port for port in container.get("ports", []) if "hostPort" in port], where


def _probe_port(container: dict, probe: dict) -> int:
    port = probe["httpGet"]["port"]
    if isinstance(port, int):
        return port
    (number,) = [item["containerPort"] for item in container["ports"] if item["name"] == port]
    return number


def test_the_api_is_ready_when_its_dependencies_answer_and_alive_while_it_answers() -> None:
    (api,) = _one("Deployment", "finance-ops-api")["spec"]["template"]["spec"]["containers"]
    assert api["readinessProbe"]["httpGet"]["path"] == "/health/ready"
    assert api["livenessProbe"]["httpGet"]["path"] == "/health"
    for probe in ("readinessProbe", "livenessProbe", "startupProbe"):
        assert api[probe]["httpGet"]["path"] in HEALTH_PATHS, f"{probe}: no such route"
        assert _probe_port(api, api[probe]) == int(api["command"][api["command"].index("--port") + 1])


def test_workers_are_probed_on_their_metrics_port() -> None:
    port = int(_config()["WORKER_METRICS_PORT"])
    for deployment in _of_kind("Deployment"):
        if deployment["metadata"]["name"] == "finance-ops-api":
            continue
        (worker,) = deployment["spec"]["template"]["spec"]["containers"]
        assert _probe_port(worker, worker["livenessProbe"]) == port
        assert _probe_port(worker, worker["startupProbe"]) == port
        # Ready only while its task-queue pollers run (connected to Temporal).
        readiness = " ".join(worker["readinessProbe"]["exec"]["command"])
        assert f"http://127.0.0.1:{port}/metrics" in readiness and "temporal_num_pollers" in readiness


def test_every_deployment_container_has_liveness_and_readiness() -> None:
    for deployment in _of_kind("Deployment"):
        for container in deployment["spec"]["template"]["spec"]["containers"]:
            assert {"livenessProbe", "readinessProbe"} <= set(container), deployment["metadata"]["name"]


def test_shutdown_leaves_time_to_drain() -> None:
    drain = worker_drain_seconds()
    for deployment in _of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        name = deployment["metadata"]["name"]
        assert deployment["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"] == 0, name
        if name == "finance-ops-api":
            (api,) = spec["containers"]
            graceful = float(api["command"][api["command"].index("--timeout-graceful-shutdown") + 1])
            pre_stop = float(api["lifecycle"]["preStop"]["exec"]["command"][-1])
            assert spec["terminationGracePeriodSeconds"] > pre_stop + graceful
        else:
            assert spec["terminationGracePeriodSeconds"] >= drain + 30, f"{name} is killed before it drains"


def test_every_deployment_has_a_disruption_budget_for_its_pods() -> None:
    budgets = _of_kind("PodDisruptionBudget")
    for deployment in _of_kind("Deployment"):
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert deployment["spec"]["selector"]["matchLabels"].items() <= labels.items()
        covering = [budget for budget in budgets if budget["spec"]["selector"]["matchLabels"].items() <= labels.items()]
        assert len(covering) == 1, deployment["metadata"]["name"]
        budget = covering[0]["spec"]
        assert budget.get("minAvailable", 1) < deployment["spec"]["replicas"] or budget.get("maxUnavailable")


def test_the_service_reaches_the_api_pods_on_their_port() -> None:
    (service,) = _of_kind("Service")
    labels = _one("Deployment", "finance-ops-api")["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    assert service["spec"]["type"] == "ClusterIP", "exposed through an Ingress that terminates TLS, not directly"
    (api,) = _one("Deployment", "finance-ops-api")["spec"]["template"]["spec"]["containers"]
    assert {port["targetPort"] for port in service["spec"]["ports"]} <= {port["name"] for port in api["ports"]}


def test_the_workers_serve_every_task_queue_between_them() -> None:
    served = [
        queues_of(deployment["spec"]["template"]["spec"]["containers"][0]["command"])
        for deployment in _of_kind("Deployment")
        if deployment["metadata"]["name"] != "finance-ops-api"
    ]
    assert set().union(*served) == APP_QUEUES and not set.intersection(*served), served


def test_each_build_runs_its_own_worker_deployments() -> None:
    """A release's workers start beside the previous build's instead of replacing them (a rolling deploy with worker
    versioning: docs/operations.md): each worker Deployment is named for the image tag, selects its pods by it, and
    gives it to the worker as WORKER_BUILD_ID, within the ConfigMap's WORKER_DEPLOYMENT_NAME."""
    tag = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())["images"][0]["newTag"]
    temporal = TemporalSettings(worker_deployment_name=_config()["WORKER_DEPLOYMENT_NAME"], worker_build_id=tag)
    config = deployment_config(temporal)
    assert config is not None and config.version == WorkerDeploymentVersion("finance-ops", tag)
    workers = [document for document in _of_kind("Deployment") if document["metadata"]["name"] != "finance-ops-api"]
    assert workers
    for deployment in workers:
        name = deployment["metadata"]["name"]
        labels = deployment["spec"]["template"]["metadata"]["labels"]
        assert name == f"finance-ops-{labels['app.kubernetes.io/component']}-{tag}"
        assert deployment["spec"]["selector"]["matchLabels"]["app.kubernetes.io/version"] == tag, name
        assert labels["app.kubernetes.io/version"] == tag, name
        (worker,) = deployment["spec"]["template"]["spec"]["containers"]
        assert {variable["name"]: variable.get("value") for variable in worker["env"]}["WORKER_BUILD_ID"] == tag, name


SECRET_LOOKING = re.compile(r"PASSWORD|PWD|SECRET|HMAC|API_KEY|TOKEN|DATABASE_URL")


def test_secrets_are_only_referenced_never_written() -> None:
    assert not _of_kind("Secret"), "a Secret in the applied manifests carries its values in the repository"
    assert not [key for key in _config() if SECRET_LOOKING.search(key)], "a secret in the ConfigMap"
    examples = _example_secrets()
    for where, spec in _pod_specs():
        for container in _containers(spec):
            for variable in container.get("env", []):
                if "value" in variable:
                    assert not SECRET_LOOKING.search(variable["name"]), f"{where}: {variable['name']} written"
                else:
                    reference = variable["valueFrom"]["secretKeyRef"]
                    assert reference["key"] in examples[reference["name"]], f"{where}: {reference}"
            for source in container.get("envFrom", []):
                assert set(source) <= {"configMapRef", "secretRef"}
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in examples
                else:
                    assert source["configMapRef"]["name"] == "finance-ops-config"
        for volume in spec.get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in examples, f"{where}: {volume}"
    for name, values in examples.items():
        assert all("CHANGE-ME" in value for value in values.values()), f"{name}: only placeholders in the repository"


def test_the_config_and_secrets_name_only_settings_the_app_reads_and_all_it_needs() -> None:
    known = setting_names()
    examples = _example_secrets()
    assert set(_config()) <= known, set(_config()) - known
    assert set(examples["finance-ops-secrets"]) <= known
    assert set(examples["finance-ops-migrate"]) <= known | MIGRATION_VARIABLES
    given = set(_config()) | set(examples["finance-ops-secrets"])
    needed = {"APP_ENV", "DATABASE_URL", "SECRET_KEY", "AUDIT_HMAC_KEY", "TEMPORAL_ADDRESS", "TEMPORAL_NAMESPACE"}
    needed |= {"AWS_BUCKET_NAME", "AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "SMTP_HOST", "PUBLIC_BASE_URL"}
    assert needed <= given, needed - given


def test_the_app_reaches_temporal_over_mutual_tls_with_a_mounted_certificate() -> None:
    config = _config()
    assert config["TEMPORAL_TLS"] == "true"
    for deployment in _of_kind("Deployment"):
        spec = deployment["spec"]["template"]["spec"]
        secret_mounts = {
            mount["mountPath"]
            for container in spec["containers"]
            for mount in container["volumeMounts"]
            if any(volume["name"] == mount["name"] and "secret" in volume for volume in spec["volumes"])
        }
        for setting in (
            "TEMPORAL_TLS_SERVER_CA_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_CERT_PATH",
            "TEMPORAL_TLS_CLIENT_KEY_PATH",
        ):
            assert str(Path(config[setting]).parent) in secret_mounts, f"{deployment['metadata']['name']}: {setting}"


def _setup_job() -> tuple[dict, str]:
    (container,) = _one("Job", "finance-ops-temporal-setup")["spec"]["template"]["spec"]["containers"]
    return container, container["args"][0]


def test_the_setup_job_registers_exactly_the_apps_search_attributes() -> None:
    container, script = _setup_job()
    assert registered_search_attributes(script) == app_search_attributes()
    environment = {variable["name"]: variable["value"] for variable in container["env"]}
    assert environment["NAMESPACE"] == _config()["TEMPORAL_NAMESPACE"]
    assert environment["TEMPORAL_ADDRESS"] == _config()["TEMPORAL_ADDRESS"]
    assert tls_flag(script, "--tls-server-name") == _config()["TEMPORAL_TLS_SERVER_NAME"]
    mount = {mount["mountPath"] for mount in container["volumeMounts"] if mount["name"] == "temporal-tls"}
    assert {str(Path(tls_flag(script, flag)).parent) for flag in ("--tls-ca-path", "--tls-cert-path")} == mount
    assert all("$tls" in command for command in re.findall(r"temporal operator [^|&;\n]*", script))


def test_the_migration_job_runs_what_compose_runs_and_the_pods_wait_for_it() -> None:
    (migrate,) = _one("Job", "finance-ops-migrate")["spec"]["template"]["spec"]["containers"]
    compose = yaml.safe_load((DEPLOY / "compose.production.yml").read_text())["services"]["migrate"]
    assert migrate["command"] == compose["command"]
    variables = {variable["name"]: variable for variable in migrate["env"]}
    # As the tables' owner, never as the app's role.
    assert variables["DATABASE_URL"]["valueFrom"]["secretKeyRef"]["name"] == "finance-ops-migrate"
    assert _one("Job", "finance-ops-migrate")["spec"]["template"]["spec"]["restartPolicy"] == "Never"
    for deployment in _of_kind("Deployment"):
        (wait,) = deployment["spec"]["template"]["spec"]["initContainers"]
        assert "alembic current" in wait["command"][-1] and "(head)" in wait["command"][-1]
