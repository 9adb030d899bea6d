"""The benefits half of the demo: the catalog, a year of grants, health checks, loans and service centres,
and member logins (card number + PIN) for the manifest."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import date
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg

from unioncard.demo.catalog import seed_catalog
from unioncard.demo.grants import load_grants
from unioncard.demo.health_checks import load_health_checks
from unioncard.demo.loans_centres import load_loans_centres
from unioncard.passwords import hash_password

MEMBER_PIN = "246810"  # printed in the manifest, like the staff passwords
# Members to sign in as: some who had a grant paid, and one of each kind the catalog treats apart.
LOGIN_KINDS_SQL = """
SELECT DISTINCT ON (k.kind) k.kind, m.id, m.name, c.number, c.tier, o.name AS org_name
  FROM members m
  JOIN cards c ON c.member_id = m.id AND c.status = 'active'
  JOIN orgs o ON o.id = m.org_id
 CROSS JOIN LATERAL (VALUES
       (CASE WHEN c.tier = '困难职工' THEN 'hardship' END),
       (CASE WHEN '农民工' = ANY (m.tags) THEN 'migrant' END),
       (CASE WHEN c.tier IN ('优秀职工', '劳动模范') AND m.joined_on < current_date - 730 THEN 'excellent' END)
 ) AS k(kind)
 WHERE k.kind IS NOT NULL
 ORDER BY k.kind, m.id
"""
MEMBERS_BY_ID_SQL = """
SELECT 'paid_grant' AS kind, m.id, m.name, c.number, c.tier, o.name AS org_name
  FROM members m JOIN cards c ON c.member_id = m.id AND c.status = 'active' JOIN orgs o ON o.id = m.org_id
 WHERE m.id = ANY ($1::bigint[]) ORDER BY m.id
"""
SET_PIN_SQL = "UPDATE cards SET pin_hash = $2 WHERE number = ANY ($1::text[])"


async def load_benefits(
    conn: asyncpg.Connection, rng: random.Random, today: date, scale: float, done: Callable[..., None]
) -> dict[str, Any]:
    """Everything the member and reviewer pages show; `done(stage, count)` reports each stage."""
    zone = ZoneInfo(await conn.fetchval("SELECT till_local_tz()"))
    started = time.monotonic()
    async with conn.transaction():
        catalog = await seed_catalog(conn)
    done("benefits catalog", len(catalog))
    grants = await load_grants(conn, rng, today, zone, scale)
    done("grant applications approved and paid", grants["members"])
    async with conn.transaction():
        health = await load_health_checks(conn, rng, today)
    done("health-check bookings", health.get("attended"))
    async with conn.transaction():
        loans_centres = await load_loans_centres(conn, rng, today)
    done("loans and service-centre bookings")
    members = await _member_logins(conn, grants["paid_member_ids"])
    done("member logins", len(members))
    await conn.execute("ANALYZE")
    return {
        "catalog": sorted(catalog),
        "grants": grants,
        "health_checks": health,
        "loans_and_centres": loans_centres,
        "members": members,
        "seconds": round(time.monotonic() - started, 1),
    }


async def _member_logins(conn: asyncpg.Connection, paid_member_ids: list[int]) -> list[dict[str, Any]]:
    rows = [*await conn.fetch(MEMBERS_BY_ID_SQL, paid_member_ids[:2]), *await conn.fetch(LOGIN_KINDS_SQL)]
    logins = [
        {
            "kind": row["kind"],
            "card_number": row["number"],
            "pin": MEMBER_PIN,
            "name": row["name"],
            "tier": row["tier"],
            "org": row["org_name"],
        }  # fmt: skip
        for row in rows
    ]
    # One argon2 hash serves them all: the PIN is printed in the manifest anyway.
    await conn.execute(SET_PIN_SQL, [login["card_number"] for login in logins], hash_password(MEMBER_PIN))
    return logins
