"""A TypeScript client generated from the app's document (@hey-api/openapi-ts, pinned in clients/typescript) generates
with no warnings, has a function for every operation, and type-checks strictly (`tsc --noEmit`) with usage.ts, which
uses it as an app would: sign in, file an expense, submit, approve, request a report and download it.

The npm packages install with `npm ci` from package-lock.json (exact versions and their integrity hashes), once:
node_modules stays between runs while it matches the lock."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from core.settings import PROJECT_ROOT

CLIENT = PROJECT_ROOT / "clients" / "typescript"
NODE_BIN = CLIENT / "node_modules" / ".bin"
NPM = shutil.which("npm")
pytestmark = pytest.mark.skipif(
    NPM is None, reason="npm is not on PATH: the TypeScript client needs Node.js 20.19+ with npm (clients/typescript)"
)
# No colours, no update or funding notices: what is left of the tools' output is theirs to say.
QUIET = {"NO_COLOR": "1", "FORCE_COLOR": "0", "NPM_CONFIG_UPDATE_NOTIFIER": "false", "NPM_CONFIG_FUND": "false"}


def _run(*command: str, timeout: float) -> tuple[int, str]:
    result = subprocess.run(
        command, cwd=CLIENT, capture_output=True, text=True, timeout=timeout, env={**os.environ, **QUIET}
    )
    return result.returncode, result.stdout + result.stderr


def _versions(lock: Path) -> dict[str, str | None]:
    packages: dict[str, dict[str, Any]] = json.loads(lock.read_text())["packages"]
    return {path: entry.get("version") for path, entry in packages.items() if path}  # "": the folder itself


def _installed_as_locked() -> bool:
    """npm records what it installed in node_modules/.package-lock.json: the same packages as the lock, or stale."""
    installed = CLIENT / "node_modules" / ".package-lock.json"
    return installed.exists() and _versions(installed) == _versions(CLIENT / "package-lock.json")


def _camel(operation_id: str) -> str:
    """The SDK's function name for an operation id: expenses-create -> expensesCreate."""
    return re.sub(r"-(\w)", lambda match: match.group(1).upper(), operation_id)


@pytest.fixture(scope="module")
def generated(document: dict[str, Any]) -> tuple[int, str]:
    """npm ci when node_modules does not match the lock, then the generator over the app's document."""
    assert NPM is not None
    if not _installed_as_locked():
        returncode, output = _run(NPM, "ci", "--no-audit", "--no-fund", timeout=600)
        assert returncode == 0, output
        assert "warn" not in output.lower(), output
    (CLIENT / "openapi.json").write_text(json.dumps(document, indent=1))
    shutil.rmtree(CLIENT / "generated", ignore_errors=True)
    return _run(str(NODE_BIN / "openapi-ts"), timeout=300)


def test_the_typescript_client_generates_without_warnings(generated: tuple[int, str]) -> None:
    returncode, output = generated
    assert returncode == 0, output
    assert "warn" not in output.lower(), output
    assert "error" not in output.lower(), output


def test_every_operation_is_a_function_named_for_its_operation_id(
    generated: tuple[int, str], document: dict[str, Any]
) -> None:
    sdk = (CLIENT / "generated" / "sdk.gen.ts").read_text()
    operations = [
        operation["operationId"]
        for path in document["paths"].values()
        for operation in path.values()
        if isinstance(operation, dict) and "operationId" in operation
    ]
    assert len(operations) > 50
    assert [name for name in operations if f"export const {_camel(name)} = " not in sdk] == []
    assert len(re.findall(r"^export const \w+ = ", sdk, re.MULTILINE)) == len(operations)


def test_the_client_and_its_use_type_check_strictly(generated: tuple[int, str]) -> None:
    assert generated[0] == 0, generated[1]
    returncode, output = _run(str(NODE_BIN / "tsc"), "--noEmit", "--project", ".", timeout=300)
    assert returncode == 0, output
    assert output.strip() == "", output
