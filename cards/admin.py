"""Admin use-cases: the org tree, members and their cards, card status, the ledger's books."""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import Any

import asyncpg

from cards.member_auth import SIGN_IN_STATUSES
from cards.member_code import issue_member_code
from cards.model import CardStatusIn, MemberIn, OrgIn
from cards.repository import queries
from unioncard import audit, clock
from unioncard.auth import Principal
from unioncard.errors import DomainError
from unioncard.ids import card_number_valid, keyed_hash
from unioncard.passwords import hash_password
from unioncard.settings import Settings

CONFLICTS = {
    "members_national_id_key": "a member with this national ID exists",
    "cards_number_key": "a card with this number exists",
    "orgs_code_key": "an org with this code exists",
}


def scope_path(principal: Principal) -> str | None:
    """The org subtree this principal may see; None is everything."""
    return None if principal.may_see_org_path("/") else (principal.org_path or "/none/")


async def create_org(pool: asyncpg.Pool, principal: Principal, data: OrgIn) -> dict[str, Any]:
    """Raises DomainError conflict (code taken), not_found (no parent)."""
    async with pool.acquire() as conn, conn.transaction():
        try:
            row = await conn.fetchrow(queries.org_insert, data.parent_id, data.kind, data.name, data.code)
        except asyncpg.UniqueViolationError as exc:
            raise DomainError("conflict", CONFLICTS.get(exc.constraint_name or "", str(exc))) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise DomainError("not_found", "no such parent org") from exc
        await audit.record(conn, principal, "org.create", f"org:{row['id']}")
    return dict(row)


async def list_orgs(pool: asyncpg.Pool, principal: Principal, limit: int) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(queries.org_list, scope_path(principal), limit)]


async def create_member(pool: asyncpg.Pool, settings: Settings, principal: Principal, data: MemberIn) -> dict[str, Any]:
    """A member and the card issued to them, in one transaction.

    Raises DomainError validation_failed (card number), conflict (ID or number taken), not_found.
    """
    if not card_number_valid(data.card.number):
        raise DomainError(
            "validation_failed",
            "the card number fails its check digit",
            errors=[{"field": "card.number", "message": "not Luhn-valid"}],
        )
    national_id = data.national_id.upper()
    # argon2 takes tens of milliseconds of CPU on purpose: hash before the transaction, off the event loop.
    pin_hash = await asyncio.to_thread(hash_password, data.card.pin) if data.card.pin else None
    async with pool.acquire() as conn, conn.transaction():
        try:
            member = await conn.fetchrow(
                queries.member_insert,
                data.org_id,
                data.name,
                keyed_hash(settings.secret_key, national_id),
                national_id[-4:],
                data.phone,
                data.tags,
                data.joined_on,
            )
            card = await conn.fetchrow(
                queries.card_insert, member["id"], data.card.number, data.card.tier, data.card.expires_on, pin_hash
            )
        except asyncpg.UniqueViolationError as exc:
            raise DomainError("conflict", CONFLICTS.get(exc.constraint_name or "", str(exc))) from exc
        except asyncpg.ForeignKeyViolationError as exc:
            raise DomainError("not_found", "no such org") from exc
        await audit.record(conn, principal, "member.create", f"member:{member['id']}")
    return {**dict(member), "card": dict(card)}


async def list_members(pool: asyncpg.Pool, principal: Principal, after_id: int, limit: int) -> list[dict[str, Any]]:
    rows = await pool.fetch(queries.member_list, scope_path(principal), after_id, limit)
    return [dict(r) for r in rows]


async def _card_in_scope(conn: asyncpg.Connection, principal: Principal, card_id: int) -> asyncpg.Record:
    card = await conn.fetchrow(queries.card_with_path, card_id)
    if card is None or not principal.may_see_org_path(card["org_path"]):
        raise DomainError("card_not_found")
    return card


async def set_card_status(pool: asyncpg.Pool, principal: Principal, card_id: int, data: CardStatusIn) -> dict[str, Any]:
    """Freeze, report lost, cancel, expire or reactivate a card; the history keeps every state.

    A card that can no longer sign in (lost, cancelled, expired) also ends its member's page sessions: whoever
    holds the card must not keep seeing the member's pages, nor the code of a replacement card.
    """
    async with pool.acquire() as conn, conn.transaction():
        await _card_in_scope(conn, principal, card_id)
        row = await conn.fetchrow(queries.card_set_status, card_id, data.status)
        ended = 0
        if data.status not in SIGN_IN_STATUSES:
            ended = _count(await conn.execute(queries.member_sessions_end, row["member_id"]))
        await audit.record(conn, principal, f"card.{data.status}", f"card:{card_id}", reason=data.reason,
                           sessions_ended=ended)  # fmt: skip
    return dict(row)


def _count(status: str) -> int:
    """The row count of a command status such as 'DELETE 2'."""
    return int(status.rsplit(" ", 1)[-1])


async def issue_code(pool: asyncpg.Pool, settings: Settings, principal: Principal, card_id: int) -> dict[str, Any]:
    """A fresh dynamic code for a card (the member page shows it as a QR)."""
    async with pool.acquire() as conn:
        await _card_in_scope(conn, principal, card_id)
    now: datetime = clock.now()
    code, expires_at = issue_member_code(settings.secret_key, card_id, now, settings.member_code_ttl_s)
    return {"member_code": code, "expires_at": expires_at, "ttl_s": settings.member_code_ttl_s}


async def account_balance(pool: asyncpg.Pool, account: str, at: datetime | None) -> dict[str, Any]:
    balance = await pool.fetchval(queries.account_balance, account, at)
    return {"account": account, "at": at, "balance_minor": balance}


async def unbalanced_transactions(pool: asyncpg.Pool) -> list[dict[str, Any]]:
    return [dict(r) for r in await pool.fetch(queries.ledger_unbalanced)]
