"""Migration 0005 gives the manifests of existing backups their audit head's id, so their drills anchor too."""

from __future__ import annotations

import json

import psycopg

from tests.services import admin_database_url, migrate, scratch_database

BEFORE = "0004_entry_list_indexes"
AFTER = "0005_backup_audit_head_id"


def test_existing_manifests_get_their_audit_head_id() -> None:
    with scratch_database(admin_database_url(), prefix="finance_migration") as url:
        migrate(url, BEFORE)
        with psycopg.connect(url, autocommit=True) as conn:
            for row_id, digest in ((41, "a" * 64), (42, "b" * 64)):
                conn.execute(
                    "INSERT INTO audit_log (id, occurred_at, action, resource_type, changes, prev_hash, hash)"
                    " VALUES (%s, now(), 'test', 'test', '{}', %s, %s)",
                    (row_id, "0" * 64, digest),
                )
            manifests = {
                "known-head": {"tables": {}, "audit_head_hash": "b" * 64},
                "unknown-head": {"tables": {}, "audit_head_hash": "c" * 64},  # not in this log: left as it is
                "empty-log": {"tables": {}, "audit_head_hash": None},
                "already-anchored": {"tables": {}, "audit_head_hash": "a" * 64, "audit_head_id": 41},
            }
            for name, manifest in manifests.items():
                conn.execute(
                    "INSERT INTO backups (workflow_id, status, manifest, created_at)"
                    " VALUES (%s, 'completed', %s, now())",
                    (name, json.dumps(manifest)),
                )
        migrate(url, AFTER)
        with psycopg.connect(url) as conn:
            stored = dict(conn.execute("SELECT workflow_id, manifest FROM backups").fetchall())

    assert stored["known-head"] == {"tables": {}, "audit_head_hash": "b" * 64, "audit_head_id": 42}
    assert stored["unknown-head"] == manifests["unknown-head"]
    assert stored["empty-log"] == manifests["empty-log"]
    assert stored["already-anchored"] == manifests["already-anchored"]
