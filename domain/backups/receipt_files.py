"""Receipts' files in a backup set: copied beside the dump, checked by the restore drill.

A backup of `backups/backup-X.dump` keeps
- `backups/backup-X.attachments/<sha256>`: each stored receipt's file, named by its content (the same receipt on
  two expenses is kept once), copied inside the store (S3's copy: no bytes through the worker);
- `backups/backup-X.attachments.json`: the manifest, `{"files": [{"key", "sha256", "size_bytes"}, ...]}`, every
  stored attachment row of the dump's snapshot with its storage key, so a restore can put each file back.

The list comes from the same snapshot as the dump, so the files and the rows agree. A file missing from the storage
at backup time is named in the manifest (`missing`) rather than failing the backup (the database's dump is worth
keeping without it), and the drill fails on it. Blocking calls: run these in a thread.
"""

from __future__ import annotations

import hashlib
import json
import tempfile
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from core.storage import ObjectStorage
from domain.attachments.repository import StoredFile

FORMAT = 1
_NAMED = 20  # at most this many keys named in a problem


def files_prefix(dump_key: str) -> str:
    return dump_key.removesuffix(".dump") + ".attachments/"


def manifest_key(dump_key: str) -> str:
    return dump_key.removesuffix(".dump") + ".attachments.json"


def write_list(files: Iterable[StoredFile], path: Path) -> None:
    """The files of the dump's snapshot, kept beside the dump until the backup is stored."""
    rows = [{"key": f.storage_key, "sha256": f.sha256, "size_bytes": f.size_bytes} for f in files]
    path.write_text(json.dumps({"format": FORMAT, "files": rows}))


def read_list(path: Path) -> list[StoredFile]:
    data = json.loads(path.read_text())
    return [StoredFile(item["key"], item["sha256"], int(item["size_bytes"])) for item in data["files"]]


def copy_into_backup(storage: ObjectStorage, files: list[StoredFile], dump_key: str) -> dict[str, Any]:
    """Copy each file into the backup set (those already there from an earlier attempt are skipped) and store the
    manifest; answers the summary the backup's manifest keeps. Without receipts the set stays the dump alone."""
    prefix = files_prefix(dump_key)
    if not files:
        return {"files": 0, "bytes": 0, "missing": [], "missing_count": 0, "manifest_key": None, "prefix": prefix}
    present = {item.key for item in storage.list(prefix)}
    missing: list[str] = []
    copied: set[str] = set()
    for item in files:
        target = prefix + item.sha256
        if target in present or target in copied:
            continue
        try:
            storage.copy(item.storage_key, target)
        except FileNotFoundError:
            missing.append(item.storage_key)
            continue
        copied.add(target)
    manifest = {
        "format": FORMAT,
        "files": [{"key": f.storage_key, "sha256": f.sha256, "size_bytes": f.size_bytes} for f in files],
        "missing": missing,
    }
    with tempfile.TemporaryDirectory(prefix="backup-attachments-") as folder:
        path = Path(folder) / "attachments.json"
        path.write_text(json.dumps(manifest))
        storage.put_file(manifest_key(dump_key), path, "application/json")
    return {
        "files": len(files),
        "bytes": sum(f.size_bytes for f in files),
        "missing": missing[:_NAMED],
        "missing_count": len(missing),
        "manifest_key": manifest_key(dump_key),
        "prefix": prefix,
    }


@dataclass
class FilesCheck:
    """What the drill found of the restored database's receipts in the backup set."""

    checked: int = 0
    bytes: int = 0
    not_in_manifest: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    mismatched: list[str] = field(default_factory=list)
    problem: str | None = None

    @property
    def ok(self) -> bool:
        return self.problem is None and not (self.not_in_manifest or self.missing or self.mismatched)

    @property
    def reason(self) -> str | None:
        if self.problem:
            return self.problem
        parts = [
            f"{label} ({len(keys)}: {', '.join(keys[:_NAMED])})"
            for label, keys in (
                ("receipts not in the backup's file manifest", self.not_in_manifest),
                ("receipt files missing from the backup", self.missing),
                ("receipt files whose SHA-256 differs from their row's", self.mismatched),
            )
            if keys
        ]
        return "; ".join(parts) or None

    def as_dict(self) -> dict[str, Any]:
        return {
            "ok": self.ok,
            "checked": self.checked,
            "bytes": self.bytes,
            "not_in_manifest": self.not_in_manifest[:_NAMED],
            "missing": self.missing[:_NAMED],
            "mismatched": self.mismatched[:_NAMED],
            "reason": self.reason,
        }


def _load_manifest(storage: ObjectStorage, dump_key: str) -> dict[str, Any] | None:
    try:
        handle = storage.open(manifest_key(dump_key))
    except FileNotFoundError:
        return None
    try:
        data: dict[str, Any] = json.loads(handle.read())
    finally:
        handle.close()
    return data


def _sha256_of_object(storage: ObjectStorage, key: str) -> str | None:
    try:
        handle = storage.open(key)
    except FileNotFoundError:
        return None
    digest = hashlib.sha256()
    try:
        while chunk := handle.read(1 << 20):
            digest.update(chunk)
    finally:
        handle.close()
    return digest.hexdigest()


def verify_backup_files(storage: ObjectStorage, rows: list[StoredFile], dump_key: str) -> FilesCheck:
    """Every stored attachment row of the restored database: listed in the backup's manifest under its key, and its
    file in the backup set hashing to the row's SHA-256 (each distinct file read once)."""
    check = FilesCheck()
    if not rows:
        return check
    manifest = _load_manifest(storage, dump_key)
    if manifest is None:
        check.problem = (
            f"the restored database has {len(rows)} stored receipts but the backup set has no file manifest "
            f"({manifest_key(dump_key)})"
        )
        return check
    listed = {(item["key"], item["sha256"]) for item in manifest.get("files", [])}
    prefix = files_prefix(dump_key)
    hashes: dict[str, str | None] = {}
    for row in rows:
        check.checked += 1
        check.bytes += row.size_bytes
        if (row.storage_key, row.sha256) not in listed:
            check.not_in_manifest.append(row.storage_key)
            continue
        if row.sha256 not in hashes:
            hashes[row.sha256] = _sha256_of_object(storage, prefix + row.sha256)
        actual = hashes[row.sha256]
        if actual is None:
            check.missing.append(row.storage_key)
        elif actual != row.sha256:
            check.mismatched.append(row.storage_key)
    return check


def delete_backup_files(storage: ObjectStorage, dump_key: str) -> int:
    """Remove a pruned backup's receipt files and manifest; how many objects went."""
    keys = [item.key for item in storage.list(files_prefix(dump_key))]
    for key in [*keys, manifest_key(dump_key)]:
        storage.delete(key)
    return len(keys)


def put_back(storage: ObjectStorage, rows: list[StoredFile], dump_key: str, check: FilesCheck) -> int:
    """After a restore: each receipt whose file is not at its key (a lost object, or a store restored elsewhere) is
    copied back from the backup set, when its copy there checked out; how many were."""
    bad = set(check.not_in_manifest) | set(check.missing) | set(check.mismatched)
    prefix = files_prefix(dump_key)
    put = 0
    for row in rows:
        if row.storage_key in bad or storage.exists(row.storage_key):
            continue
        storage.copy(prefix + row.sha256, row.storage_key)
        put += 1
    return put
