"""Thin typed functions over settlement/queries.sql."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from uuid import UUID

import asyncpg

from settlement.model import ClaimRow, ParsedClaim
from unioncard.db import Queries

queries = Queries(Path(__file__).parent / "queries.sql")

LINE_COLUMNS = (
    "claim_id", "merchant_id", "line_no", "redemption_id", "receipt_ref", "occurred_at", "amount_minor",
    "union_funded_minor",
)  # fmt: skip
NIL_UUID = UUID(int=0)


async def insert_claim(conn: asyncpg.Connection, merchant_id: int, claim: ParsedClaim) -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        queries.claim_insert, merchant_id, claim.period, claim.currency, claim.source, len(claim.lines), claim.digest
    )


async def copy_lines(conn: asyncpg.Connection, claim_id: int, merchant_id: int, lines: list[ClaimRow]) -> None:
    head = (claim_id, merchant_id)
    records = (head + line for line in lines)
    await conn.copy_records_to_table("claim_line_inputs", records=records, columns=LINE_COLUMNS)


async def classify(conn: asyncpg.Connection, claim_id: int, tolerance_minor: int) -> dict[str, Any]:
    """Class every line into a new run's results; the run's id, result digest, counts and unclaimed sales."""
    # A big claim hashes its merchant's period of sales: give the statement memory for that.
    await conn.execute(queries.reconcile_settings)
    run_id: int = await conn.fetchval(queries.run_next_id)
    row = await conn.fetchrow(queries.claim_classify, claim_id, tolerance_minor, run_id)
    return {"run_id": run_id, **dict(row)}


async def record_run(conn: asyncpg.Connection, claim_id: int, tolerance_minor: int, run: dict[str, Any]) -> None:
    await conn.execute(
        queries.run_insert, claim_id, tolerance_minor, run["run_id"], run["result_digest"], run["counts"],
        run["unclaimed_sales"], run["unclaimed_union_funded_minor"],
    )  # fmt: skip


async def claim(conn: asyncpg.Connection, claim_id: int) -> dict[str, Any] | None:
    row = await conn.fetchrow(queries.claim_get, claim_id)
    return dict(row) if row is not None else None


async def class_totals(conn: asyncpg.Connection, claim_id: int) -> list[dict[str, Any]]:
    return [dict(row) for row in await conn.fetch(queries.claim_class_totals, claim_id)]


async def lines_page(
    conn: asyncpg.Connection, claim_id: int, after_line: int, line_class: str | None, limit: int
) -> list[dict[str, Any]]:
    rows = await conn.fetch(queries.claim_lines_page, claim_id, after_line, line_class, limit)
    return [dict(row) for row in rows]


async def unclaimed(conn: asyncpg.Connection, claim_id: int, after: UUID | None, limit: int) -> list[dict[str, Any]]:
    rows = await conn.fetch(queries.claim_unclaimed, claim_id, after or NIL_UUID, limit)
    return [dict(row) for row in rows]
