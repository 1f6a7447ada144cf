"""`make dev` hands its processes one audit key, kept in its data folder, and a second shell gets it too: whatever
the CLI audits or verifies there is chained with the same key as the API's and the worker's rows."""

from __future__ import annotations

from pathlib import Path

import pytest
from dotenv import dotenv_values

from core import devstack


def test_make_dev_passes_its_persistent_audit_key_to_every_process(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(devstack, "VAR", tmp_path)
    monkeypatch.delenv("AUDIT_HMAC_KEY", raising=False)
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/finance")
    first = devstack.dev_environment()
    again = devstack.dev_environment()  # the next `make dev`: the same key, so the chain keeps verifying
    assert first["AUDIT_HMAC_KEY"] == again["AUDIT_HMAC_KEY"] == (tmp_path / "audit_hmac_key").read_text().strip()
    assert len(first["AUDIT_HMAC_KEY"]) >= 32

    second_shell = dotenv_values(devstack.write_dev_env(first))
    assert second_shell["AUDIT_HMAC_KEY"] == first["AUDIT_HMAC_KEY"]
    assert "SECRET_KEY" not in second_shell
    assert "audit_hmac_key" in devstack.DEV_DATA  # make reset wipes it with the chain it keyed

    monkeypatch.setenv("AUDIT_HMAC_KEY", "o" * 40)  # an operator's own key wins
    assert devstack.dev_environment()["AUDIT_HMAC_KEY"] == "o" * 40
