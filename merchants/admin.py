"""Admin use-cases: merchants, their contract versions and terminals."""

from __future__ import annotations

from typing import Any

import asyncpg
import msgspec

from merchants.model import ContractIn, MerchantIn
from merchants.repository import queries
from unioncard import audit
from unioncard.auth import Principal
from unioncard.errors import DomainError
from unioncard.ids import hash_secret, new_secret


def _row(record: asyncpg.Record) -> dict[str, Any]:
    return dict(record)


def _check_merchant_scope(principal: Principal, merchant_id: int) -> None:
    if not principal.may_see_merchant(merchant_id):
        raise DomainError("not_found", "no such merchant")  # never confirm another's existence


async def create_merchant(pool: asyncpg.Pool, principal: Principal, data: MerchantIn) -> dict[str, Any]:
    """Raises DomainError validation_failed when only one coordinate is given."""
    if (data.latitude is None) != (data.longitude is None):
        raise DomainError("validation_failed", "give both latitude and longitude, or neither")
    async with pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            queries.merchant_insert,
            data.name,
            data.category,
            data.address,
            data.latitude,
            data.longitude,
            data.org_id,
            data.payee_name,
            data.payee_account,
            data.payee_bank,
        )
        await audit.record(conn, principal, "merchant.create", f"merchant:{row['id']}")
    return _row(row)


async def list_merchants(
    pool: asyncpg.Pool, principal: Principal, category: str | None, after_id: int, limit: int
) -> list[dict[str, Any]]:
    only = principal.merchant_id if not principal.may_see_merchant(-1) else None
    rows = await pool.fetch(queries.merchant_list, only, category, after_id, limit)
    return [_row(r) for r in rows]


async def set_merchant_status(state: Any, principal: Principal, merchant_id: int, status: str) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.merchant_set_status, merchant_id, status)
        if row is None:
            raise DomainError("not_found", "no such merchant")
        await audit.record(conn, principal, f"merchant.{status}", f"merchant:{merchant_id}")
    state.terminal_cache.forget_all()
    return _row(row)


async def create_contract_version(
    pool: asyncpg.Pool, principal: Principal, merchant_id: int, data: ContractIn
) -> dict[str, Any]:
    """The next version; earlier versions never change.

    Raises DomainError validation_failed (terms that do not fit the kind), not_found.
    """
    if (data.kind == "percent") != (data.rate_bps is not None) or (data.kind == "fixed") != (
        data.amount_minor is not None
    ):
        raise DomainError("validation_failed", "percent needs rate_bps; fixed needs amount_minor")
    if (data.hours_start is None) != (data.hours_end is None):
        raise DomainError("validation_failed", "give both hours_start and hours_end, or neither")
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(queries.lock_merchant, merchant_id) is None:
            raise DomainError("not_found", "no such merchant")
        row = await conn.fetchrow(
            queries.contract_insert,
            merchant_id,
            data.kind,
            data.rate_bps,
            data.amount_minor,
            data.currency,
            data.min_spend_minor,
            data.discount_minor_max,
            data.per_card_daily_sales_max,
            data.per_card_daily_discount_minor_max,
            data.per_card_monthly_sales_max,
            data.per_card_monthly_discount_minor_max,
            data.valid_from,
            data.valid_until,
            data.days_of_week,
            data.hours_start,
            data.hours_end,
            data.eligible_tiers,
            data.eligible_org_ids,
            data.union_share_bps,
            data.monthly_budget_minor,
        )
        await audit.record(
            conn,
            principal,
            "contract.create",
            f"contract_version:{row['id']}",
            terms=msgspec.to_builtins(data),
        )
    return _row(row)


async def list_contract_versions(pool: asyncpg.Pool, principal: Principal, merchant_id: int) -> list[dict[str, Any]]:
    _check_merchant_scope(principal, merchant_id)
    return [_row(r) for r in await pool.fetch(queries.contract_list, merchant_id)]


async def create_terminal(pool: asyncpg.Pool, principal: Principal, merchant_id: int, name: str) -> dict[str, Any]:
    """A terminal and its key: the key is returned here once and stored only as a hash."""
    key = new_secret("uct")
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(queries.lock_merchant, merchant_id) is None:
            raise DomainError("not_found", "no such merchant")
        row = await conn.fetchrow(queries.terminal_insert, merchant_id, name, key[:8], hash_secret(key))
        await audit.record(conn, principal, "terminal.create", f"terminal:{row['id']}")
    return {**_row(row), "key": key}


async def list_terminals(pool: asyncpg.Pool, principal: Principal, merchant_id: int) -> list[dict[str, Any]]:
    _check_merchant_scope(principal, merchant_id)
    return [_row(r) for r in await pool.fetch(queries.terminal_list, merchant_id)]


async def revoke_terminal(state: Any, principal: Principal, terminal_id: int) -> dict[str, Any]:
    async with state.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(queries.terminal_revoke, terminal_id)
        if row is None:
            raise DomainError("not_found", "no such terminal")
        await audit.record(conn, principal, "terminal.revoke", f"terminal:{terminal_id}")
    state.terminal_cache.forget_all()
    return _row(row)
