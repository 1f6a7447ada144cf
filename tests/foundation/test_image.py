"""The image cannot carry secrets or local state, and runs as a user who cannot change its code.

What a `docker build .` sends is computed with Docker's own .dockerignore rules (the Docker SDK's matcher), over a
checkout as a developer has it: a `.env`, `var/` with the development secret key and database, a `.venv`, `.git`,
keys and caches beside the tracked files.
"""

from __future__ import annotations

import fnmatch
import re
import shlex
import subprocess
from pathlib import Path, PurePosixPath

import pytest
from docker.utils.build import exclude_paths

from core.settings import PROJECT_ROOT

# What a working checkout holds that must never reach an image.
LOCAL_STATE = [
    ".env",
    ".env.production",
    "var/secret_key",
    "var/dev.env",
    "var/pgdata/PG_VERSION",
    "var/temporal.db",
    "var/storage/reports/1/pnl.pdf",
    "var/mail/0001.eml",
    ".venv/bin/python",
    ".venv/lib/python3.11/site-packages/x.py",
    ".git/config",
    ".git/objects/ab/cdef",
    "id_rsa",
    "deploy/tls/server.key",
    "deploy/tls/server.pem",
    "policies/.env",
    "core/__pycache__/settings.cpython-311.pyc",
    ".pytest_cache/v/cache/nodeids",
    ".mypy_cache/3.11/x.json",
    ".ruff_cache/content",
    "build/lib/api/app.py",
    "finance_ops.egg-info/PKG-INFO",
]
FORBIDDEN_TOP = {"var", ".venv", ".git", ".pytest_cache", ".mypy_cache", ".ruff_cache", "build", "tests", "docs"}
FORBIDDEN_NAMES = [".env", ".env.*", "*.pem", "*.key", "id_rsa*", "id_ed25519*", "secret_key", "*.pyc", "*.db"]


def _dockerignore(root: Path) -> list[str]:
    # As the Docker CLI reads it: comments and blank lines dropped, each pattern trimmed.
    lines = (root / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#")]


def build_context(root: Path) -> set[str]:
    """The files `docker build` would send from `root`."""
    sent = exclude_paths(str(root), _dockerignore(root))
    return {path for path in sent if (root / path).is_file()}


def _forbidden(path: str) -> bool:
    parts = PurePosixPath(path).parts
    if parts[0] in FORBIDDEN_TOP or "__pycache__" in parts or parts[0].endswith(".egg-info"):
        return True
    return any(fnmatch.fnmatch(parts[-1], pattern) for pattern in FORBIDDEN_NAMES)


def _tracked() -> list[str]:
    output = subprocess.run(["git", "ls-files"], cwd=PROJECT_ROOT, capture_output=True, text=True, check=True)
    return [line for line in output.stdout.splitlines() if (PROJECT_ROOT / line).is_file()]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tracked files (empty) plus a developer's local state and secrets."""
    root = tmp_path_factory.mktemp("checkout")
    for path in [*_tracked(), *LOCAL_STATE]:
        target = root / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text("")
    (root / ".dockerignore").write_text((PROJECT_ROOT / ".dockerignore").read_text())
    return root


def test_local_state_and_secrets_are_not_sent(checkout: Path) -> None:
    sent = build_context(checkout)
    assert not sent & set(LOCAL_STATE), sorted(sent & set(LOCAL_STATE))
    assert not [path for path in sent if _forbidden(path)]
    assert sent <= set(_tracked()) | {".dockerignore"}, sorted(sent - set(_tracked()))


def test_this_checkout_sends_nothing_local() -> None:
    """The working tree as it is now (a .venv, maybe var/ and a .env)."""
    sent = build_context(PROJECT_ROOT)
    assert not [path for path in sent if _forbidden(path)], sorted(path for path in sent if _forbidden(path))


def _instructions() -> list[tuple[str, str]]:
    text = (PROJECT_ROOT / "Dockerfile").read_text().replace("\\\n", " ")
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.strip().startswith("#")]
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1]) for line in lines]


def test_every_copy_takes_only_named_paths_the_context_sends(checkout: Path) -> None:
    sent = build_context(checkout)
    tracked = set(_tracked())
    copies = [argument for instruction, argument in _instructions() if instruction in ("COPY", "ADD")]
    assert copies and all(instruction != "ADD" for instruction, _ in _instructions())
    for argument in copies:
        words = shlex.split(argument)
        assert not [word for word in words if word.startswith("--chown")], f"COPY {argument}: code belongs to root"
        for source in words[:-1]:
            assert source not in (".", "./", "*"), f"COPY {argument} takes the whole context"
            wanted = {path for path in tracked if path == source or path.startswith(source.rstrip("/") + "/")}
            wanted = {path for path in wanted if not _forbidden(path)}
            assert wanted, f"COPY {source}: no such tracked path"
            assert wanted <= sent, f"COPY {source}: the context leaves out {sorted(wanted - sent)}"


def test_the_app_runs_as_a_user_who_can_write_only_its_data_folder() -> None:
    instructions = _instructions()
    users = [index for index, (instruction, _) in enumerate(instructions) if instruction == "USER"]
    assert users, "the image must not run as root"
    user = instructions[users[-1]][1].split(":")[0]
    assert user not in ("root", "0")
    after = [instruction for instruction, _ in instructions[users[-1] :]]
    assert not {"COPY", "ADD", "RUN"} & set(after), "everything is installed before switching to the app user"
    runs = " ".join(argument for instruction, argument in instructions if instruction == "RUN")
    # Writable only where data goes: one folder handed to the user, the code read-only to all but root.
    handed_over = re.findall(r"(?:chown\s+\S+\s+|install\s+-d\s+-o\s+\S+\s+-g\s+\S+\s+-m\s+\S+\s+)(\S+)", runs)
    assert handed_over == ["/app/var"], handed_over
    assert "chmod -R a+rX,go-w /app" in runs
    assert "PYTHONDONTWRITEBYTECODE=1" in (PROJECT_ROOT / "Dockerfile").read_text()
