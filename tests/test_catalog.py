"""The catalog: entries through the admin API, eligibility per member, and review levels by date."""

from __future__ import annotations

from datetime import date

import asyncpg
import pytest

from cards import catalog
from tests.factories import add_benefit, add_card, make_world, ok
from unioncard.errors import DomainError

HOSPITALIZATION = {
    "code": "hospitalization",
    "kind": "special_protection",
    "name_zh": "住院慰问金",
    "name_en": "Hospitalization grant",
    "amount_max_minor": 80_000,
    "per_year_max": 2,
    "needs_invoice": True,
    "review_levels": [
        {"effective_from": "2026-01-01", "org_kind": "district"},
        {"effective_from": "2026-10-01", "org_kind": "town"},
    ],
}


async def test_admin_creates_a_benefit_with_review_levels(client, dsn) -> None:
    world = await make_world(client, dsn)
    created = await ok(await client.post("/api/admin/v1/benefits", json=HOSPITALIZATION, headers=world.admin))
    assert created["code"] == "hospitalization" and created["amount_max_minor"] == 80_000
    assert [level["org_kind"] for level in created["review_levels"]] == ["district", "town"]

    again = await client.post("/api/admin/v1/benefits", json=HOSPITALIZATION, headers=world.admin)
    assert again.status_code == 409 and again.json()["code"] == "conflict"
    both = {**HOSPITALIZATION, "code": "both", "amount_minor": 50_000}
    refused = await client.post("/api/admin/v1/benefits", json=both, headers=world.admin)
    assert refused.status_code == 422 and refused.json()["code"] == "validation_failed"
    listed = await ok(await client.get("/api/admin/v1/benefits", headers=world.admin), 200)
    assert [row["code"] for row in listed] == ["hospitalization"]


async def test_the_level_in_force_on_the_date_reviews(client, dsn, conn: asyncpg.Connection) -> None:
    world = await make_world(client, dsn)
    await ok(await client.post("/api/admin/v1/benefits", json=HOSPITALIZATION, headers=world.admin))
    benefit_id = await conn.fetchval("SELECT id FROM benefits WHERE code = 'hospitalization'")
    east = world.org_ids["east"]
    september = await catalog.reviewing_org(conn, benefit_id, east, date(2026, 9, 30))
    october = await catalog.reviewing_org(conn, benefit_id, east, date(2026, 10, 1))
    assert september["id"] == world.org_ids["district"] and october["id"] == east
    with pytest.raises(DomainError) as before:
        await catalog.reviewing_org(conn, benefit_id, east, date(2025, 12, 31))
    assert before.value.code == "no_reviewing_org"


async def test_eligibility_says_what_a_member_lacks(client, dsn, conn: asyncpg.Connection) -> None:
    world = await make_world(client, dsn)
    await add_card(client, world, "plain", org="east", joined_on="2026-06-01")
    await add_card(client, world, "excellent", org="west", tier="优秀职工", tags=["劳模"], joined_on="2020-01-01")
    await add_benefit(conn, "model_worker", "custom", eligible_tiers=["优秀职工"], eligible_tags=["劳模", "工匠"])
    await add_benefit(conn, "west_only", "custom", eligible_org_ids=[world.org_ids["west"]])
    await add_benefit(conn, "veterans", "custom", membership_months_min=12)
    await add_benefit(conn, "retired", "custom", valid_from=date(2020, 1, 1), valid_until=date(2025, 12, 31))
    today = date(2026, 11, 29)

    def unmet(rows: list[dict]) -> dict[str, list[str]]:
        return {row["code"]: list(row["unmet"]) for row in rows}

    plain = unmet(await catalog.benefits_for_member(conn, world.member_ids["plain"], today))
    assert plain == {"model_worker": ["tier", "tags"], "west_only": ["org"], "veterans": ["membership_months"]}
    excellent = unmet(await catalog.benefits_for_member(conn, world.member_ids["excellent"], today))
    assert excellent == {"model_worker": [], "west_only": [], "veterans": []}

    with pytest.raises(DomainError) as refused:
        await catalog.require_eligible(conn, world.member_ids["plain"], "veterans", today)
    assert refused.value.code == "benefit_not_eligible" and refused.value.extra["reasons"] == ["membership_months"]
    # a year after joining, the same member may have it
    await catalog.require_eligible(conn, world.member_ids["plain"], "veterans", date(2027, 6, 1))
    with pytest.raises(DomainError) as gone:
        await catalog.benefit_for_member(conn, world.member_ids["plain"], "retired", today)
    assert gone.value.code == "benefit_not_found"
