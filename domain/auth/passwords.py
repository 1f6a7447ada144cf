"""Password hashing off the event loop: bcrypt is deliberately slow and would stall every other request."""

from __future__ import annotations

import asyncio

from core import security


async def hash_password(password: str, rounds: int) -> str:
    return await asyncio.to_thread(security.hash_password, password, rounds)


async def verify_password(password: str, password_hash: str) -> bool:
    return await asyncio.to_thread(security.verify_password, password, password_hash)


async def burn_password_check(password: str, rounds: int) -> None:
    """As slow as a real check: an unknown user answers in about the time of a wrong password."""
    await asyncio.to_thread(security.burn_password_check, password, rounds)
