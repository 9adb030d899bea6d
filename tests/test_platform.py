"""The platform's own surface: health, OpenAPI, settings, and the documented shapes matching reality."""

from __future__ import annotations

import msgspec
import pytest
from litestar.testing import AsyncTestClient

from merchants.model import QuoteOut, RedemptionOut
from tests.factories import add_card, add_merchant, make_world, ok
from unioncard.settings import load_settings


async def test_health_checks_the_database(client: AsyncTestClient) -> None:
    health = await ok(await client.get("/healthz"), 200)
    assert health["status"] == "ok" and health["schema_version"] >= 2


async def test_openapi_lists_the_till(client: AsyncTestClient) -> None:
    schema = await ok(await client.get("/schema/openapi.json"), 200)
    paths = schema["paths"]
    for path in ("/api/till/v1/quote", "/api/till/v1/redemptions", "/api/till/v1/redemptions/{redemption_id}/refunds"):
        assert path in paths
    assert "409" in paths["/api/till/v1/redemptions"]["post"]["responses"]


async def test_responses_match_their_documented_shapes(client: AsyncTestClient, dsn: str) -> None:
    world = await make_world(client, dsn)
    card = await add_card(client, world, "a")
    await add_merchant(client, world, "shop")
    shop = world.terminals["shop"]
    quote = await client.post("/api/till/v1/quote", json={"card": card, "amount": 999, "currency": "CNY"}, headers=shop)
    msgspec.json.decode(quote.content, type=QuoteOut)
    sale = await client.post(
        "/api/till/v1/redemptions",
        json={"card": card, "amount": 999, "currency": "CNY"},
        headers={**shop, "Idempotency-Key": "a"},
    )
    decoded = msgspec.json.decode(sale.content, type=RedemptionOut)
    refund = await client.post(
        f"/api/till/v1/redemptions/{decoded.id}/refunds", headers={**shop, "Idempotency-Key": "b"}
    )
    assert msgspec.json.decode(refund.content, type=RedemptionOut).refund_id is not None


def test_settings_come_from_the_environment() -> None:
    settings = load_settings({"DATABASE_URL": "postgresql://x/y", "UNIONCARD_PORT": "9000", "UNIONCARD_DEBUG": "true"})
    assert (settings.database_url, settings.port, settings.debug) == ("postgresql://x/y", 9000, True)
    with pytest.raises(msgspec.ValidationError):
        load_settings({"UNIONCARD_PORT": "not-a-port"})
