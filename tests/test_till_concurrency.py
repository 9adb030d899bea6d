"""Limits, budgets and idempotency keys hold under real concurrency, not just in sequence."""

from __future__ import annotations

import asyncio
from collections import Counter

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.factories import World, add_card, add_merchant, make_world

pytestmark = pytest.mark.asyncio


async def _redeem_many(
    client: AsyncTestClient, world: World, merchant: str, cards: list[str], keys: list[str], amount: int = 10_000
) -> Counter[int]:
    async def one(card: str, key: str) -> int:
        response = await client.post(
            "/api/till/v1/redemptions",
            json={"card": card, "amount": amount, "currency": "CNY", "receipt_ref": key},
            headers={**world.terminals[merchant], "Idempotency-Key": key},
        )
        return response.status_code

    return Counter(await asyncio.gather(*(one(c, k) for c, k in zip(cards, keys, strict=True))))


async def _fetchval(dsn: str, sql: str) -> int:
    conn = await asyncpg.connect(dsn)
    try:
        return await conn.fetchval(sql)  # type: ignore[no-any-return]
    finally:
        await conn.close()


async def test_fifty_sales_with_one_key_make_one_sale(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    card = await add_card(client, world, "a")
    await add_merchant(client, world, "shop")
    statuses = await _redeem_many(client, world, "shop", [card] * 50, ["same-key"] * 50)
    assert statuses == Counter({201: 50})
    assert await _fetchval(dsn, "SELECT count(*) FROM redemptions") == 1
    assert await _fetchval(dsn, "SELECT count(*) FROM ledger_transactions") == 1


async def test_twenty_sales_on_one_card_with_a_daily_limit_of_three(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    card = await add_card(client, world, "a")
    await add_merchant(client, world, "shop", per_card_daily_sales_max=3)
    statuses = await _redeem_many(client, world, "shop", [card] * 20, [f"k{i}" for i in range(20)])
    assert statuses == Counter({201: 3, 422: 17})
    assert await _fetchval(dsn, "SELECT count(*) FROM redemptions") == 3
    assert await _fetchval(dsn, "SELECT sales_count FROM card_usage_days") == 3


async def test_a_budget_with_room_for_five_under_thirty_concurrent_sales(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    cards = [await add_card(client, world, f"c{i}") for i in range(30)]
    # 10% of 10,000 fen = 1,000 discount; the union pays 60% = 600; 5 sales fit in 3,000 + 599.
    await add_merchant(client, world, "shop", monthly_budget_minor=5 * 600 + 599)
    statuses = await _redeem_many(client, world, "shop", cards, [f"k{i}" for i in range(30)])
    assert statuses == Counter({201: 5, 422: 25})
    assert await _fetchval(dsn, "SELECT used_minor FROM merchant_budget_months") == 3000
    assert await _fetchval(dsn, "SELECT count(*) FROM ledger_unbalanced") == 0


async def test_concurrent_refunds_never_exceed_the_sale(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    card = await add_card(client, world, "a")
    await add_merchant(client, world, "shop")
    sold = (
        await client.post(
            "/api/till/v1/redemptions",
            json={"card": card, "amount": 10_000, "currency": "CNY"},
            headers={**world.terminals["shop"], "Idempotency-Key": "s"},
        )
    ).json()

    async def refund(i: int) -> int:
        response = await client.post(
            f"/api/till/v1/redemptions/{sold['id']}/refunds",
            json={"amount": 3000},
            headers={**world.terminals["shop"], "Idempotency-Key": f"r{i}"},
        )
        return response.status_code

    statuses = Counter(await asyncio.gather(*(refund(i) for i in range(12))))
    assert statuses == Counter({201: 3, 409: 9})
    assert await _fetchval(dsn, "SELECT sum(amount_minor) FROM refunds") == 9000


async def test_a_daily_discount_cap_trims_the_last_sale_under_concurrency(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    card = await add_card(client, world, "a")
    await add_merchant(client, world, "shop", per_card_daily_discount_minor_max=2500)
    statuses = await _redeem_many(client, world, "shop", [card] * 10, [f"k{i}" for i in range(10)])
    assert statuses == Counter({201: 3, 422: 7})  # 1,000 + 1,000 + the last 500 of the cap
    assert await _fetchval(dsn, "SELECT sum(discount_minor) FROM redemptions") == 2500
    assert await _fetchval(dsn, "SELECT discount_minor FROM card_usage_days") == 2500
