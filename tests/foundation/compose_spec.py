"""The Compose Specification's JSON schema (as check-jsonschema vendors it) and what a service publishes: for the
tests of every compose file (docker-compose.yml, deploy/compose.production.yml)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from jsonschema.validators import validator_for


@cache
def _validator() -> Any:
    schema = json.loads(
        resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json").read_text()
    )
    return validator_for(schema)(schema)


def compose_spec_problems(document: dict) -> list[str]:
    """Where `document` breaks the Compose Specification, one line each (empty: it follows it)."""
    return [
        f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in _validator().iter_errors(document)
    ]


def published_ports(service: dict) -> list[str]:
    """The service's `ports`, short syntax or long, as `host_ip:published[:target]` strings."""
    return [
        str(port) if not isinstance(port, dict) else f"{port.get('host_ip', '')}:{port.get('published')}"
        for port in service.get("ports", [])
    ]
