"""Payees: whether the rail can pay a merchant, and Stripe onboarding of its connected account by Account Links."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import asyncpg
import stripe

from settlement.rails import Payee, PayoutRail
from settlement.stripe_rail import StripeConnectRail, error_reason
from unioncard import audit
from unioncard.auth import Principal
from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "stripe_queries.sql")


async def payee_status(
    conn: asyncpg.Connection, principal: Principal, merchant_id: int, rail: PayoutRail
) -> dict[str, Any]:
    """The merchant's payout readiness on the configured rail. Raises not_found (also for another merchant's)."""
    row = await _payee_row(conn, principal, merchant_id)
    readiness = rail.onboard_payee(_payee(row))
    return {
        "merchant_id": merchant_id,
        "rail": rail.name,
        "ready": readiness == "ready",
        "readiness": readiness,
        "stripe_account": row["account_id"],
        "payouts_enabled": row["payouts_enabled"],
        "details_submitted": row["details_submitted"],
        "updated_at": row["updated_at"].isoformat() if row["updated_at"] else None,
    }


async def onboarding_link(
    conn: asyncpg.Connection, principal: Principal, merchant_id: int, rail: PayoutRail, base_url: str
) -> dict[str, Any]:
    """The merchant's connected account, opened once and kept, and a fresh Account Link to onboard it.

    Stripe is called with no transaction open. Raises DomainError not_found, conflict (the rail is not Stripe),
    rail_unavailable (Stripe failed or refused the call).
    """
    if not isinstance(rail, StripeConnectRail):
        raise DomainError("conflict", f"the payout rail is {rail.name}: payees are paid by their bank details")
    row = await _payee_row(conn, principal, merchant_id)
    account_id: str | None = row["account_id"]
    if account_id is None:
        with _stripe_failure():
            opened = await rail.open_account(merchant_id, row["payee_name"] or row["name"])
        async with conn.transaction():
            kept = await conn.fetchval(queries.account_insert, merchant_id, opened)
            if kept is not None:
                await audit.record(conn, principal, "settlement.stripe_account_opened", f"merchant:{merchant_id}",
                                   account=opened)  # fmt: skip
        account_id = kept or (await _payee_row(conn, principal, merchant_id))["account_id"]
    if account_id is None:
        raise RuntimeError(f"merchant {merchant_id}: a connected account was opened but none is kept")
    base = base_url.rstrip("/")
    with _stripe_failure():
        url = await rail.account_link(
            account_id,
            refresh_url=f"{base}/api/settlement/v1/payees/{merchant_id}/stripe-onboarding",
            return_url=f"{base}/staff/?stripe_onboarding={merchant_id}",
        )
    return {"merchant_id": merchant_id, "stripe_account": account_id, "url": url,
            "payouts_enabled": row["payouts_enabled"]}  # fmt: skip


@contextlib.contextmanager
def _stripe_failure() -> Iterator[None]:
    """Stripe failing (or refusing) an onboarding call answers 502 rail_unavailable: nothing of ours changed."""
    try:
        yield
    except stripe.StripeError as exc:
        raise DomainError("rail_unavailable", f"Stripe: {error_reason(exc)}") from exc


async def _payee_row(conn: asyncpg.Connection, principal: Principal, merchant_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(queries.payee_get, merchant_id)
    if row is None or not principal.may_see_merchant(merchant_id):
        raise DomainError("not_found", f"no merchant {merchant_id}")
    return dict(row)


def _payee(row: dict[str, Any]) -> Payee:
    return Payee(merchant_id=row["merchant_id"], name=row["payee_name"], account=row["payee_account"],
                 bank=row["payee_bank"], rail_account=row["account_id"], rail_ready=row["payouts_enabled"])  # fmt: skip
