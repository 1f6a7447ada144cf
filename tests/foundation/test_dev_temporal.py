"""`make dev` reusing a Temporal server it did not start still gets the project's search attributes on it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

from core import devstack
from tests.foundation.temporal_cli import bare_temporal_server, listed_search_attributes
from tests.services import TEMPORAL_CLI
from workflows.contracts import SEARCH_ATTRIBUTES


@pytest.fixture(scope="module")
def bare_temporal() -> Iterator[str]:
    """A Temporal dev server started without any custom search attributes, as someone else might run one."""
    with bare_temporal_server() as address:
        yield address


def test_search_attributes_are_registered_on_a_reused_server(bare_temporal: str) -> None:
    assert "EntryKind" not in listed_search_attributes(bare_temporal)
    devstack.register_search_attributes(bare_temporal)
    devstack.register_search_attributes(bare_temporal)  # a second `make dev`: the existing ones are fine
    listed = listed_search_attributes(bare_temporal)
    expected = {"EntryKind": "Keyword", "EntryId": "Keyword", "ApprovalStatus": "Keyword"}
    expected |= {
        "CurrentApprover": "Keyword",
        "AmountCents": "Int",
        "InvoiceNumber": "Keyword",
        "CustomerId": "Keyword",
    }
    assert {key.name for key in SEARCH_ATTRIBUTES} == set(expected)
    assert {name: listed.get(name) for name in expected} == expected


def test_an_attribute_of_another_type_stops_make_dev(bare_temporal: str, monkeypatch: pytest.MonkeyPatch) -> None:
    subprocess.run(
        [str(TEMPORAL_CLI), "operator", "search-attribute", "create", "--address", bare_temporal]
        + ["--name", "ProjectClash", "--type", "Int"],
        check=True,
        capture_output=True,
    )
    clashing = ["--search-attribute", "ProjectClash=Keyword"]
    monkeypatch.setattr(devstack, "search_attribute_flags", lambda _keys: clashing)
    with pytest.raises(SystemExit, match="ProjectClash"):
        devstack.register_search_attributes(bare_temporal)
