"""Operator commands: `python cli.py --help`.

create-superadmin   make sure a superadmin exists (env FIRST_SUPERADMIN_EMAIL / _PASSWORD, or flags)
verify-audit        walk the audit hash chain and name the first broken row
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from core.db import create_engine, session_factory, session_scope
from core.settings import get_settings


async def _create_superadmin(args: argparse.Namespace) -> int:
    from domain.users.bootstrap import ensure_superadmin

    settings = get_settings()
    email = args.email or settings.auth.first_superadmin_email
    password = settings.auth.first_superadmin_password
    if args.prompt:
        password = getpass.getpass("Password for the superadmin: ")
    engine = create_engine(settings.db)
    try:
        async with session_scope(session_factory(engine)) as session:
            result = await ensure_superadmin(
                session, email=email, password=password, bcrypt_rounds=settings.auth.bcrypt_rounds
            )
    finally:
        await engine.dispose()
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
    engine = create_engine(settings.db)
    try:
        async with session_scope(session_factory(engine)) as session:
            verdict = await verify_chain(session)
    finally:
        await engine.dispose()
    if verdict.ok:
        print(f"audit chain intact: {verdict.rows_checked} rows")
        return 0
    print(f"audit chain BROKEN at row {verdict.first_broken_id}: {verdict.reason}")
    return 1


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="cli.py", description="finance-ops operator commands")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-superadmin", help="make sure a superadmin exists")
    create.add_argument("--email", default="")
    create.add_argument("--prompt", action="store_true", help="ask for the password instead of reading the env")
    create.set_defaults(handler=_create_superadmin)
    verify = commands.add_parser("verify-audit", help="verify the audit hash chain")
    verify.set_defaults(handler=_verify_audit)
    args = parser.parse_args(argv)
    return asyncio.run(args.handler(args))


if __name__ == "__main__":
    sys.exit(main())
