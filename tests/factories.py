"""Builders for a small district through the admin API, shared by the tests."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from datetime import date
from typing import Any

import asyncpg
from litestar.testing import AsyncTestClient

from unioncard.ids import hash_secret, luhn_checksum_digit, new_secret
from unioncard.passwords import hash_password
from unioncard.staff import create_admin

_serial = itertools.count(1)


def card_number(prefix: str = "621700") -> str:
    body = f"{prefix}{next(_serial):012d}"
    return body + luhn_checksum_digit(body)


def national_id() -> str:
    body = f"33010619900101{next(_serial) % 1000:03d}"
    weights = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2]
    check = "10X98765432"[sum(int(d) * w for d, w in zip(body, weights, strict=True)) % 11]
    return body + check


@dataclass
class World:
    admin: dict[str, str]
    org_ids: dict[str, int]
    cards: dict[str, str] = field(default_factory=dict)
    card_ids: dict[str, int] = field(default_factory=dict)
    member_ids: dict[str, int] = field(default_factory=dict)
    merchants: dict[str, int] = field(default_factory=dict)
    terminals: dict[str, dict[str, str]] = field(default_factory=dict)
    terminal_ids: dict[str, int] = field(default_factory=dict)


async def ok(response: Any, status: int = 201) -> dict[str, Any]:
    assert response.status_code == status, response.text
    return response.json()  # type: ignore[no-any-return]


async def make_world(client: AsyncTestClient, dsn: str) -> World:
    conn = await asyncpg.connect(dsn)
    try:
        token = await create_admin(conn, "admin@test", "pw")
    finally:
        await conn.close()
    admin = {"Authorization": f"Bearer {token}"}
    district = await ok(
        await client.post("/api/admin/v1/orgs", json={"kind": "district", "name": "区总工会"}, headers=admin)
    )
    towns = {}
    for town in ("east", "west"):
        towns[town] = (
            await ok(
                await client.post(
                    "/api/admin/v1/orgs",
                    json={"kind": "town", "name": f"{town}镇", "parent_id": district["id"]},
                    headers=admin,
                )
            )
        )["id"]
    return World(admin=admin, org_ids={"district": district["id"], **towns})


async def add_card(
    client: AsyncTestClient,
    world: World,
    label: str,
    *,
    org: str = "east",
    tier: str = "普通职工",
    expires_on: str = "2030-12-31",
    pin: str | None = None,
    tags: list[str] | None = None,
    joined_on: str | None = None,
) -> str:
    """A member of `org` with a card; `pin` lets them sign in on the member pages. The card number."""
    number = card_number()
    card: dict[str, Any] = {"number": number, "expires_on": expires_on, "tier": tier}
    if pin is not None:
        card["pin"] = pin
    extra: dict[str, Any] = {"tags": tags or []}
    if joined_on is not None:
        extra["joined_on"] = joined_on
    member = await ok(
        await client.post(
            "/api/admin/v1/members",
            headers=world.admin,
            json={
                "org_id": world.org_ids[org],
                "name": f"张{label}",
                "national_id": national_id(),
                "card": card,
                **extra,
            },
        )
    )
    world.cards[label] = number
    world.card_ids[label] = member["card"]["id"]
    world.member_ids[label] = member["id"]
    return number


async def add_merchant(client: AsyncTestClient, world: World, label: str, **contract: Any) -> str:
    merchant = await ok(
        await client.post(
            "/api/admin/v1/merchants",
            headers=world.admin,
            json={"name": f"{label}超市", "category": "supermarket", "latitude": 30.25, "longitude": 120.16},
        )
    )
    world.merchants[label] = merchant["id"]
    terms = {"kind": "percent", "rate_bps": 1000, "valid_from": "2020-01-01", "union_share_bps": 6000}
    terms.update(contract)
    await ok(await client.post(f"/api/admin/v1/merchants/{merchant['id']}/contracts", headers=world.admin, json=terms))
    terminal = await ok(
        await client.post(
            f"/api/admin/v1/merchants/{merchant['id']}/terminals", headers=world.admin, json={"name": "till 1"}
        )
    )
    world.terminals[label] = {"Authorization": f"Bearer {terminal['key']}"}
    world.terminal_ids[label] = terminal["id"]
    return terminal["key"]  # type: ignore[no-any-return]


async def staff_token(
    dsn: str, role: str, merchant_id: int | None = None, *, org_id: int | None = None
) -> dict[str, str]:
    """An API bearer header for a new staff member of this role and scope."""
    token = new_secret("uca")
    conn = await asyncpg.connect(dsn)
    try:
        staff_id = await conn.fetchval(
            "INSERT INTO staff_users (email, role, org_id, merchant_id) VALUES ($1, $2, $3, $4) RETURNING id",
            f"{token[-8:]}@test", role, org_id, merchant_id,
        )  # fmt: skip
        await conn.execute(
            "INSERT INTO api_tokens (token_hash, staff_user_id) VALUES ($1, $2)", hash_secret(token), staff_id
        )
    finally:
        await conn.close()
    return {"Authorization": f"Bearer {token}"}


async def add_staff_login(
    dsn: str,
    email: str,
    role: str,
    *,
    merchant_id: int | None = None,
    org_id: int | None = None,
    name: str = "测试员",
    password: str = "s3cret",
) -> int:
    """A new staff member of this role and scope who can sign in on the page form; their id."""
    conn = await asyncpg.connect(dsn)
    try:
        staff_id = await conn.fetchval(
            "INSERT INTO staff_users (email, display_name, password_hash, role, org_id, merchant_id)"
            " VALUES ($1, $2, $3, $4, $5, $6) RETURNING id",
            email, name, hash_password(password), role, org_id, merchant_id,
        )  # fmt: skip
    finally:
        await conn.close()
    return staff_id  # type: ignore[no-any-return]


async def sign_in_staff(client: AsyncTestClient, email: str, password: str = "s3cret") -> str:
    """Sign in on the staff form with a fresh cookie jar; where the sign-in sends them."""
    client.cookies.clear()
    response = await client.post("/login", data={"email": email, "password": password}, follow_redirects=False)
    assert response.status_code == 303, response.text
    return response.headers["location"]


async def add_benefit(
    conn: asyncpg.Connection, code: str, kind: str, *, review_levels: dict[str, str] | None = None, **columns: Any
) -> int:
    """A catalog row (columns of `benefits`; zh/en names default from the code) and its review levels
    ({"2026-01-01": "district", "2026-10-01": "town"}); the benefit's id."""
    values: dict[str, Any] = {"name_zh": f"福利{code}", "name_en": f"Benefit {code}", **columns}
    names = ", ".join(["code", "kind", *values])
    marks = ", ".join(f"${i}" for i in range(1, len(values) + 3))
    benefit_id = await conn.fetchval(
        f"INSERT INTO benefits ({names}) VALUES ({marks}) RETURNING id", code, kind, *values.values()
    )
    for effective_from, org_kind in (review_levels or {}).items():
        await conn.execute(
            "INSERT INTO benefit_review_levels (benefit_id, effective_from, org_kind) VALUES ($1, $2, $3)",
            benefit_id, date.fromisoformat(effective_from), org_kind,
        )  # fmt: skip
    return benefit_id  # type: ignore[no-any-return]
