"""`make dev` reusing a Temporal server it did not start still gets the project's search attributes on it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from core import devstack
from core.temporal import SEARCH_ATTRIBUTES
from tests.services import TEMPORAL_CLI, free_port


@pytest.fixture(scope="module")
def bare_temporal() -> Iterator[str]:
    """A Temporal dev server started without any custom search attributes, as someone else might run one."""
    port = free_port()
    address = f"127.0.0.1:{port}"
    server = subprocess.Popen(
        [str(TEMPORAL_CLI), "server", "start-dev", "--ip", "127.0.0.1", "--port", str(port), "--headless"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        devstack.wait_for_port("127.0.0.1", port, 60, "Temporal", server)
        yield address
    finally:
        server.terminate()
        server.wait(timeout=30)


def _listed(address: str) -> dict[str, str]:
    output = subprocess.run(
        [str(TEMPORAL_CLI), "operator", "search-attribute", "list", "--address", address],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    return {parts[0]: parts[1] for line in output.splitlines() if len(parts := line.split()) >= 2}


def test_search_attributes_are_registered_on_a_reused_server(bare_temporal: str) -> None:
    assert "EntryKind" not in _listed(bare_temporal)
    devstack.register_search_attributes(bare_temporal)
    devstack.register_search_attributes(bare_temporal)  # a second `make dev`: the existing ones are fine
    listed = _listed(bare_temporal)
    expected = {"EntryKind": "Keyword", "EntryId": "Keyword", "ApprovalStatus": "Keyword"}
    expected |= {"CurrentApprover": "Keyword", "AmountCents": "Int"}
    assert {key.name for key in SEARCH_ATTRIBUTES} == set(expected)
    assert {name: listed.get(name) for name in expected} == expected


def test_an_attribute_of_another_type_stops_make_dev(bare_temporal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run(
        [str(TEMPORAL_CLI), "operator", "search-attribute", "create", "--address", bare_temporal]
        + ["--name", "ProjectClash", "--type", "Int"],
        check=True,
        capture_output=True,
    )
    monkeypatch.setattr(devstack, "search_attribute_flags", lambda: ["--search-attribute", "ProjectClash=Keyword"])
    with pytest.raises(SystemExit, match="ProjectClash"):
        devstack.register_search_attributes(bare_temporal)
