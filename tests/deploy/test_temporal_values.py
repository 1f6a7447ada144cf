"""deploy/kubernetes/temporal-values.yaml, values for Temporal's official Helm chart: only keys the chart has (a
misspelt key is silently ignored by Helm, so it is checked here), PostgreSQL persistence with SQL visibility, the
app's namespace, mutual TLS, and agreement with the app's manifests and the production compose file.

The chart itself cannot be fetched here, so CHART_KEYS transcribes the part of its documented values.yaml (chart
1.x, Temporal server 1.31) that this file uses: the shape, not the defaults."""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

import yaml

from tests.deploy.app_facts import DEPLOY, KUBERNETES

ANY = None  # a leaf: any value
_SERVICE = {  # per Temporal service: server.frontend, .history, .matching, .worker, .internal-frontend
    "enabled": ANY,
    "service": ANY,
    "readinessProbe": ANY,
    "ingress": ANY,
    "metrics": ANY,
    "deploymentLabels": ANY,
    "deploymentAnnotations": ANY,
    "deploymentStrategy": ANY,
    "podAnnotations": ANY,
    "podLabels": ANY,
    "serviceLabels": ANY,
    "resources": ANY,
    "nodeSelector": ANY,
    "tolerations": ANY,
    "affinity": ANY,
    "additionalEnv": ANY,
    "containerSecurityContext": ANY,
    "topologySpreadConstraints": ANY,
    "podDisruptionBudget": ANY,
}
# The raw server config's SQL datastore, plus the chart's own createDatabase, manageSchema, existingSecret, secretKey.
_SQL_STORE = {
    "sql": {
        key: ANY
        for key in (
            "createDatabase manageSchema pluginName driverName databaseName connectAddr connectProtocol host port user "
            "password existingSecret secretKey passwordCommand maxConns maxIdleConns maxConnLifetime "
            "connectAttributes tls"
        ).split()
    }
}
_TLS_SECTION = {"enabled": ANY, "secretName": ANY, "mountPath": ANY, "requireClientAuth": ANY, "serverName": ANY}
_IMAGE = {"repository": ANY, "tag": ANY, "pullPolicy": ANY}
CHART_KEYS: dict[str, Any] = {
    "nameOverride": ANY,
    "fullnameOverride": ANY,
    "debug": ANY,
    "imagePullSecrets": ANY,
    "serviceAccount": ANY,
    "additionalAnnotations": ANY,
    "additionalLabels": ANY,
    "extraObjects": ANY,
    "server": {
        "enabled": ANY,
        "image": _IMAGE,
        "replicaCount": ANY,
        "readinessProbe": ANY,
        "metrics": ANY,
        "deploymentLabels": ANY,
        "deploymentAnnotations": ANY,
        "deploymentStrategy": ANY,
        "podAnnotations": ANY,
        "podLabels": ANY,
        "secretLabels": ANY,
        "secretAnnotations": ANY,
        "resources": ANY,
        "nodeSelector": ANY,
        "tolerations": ANY,
        "affinity": ANY,
        "minReadySeconds": ANY,
        "terminationGracePeriodSeconds": ANY,
        "additionalVolumes": ANY,
        "additionalVolumeMounts": ANY,
        "additionalEnv": ANY,
        "additionalEnvSecretName": ANY,
        "additionalEnvConfigMapName": ANY,
        "tls": {"internode": _TLS_SECTION, "frontend": _TLS_SECTION},
        "additionalInitContainers": ANY,
        "securityContext": ANY,
        "config": {
            "logLevel": ANY,
            "tls": ANY,
            "authorization": ANY,
            "persistence": {
                "defaultStore": ANY,
                "visibilityStore": ANY,
                "secondaryVisibilityStore": ANY,
                "numHistoryShards": ANY,
                "datastores": {"default": _SQL_STORE, "visibility": _SQL_STORE},
            },
            "metrics": ANY,
            "namespaces": {"create": ANY, "useExternalFrontend": ANY, "namespace": ANY},
        },
        "frontend": _SERVICE,
        "internal-frontend": _SERVICE,
        "history": _SERVICE,
        "matching": _SERVICE,
        "worker": _SERVICE,
    },
    "admintools": {
        "enabled": ANY,
        "useExternalFrontend": ANY,
        "image": _IMAGE,
        "service": ANY,
        "resources": ANY,
        "containerSecurityContext": ANY,
        "securityContext": ANY,
        "additionalEnv": ANY,
        "additionalVolumes": ANY,
        "additionalVolumeMounts": ANY,
        "podDisruptionBudget": ANY,
    },
    "web": {
        "enabled": ANY,
        "replicaCount": ANY,
        "image": _IMAGE,
        "service": {"type": ANY, "clusterIP": ANY, "port": ANY, "appProtocol": ANY, "annotations": ANY},
        "readinessProbe": ANY,
        "ingress": ANY,
        "resources": ANY,
        "tls": {
            "enabled": ANY,
            "secretName": ANY,
            "mountPath": ANY,
            "serverName": ANY,
            "enableHostVerification": ANY,
        },
        "additionalEnv": ANY,
        "containerSecurityContext": ANY,
        "securityContext": ANY,
        "podDisruptionBudget": ANY,
    },
    "schema": {
        "useHelmHooks": ANY,
        "backoffLimit": ANY,
        "activeDeadlineSeconds": ANY,
        "ttlSecondsAfterFinished": ANY,
        "resources": ANY,
        "containerSecurityContext": ANY,
        "securityContext": ANY,
    },
    "shims": {"dockerize": ANY, "elasticsearchTool": ANY},
}


@cache
def _values() -> dict:
    return yaml.safe_load((KUBERNETES / "temporal-values.yaml").read_text())


def _unknown_keys(values: dict, shape: dict, path: str = "") -> Iterator[str]:
    for key, value in values.items():
        where = f"{path}.{key}" if path else key
        if key not in shape:
            yield where
        elif isinstance(shape[key], dict):
            assert isinstance(value, dict), f"{where} must be a mapping"
            yield from _unknown_keys(value, shape[key], where)


def _config_map() -> dict[str, str]:
    documents = yaml.safe_load_all((KUBERNETES / "configmap.yaml").read_text())
    (config,) = [document for document in documents if document["kind"] == "ConfigMap"]
    return config["data"]


def test_every_key_is_one_the_chart_reads() -> None:
    assert not list(_unknown_keys(_values(), CHART_KEYS))


def test_a_misspelt_key_would_be_caught() -> None:
    values = yaml.safe_load((KUBERNETES / "temporal-values.yaml").read_text())
    values["server"]["config"]["persistance"] = values["server"]["config"].pop("persistence")
    assert list(_unknown_keys(values, CHART_KEYS)) == ["server.config.persistance"]


def test_persistence_and_visibility_are_sql_on_postgres_with_the_password_in_a_secret() -> None:
    persistence = _values()["server"]["config"]["persistence"]
    stores = persistence["datastores"]
    assert persistence["defaultStore"] in stores and persistence["visibilityStore"] in stores
    assert isinstance(persistence["numHistoryShards"], int), "explicit: it cannot change after the first install"
    databases = set()
    for name in (persistence["defaultStore"], persistence["visibilityStore"]):
        (driver,) = stores[name]  # SQL visibility: no elasticsearch store
        sql = stores[name]["sql"]
        assert driver == "sql" and sql["pluginName"] in ("postgres12", "postgres12_pgx"), name
        assert "password" not in sql and sql["existingSecret"], f"{name}: the password belongs in a Secret"
        assert sql["manageSchema"] is True, f"{name}: the chart's schema job must set up and upgrade the schema"
        databases.add(sql["databaseName"])
    assert len(databases) == 2, "history and visibility in separate databases"


def test_the_apps_namespace_is_created() -> None:
    namespaces = _values()["server"]["config"]["namespaces"]
    assert namespaces["create"] is True
    assert _config_map()["TEMPORAL_NAMESPACE"] in {namespace["name"] for namespace in namespaces["namespace"]}


def test_mutual_tls_on_the_frontend_between_nodes_and_from_the_ui() -> None:
    tls = _values()["server"]["tls"]
    assert tls["internode"]["enabled"] and tls["internode"]["secretName"] and tls["internode"]["serverName"]
    frontend = tls["frontend"]
    assert frontend["enabled"] and frontend["requireClientAuth"] is True and frontend["secretName"]
    web = _values()["web"]["tls"]
    assert web["enabled"] and web["enableHostVerification"] and web["serverName"] == frontend["serverName"]
    # The app connects to the frontend's Service by the name its certificate carries.
    config = _config_map()
    assert config["TEMPORAL_TLS_SERVER_NAME"] == frontend["serverName"]
    assert config["TEMPORAL_ADDRESS"] == f"{frontend['serverName']}:7233"


def test_one_temporal_version_everywhere() -> None:
    values = _values()
    version = values["server"]["image"]["tag"]
    assert version not in ("", "latest") and values["admintools"]["image"]["tag"] == version
    major, minor = (int(part) for part in version.split(".")[:2])
    if (major, minor) >= (1, 30):  # the config template is in the binary since 1.30: the 1.29 shims must be off
        assert values["shims"] == {"dockerize": False, "elasticsearchTool": False}
    compose = yaml.safe_load((DEPLOY / "compose.production.yml").read_text())["services"]
    assert compose["temporal"]["image"] == f"temporalio/server:{version}"
    assert compose["temporal-ui"]["image"] == f"temporalio/ui:{values['web']['image']['tag']}"
    job = yaml.safe_load((KUBERNETES / "temporal-setup-job.yaml").read_text())
    (container,) = job["spec"]["template"]["spec"]["containers"]
    assert container["image"] == f"temporalio/admin-tools:{version}"
