"""The demo's benefits: the catalog, a year of grants routed and paid, health checks, loans, centres, member
logins, and the federation overview that shows them."""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from cards import member_auth
from tests.conftest import DEMO_SCALE, DEMO_SECRET
from unioncard.demo.catalog import TOWN_REVIEW_FROM
from unioncard.demo.grants import GRANTED
from unioncard.settings import Settings

SCALE, SECRET = DEMO_SCALE, DEMO_SECRET


def test_the_full_demo_plans_the_districts_grants() -> None:
    """DESIGN.md: 316 hospitalization, 15 serious illness, 3 work injury — 334 members, 168,200 yuan."""
    counts = {code: sum(n for _, n in mix) for code, mix in GRANTED}
    assert counts == {"hospitalization": 316, "serious_illness": 15, "work_injury": 3}
    assert sum(counts.values()) == 334
    assert sum(amount * n for _, mix in GRANTED for amount, n in mix) == 168_200_00


async def test_grants_are_routed_by_the_rule_of_their_date_and_paid(
    db: asyncpg.Connection, demo: tuple[str, dict[str, Any]]
) -> None:
    grants = demo[1]["benefits"]["grants"]
    scaled = {code: sum(max(1, round(n * SCALE)) for _, n in mix) for code, mix in GRANTED}
    assert {row["code"]: row["applications"] for row in grants["by_benefit"]} == scaled
    assert grants["members"] == sum(scaled.values())  # one grant per member
    routed = await db.fetch(
        """SELECT a.applied_on, o.kind FROM applications a JOIN orgs o ON o.id = a.org_id
            JOIN benefits b ON b.id = a.benefit_id WHERE b.code = 'hospitalization'"""
    )
    assert routed and all(
        row["kind"] == ("town" if row["applied_on"] >= TOWN_REVIEW_FROM else "district") for row in routed
    )
    statuses = dict(await db.fetch("SELECT status, count(*) FROM applications GROUP BY status"))
    assert statuses.get("paid", 0) > 0 and statuses.get("rejected", 0) > 0
    assert await db.fetchval("SELECT count(*) FROM ledger_unbalanced") == 0
    # every approved grant was expensed once; paid ones left nothing owed to their member
    expense = await db.fetchval("SELECT -ledger_balance('member:' || member_id || ':grants_payable') "
                                "FROM applications WHERE status = 'paid' LIMIT 1")  # fmt: skip
    assert expense == 0


async def test_no_application_history_runs_backwards(db: asyncpg.Connection) -> None:
    backwards = await db.fetchval(
        """SELECT count(*) FROM (
               SELECT created_at < lag(created_at) OVER (PARTITION BY application_id ORDER BY id) AS earlier
                 FROM application_events) e
            WHERE earlier"""
    )
    assert backwards == 0


async def test_health_checks_loans_and_centres_are_there(db: asyncpg.Connection) -> None:
    year = date.today().year
    quota = await db.fetchval("SELECT places FROM health_check_years WHERE year = $1", year)
    towns = await db.fetchval("SELECT sum(places) FROM health_check_town_quotas WHERE year = $1", year)
    used = await db.fetchval(
        "SELECT count(*) FROM health_check_bookings WHERE year = $1 AND status IN ('attended', 'booked', 'held')", year
    )
    assert quota == 20_000 and towns == quota and 0 < used <= quota
    fund = await db.fetchrow("SELECT total_minor, drawn_minor FROM loan_funds")
    assert fund["total_minor"] == 10_000_000_00 and 0 < fund["drawn_minor"] <= fund["total_minor"]
    assert await db.fetchval("SELECT count(*) FROM service_centres") == 6
    kinds = await db.fetch("SELECT centre_id, array_agg(kind ORDER BY kind) AS k FROM service_rooms GROUP BY 1")
    assert {tuple(row["k"]) for row in kinds} == {("activity", "library", "mediation", "training")}


async def test_member_logins_sign_in(db: asyncpg.Connection, demo: tuple[str, dict[str, Any]]) -> None:
    logins = demo[1]["benefits"]["members"]
    assert {login["kind"] for login in logins} >= {"paid_grant"}
    for login in logins:
        if login["kind"] == "paid_grant":  # signs in to see a grant paid
            paid = await db.fetchval(
                "SELECT count(*) FROM applications a JOIN cards c ON c.member_id = a.member_id"
                " WHERE c.number = $1 AND a.status = 'paid'", login["card_number"],
            )  # fmt: skip
            assert paid == 1
    for login in logins:
        await member_auth.sign_in(db, login["card_number"], login["pin"], datetime.now(UTC), 60)


async def test_the_federation_overview_shows_the_year(demo: tuple[str, dict[str, Any]]) -> None:
    from unioncard.app import create_app

    url, manifest = demo
    settings = Settings(secret_key=SECRET, terminal_cache_ttl_s=0.0)
    async with AsyncTestClient(app=create_app(settings, dsn=url)) as client:
        signed_in = await client.post("/login", data={"email": "admin@demo.unioncard", "password": "demo-admin"})
        assert signed_in.status_code == 200 and signed_in.url.path == "/federation/"
        grants = manifest["benefits"]["grants"]
        page = signed_in.text
        for chart in ("grants", "months", "health", "loans", "centres"):
            assert f'data-chart="{chart}"' in page
        assert f'data-testid="grants-members">{grants["members"]}<' in page
        assert "住院慰问金" in page and "<svg" in page
        assert "://" not in page.replace("http://www.w3.org/2000/svg", "")  # nothing from the internet
        english = await client.get("/federation/?lang=en")
        assert "Hospitalization grant" in english.text
        await client.post("/logout")
        reviewer = await client.post("/login", data={"email": "reviewer1@demo.unioncard", "password": "demo-reviewer"})
        assert reviewer.url.path == "/review/"
        refused = await client.get("/federation/", follow_redirects=False)
        assert refused.status_code == 303
