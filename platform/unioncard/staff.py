"""Staff accounts: the first admin, API tokens and page sign-in sessions."""

from __future__ import annotations

import asyncio

import asyncpg

from unioncard.ids import hash_secret, new_secret
from unioncard.passwords import hash_password, verify_password

_UPSERT_ADMIN = """
INSERT INTO staff_users (email, display_name, password_hash, role)
VALUES ($1, 'Federation admin', $2, 'federation_admin')
ON CONFLICT (email) DO UPDATE SET password_hash = coalesce(EXCLUDED.password_hash, staff_users.password_hash)
RETURNING id
"""
_TOKEN = "INSERT INTO api_tokens (token_hash, staff_user_id, label) VALUES ($1, $2, $3)"
_BY_EMAIL = "SELECT id, password_hash, status, role FROM staff_users WHERE lower(email) = lower($1)"
_SESSION = """
INSERT INTO sessions (token_hash, staff_user_id, expires_at)
VALUES ($1, $2, now() + make_interval(secs => $3))
"""


async def create_admin(conn: asyncpg.Connection, email: str, password: str | None) -> str:
    """A federation admin (created or found by email) and a new API token for it."""
    token = new_secret("uca")
    async with conn.transaction():
        staff_id = await conn.fetchval(_UPSERT_ADMIN, email, hash_password(password) if password else None)
        await conn.execute(_TOKEN, hash_secret(token), staff_id, "unioncard admin create")
    return token


async def sign_in(conn: asyncpg.Connection, email: str, password: str, ttl_s: int) -> tuple[str, str] | None:
    """(session token, role) for a staff member whose password matches, else None."""
    row = await conn.fetchrow(_BY_EMAIL, email)
    if row is None or row["status"] != "active":
        return None
    # argon2 takes tens of milliseconds of CPU on purpose: keep it off the event loop.
    if not await asyncio.to_thread(verify_password, row["password_hash"], password):
        return None
    token = new_secret("ucs")
    await conn.execute(_SESSION, hash_secret(token), row["id"], float(ttl_s))
    return token, row["role"]
