"""Unit tests: which backups retention keeps, and which pg_dump/pg_restore fit a server."""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from domain.backups.pg_tools import PgToolsNotFound, find_pg_tools, server_major, tool_major
from domain.backups.retention import Candidate, select_to_prune


def at(day: str, hour: int = 2) -> datetime:
    return datetime.fromisoformat(day).replace(hour=hour, tzinfo=UTC)


def test_keeps_the_newest_of_each_of_the_last_days_and_months() -> None:
    daily = [Candidate(i, at("2026-05-01") - timedelta(days=i)) for i in range(0, 120)]  # May 1 back to Jan 2
    prune = set(select_to_prune(daily, keep_daily=7, keep_monthly=3))
    kept = sorted({c.taken_at.date().isoformat() for c in daily if c.id not in prune})
    # 7 days (Apr 25 - May 1), and the newest of May (May 1), April (Apr 30) and March (Mar 31).
    assert kept == [
        "2026-03-31",
        "2026-04-25",
        "2026-04-26",
        "2026-04-27",
        "2026-04-28",
        "2026-04-29",
        "2026-04-30",
        "2026-05-01",
    ]


def test_several_backups_a_day_keep_only_the_newest_of_that_day() -> None:
    backups = [
        Candidate(1, at("2026-05-02", 2)),
        Candidate(2, at("2026-05-02", 14)),  # an on-demand one later that day
        Candidate(3, at("2026-05-01", 2)),
    ]
    assert select_to_prune(backups, keep_daily=2, keep_monthly=0) == [1]
    assert select_to_prune(backups, keep_daily=1, keep_monthly=0) == [1, 3]


def test_days_are_counted_in_the_backup_time_zone() -> None:
    # 23:30 UTC on May 1 is already May 2 in Berlin: the same day as the 08:00 UTC backup on May 2 there.
    backups = [Candidate(1, at("2026-05-01", 23) + timedelta(minutes=30)), Candidate(2, at("2026-05-02", 8))]
    assert select_to_prune(backups, keep_daily=2, keep_monthly=0, timezone="UTC") == []
    assert select_to_prune(backups, keep_daily=2, keep_monthly=0, timezone="Europe/Berlin") == [1]


def test_the_newest_backup_is_always_kept() -> None:
    assert select_to_prune([Candidate(5, at("2020-01-01"))], keep_daily=1, keep_monthly=0) == []


def _fake_bin(folder: Path, version: str) -> Path:
    folder.mkdir(parents=True)
    for tool in ("pg_dump", "pg_restore"):
        script = folder / tool
        script.write_text(f"#!/bin/sh\necho '{tool} (PostgreSQL) {version}'\n")
        script.chmod(0o755)
    return folder


def test_pg_bin_dir_is_used_when_it_matches_and_named_when_it_does_not(tmp_path: Path) -> None:
    bin16 = _fake_bin(tmp_path / "16" / "bin", "16.4")
    assert tool_major(bin16 / "pg_dump") == 16
    assert find_pg_tools(16, str(bin16)).pg_dump == bin16 / "pg_dump"
    with pytest.raises(PgToolsNotFound) as error:
        find_pg_tools(15, str(bin16))
    message = str(error.value)
    assert "PostgreSQL 15" in message and str(bin16) in message and "pg_dump 16" in message


def test_the_system_tools_of_the_servers_major_are_found(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("PATH", str(_fake_bin(tmp_path / "path", "14.2")) + os.pathsep + os.environ["PATH"])
    tools = find_pg_tools(15)  # the test server's version: /usr/lib/postgresql/15/bin
    assert tools.major == 15 and tool_major(tools.pg_restore) == 15
    assert find_pg_tools(14).bin_dir == tmp_path / "path"  # found on PATH
    with pytest.raises(PgToolsNotFound, match="no pg_dump/pg_restore for PostgreSQL 9 "):
        find_pg_tools(9)


def test_server_major_from_server_version_num() -> None:
    assert (server_major("150020"), server_major(160004), server_major(90624)) == (15, 16, 9)
