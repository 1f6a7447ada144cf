"""requirements.lock, what `make dev` and `make test` install from, is current with pyproject.toml: every
dependency and every extra's is pinned exactly with the hashes of its files, it pins what pyproject.toml names and
nothing it no longer names, and what a named extra pulls in on this machine is pinned too.

No resolver runs here (no network in tests): the lock is read as pip reads it, and its `# via` annotations (uv's)
tell which pins pyproject.toml asked for.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from core.settings import PROJECT_ROOT

LOCK = PROJECT_ROOT / "requirements.lock"
PYPROJECT = PROJECT_ROOT / "pyproject.toml"
PROJECT = "finance-ops"  # pyproject's [project] name, as the lock's annotations name it


@dataclass
class Pin:
    requirement: Requirement
    hashes: list[str]
    via: list[str] = field(default_factory=list)  # who asked for it: "finance-ops (pyproject.toml)", or a package

    @property
    def name(self) -> str:
        return canonicalize_name(self.requirement.name)

    def applies(self) -> bool:
        """Whether pip installs this pin on this machine (uv writes one pin per marker branch)."""
        return self.requirement.marker is None or self.requirement.marker.evaluate()


def read_lock(text: str) -> list[Pin]:
    """The pins of a requirements file in pip's format, with uv's `# via` annotations."""
    pins: list[Pin] = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("#"):
            annotation = stripped.lstrip("#").strip()
            if pins and annotation.startswith("via"):
                pins[-1].via.append(annotation.removeprefix("via").strip())
            elif pins and pins[-1].via and annotation:
                pins[-1].via.append(annotation)
            continue
        logical += stripped.removesuffix("\\") + " "
        if stripped.endswith("\\") or not stripped:
            continue
        hashes = re.findall(r"--hash=(\S+)", logical)
        pins.append(Pin(Requirement(re.sub(r"--hash=\S+", "", logical).strip()), hashes))
        logical = ""
    for pin in pins:
        pin.via = [via for via in pin.via if via]
    return pins


def declared(pyproject: dict[str, Any]) -> list[Requirement]:
    """What pyproject.toml asks for: the dependencies and every extra's (make installs the test extra)."""
    project = pyproject["project"]
    lines = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        lines.extend(extra)
    return [Requirement(line) for line in lines]


def problems(requirements: list[Requirement], pins: list[Pin]) -> list[str]:
    """Everything that makes the lock stale or loose for these requirements; empty when it is current."""
    found: list[str] = []
    by_name: dict[str, list[Pin]] = {}
    for pin in pins:
        by_name.setdefault(pin.name, []).append(pin)
        specifiers = list(pin.requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==" or "*" in specifiers[0].version:
            found.append(f"{pin.requirement}: not pinned to one version with ==")
        if not pin.hashes:
            found.append(f"{pin.requirement}: no --hash")
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        here = [pin for pin in by_name.get(name, []) if pin.applies()]
        if not here:
            found.append(f"{requirement}: not pinned in the lock (for this machine)")
        for pin in here:
            version = next(iter(pin.requirement.specifier)).version
            if not requirement.specifier.contains(version, prereleases=True):
                found.append(f"{requirement}: the lock pins {version}")
    asked = {canonicalize_name(requirement.name) for requirement in requirements}
    top_level = {pin.name for pin in pins if f"{PROJECT} (pyproject.toml)" in pin.via}
    found += [f"{name}: pinned for pyproject.toml, which no longer names it" for name in sorted(top_level - asked)]
    found += [f"{name}: named by pyproject.toml, not pinned for it" for name in sorted(asked - top_level)]
    return found


def pulled_in_by_extras(requirements: list[Requirement]) -> dict[str, list[Requirement]]:
    """What each `package[extra]` requirement adds on this machine, from the installed package's own metadata."""
    added: dict[str, list[Requirement]] = {}
    for requirement in requirements:
        for extra in sorted(requirement.extras):
            environment = {**default_environment(), "extra": extra}
            for line in metadata.requires(requirement.name) or []:
                dependency = Requirement(line)
                if dependency.marker is not None and dependency.marker.evaluate(environment):
                    # Only what the extra adds: a dependency the package always has is pinned like any other.
                    if not dependency.marker.evaluate({**default_environment(), "extra": ""}):
                        added.setdefault(f"{requirement.name}[{extra}]", []).append(dependency)
    return added


@pytest.fixture(scope="module")
def pins() -> list[Pin]:
    return read_lock(LOCK.read_text())


@pytest.fixture(scope="module")
def requirements() -> list[Requirement]:
    return declared(tomllib.loads(PYPROJECT.read_text()))


def test_the_lock_pins_exactly_what_pyproject_names_each_with_hashes(
    pins: list[Pin], requirements: list[Requirement]
) -> None:
    assert len(pins) > len(requirements)  # the transitive dependencies are pinned too
    assert problems(requirements, pins) == [], (
        "requirements.lock is stale or loose: run make lock (docs/dependencies.md)"
    )


def test_what_each_named_extra_pulls_in_is_pinned(pins: list[Pin], requirements: list[Requirement]) -> None:
    added = pulled_in_by_extras(requirements)
    # uvicorn[standard], sqlalchemy[asyncio], psycopg[binary], moto[server]: each adds something here.
    assert {"psycopg[binary]", "sqlalchemy[asyncio]"} <= set(added), added
    applying = {pin.name for pin in pins if pin.applies()}
    missing = {
        extra: [str(dependency) for dependency in dependencies if canonicalize_name(dependency.name) not in applying]
        for extra, dependencies in added.items()
    }
    assert {extra: names for extra, names in missing.items() if names} == {}


def test_the_lock_is_what_make_installs_and_updates() -> None:
    makefile = (PROJECT_ROOT / "Makefile").read_text()
    assert "--require-hashes" in makefile
    assert re.search(r"^\$\(STAMP\):.*\$\(LOCK\)", makefile, re.MULTILINE), "the install stamp must follow the lock"
    assert "LOCK := requirements.lock" in makefile
    assert LOCK.read_text().splitlines()[1].strip() == "#    make lock"


# The check itself, on a small lock and pyproject, so a stale lock is shown to fail it.
SMALL_PYPROJECT = {
    "project": {
        "name": PROJECT,
        "dependencies": ["fastapi>=0.110", "psycopg[binary]>=3.1"],
        "optional-dependencies": {"test": ["pytest>=8"]},
    }
}
SMALL_LOCK = """\
# This file was autogenerated by uv via the following command:
#    make lock
fastapi==0.165.0 \\
    --hash=sha256:aaaa \\
    --hash=sha256:bbbb
    # via finance-ops (pyproject.toml)
psycopg==3.3.9 \\
    --hash=sha256:cccc
    # via
    #   finance-ops (pyproject.toml)
    #   other
psycopg-binary==3.3.9 ; implementation_name != 'pypy' \\
    --hash=sha256:dddd
    # via psycopg
pytest==9.2.0 \\
    --hash=sha256:eeee
    # via finance-ops (pyproject.toml)
"""


def test_a_current_small_lock_passes_and_is_read_as_pip_reads_it() -> None:
    pins = read_lock(SMALL_LOCK)
    assert [(pin.name, str(pin.requirement.specifier), len(pin.hashes)) for pin in pins] == [
        ("fastapi", "==0.165.0", 2),
        ("psycopg", "==3.3.9", 1),
        ("psycopg-binary", "==3.3.9", 1),
        ("pytest", "==9.2.0", 1),
    ]
    assert pins[1].via == ["finance-ops (pyproject.toml)", "other"]
    assert problems(declared(SMALL_PYPROJECT), pins) == []


STALE = [
    # pyproject.toml gains a dependency the lock does not have
    ("pyproject", '"fastapi>=0.110"', '"fastapi>=0.110", "pyotp>=2.9"', "pyotp>=2.9: not pinned in the lock"),
    # pyproject.toml drops one the lock still pins for it
    ("pyproject", '"fastapi>=0.110", ', "", "fastapi: pinned for pyproject.toml, which no longer names it"),
    # a lower bound the pin no longer meets
    ("pyproject", '"pytest>=8"', '"pytest>=10"', "pytest>=10: the lock pins 9.2.0"),
    # the lock keeps a package only for another one, no longer for pyproject.toml
    (
        "lock",
        "eeee\n    # via finance-ops (pyproject.toml)",
        "eeee\n    # via other",
        "pytest: named by pyproject.toml",
    ),
    # a pin without its hashes, or loosened
    ("lock", "fastapi==0.165.0 \\\n    --hash=sha256:aaaa \\\n    --hash=sha256:bbbb", "fastapi==0.165.0", "no --hash"),
    ("lock", "fastapi==0.165.0", "fastapi>=0.165.0", "fastapi>=0.165.0: not pinned to one version with =="),
]


@pytest.mark.parametrize(
    ("where", "old", "new", "expected"),
    STALE,
    ids=["added", "dropped", "bound-raised", "no-longer-top-level", "no-hash", "not-exact"],
)
def test_a_stale_or_loose_lock_is_found(where: str, old: str, new: str, expected: str) -> None:
    pyproject, lock = json.dumps(SMALL_PYPROJECT), SMALL_LOCK
    if where == "pyproject":
        assert old in pyproject
        pyproject = pyproject.replace(old, new)
    else:
        assert old in lock
        lock = lock.replace(old, new)
    found = problems(declared(json.loads(pyproject)), read_lock(lock))
    assert any(expected in problem for problem in found), found


def test_this_lock_resolves_for_this_machine(pins: list[Pin]) -> None:
    """One pin per package applies here (uv's universal lock forks some by Python version or platform)."""
    applying: dict[str, list[str]] = {}
    for pin in pins:
        if pin.applies():
            applying.setdefault(pin.name, []).append(str(pin.requirement.specifier))
    assert {name: versions for name, versions in applying.items() if len(versions) > 1} == {}
    assert "uvloop" in applying and "pywin32" not in applying  # markers evaluated: a Linux CPython


def test_the_image_installs_the_same_versions_without_the_test_extra(pins: list[Pin]) -> None:
    """requirements-runtime.lock (what the Dockerfile installs) pins the runtime dependencies, each at the version
    and with the hashes the full lock has, and nothing only the test extra needs."""
    runtime = read_lock((PROJECT_ROOT / "requirements-runtime.lock").read_text())
    project = tomllib.loads(PYPROJECT.read_text())["project"]
    runtime_requirements = [Requirement(line) for line in project["dependencies"]]
    assert [found for found in problems(runtime_requirements, runtime) if "no longer names it" not in found] == [], (
        "requirements-runtime.lock is stale: run make lock"
    )
    # The same version with the same files, where the pin applies here (uv may word a marker differently when the
    # test extra is not part of the resolution).
    full = {(pin.name, str(pin.requirement.specifier)): pin for pin in pins if pin.applies()}
    for pin in (pin for pin in runtime if pin.applies()):
        same = full.get((pin.name, str(pin.requirement.specifier)))
        assert same is not None and set(pin.hashes) <= set(same.hashes), f"{pin.requirement} differs from the lock"
    # Nothing there for the tests alone: pytest, schemathesis, playwright and the like are in no runtime
    # dependency's tree.
    assert not {pin.name for pin in runtime} & {"pytest", "schemathesis", "playwright", "hypothesis", "moto"}
    dockerfile = (PROJECT_ROOT / "Dockerfile").read_text()
    assert "--require-hashes" in dockerfile and "requirements-runtime.lock" in dockerfile
