"""Who is calling, and what they may touch: principals, their scopes, and route guards."""

from __future__ import annotations

import time
from enum import StrEnum
from typing import Any

import asyncpg
import msgspec
from litestar.connection import ASGIConnection
from litestar.handlers.base import BaseRouteHandler

from unioncard.errors import DomainError
from unioncard.ids import hash_secret

SESSION_COOKIE = "uc_session"


class Role(StrEnum):
    FEDERATION_ADMIN = "federation_admin"
    FINANCE_OFFICER = "finance_officer"
    ORG_REVIEWER = "org_reviewer"
    MERCHANT_ADMIN = "merchant_admin"
    TERMINAL = "terminal"
    MEMBER = "member"


STAFF_ROLES = frozenset({Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER, Role.ORG_REVIEWER, Role.MERCHANT_ADMIN})


class Principal(msgspec.Struct, frozen=True, kw_only=True):
    """An authenticated caller and the part of the data it may see."""

    role: Role
    staff_user_id: int | None = None
    terminal_id: int | None = None
    member_id: int | None = None
    merchant_id: int | None = None
    org_id: int | None = None
    org_path: str | None = None
    name: str = ""

    @property
    def actor(self) -> str:
        subject = self.staff_user_id or self.terminal_id or self.member_id
        return f"{self.role}:{subject}"

    def may_see_merchant(self, merchant_id: int) -> bool:
        if self.role in (Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER):
            return True
        return self.merchant_id == merchant_id

    def may_see_org_path(self, path: str) -> bool:
        if self.role in (Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER):
            return True
        return self.org_path is not None and path.startswith(self.org_path)


def member_id_of(principal: Principal, detail: str | None = None) -> int:
    """The signed-in member's id, for the use-cases only a member may call.
    Raises DomainError forbidden, saying `detail`, for anyone else."""
    if principal.role != Role.MEMBER or principal.member_id is None:
        raise DomainError("forbidden", detail)
    return principal.member_id


# ------------------------------------------------------------------ resolution

_TERMINAL_SQL = """
SELECT t.id, t.merchant_id, t.status, t.name, m.name AS merchant_name
  FROM terminals t JOIN merchants m ON m.id = t.merchant_id
 WHERE t.key_hash = $1
"""
_TOKEN_SQL = """
SELECT s.id, s.role, s.org_id, s.merchant_id, s.display_name, o.path AS org_path
  FROM api_tokens k JOIN staff_users s ON s.id = k.staff_user_id
  LEFT JOIN orgs o ON o.id = s.org_id
 WHERE k.token_hash = $1 AND k.revoked_at IS NULL AND s.status = 'active'
"""
SESSION_SQL = """
SELECT x.staff_user_id, x.terminal_id, x.member_id,
       s.role, s.org_id, s.display_name, o.path AS org_path,
       coalesce(s.merchant_id, t.merchant_id) AS merchant_id,
       t.status AS terminal_status, t.name AS terminal_name, mb.name AS member_name
  FROM sessions x
  LEFT JOIN staff_users s ON s.id = x.staff_user_id AND s.status = 'active'
  LEFT JOIN orgs o ON o.id = s.org_id
  LEFT JOIN terminals t ON t.id = x.terminal_id
  LEFT JOIN members mb ON mb.id = x.member_id
 WHERE x.token_hash = $1 AND x.expires_at > now()
"""


class TerminalCache:
    """Terminal keys by hash for a few seconds; the till's SQL re-checks status on every sale."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self._entries: dict[bytes, tuple[float, Principal | None]] = {}

    def get(self, key_hash: bytes) -> tuple[bool, Principal | None]:
        entry = self._entries.get(key_hash)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key_hash: bytes, principal: Principal | None) -> None:
        if len(self._entries) > 100_000:
            self._entries.clear()
        self._entries[key_hash] = (time.monotonic() + self.ttl_s, principal)

    def forget_all(self) -> None:
        self._entries.clear()


async def principal_for_terminal_key(pool: asyncpg.Pool, cache: TerminalCache, key: str) -> Principal | None:
    key_hash = hash_secret(key)
    hit, principal = cache.get(key_hash)
    if hit:
        return principal
    row = await pool.fetchrow(_TERMINAL_SQL, key_hash)
    principal = None
    if row is not None and row["status"] != "revoked":
        principal = Principal(
            role=Role.TERMINAL,
            terminal_id=row["id"],
            merchant_id=row["merchant_id"],
            name=f"{row['merchant_name']} · {row['name']}",
        )
    cache.put(key_hash, principal)
    return principal


async def principal_for_api_token(pool: asyncpg.Pool, token: str) -> Principal | None:
    row = await pool.fetchrow(_TOKEN_SQL, hash_secret(token))
    if row is None:
        return None
    return _staff_principal(row, row["id"])


def _staff_principal(row: Any, staff_user_id: int) -> Principal:
    return Principal(
        role=Role(row["role"]),
        staff_user_id=staff_user_id,
        merchant_id=row["merchant_id"],
        org_id=row["org_id"],
        org_path=row["org_path"],
        name=row["display_name"] or "",
    )


async def principal_for_session(pool: asyncpg.Pool, token: str) -> Principal | None:
    row = await pool.fetchrow(SESSION_SQL, hash_secret(token))
    if row is None:
        return None
    if row["staff_user_id"] is not None and row["role"] is not None:
        return _staff_principal(row, row["staff_user_id"])
    if row["terminal_id"] is not None and row["terminal_status"] == "active":
        return Principal(
            role=Role.TERMINAL,
            terminal_id=row["terminal_id"],
            merchant_id=row["merchant_id"],
            name=row["terminal_name"] or "",
        )
    if row["member_id"] is not None:
        return Principal(role=Role.MEMBER, member_id=row["member_id"], name=row["member_name"])
    return None


async def resolve_principal(connection: ASGIConnection[Any, Any, Any, Any]) -> Principal | None:
    """The caller of this request, looked up once and kept on the connection."""
    scope = connection.scope
    if "unioncard.principal" in scope:
        return scope["unioncard.principal"]  # type: ignore[typeddict-item,no-any-return]
    state = connection.app.state
    principal: Principal | None = None
    header = connection.headers.get("authorization", "")
    if header[:7].lower() == "bearer ":
        secret = header[7:].strip()
        if secret.startswith("uct_"):
            principal = await principal_for_terminal_key(state.pool, state.terminal_cache, secret)
        elif secret.startswith("uca_"):
            principal = await principal_for_api_token(state.pool, secret)
    elif cookie := connection.cookies.get(SESSION_COOKIE):
        principal = await principal_for_session(state.pool, cookie)
    scope["unioncard.principal"] = principal  # type: ignore[typeddict-unknown-key]
    return principal


def requires(*roles: Role) -> Any:
    """A guard: the caller must be authenticated with one of these roles."""
    allowed = frozenset(roles)

    async def guard(connection: ASGIConnection[Any, Any, Any, Any], _: BaseRouteHandler) -> None:
        principal = await resolve_principal(connection)
        if principal is None:
            raise DomainError("unauthorized")
        if principal.role not in allowed:
            raise DomainError("forbidden", f"this needs one of: {', '.join(sorted(allowed))}")

    guard.__name__ = f"requires_{'_or_'.join(sorted(allowed))}"
    return guard


async def current_principal(request: ASGIConnection[Any, Any, Any, Any]) -> Principal:
    """Dependency for handlers behind a `requires` guard."""
    principal = await resolve_principal(request)
    if principal is None:
        raise DomainError("unauthorized")
    return principal
