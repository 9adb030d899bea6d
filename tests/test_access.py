"""Access is scoped: a merchant sees only itself, a reviewer only its subtree; unknown cards are rate-limited."""

from __future__ import annotations

import pytest
from litestar.testing import AsyncTestClient

from tests.factories import World, add_card, add_merchant, card_number, make_world, ok, staff_token

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    w = await make_world(client, dsn)
    await add_card(client, w, "east1", org="east")
    await add_card(client, w, "west1", org="west")
    await add_merchant(client, w, "a")
    await add_merchant(client, w, "b")
    return w


async def test_a_town_reviewer_sees_only_its_own_members(client: AsyncTestClient, world: World, dsn: str) -> None:
    reviewer = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["east"])
    members = await ok(await client.get("/api/admin/v1/members", headers=reviewer), 200)
    assert [m["card_number"] for m in members] == [world.cards["east1"]]
    orgs = await ok(await client.get("/api/admin/v1/orgs", headers=reviewer), 200)
    assert [o["id"] for o in orgs] == [world.org_ids["east"]]
    freeze = await client.post(
        f"/api/admin/v1/cards/{world.card_ids['west1']}/status", json={"status": "frozen"}, headers=reviewer
    )
    assert freeze.status_code == 403


async def test_a_merchant_admin_sees_only_its_own_merchant(client: AsyncTestClient, world: World, dsn: str) -> None:
    merchant_admin = await staff_token(dsn, "merchant_admin", merchant_id=world.merchants["a"])
    listed = await ok(await client.get("/api/admin/v1/merchants", headers=merchant_admin), 200)
    assert [m["id"] for m in listed] == [world.merchants["a"]]
    other = await client.get(f"/api/admin/v1/merchants/{world.merchants['b']}/terminals", headers=merchant_admin)
    assert other.status_code == 404
    own = await ok(
        await client.get(f"/api/admin/v1/merchants/{world.merchants['a']}/terminals", headers=merchant_admin), 200
    )
    assert len(own) == 1 and "key" not in own[0] and "key_hash" not in own[0]
    members = await client.get("/api/admin/v1/members", headers=merchant_admin)
    assert members.status_code == 403


async def test_a_finance_officer_reads_the_books_but_does_not_administer(
    client: AsyncTestClient, world: World, dsn: str
) -> None:
    finance = await staff_token(dsn, "finance_officer")
    balance = await ok(
        await client.get("/api/admin/v1/ledger/balance?account=union:subsidy_expense", headers=finance), 200
    )
    assert balance["balance_minor"] == 0
    create = await client.post("/api/admin/v1/merchants", json={"name": "x", "category": "y"}, headers=finance)
    assert create.status_code == 403
    terminal = await client.get("/api/admin/v1/ledger/balance?account=x", headers=world.terminals["a"])
    assert terminal.status_code == 403


async def test_unknown_cards_are_rate_limited_per_terminal(client: AsyncTestClient, world: World) -> None:
    codes = []
    for _ in range(22):
        response = await client.post(
            "/api/till/v1/quote",
            json={"card": card_number("621788"), "amount": 100, "currency": "CNY"},
            headers=world.terminals["a"],
        )
        codes.append(response.json()["code"])
    assert codes[:20] == ["card_not_found"] * 20 and codes[20:] == ["rate_limited"] * 2
    known = await client.post(
        "/api/till/v1/quote",
        json={"card": world.cards["east1"], "amount": 100, "currency": "CNY"},
        headers=world.terminals["b"],
    )
    assert known.status_code == 200  # another terminal is not affected
