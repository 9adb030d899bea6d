"""After any sequence of sales and refunds the books hold: balanced, bounded, exact to the fen."""

from __future__ import annotations

import asyncio
import json
import random
from collections.abc import Iterator

import asyncpg
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from litestar.testing import AsyncTestClient

from tests.factories import add_card, add_merchant, make_world
from unioncard.money import apply_bps, round_half_up_div, split_discount


@given(amount=st.integers(1, 10**8), rate=st.integers(1, 10_000), share=st.integers(0, 10_000))
def test_split_always_adds_up(amount: int, rate: int, share: int) -> None:
    discount = apply_bps(amount, rate)
    union, merchant = split_discount(discount, share)
    assert union + merchant == discount and 0 <= union <= discount and merchant >= 0
    exact_twice = 2 * amount * rate  # half-up: x.5 goes up, below goes down
    assert discount == (exact_twice + 10_000) // 20_000
    assert round_half_up_div(5, 10) == 1 and round_half_up_div(4, 10) == 0


async def test_random_sales_and_refunds_keep_the_books(client: AsyncTestClient, dsn: str) -> None:
    rng = random.Random(7)
    world = await make_world(client, dsn)
    cards = [await add_card(client, world, f"c{i}") for i in range(8)]
    await add_merchant(client, world, "pct", rate_bps=873, union_share_bps=3333, monthly_budget_minor=10**9)
    await add_merchant(
        client,
        world,
        "fixed",
        kind="fixed",
        rate_bps=None,
        amount_minor=1999,
        min_spend_minor=2000,
        union_share_bps=7777,
        discount_minor_max=1500,
    )
    sales: list[tuple[str, str]] = []
    for step in range(120):
        merchant = rng.choice(["pct", "fixed"])
        headers = {**world.terminals[merchant], "Idempotency-Key": f"k{step}"}
        if sales and rng.random() < 0.4:
            owner, sale_id = rng.choice(sales)
            body = {"amount": rng.randint(1, 6000)} if rng.random() < 0.7 else None
            response = await client.post(
                f"/api/till/v1/redemptions/{sale_id}/refunds",
                json=body,
                headers={**world.terminals[owner], "Idempotency-Key": f"k{step}"},
            )
            assert response.status_code in (201, 409), response.text
        else:
            amount = rng.randint(1, 30_000)
            response = await client.post(
                "/api/till/v1/redemptions",
                headers=headers,
                json={"card": rng.choice(cards), "amount": amount, "currency": "CNY"},
            )
            assert response.status_code in (201, 422), response.text
            if response.status_code == 201:
                sales.append((merchant, response.json()["id"]))
    assert len(sales) > 30
    await _check_books(dsn)


async def _check_books(dsn: str) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        assert await conn.fetchval("SELECT count(*) FROM ledger_unbalanced") == 0
        over = await conn.fetchval("""
            SELECT count(*) FROM redemptions r
              JOIN (SELECT redemption_id, sum(amount_minor) a, sum(discount_minor) d,
                           sum(union_funded_minor) u FROM refunds GROUP BY 1) f ON f.redemption_id = r.id
             WHERE f.a > r.amount_minor OR f.d > r.discount_minor OR f.u > r.union_funded_minor""")
        assert over == 0
        fully = await conn.fetchval("""
            SELECT count(*) FROM redemptions r
              JOIN (SELECT redemption_id, sum(amount_minor) a, sum(discount_minor) d,
                           sum(union_funded_minor) u FROM refunds GROUP BY 1) f ON f.redemption_id = r.id
             WHERE f.a = r.amount_minor AND (f.d <> r.discount_minor OR f.u <> r.union_funded_minor)""")
        assert fully == 0
        owed = await conn.fetchval("""
            SELECT (SELECT coalesce(sum(union_funded_minor), 0) FROM redemptions)
                 - (SELECT coalesce(sum(union_funded_minor), 0) FROM refunds)""")
        assert await conn.fetchval("SELECT ledger_balance('union:subsidy_expense')") == owed
        payable = await conn.fetchval(
            "SELECT coalesce(sum(amount_minor), 0) FROM ledger_postings WHERE account LIKE 'merchant:%'"
        )
        assert payable == -owed
        # Only a budgeted offer keeps a budget row; it holds what the union still owes that merchant.
        budgets = await conn.fetch("""
            SELECT b.merchant_id, b.used_minor,
                   (SELECT coalesce(sum(union_funded_minor), 0) FROM redemptions WHERE merchant_id = b.merchant_id)
                 - (SELECT coalesce(sum(union_funded_minor), 0) FROM refunds WHERE merchant_id = b.merchant_id) AS owed
              FROM merchant_budget_months b""")
        assert len(budgets) == 1 and budgets[0]["used_minor"] == budgets[0]["owed"] > 0
        for statement in (
            "UPDATE redemptions SET amount_minor = 1",
            "DELETE FROM refunds",
            "UPDATE ledger_postings SET amount_minor = 1",
            "DELETE FROM ledger_transactions",
        ):
            with pytest.raises(asyncpg.PostgresError, match="append-only"):
                await conn.execute(statement)
    finally:
        await conn.close()


@settings(max_examples=60, deadline=None)
@given(
    amount=st.integers(1, 10**8),
    rate=st.integers(1, 10_000),
    share=st.integers(0, 10_000),
    refund_parts=st.lists(st.integers(1, 10**8), max_size=4),
)
def test_sql_pricing_and_refunds_match_the_python_rule(
    pricing_db: PricingDb, amount: int, rate: int, share: int, refund_parts: list[int]
) -> None:
    pricing_db.check(amount, rate, share, refund_parts)


class PricingDb:
    """A database with one card and merchant; each example runs in a transaction rolled back."""

    def __init__(self, runner: asyncio.Runner, conn: asyncpg.Connection) -> None:
        self.runner, self.conn = runner, conn

    def check(self, amount: int, rate: int, share: int, refund_parts: list[int]) -> None:
        self.runner.run(self._check(amount, rate, share, refund_parts))

    async def _check(self, amount: int, rate: int, share: int, refund_parts: list[int]) -> None:
        tx = self.conn.transaction()
        await tx.start()
        try:
            await self.conn.execute(
                "INSERT INTO contract_versions (merchant_id, version, kind, rate_bps, valid_from, union_share_bps)"
                " VALUES (1, 2, 'percent', $1, '2020-01-01', $2)",
                rate,
                share,
            )
            quote = await self.conn.fetchval(
                "SELECT till_quote(1, '6217000000000000001', NULL, $1, 'CNY')::text", amount
            )
            q = json.loads(quote)
            discount = apply_bps(amount, rate)
            union, merchant = split_discount(discount, share)
            if discount == 0:  # rounds to nothing: no sale to record, and the quote says why
                assert (q["eligible"], q["reasons"]) == (False, ["no_discount"])
                return
            assert (q["discount"], q["union_funded"], q["merchant_funded"]) == (discount, union, merchant)
            body = json.loads(
                await self.conn.fetchval(
                    "SELECT body::text FROM till_redeem("
                    "1, '6217000000000000001', NULL, $1, 'CNY', '', NULL, 'k', '\\x00')",
                    amount,
                )
            )
            remaining = amount
            for i, part in enumerate(refund_parts):
                part = min(part, remaining)
                if part == 0:
                    break
                await self.conn.execute("SELECT till_refund(1, $1::uuid, $2, $3, '\\x01')", body["id"], part, f"r{i}")
                remaining -= part
            if remaining:
                await self.conn.execute("SELECT till_refund(1, $1::uuid, NULL, 'rest', '\\x01')", body["id"])
            totals = await self.conn.fetchrow(
                "SELECT sum(discount_minor) d, sum(union_funded_minor) u, sum(merchant_funded_minor) m,"
                " bool_and(union_funded_minor >= 0 AND merchant_funded_minor >= 0) nonneg FROM refunds"
            )
            assert (totals["d"], totals["u"], totals["m"]) == (discount, union, merchant)
            assert totals["nonneg"]
        finally:
            await tx.rollback()


@pytest.fixture(scope="module")
def pricing_db(server_dsn: str, template_name: str) -> Iterator[PricingDb]:
    from tests.conftest import cloned_database

    runner = asyncio.Runner()
    database = cloned_database(server_dsn, template_name)
    dsn = runner.run(database.__aenter__())
    conn = runner.run(asyncpg.connect(dsn))
    runner.run(
        conn.execute("""
        INSERT INTO orgs (id, kind, name) VALUES (1, 'district', 'd');
        INSERT INTO members (id, org_id, name, national_id_hash, national_id_last4)
             VALUES (1, 1, '李四', '\\x01', '0001');
        INSERT INTO cards (id, member_id, number, expires_on, status_since)
             VALUES (1, 1, '6217000000000000001', '2099-01-01', '2000-01-01');
        INSERT INTO merchants (id, name, category) VALUES (1, 'm', 'shop');
        INSERT INTO contract_versions (merchant_id, version, kind, rate_bps, valid_from, union_share_bps)
             VALUES (1, 1, 'percent', 100, '2020-01-01', 0);
        INSERT INTO terminals (id, merchant_id, name, key_prefix, key_hash) VALUES (1, 1, 't', 't', '\\x01');
    """)
    )
    yield PricingDb(runner, conn)
    runner.run(conn.close())
    runner.run(database.__aexit__(None, None, None))
    runner.close()


async def test_a_balance_at_any_past_moment(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    card = await add_card(client, world, "a")
    await add_merchant(client, world, "shop")
    shop = world.terminals["shop"]
    account = f"merchant:{world.merchants['shop']}:payable"
    sold = await client.post(
        "/api/till/v1/redemptions",
        json={"card": card, "amount": 10_000, "currency": "CNY"},
        headers={**shop, "Idempotency-Key": "s"},
    )
    conn = await asyncpg.connect(dsn)
    try:
        after_sale = await conn.fetchval("SELECT clock_timestamp()")
        await client.post(
            f"/api/till/v1/redemptions/{sold.json()['id']}/refunds", headers={**shop, "Idempotency-Key": "r"}
        )
        before_sale = await conn.fetchval("SELECT min(recorded_at) - interval '1 second' FROM ledger_postings")
    finally:
        await conn.close()

    async def balance(at: object) -> int:
        params = {"account": account} | ({"at": at.isoformat()} if at else {})  # type: ignore[attr-defined]
        body = (await client.get("/api/admin/v1/ledger/balance", params=params, headers=world.admin)).json()
        return body["balance_minor"]  # type: ignore[no-any-return]

    assert await balance(before_sale) == 0
    assert await balance(after_sale) == -600  # the union owes the shop its 60% of a 1,000 discount
    assert await balance(None) == 0  # refunded in full since
