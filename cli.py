"""Operator commands: `python cli.py --help`.

create-superadmin   make sure a superadmin exists (env FIRST_SUPERADMIN_EMAIL / _PASSWORD, or flags)
verify-audit        walk the audit hash chain and name the first broken row
restore             restore a backup (by id or storage key) into a named database, then verify it
fx-import           import the ECB exchange rates now (the daily file, --history for 90 days, or --url), through
                    the worker's FxRatesImportWorkflow, and print what it stored
seed-accounts       make the standard chart of accounts and its mapping when there is no account yet
                    (domain/ledger/standard_chart.py; `make dev` runs it)
policy diff         what a proposed policy.csv (and --model model.conf) would change against the files in POLICY_DIR:
                    permissions route by route, approval limits, the last 90 days' requests that would route
                    differently. Exit 0: no change, 1: changes, 2: a broken or unreadable file (its line named)
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import json
import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from core.db import Database
from core.settings import MissingSettingError, WeakSecretError, get_settings, load_settings

if TYPE_CHECKING:
    from domain.policies.schemas import PolicyPreview, RoutingOut


async def _create_superadmin(args: argparse.Namespace) -> int:
    from domain.users.bootstrap import BootstrapRefused, ensure_superadmin

    settings = get_settings()
    email = args.email or settings.auth.first_superadmin_email
    password = settings.auth.first_superadmin_password
    if args.prompt:
        password = getpass.getpass("Password for the superadmin: ")
    db = Database.connect(settings.db)
    try:
        async with db.transaction() as tx:
            result = await ensure_superadmin(
                tx, email=email, password=password, bcrypt_rounds=settings.auth.bcrypt_rounds
            )
    except BootstrapRefused as refused:
        print(f"No superadmin created: {refused}", file=sys.stderr)
        return 2
    finally:
        await db.dispose()
    if not result.created:
        print(f"A superadmin already exists ({result.email}).")
    elif result.generated_password:
        print("Created the first superadmin. This password is shown once; change it after logging in:")
        print(f"    email:    {result.email}")
        print(f"    password: {result.generated_password}")
    else:
        print(f"Created the first superadmin {result.email} with the configured password.")
    return 0


async def _verify_audit(_: argparse.Namespace) -> int:
    from domain.audit.service import verify_chain

    settings = get_settings()
    db = Database.connect(settings.db)
    try:
        async with db.transaction() as tx:
            verdict = await verify_chain(tx)
    finally:
        await db.dispose()
    if verdict.ok:
        older = f" ({verdict.legacy_rows} from before the chain was keyed)" if verdict.legacy_rows else ""
        print(f"audit chain intact: {verdict.rows_checked} rows{older}")
        return 0
    print(f"audit chain BROKEN at row {verdict.first_broken_id}: {verdict.reason}")
    return 1


async def _restore(args: argparse.Namespace) -> int:
    from core.storage import create_storage
    from domain.backups.restore import RestoreRefused, plan_restore, restore

    settings = get_settings()
    storage = create_storage(settings.storage)
    if args.list:
        for item in storage.list(settings.backups.prefix):
            print(f"{item.key}\t{item.size} bytes")
        return 0
    if not args.database or (args.backup_id is None and not args.key):
        print("restore: give --database and one of --backup-id / --key (or --list)", file=sys.stderr)
        return 2
    try:
        plan = await plan_restore(settings, storage, backup_id=args.backup_id, key=args.key, sha256=args.sha256)
        print(f"restoring {plan.storage_key} into database {args.database} ...")
        report = await restore(settings, storage, plan, args.database)
    except (RestoreRefused, RuntimeError, ValueError) as error:
        print(f"restore REFUSED: {error}", file=sys.stderr)
        return 1
    print(f"sha256 {report.sha256} ({'verified' if report.checksum_verified else 'NOT verified: no checksum known'})")
    for table, counts in sorted(report.manifest["tables"].items()):
        print(f"  {table}: {', '.join(f'{k}={v}' for k, v in counts.items())}")
    for difference in report.differences:
        print(f"  DIFFERS from the backup's manifest: {difference}")
    print(
        f"audit chain: {'intact' if report.audit_ok else 'BROKEN at ' + str(report.audit_problem)}"
        f" ({report.audit_rows} rows)"
    )
    print(
        f"receipts: {report.receipts_checked} files checked in the backup, {report.receipts_put_back} put back"
        + (f"; PROBLEM: {report.receipts_problem}" if report.receipts_problem else "")
    )
    if not report.ok:
        return 1
    print(f"restored into {args.database}. Point DATABASE_URL at it and restart the API and the worker.")
    return 0


async def _fx_import(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from temporalio.client import WorkflowFailureError

    from core.temporal import connect, task_queues
    from domain.fx.schedules import import_input
    from workflows.contracts import FxImportSummary

    settings = load_settings(require_secret=False)  # it signs nothing
    request = import_input(settings.fx, "history" if args.history else "daily")
    request.url = args.url or None
    workflow_id = f"fx-rates-import-manual-{datetime.now(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')}"
    client = await connect(settings.temporal)
    print(f"importing through the worker as {workflow_id} (up to {request.attempts} attempts) ...")
    try:
        summary = await client.execute_workflow(
            "FxRatesImportWorkflow",
            request,
            id=workflow_id,
            task_queue=task_queues(settings.temporal).reports,
            result_type=FxImportSummary,
        )
    except WorkflowFailureError as failure:
        print(f"fx-import FAILED: {failure.cause}", file=sys.stderr)
        return 1
    print(f"from {summary.url}:")
    print(f"  days stored:        {', '.join(day.isoformat() for day in summary.stored) or 'none'}")
    print(f"  days already there: {len(summary.already_there)}")
    print(f"  rates inserted {summary.rates_inserted}, corrected {summary.rates_corrected}")
    for day, reason in sorted(summary.refused.items()):
        print(f"  REFUSED {day}: {reason}")
    return 1 if summary.refused else 0


async def _seed_accounts(_: argparse.Namespace) -> int:
    from domain.audit.service import SYSTEM
    from domain.ledger.standard_chart import seed

    settings = load_settings(require_secret=False)  # it signs nothing
    db = Database.connect(settings.db)
    try:
        async with db.transaction() as tx:
            seeded = await seed(tx, settings.invoices.revenue_category, SYSTEM)
    finally:
        await db.dispose()
    if seeded is None:
        print("The chart of accounts has accounts already: nothing was made.")
    else:
        print(
            f"Made the standard chart: {seeded.accounts} accounts, {seeded.mappings} mappings (GET /api/v1/accounts)."
        )
    return 0


async def _policy_diff(args: argparse.Namespace) -> int:
    from datetime import UTC, datetime

    from core.authz import Authorizer, PolicyError, read_policy_file
    from domain.errors import ValidationFailed
    from domain.policies import preview as policy_preview

    settings = load_settings(require_secret=False)  # it signs nothing
    try:
        in_force = Authorizer(settings.policy_dir)
    except PolicyError as broken:
        print(f"policy diff: the files in POLICY_DIR ({settings.policy_dir}) do not load: {broken}", file=sys.stderr)
        return 2
    try:
        policy_csv = read_policy_file(args.policy)
        model_conf = read_policy_file(args.model) if args.model else None
        proposed = policy_preview.proposal(in_force.files, policy_csv, model_conf)
        policy_preview.trial(in_force, proposed)  # a broken file is answered before the app is built
    except PolicyError as unreadable:
        print(f"policy diff: {unreadable}", file=sys.stderr)
        return 2
    except ValidationFailed as refused:
        if args.json:
            print(json.dumps({"error": refused.message, "details": refused.details}, indent=2))
        print(f"REFUSED: {refused.message}", file=sys.stderr)
        return 2
    from api.app import create_app, route_permissions

    routes = route_permissions(create_app(settings))  # the app's route table; the app is built, never started
    db = Database.connect(settings.db)
    try:
        async with db.transaction(autocommit=True) as tx:  # it only reads
            preview = await policy_preview.preview(
                tx.sql, in_force, proposed, routes, settings.approvals.base_currency, datetime.now(UTC)
            )
    finally:
        await db.dispose()
    if args.json:
        print(preview.model_dump_json(indent=2))
    else:
        print("\n".join(_preview_text(preview)))
    return 1 if preview.changes_anything else 0


def _routing_text(routing: RoutingOut) -> str:
    if routing.auto_approved_by:
        return f"approved at once ({routing.auto_approved_by})"
    if routing.refused:
        return f"refused: {routing.refused}"
    return " -> ".join(f"{level.role} {level.approver_name} (limit {level.limit})" for level in routing.levels)


def _preview_text(preview: PolicyPreview) -> list[str]:
    """The preview for a person at a terminal (`--json` gives the API's answer)."""
    lines = [f"policy in force {preview.version_in_force}, proposed {preview.proposed_version}"]
    if preview.identical:
        lines.append("the proposal is identical to the policy in force")
    lines.append("")
    lines.append("Permissions:")
    for role in preview.roles:
        for verb, changes in (("gains", role.gains), ("loses", role.loses)):
            for change in changes:
                permission = f"{change.resource}:{change.action}"
                where = [f"{route} ({permission})" for route in change.routes] or [f"{permission} (no route)"]
                lines += [f"  {role.role} {verb} {item}" for item in where]
    if not preview.roles:
        lines.append("  no role gains or loses a permission")
    lines.append("")
    lines.append("Approval limits:")
    for limit in preview.limits:
        before, after = limit.before or "none", limit.after or "none"
        lines.append(f"  {limit.role} {limit.kind}: {before} -> {after} {limit.currency} ({limit.direction})")
    if not preview.limits:
        lines.append("  no limit changes")
    replay = preview.replay
    lines.append("")
    lines.append(
        f"Requests of the last {replay.days} days: {replay.requests_replayed} replayed"
        f"{' (the newest only: more were submitted)' if replay.truncated else ''}, "
        f"{replay.rerouted_count} would route differently"
    )
    for item in replay.rerouted:
        original = f" ({item.original_amount} {item.currency})" if item.currency != item.base_currency else ""
        lines.append(
            f"  request {item.request_id} ({item.subject_kind} {item.subject_id}, {item.title!r}), "
            f"{item.amount} {item.base_currency}{original} by {item.requester_name} ({item.requester_role}), "
            f"submitted {item.submitted_at:%Y-%m-%d}: {item.change}"
        )
        lines.append(f"      in force: {_routing_text(item.in_force)}")
        lines.append(f"      proposed: {_routing_text(item.proposed)}")
    if replay.rerouted_count > len(replay.rerouted):
        lines.append(f"  ... and {replay.rerouted_count - len(replay.rerouted)} more, not listed")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cli.py", description="finance-ops operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-superadmin", help="make sure a superadmin exists")
    create.add_argument("--email", default="")
    create.add_argument("--prompt", action="store_true", help="ask for the password instead of reading the env")
    create.set_defaults(handler=_create_superadmin)
    verify = commands.add_parser("verify-audit", help="verify the audit hash chain")
    verify.set_defaults(handler=_verify_audit)
    restore = commands.add_parser("restore", help="restore a backup into a named database and verify it")
    source = restore.add_mutually_exclusive_group()
    source.add_argument("--backup-id", type=int, help="a backup's id (GET /api/v1/admin/backups)")
    source.add_argument("--key", help="a storage key, when the backups table is gone (see --list)")
    source.add_argument("--list", action="store_true", help="list the backup files in storage")
    restore.add_argument("--database", help="the database to restore into (created; refused if it has tables)")
    restore.add_argument("--sha256", help="the expected SHA-256 when restoring by --key from a local folder")
    restore.set_defaults(handler=_restore)
    fx_import = commands.add_parser("fx-import", help="import the ECB exchange rates now, through the worker")
    fx_file = fx_import.add_mutually_exclusive_group()
    fx_file.add_argument("--history", action="store_true", help="the 90-day file (FX_RATES_HISTORY_URL)")
    fx_file.add_argument("--url", help="another file in the ECB format (http, https or file://)")
    fx_import.set_defaults(handler=_fx_import)
    seed_accounts = commands.add_parser("seed-accounts", help="make the standard chart of accounts when there is none")
    seed_accounts.set_defaults(handler=_seed_accounts)
    policy = commands.add_parser("policy", help="the Casbin policy files").add_subparsers(dest="policy", required=True)
    diff = policy.add_parser("diff", help="preview what a proposed policy.csv (and model.conf) would change")
    diff.add_argument("policy", type=Path, help="the proposed policy.csv")
    diff.add_argument("--model", type=Path, help="a proposed model.conf (default: the one in POLICY_DIR)")
    diff.add_argument("--json", action="store_true", help="the answer POST /api/v1/admin/policies/preview gives")
    diff.set_defaults(handler=_policy_diff)
    args = parser.parse_args(argv)
    try:
        return asyncio.run(args.handler(args))
    except (WeakSecretError, MissingSettingError) as refused:  # a setting to fix, not a crash to debug
        print(f"{parser.prog}: {refused}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    code = main()
    # The Temporal client's core threads can outlive the interpreter's finalization and abort it ("PyGILState_Release
    # ... finalizing", temporalio/sdk-python#300, still open): after the work is done and the output flushed, leave
    # without finalizing so a command that succeeded never exits with SIGABRT.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(code)
