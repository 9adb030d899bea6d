"""The till API v1, case by case, as DESIGN.md specifies it."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from tests.factories import World, add_card, add_merchant, card_number, make_world, ok

pytestmark = pytest.mark.asyncio


@pytest.fixture
async def world(client: AsyncTestClient, dsn: str) -> World:
    w = await make_world(client, dsn)
    await add_card(client, w, "a")
    await add_card(client, w, "b")
    await add_merchant(client, w, "shop", min_spend_minor=1000, per_card_daily_sales_max=3)
    await add_merchant(client, w, "other")
    return w


def sale(card: str, amount: int = 12345, **extra: Any) -> dict[str, Any]:
    return {"card": card, "amount": amount, "currency": "CNY", "receipt_ref": "R-1", **extra}


def keyed(headers: dict[str, str], key: str) -> dict[str, str]:
    return {**headers, "Idempotency-Key": key}


async def count_rows(dsn: str) -> tuple[int, int, int, int]:
    conn = await asyncpg.connect(dsn)
    try:
        row = await conn.fetchrow(
            "SELECT (SELECT count(*) FROM redemptions), (SELECT count(*) FROM refunds),"
            " (SELECT count(*) FROM ledger_postings), (SELECT count(*) FROM idempotency_keys)"
        )
        return tuple(row)  # type: ignore[return-value]
    finally:
        await conn.close()


async def test_quote_shows_the_discount_and_records_nothing(client: AsyncTestClient, world: World, dsn: str) -> None:
    quote = await ok(
        await client.post(
            "/api/till/v1/quote",
            json={"card": world.cards["a"], "amount": 12345, "currency": "CNY"},
            headers=world.terminals["shop"],
        ),
        200,
    )
    assert quote["eligible"] is True
    assert (quote["discount"], quote["union_funded"], quote["merchant_funded"]) == (1235, 741, 494)
    assert quote["pay_amount"] == 12345 - 1235
    assert quote["card"].endswith(world.cards["a"][-4:]) and "****" in quote["card"]
    assert world.cards["a"] not in str(quote)
    assert await count_rows(dsn) == (0, 0, 0, 0)


async def test_quote_below_minimum_is_not_eligible_with_reason(client: AsyncTestClient, world: World) -> None:
    quote = await ok(
        await client.post(
            "/api/till/v1/quote",
            json={"card": world.cards["a"], "amount": 999, "currency": "CNY"},
            headers=world.terminals["shop"],
        ),
        200,
    )
    assert quote["eligible"] is False
    assert quote["reasons"] == ["below_minimum_spend"]
    assert quote["discount"] == 0 and quote["pay_amount"] == 999


async def test_sale_then_replay_then_reuse(client: AsyncTestClient, world: World, dsn: str) -> None:
    headers = keyed(world.terminals["shop"], "sale-1")
    first = await client.post("/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=headers)
    body = await ok(first)
    assert first.headers.get("idempotent-replayed") is None
    assert body["union_funded"] + body["merchant_funded"] == body["discount"] == 1235
    replay = await client.post("/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=headers)
    assert replay.status_code == 201 and replay.headers["idempotent-replayed"] == "true"
    assert replay.json()["id"] == body["id"]
    other = await client.post("/api/till/v1/redemptions", json=sale(world.cards["a"], 5000), headers=headers)
    assert other.status_code == 409 and other.json()["code"] == "idempotency_key_reused"
    assert await count_rows(dsn) == (1, 0, 2, 1)


async def test_the_same_key_at_another_merchant_is_another_sale(client: AsyncTestClient, world: World) -> None:
    a = await ok(
        await client.post(
            "/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=keyed(world.terminals["shop"], "k")
        )
    )
    b = await ok(
        await client.post(
            "/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=keyed(world.terminals["other"], "k")
        )
    )
    assert a["id"] != b["id"]


async def test_refunds_partial_then_rest_reverse_in_proportion(client: AsyncTestClient, world: World, dsn: str) -> None:
    shop = world.terminals["shop"]
    sold = await ok(
        await client.post("/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=keyed(shop, "s"))
    )
    path = f"/api/till/v1/redemptions/{sold['id']}/refunds"
    part = await ok(await client.post(path, json={"amount": 5000}, headers=keyed(shop, "r1")))
    assert part["status"] == "partially_refunded" and part["remaining_amount"] == 7345
    assert part["refunds"][0] | {"id": None, "created_at": None} == {
        "id": None,
        "created_at": None,
        "amount": 5000,
        "discount": 500,
        "union_funded": 300,
        "merchant_funded": 200,
    }
    too_much = await client.post(path, json={"amount": 7346}, headers=keyed(shop, "r2"))
    assert too_much.status_code == 409 and too_much.json()["code"] == "refund_exceeds_remaining"
    rest = await ok(await client.post(path, headers=keyed(shop, "r3")))
    assert rest["status"] == "refunded" and rest["remaining_amount"] == 0
    assert sum(r["discount"] for r in rest["refunds"]) == sold["discount"]
    assert sum(r["union_funded"] for r in rest["refunds"]) == sold["union_funded"]
    replay = await client.post(path, headers=keyed(shop, "r3"))
    assert replay.headers["idempotent-replayed"] == "true" and replay.json()["refund_id"] == rest["refund_id"]
    again = await client.post(path, headers=keyed(shop, "r4"))
    assert again.status_code == 409 and again.json()["code"] == "refund_exceeds_remaining"
    got = await ok(await client.get(f"/api/till/v1/redemptions/{sold['id']}", headers=shop), 200)
    assert got["refunded_amount"] == 12345 and len(got["refunds"]) == 2
    conn = await asyncpg.connect(dsn)
    try:
        balance = await conn.fetchval("SELECT ledger_balance($1)", f"merchant:{world.merchants['shop']}:payable")
        assert balance == 0
    finally:
        await conn.close()


async def test_another_merchants_redemption_is_not_found(client: AsyncTestClient, world: World, dsn: str) -> None:
    sold = await ok(
        await client.post(
            "/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=keyed(world.terminals["shop"], "s")
        )
    )
    before = await count_rows(dsn)
    other = world.terminals["other"]
    got = await client.get(f"/api/till/v1/redemptions/{sold['id']}", headers=other)
    assert got.status_code == 404 and got.json()["code"] == "redemption_not_found"
    refund = await client.post(f"/api/till/v1/redemptions/{sold['id']}/refunds", headers=keyed(other, "x"))
    assert refund.status_code == 404 and refund.json()["code"] == "redemption_not_found"
    junk = await client.get("/api/till/v1/redemptions/not-a-uuid", headers=other)
    assert junk.status_code == 404
    assert await count_rows(dsn) == before


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({"card": "6217000000000000000", "amount": 100}, 422, "malformed_request"),  # no currency
        ({"amount": 100, "currency": "CNY"}, 422, "validation_failed"),  # no card
        ({"card": "X", "member_code": "Y", "amount": 100, "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": 100.5, "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": 100.0, "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": "100", "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": -5, "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": 0, "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": 10**15, "currency": "CNY"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": 100, "currency": "cny"}, 422, "malformed_request"),
        ({"card": "{a}", "amount": 1200, "currency": "USD"}, 422, "currency_mismatch"),
        ({"card": "{a}", "amount": 100, "currency": "CNY", "tip": 1}, 422, "malformed_request"),
        ({"card": "{badluhn}", "amount": 1200, "currency": "CNY"}, 422, "validation_failed"),
        ({"card": "{unknown}", "amount": 1200, "currency": "CNY"}, 404, "card_not_found"),
        ({"card": "{a}", "amount": 999, "currency": "CNY"}, 422, "not_eligible"),
        (
            {"card": "{a}", "amount": 1200, "currency": "CNY", "occurred_at": "2020-01-01T00:00:00+08:00"},
            422,
            "validation_failed",
        ),
        (
            {"card": "{a}", "amount": 1200, "currency": "CNY", "occurred_at": "2099-01-01T00:00:00+08:00"},
            422,
            "validation_failed",
        ),
        (
            {"card": "{a}", "amount": 1200, "currency": "CNY", "occurred_at": "2026-01-01T00:00:00"},
            422,
            "validation_failed",
        ),
        (
            {"member_code": "MC1-1-1234567890-AAAAAAAAAAAAAAAA", "amount": 1200, "currency": "CNY"},
            422,
            "member_code_invalid",
        ),
    ],
)
async def test_bad_sales_get_a_problem_and_write_nothing(
    client: AsyncTestClient, world: World, dsn: str, body: dict[str, Any], status: int, code: str
) -> None:
    valid = world.cards["a"]
    substitutes = {
        "{a}": valid,
        "{badluhn}": valid[:-1] + str((int(valid[-1]) + 1) % 10),
        "{unknown}": card_number("621799"),
    }
    if isinstance(body.get("card"), str):
        body = {**body, "card": substitutes.get(body["card"], body["card"])}
    response = await client.post("/api/till/v1/redemptions", json=body, headers=keyed(world.terminals["shop"], "bad"))
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    problem = response.json()
    assert problem["code"] == code and problem["status"] == status and problem["title"]
    assert await count_rows(dsn) == (0, 0, 0, 0)


async def test_malformed_json_is_a_problem(client: AsyncTestClient, world: World, dsn: str) -> None:
    response = await client.post(
        "/api/till/v1/redemptions",
        content=b'{"card": ',
        headers={**keyed(world.terminals["shop"], "k"), "Content-Type": "application/json"},
    )
    assert response.status_code in (400, 422)
    assert response.headers["content-type"].startswith("application/problem+json")
    assert await count_rows(dsn) == (0, 0, 0, 0)


async def test_missing_idempotency_key(client: AsyncTestClient, world: World) -> None:
    response = await client.post(
        "/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=world.terminals["shop"]
    )
    assert response.status_code == 400 and response.json()["code"] == "idempotency_key_missing"


async def test_not_eligible_lists_reasons(client: AsyncTestClient, world: World) -> None:
    response = await client.post(
        "/api/till/v1/redemptions", json=sale(world.cards["a"], 500), headers=keyed(world.terminals["shop"], "k")
    )
    assert response.status_code == 422
    assert response.json()["reasons"] == ["below_minimum_spend"]


async def test_daily_limit_reached(client: AsyncTestClient, world: World) -> None:
    shop = world.terminals["shop"]
    for i in range(3):
        await ok(
            await client.post("/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=keyed(shop, f"d{i}"))
        )
    fourth = await client.post("/api/till/v1/redemptions", json=sale(world.cards["a"]), headers=keyed(shop, "d4"))
    assert fourth.status_code == 422 and fourth.json()["reasons"] == ["daily_limit_reached"]
    quote = await ok(
        await client.post(
            "/api/till/v1/quote", json={"card": world.cards["a"], "amount": 5000, "currency": "CNY"}, headers=shop
        ),
        200,
    )
    assert quote["eligible"] is False and quote["reasons"] == ["daily_limit_reached"]


async def test_bad_revoked_and_suspended_keys(client: AsyncTestClient, world: World, dsn: str) -> None:
    body = {"card": world.cards["a"], "amount": 5000, "currency": "CNY"}
    bad = await client.post("/api/till/v1/quote", json=body, headers={"Authorization": "Bearer uct_nope"})
    assert bad.status_code == 401 and bad.json()["code"] == "unauthorized"
    none = await client.post("/api/till/v1/quote", json=body)
    assert none.status_code == 401
    admin_token = await client.post("/api/till/v1/quote", json=body, headers=world.admin)
    assert admin_token.status_code == 403 and admin_token.json()["code"] == "forbidden"
    await ok(
        await client.post(
            f"/api/admin/v1/merchants/{world.merchants['other']}/status",
            json={"status": "suspended"},
            headers=world.admin,
        )
    )
    suspended = await client.post("/api/till/v1/redemptions", json=body, headers=keyed(world.terminals["other"], "s"))
    assert suspended.status_code == 403 and suspended.json()["code"] == "merchant_suspended"
    await ok(
        await client.post(f"/api/admin/v1/terminals/{world.terminal_ids['shop']}/revoke", headers=world.admin), 200
    )
    revoked = await client.post("/api/till/v1/redemptions", json=body, headers=keyed(world.terminals["shop"], "r"))
    assert revoked.status_code == 401 and revoked.json()["code"] == "unauthorized"
    assert await count_rows(dsn) == (0, 0, 0, 0)


async def test_inactive_card_and_offline_capture_judged_by_state_then(client: AsyncTestClient, world: World) -> None:
    shop = world.terminals["shop"]
    card_id = world.card_ids["b"]
    before_freeze = datetime.now(UTC)  # after the card was issued, before it is frozen
    await ok(
        await client.post(f"/api/admin/v1/cards/{card_id}/status", json={"status": "frozen"}, headers=world.admin), 200
    )
    now_sale = await client.post("/api/till/v1/redemptions", json=sale(world.cards["b"]), headers=keyed(shop, "n"))
    assert now_sale.status_code == 409 and now_sale.json()["code"] == "card_inactive"
    assert now_sale.json()["card_status"] == "frozen"
    quote = await client.post(
        "/api/till/v1/quote", json={"card": world.cards["b"], "amount": 5000, "currency": "CNY"}, headers=shop
    )
    assert quote.status_code == 409
    offline = await ok(
        await client.post(
            "/api/till/v1/redemptions",
            headers=keyed(shop, "o"),
            json=sale(world.cards["b"], occurred_at=before_freeze.isoformat()),
        )
    )
    assert offline["occurred_at"].startswith(before_freeze.strftime("%Y-%m-%dT%H:%M"))


async def test_member_code_presents_the_card(client: AsyncTestClient, world: World, settings: Any) -> None:
    from cards.member_code import issue_member_code

    issued = await ok(
        await client.post(f"/api/admin/v1/cards/{world.card_ids['a']}/member-code", headers=world.admin), 200
    )
    body = {"member_code": issued["member_code"], "amount": 5000, "currency": "CNY"}
    quote = await ok(await client.post("/api/till/v1/quote", json=body, headers=world.terminals["shop"]), 200)
    assert quote["eligible"] and quote["card"].endswith(world.cards["a"][-4:])
    tampered = issued["member_code"][:-1] + ("A" if issued["member_code"][-1] != "A" else "B")
    bad = await client.post(
        "/api/till/v1/quote", json={**body, "member_code": tampered}, headers=world.terminals["shop"]
    )
    assert bad.status_code == 422 and bad.json()["code"] == "member_code_invalid"
    old, _ = issue_member_code(settings.secret_key, world.card_ids["a"], datetime.now(UTC) - timedelta(minutes=5), 60)
    expired = await client.post(
        "/api/till/v1/quote", json={**body, "member_code": old}, headers=world.terminals["shop"]
    )
    assert expired.status_code == 422 and expired.json()["code"] == "member_code_expired"


async def test_english_titles_on_request(client: AsyncTestClient, world: World) -> None:
    response = await client.post("/api/till/v1/quote", json={}, headers={"Accept-Language": "en-US"})
    assert response.status_code == 401 and response.json()["title"] == "Missing or invalid credentials"


async def test_a_retry_after_the_member_code_expired_replays_the_sale(
    client: AsyncTestClient, world: World, settings: Any
) -> None:
    from cards.member_code import issue_member_code

    code, _ = issue_member_code(settings.secret_key, world.card_ids["a"], datetime.now(UTC) - timedelta(seconds=58), 60)
    body = {"member_code": code, "amount": 5000, "currency": "CNY"}
    headers = keyed(world.terminals["shop"], "code-sale")
    first = await ok(await client.post("/api/till/v1/redemptions", json=body, headers=headers))
    await asyncio.sleep(2.5)  # the code has now expired
    retry = await client.post("/api/till/v1/redemptions", json=body, headers=headers)
    assert retry.status_code == 201 and retry.headers["idempotent-replayed"] == "true"
    assert retry.json()["id"] == first["id"]
    fresh = await client.post("/api/till/v1/redemptions", json=body, headers=keyed(world.terminals["shop"], "new"))
    assert fresh.status_code == 422 and fresh.json()["code"] == "member_code_expired"
