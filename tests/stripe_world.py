"""A union paying in EUR through Stripe Connect, for the Stripe rail and webhook tests: the app with a fake Stripe,
a merchant with sales, a reconciled claim and an approved batch."""

from __future__ import annotations

import contextlib
import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
from litestar.testing import AsyncTestClient

from settlement.stripe_rail import StripeConnectRail
from tests.factories import World, add_card, add_merchant, make_world, ok, staff_token
from tests.stripe_fake import FakeStripe, event, sign
from unioncard.settings import Settings

V1 = "/api/settlement/v1"
PLATFORM_SECRET = "whsec_platform_test"
CONNECT_SECRET = "whsec_connect_test"
SHANGHAI = ZoneInfo("Asia/Shanghai")


def stripe_settings(**more: Any) -> Settings:
    """Settings of a union whose payouts go through Stripe Connect in EUR."""
    base: dict[str, Any] = {
        "secret_key": "test-secret", "terminal_cache_ttl_s": 0.0, "payout_rail": "stripe_connect", "currency": "EUR",
        "stripe_secret_key": "sk_test_fake", "stripe_webhook_secret": PLATFORM_SECRET,
        "stripe_connect_webhook_secret": CONNECT_SECRET, "public_base_url": "https://unioncard.example",
    }  # fmt: skip
    return Settings(**{**base, **more})


@contextlib.asynccontextmanager
async def stripe_app(dsn: str, fake: FakeStripe, settings: Settings | None = None) -> AsyncIterator[AsyncTestClient]:
    """The whole app, its Stripe rail talking to the fake through the real SDK."""
    from unioncard.app import create_app

    settings = settings or stripe_settings()
    app = create_app(settings, dsn=dsn)
    app.state.payout_rail = StripeConnectRail(settings, http_client=fake)
    async with AsyncTestClient(app=app) as client:
        yield client


@dataclass
class Shop:
    api: Any  # an AsyncTestClient, or an httpx.AsyncClient on a live server
    dsn: str
    world: World
    finance: dict[str, str]

    @property
    def merchant_id(self) -> int:
        return self.world.merchants["a"]


async def eur_shop(api: Any, dsn: str) -> Shop:
    """Merchants a and b selling under EUR contracts, one card issued long ago, a finance officer."""
    world = await make_world(api, dsn)
    await add_card(api, world, "m")
    await add_merchant(api, world, "a", currency="EUR")
    await add_merchant(api, world, "b", currency="EUR")
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute("UPDATE cards SET status_since = '2020-01-01'")
        await conn.execute("UPDATE card_status_history SET valid_from = '2020-01-01'")
    finally:
        await conn.close()
    return Shop(api, dsn, world, await staff_token(dsn, "finance_officer"))


async def approved_batch(shop: Shop, amounts: tuple[int, ...] = (10000, 20000)) -> dict[str, Any]:
    """Sales of merchant a in October 2026, claimed, batched and approved: the batch as the API shows it."""
    conn = await asyncpg.connect(shop.dsn)
    lines = []
    try:
        for day, amount in enumerate(amounts, start=5):
            at = datetime(2026, 10, day, 10, 0, tzinfo=SHANGHAI)
            body = await conn.fetchval(
                "SELECT body::text FROM till_redeem($1, $2, NULL, $3, 'EUR', $4, $5, $6, '\\x00')",
                shop.world.terminal_ids["a"], shop.world.cards["m"], amount, f"r{day}", at, f"key-{day}-{amount}",
            )  # fmt: skip
            sale = json.loads(body)
            lines.append({"redemption_id": sale["id"], "occurred_at": at.isoformat(), "amount": amount,
                          "union_funded": sale["union_funded"]})  # fmt: skip
    finally:
        await conn.close()
    claim_body = {"period": "2026-10", "currency": "EUR", "lines": lines}
    claim = await ok(await shop.api.post(f"{V1}/claims", json=claim_body, headers=shop.world.terminals["a"]))
    assert claim["classes"]["matched"]["lines"] == len(amounts), claim
    batch = await ok(await shop.api.post(f"{V1}/batches", json={"claim_id": claim["id"]}, headers=shop.finance))
    return await ok(await shop.api.post(f"{V1}/batches/{batch['id']}/approve", headers=shop.finance), 200)


async def onboard(shop: Shop, fake: FakeStripe, merchant: str = "a") -> str:
    """Onboard a merchant and let Stripe say payouts are enabled; the connected account's id."""
    merchant_id = shop.world.merchants[merchant]
    started = await ok(await shop.api.post(f"{V1}/payees/{merchant_id}/stripe-onboarding", headers=shop.finance), 200)
    account_id: str = started["stripe_account"]
    fake.accounts[account_id].update(payouts_enabled=True, details_submitted=True)
    await ok(await post_event(shop.api, "connect", event("account.updated", fake.accounts[account_id],
                                                         account=account_id)), 200)  # fmt: skip
    return account_id


async def post_event(api: Any, endpoint: str, body: dict[str, Any], secret: str | None = None,
                     timestamp: int | None = None) -> Any:  # fmt: skip
    """Deliver an event to /webhooks/stripe (platform) or /webhooks/stripe-connect, signed as Stripe signs."""
    payload = json.dumps(body).encode()
    secret = secret or (CONNECT_SECRET if endpoint == "connect" else PLATFORM_SECRET)
    url = "/webhooks/stripe-connect" if endpoint == "connect" else "/webhooks/stripe"
    headers = {"Stripe-Signature": sign(payload, secret, timestamp), "Content-Type": "application/json"}
    return await api.post(url, content=payload, headers=headers)


async def ledger(dsn: str, merchant_id: int) -> dict[str, int]:
    """Balances and counts that show whether the books are square."""
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM ledger_unbalanced) AS unbalanced,"
            " ledger_balance('merchant:' || $1::bigint || ':payable') AS payable,"
            " ledger_balance('payouts:in_transit') AS in_transit, ledger_balance('union:cash') AS cash,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'settlement_approved') AS approvals,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'payout_paid') AS paid,"
            " (SELECT count(*) FROM ledger_transactions WHERE kind = 'payout_failed') AS failed",
            merchant_id,
        )
    finally:
        await conn.close()
    return dict(row)


async def instructions(shop: Shop, batch_id: int) -> list[dict[str, Any]]:
    batch = await ok(await shop.api.get(f"{V1}/batches/{batch_id}", headers=shop.finance), 200)
    return batch["instructions"]  # type: ignore[no-any-return]
