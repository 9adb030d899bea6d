"""Staff actions go to an append-only audit log, in the same transaction as the action."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from unioncard.auth import Principal

_INSERT = "INSERT INTO audit_log (actor, action, subject, detail) VALUES ($1, $2, $3, $4::jsonb)"


async def record(conn: asyncpg.Connection, principal: Principal, action: str, subject: str, **detail: Any) -> None:
    await conn.execute(_INSERT, principal.actor, action, subject, msgspec.json.encode(detail).decode())
