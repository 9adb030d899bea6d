"""Health checks: the year's places, a town's share and a slot's capacity hold under concurrent bookings; a
hold runs out by itself; cancel and no-show free a place, attendance keeps it; one live booking a year."""

from __future__ import annotations

import asyncio
import random
import re
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import asyncpg
import pytest

from cards import health_check_admin, health_check_figures, health_check_staff, health_checks, member_auth
from cards.health_check_admin import ClinicIn, TownShareIn, YearIn
from tests.factories import World, add_benefit, add_card, add_staff_login, make_world, sign_in_staff, staff_token
from unioncard.auth import SESSION_COOKIE, Principal, Role
from unioncard.demo.health_checks import load_health_checks
from unioncard.errors import DomainError
from unioncard.settings import Settings

NOW = datetime(2026, 11, 29, 1, 0, tzinfo=UTC)  # 09:00 in Shanghai
SLOT_AT = datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai, two days on
HOLD_S = Settings().health_check_hold_s
TIMEZONE = "Asia/Shanghai"


@dataclass
class Checks:
    benefit_id: int
    clinic_id: int
    org_ids: dict[str, int]
    admin: Principal


def hold(conn: asyncpg.Connection, member_id: int, slot_id: int, now: datetime):  # type: ignore[no-untyped-def]
    return health_checks.hold(conn, member_id, slot_id, now, hold_s=HOLD_S, timezone=TIMEZONE)


def mark(conn: asyncpg.Connection, principal: Principal, booking_id: int, outcome: str, now: datetime):  # type: ignore[no-untyped-def]
    return health_check_staff.mark(conn, principal, booking_id, outcome, now, TIMEZONE)


def view_of(conn: asyncpg.Connection, member_id: int, now: datetime):  # type: ignore[no-untyped-def]
    return health_check_figures.member_view(conn, member_id, now, timezone=TIMEZONE, hold_s=HOLD_S)


async def setup(client, dsn: str, conn: asyncpg.Connection, quota: int = 20, **benefit: object) -> Checks:
    """The district of make_world, a health-check benefit with `quota` places, a clinic in east and an admin."""
    world = await make_world(client, dsn)
    benefit_id = await add_benefit(conn, "health_check", "health_check", yearly_quota=quota, **benefit)
    staff_id = await add_staff_login(dsn, "clinic-admin@test", "federation_admin")
    admin = Principal(role=Role.FEDERATION_ADMIN, staff_user_id=staff_id)
    clinic = ClinicIn(name="东镇社区卫生服务中心", org_id=world.org_ids["east"], address="东镇解放路1号",
                      latitude=30.25, longitude=120.16)  # fmt: skip
    clinic_id = (await health_check_admin.add_clinic(conn, admin, clinic))["id"]
    return Checks(benefit_id, clinic_id, world.org_ids, admin)


async def members(conn: asyncpg.Connection, org_id: int, count: int) -> list[int]:
    rows = await conn.fetch(
        "INSERT INTO members (org_id, name, national_id_hash, national_id_last4, joined_on)"
        " SELECT $1::bigint, '会员' || g, decode(md5($1::bigint || '-' || g || '-' || random()), 'hex'), '1234',"
        " '2020-01-01'"
        " FROM generate_series(1, $2) g RETURNING id",
        org_id, count,
    )  # fmt: skip
    return [row["id"] for row in rows]


async def slot(conn: asyncpg.Connection, checks: Checks, capacity: int, at: datetime = SLOT_AT) -> int:
    """An hour's slot at exactly `at` (the admin API adds slots at whole local hours)."""
    return await conn.fetchval(  # type: ignore[no-any-return]
        "INSERT INTO health_check_slots (clinic_id, benefit_id, year, starts_at, ends_at, capacity)"
        " VALUES ($1, $2, extract(year FROM $3::timestamptz AT TIME ZONE till_local_tz())::integer, $3, $4, $5)"
        " RETURNING id",
        checks.clinic_id, checks.benefit_id, at, at + timedelta(hours=1), capacity,
    )  # fmt: skip


async def live_count(conn: asyncpg.Connection, where: str = "true") -> int:
    return await conn.fetchval(  # type: ignore[no-any-return]
        f"SELECT count(*) FROM health_check_bookings WHERE status IN ('held', 'booked', 'attended') AND {where}"
    )


async def concurrent_holds(dsn: str, pairs: list[tuple[int, int]], now: datetime = NOW) -> Counter[str]:
    """Each (member, slot) holds on its own connection, all at once; the outcome codes counted."""
    connections = [await asyncpg.connect(dsn) for _ in pairs]
    start = asyncio.Event()

    async def one(conn: asyncpg.Connection, member_id: int, slot_id: int) -> str:
        await start.wait()
        try:
            await hold(conn, member_id, slot_id, now)
        except DomainError as error:
            return error.code
        return "held"

    try:
        tasks = [asyncio.create_task(one(c, m, s)) for c, (m, s) in zip(connections, pairs, strict=True)]
        await asyncio.sleep(0.05)
        start.set()
        return Counter(await asyncio.gather(*tasks))
    finally:
        for connection in connections:
            await connection.close()


async def code_of(step: object) -> str:
    try:
        await step  # type: ignore[misc]
    except DomainError as error:
        return error.code
    return "ok"


# ------------------------------------------------------------------ the quota under concurrency


async def test_quota_20_with_50_concurrent_bookings_books_exactly_20(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=20)
    slots = [await slot(conn, checks, 10, SLOT_AT + timedelta(hours=h)) for h in range(5)]
    people = await members(conn, checks.org_ids["east"], 50)
    outcome = await concurrent_holds(dsn, [(m, slots[i % 5]) for i, m in enumerate(people)])
    assert outcome == {"held": 20, "health_check_quota_full": 30}
    assert await live_count(conn) == 20
    per_slot = await conn.fetch("SELECT slot_id, count(*) AS n FROM health_check_bookings GROUP BY slot_id")
    assert all(row["n"] <= 10 for row in per_slot)

    # Confirming them all keeps the count; the 21st member is still refused.
    booked = await conn.fetch("SELECT id, member_id FROM health_check_bookings")
    for row in booked:
        await health_checks.confirm(conn, row["member_id"], row["id"], NOW + timedelta(minutes=1))
    late = await members(conn, checks.org_ids["west"], 1)
    assert await code_of(hold(conn, late[0], slots[0], NOW + timedelta(hours=1))) == "health_check_quota_full"
    figures = await health_check_figures.year_figures(
        conn, checks.admin, "health_check", 2026, NOW + timedelta(hours=1)
    )
    assert (figures.places, figures.booked, figures.left) == (20, 20, 0)


async def test_a_towns_share_holds_under_concurrency(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=100)
    east_share = YearIn(places=100, towns=[TownShareIn(town_id=checks.org_ids["east"], places=5)])
    await health_check_admin.set_year(conn, checks.admin, 2026, east_share, NOW)
    slot_id = await slot(conn, checks, 50)
    # A member of a village under east counts against east's share.
    village = await conn.fetchval(
        "INSERT INTO orgs (parent_id, kind, name) VALUES ($1, 'village', '东村') RETURNING id", checks.org_ids["east"]
    )
    east = await members(conn, checks.org_ids["east"], 10) + await members(conn, village, 10)
    west = await members(conn, checks.org_ids["west"], 10)
    outcome = await concurrent_holds(dsn, [(m, slot_id) for m in east + west])
    assert outcome == {"held": 15, "health_check_town_quota_full": 15}
    assert await live_count(conn, f"town_id = {checks.org_ids['east']}") == 5
    assert await live_count(conn, f"town_id = {checks.org_ids['west']}") == 10
    with pytest.raises(DomainError) as refused:
        await health_check_admin.set_year(conn, checks.admin, 2026, YearIn(places=100, towns=[
            TownShareIn(town_id=village, places=3)]), NOW)  # fmt: skip
    assert refused.value.code == "health_check_not_a_town"


async def test_a_slots_capacity_holds_under_concurrency(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=100)
    small = await slot(conn, checks, 3)
    people = await members(conn, checks.org_ids["west"], 12)
    outcome = await concurrent_holds(dsn, [(m, small) for m in people])
    assert outcome == {"held": 3, "health_check_slot_full": 9}


async def test_one_member_holding_many_slots_at_once_gets_one(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=100)
    slots = [await slot(conn, checks, 5, SLOT_AT + timedelta(hours=h)) for h in range(6)]
    (member,) = await members(conn, checks.org_ids["east"], 1)
    outcome = await concurrent_holds(dsn, [(member, s) for s in slots])
    assert outcome == {"held": 1, "health_check_already_booked": 5}


# ------------------------------------------------------------------ holds, cancellations and attendance


async def test_a_hold_that_runs_out_frees_its_slot_and_cannot_be_confirmed(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=1)
    only = await slot(conn, checks, 1)
    first, second = await members(conn, checks.org_ids["east"], 2)
    held = await hold(conn, first, only, NOW)
    assert held.status == "held" and held.seconds_left == HOLD_S
    assert await code_of(hold(conn, second, only, NOW + timedelta(minutes=9))) == "health_check_quota_full"

    # Once the hold has run out, no sweep is needed: the place counts as free at once.
    later = NOW + timedelta(seconds=HOLD_S + 1)
    view = await view_of(conn, second, later)
    assert view.places.year_left == 1 and view.clinics[0].slots[0].free == 1
    assert (await health_checks.booking_of(conn, held.id, later)).status == "expired"
    taken = await hold(conn, second, only, later)
    assert await code_of(health_checks.confirm(conn, first, held.id, later)) == "health_check_hold_expired"
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", held.id) == "expired"
    confirmed = await health_checks.confirm(conn, second, taken.id, later + timedelta(minutes=1))
    assert confirmed.status == "booked"


async def test_the_sweep_marks_run_out_holds_and_a_member_may_hold_again(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn)
    one, two = await slot(conn, checks, 2), await slot(conn, checks, 2, SLOT_AT + timedelta(hours=1))
    (member,) = await members(conn, checks.org_ids["east"], 1)
    first = await hold(conn, member, one, NOW)
    assert await health_checks.sweep_expired(conn, NOW + timedelta(minutes=5)) == 0
    assert await health_checks.sweep_expired(conn, NOW + timedelta(minutes=11)) == 1
    second = await hold(conn, member, two, NOW + timedelta(minutes=20))
    assert await code_of(hold(conn, member, one, NOW + timedelta(minutes=25))) == "health_check_already_booked"
    # The member's own run-out hold, not swept, does not stop them holding again: a hold sweeps its year.
    third = await hold(conn, member, one, NOW + timedelta(minutes=40))
    statuses = dict(await conn.fetch("SELECT id, status FROM health_check_bookings"))
    assert statuses == {first.id: "expired", second.id: "expired", third.id: "held"}


async def test_a_hold_never_outlasts_the_slots_start(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn)
    soon = await slot(conn, checks, 2, NOW + timedelta(minutes=4))
    (member,) = await members(conn, checks.org_ids["east"], 1)
    held = await hold(conn, member, soon, NOW)
    assert held.held_until == NOW + timedelta(minutes=4)
    assert (
        await code_of(health_checks.confirm(conn, member, held.id, NOW + timedelta(minutes=5)))
        == "health_check_hold_expired"
    )
    assert await code_of(hold(conn, member, soon, NOW + timedelta(minutes=5))) == "health_check_slot_closed"


async def test_cancel_and_no_show_free_the_place_and_attendance_keeps_it(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=2)
    day = await slot(conn, checks, 5)
    a, b, c, d, e = await members(conn, checks.org_ids["east"], 5)
    booking = {}
    for member in (a, b):
        held = await hold(conn, member, day, NOW)
        booking[member] = await health_checks.confirm(conn, member, held.id, NOW)
    assert await code_of(hold(conn, c, day, NOW)) == "health_check_quota_full"

    cancelled = await health_checks.cancel(conn, a, booking[a].id, NOW + timedelta(hours=1))
    assert cancelled.status == "cancelled"
    booking[c] = await hold(conn, c, day, NOW + timedelta(hours=1))
    await health_checks.confirm(conn, c, booking[c].id, NOW + timedelta(hours=1))
    assert await code_of(hold(conn, d, day, NOW + timedelta(hours=1))) == "health_check_quota_full"

    # The clinic marks on the slot's day, not before.
    on_the_day = SLOT_AT + timedelta(hours=2)
    early = mark(conn, checks.admin, booking[b].id, "no_show", NOW + timedelta(hours=2))
    assert await code_of(early) == "health_check_not_markable"
    assert (await mark(conn, checks.admin, booking[b].id, "no_show", on_the_day)).status == "no_show"
    assert (await mark(conn, checks.admin, booking[c].id, "attended", on_the_day)).status == "attended"
    # Marked twice alike changes nothing; another outcome afterwards is refused.
    await mark(conn, checks.admin, booking[c].id, "attended", on_the_day)
    again = mark(conn, checks.admin, booking[c].id, "no_show", on_the_day)
    assert await code_of(again) == "health_check_not_markable"
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM audit_log WHERE action IN ('health_check.attended', 'health_check.no_show')"
        )
        == 2
    )
    marked_by = await conn.fetchval("SELECT marked_by FROM health_check_bookings WHERE id = $1", booking[c].id)
    assert marked_by == checks.admin.staff_user_id

    # The no-show freed one place (d takes it); the attendance still holds one (e is refused).
    later_slot = await slot(conn, checks, 5, SLOT_AT + timedelta(days=1))
    await hold(conn, d, later_slot, on_the_day)
    assert await code_of(hold(conn, e, later_slot, on_the_day)) == "health_check_quota_full"
    # Attended or past its start, a booking can no longer be cancelled.
    assert await code_of(health_checks.cancel(conn, c, booking[c].id, on_the_day)) == "health_check_not_cancellable"


async def test_one_live_booking_per_member_and_year(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn)
    one, two = await slot(conn, checks, 5), await slot(conn, checks, 5, SLOT_AT + timedelta(days=2))
    (member,) = await members(conn, checks.org_ids["east"], 1)
    first = await hold(conn, member, one, NOW)
    assert await code_of(hold(conn, member, two, NOW)) == "health_check_already_booked"
    await health_checks.confirm(conn, member, first.id, NOW)
    assert await code_of(hold(conn, member, two, NOW)) == "health_check_already_booked"
    await health_checks.cancel(conn, member, first.id, NOW)
    second = await hold(conn, member, two, NOW)
    await health_checks.confirm(conn, member, second.id, NOW)
    await mark(conn, checks.admin, second.id, "attended", SLOT_AT + timedelta(days=2, hours=1))
    assert await code_of(hold(conn, member, one, NOW)) == "health_check_already_booked"
    # The database refuses a second live row whatever the code does.
    with pytest.raises(asyncpg.UniqueViolationError):
        await conn.execute(
            "INSERT INTO health_check_bookings (member_id, benefit_id, year, slot_id, status, held_at, held_until)"
            " VALUES ($1, $2, 2026, $3, 'held', $4, $5)",
            member, checks.benefit_id, one, NOW, NOW + timedelta(minutes=10),
        )  # fmt: skip


async def test_only_the_member_moves_their_booking_and_only_clinic_staff_of_its_subtree_mark_it(
    client, dsn, conn
) -> None:
    checks = await setup(client, dsn, conn)
    day = await slot(conn, checks, 5)
    mine, other = await members(conn, checks.org_ids["east"], 2)
    held = await hold(conn, mine, day, NOW)
    assert await code_of(health_checks.confirm(conn, other, held.id, NOW)) == "health_check_booking_not_found"
    assert await code_of(health_checks.cancel(conn, other, held.id, NOW)) == "health_check_booking_not_found"
    await health_checks.confirm(conn, mine, held.id, NOW)
    west_id = await add_staff_login(dsn, "west@test", "org_reviewer", org_id=checks.org_ids["west"])
    east_id = await add_staff_login(dsn, "east@test", "org_reviewer", org_id=checks.org_ids["east"])
    paths = dict(await conn.fetch("SELECT id, path FROM orgs"))
    west = Principal(role=Role.ORG_REVIEWER, staff_user_id=west_id, org_path=paths[checks.org_ids["west"]])
    east = Principal(role=Role.ORG_REVIEWER, staff_user_id=east_id, org_path=paths[checks.org_ids["east"]])
    on_the_day = SLOT_AT + timedelta(hours=1)
    assert await code_of(mark(conn, west, held.id, "attended", on_the_day)) == "forbidden"
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", held.id) == "booked"
    assert (await mark(conn, east, held.id, "attended", on_the_day)).status == "attended"


async def test_eligibility_comes_from_the_catalog(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, eligible_tags=["劳模"])
    day = await slot(conn, checks, 5)
    (member,) = await members(conn, checks.org_ids["east"], 1)
    assert await code_of(hold(conn, member, day, NOW)) == "benefit_not_eligible"
    await conn.execute("UPDATE members SET tags = '{劳模}' WHERE id = $1", member)
    assert (await hold(conn, member, day, NOW)).status == "held"


# ------------------------------------------------------------------ the API and the pages (the real clock)


async def signed_in_member(client, dsn: str, world: World, label: str) -> str:
    """A member of east with a PIN, signed in on the client; their card's session token."""
    await add_card(client, world, label, pin="123456", joined_on="2020-01-01")
    conn = await asyncpg.connect(dsn)
    try:
        token = await member_auth.sign_in(conn, world.cards[label], "123456", datetime.now(UTC), 3600)
    finally:
        await conn.close()
    client.cookies.set(SESSION_COOKIE, token)
    return token


async def open_world(client, dsn: str, conn: asyncpg.Connection, capacity: int = 1) -> tuple[World, Checks, int]:
    world = await make_world(client, dsn)
    benefit_id = await add_benefit(
        conn, "health_check", "health_check", name_zh="免费体检", name_en="Free health check", yearly_quota=20
    )
    admin = Principal(role=Role.FEDERATION_ADMIN)
    clinic = ClinicIn(name="东镇社区卫生服务中心", org_id=world.org_ids["east"], address="解放路1号")
    clinic_id = (await health_check_admin.add_clinic(conn, admin, clinic))["id"]
    checks = Checks(benefit_id, clinic_id, world.org_ids, admin)
    at = datetime.now(UTC).replace(microsecond=0) + timedelta(days=2)
    return world, checks, await slot(conn, checks, capacity, at)


async def test_the_api_books_confirms_and_marks_within_scope(client, dsn, conn) -> None:
    world, checks, slot_id = await open_world(client, dsn, conn)
    api = "/api/benefits/v1/health-checks"
    assert (await client.get(f"{api}/slots")).status_code == 401
    await signed_in_member(client, dsn, world, "a")
    view = (await client.get(f"{api}/slots")).json()
    assert view["places"]["year_left"] == 20 and view["clinics"][0]["slots"][0] == {
        **view["clinics"][0]["slots"][0],
        "id": slot_id,
        "free": 1,
    }
    held = await client.post(f"{api}/holds", json={"slot_id": slot_id})
    assert held.status_code == 201 and held.json()["status"] == "held" and held.json()["seconds_left"] == HOLD_S
    again = await client.post(f"{api}/holds", json={"slot_id": slot_id})
    assert again.status_code == 409 and again.json()["code"] == "health_check_already_booked"
    assert again.headers["content-type"].startswith("application/problem+json")
    assert (await client.post(f"{api}/holds", json={"slot_id": "1"})).status_code == 422
    booking_id = held.json()["id"]
    confirmed = await client.post(f"{api}/bookings/{booking_id}/confirm")
    assert confirmed.status_code == 200 and confirmed.json()["status"] == "booked"
    assert [b["id"] for b in (await client.get(f"{api}/mine")).json()] == [booking_id]
    assert (await client.get(f"{api}/quota")).status_code == 403  # a member is not clinic staff

    # Someone else's member session can neither see nor move the booking.
    client.cookies.clear()
    await signed_in_member(client, dsn, world, "b")
    other = await client.post(f"{api}/bookings/{booking_id}/cancel")
    assert other.status_code == 404 and other.json()["code"] == "health_check_booking_not_found"
    full = await client.post(f"{api}/holds", json={"slot_id": slot_id})
    assert full.status_code == 409 and full.json()["code"] == "health_check_slot_full"
    client.cookies.clear()

    west = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["west"])
    refused = await client.post(f"{api}/bookings/{booking_id}/attended", headers=west)
    assert refused.status_code == 403
    early = await client.post(f"{api}/bookings/{booking_id}/attended", headers=world.admin)
    assert early.status_code == 409 and early.json()["code"] == "health_check_not_markable"
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", booking_id) == "booked"
    # The day of the slot comes: the admin (any clinic) marks it.
    await conn.execute("UPDATE health_check_slots SET starts_at = now() - interval '2 hours',"
                       " ends_at = now() - interval '1 hour' WHERE id = $1", slot_id)  # fmt: skip
    east = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["east"])
    marked = await client.post(f"{api}/bookings/{booking_id}/attended", headers=east)
    assert marked.status_code == 200 and marked.json()["status"] == "attended"
    quota = (await client.get(f"{api}/quota", headers=world.admin)).json()
    assert (quota["places"], quota["attended"], quota["left"]) == (20, 1, 19)


async def test_the_member_page_holds_confirms_and_cancels(client, dsn, conn) -> None:
    world, checks, slot_id = await open_world(client, dsn, conn)
    response = await client.get("/me/health-checks", follow_redirects=False)
    assert response.status_code == 303 and response.headers["location"] == "/me/login"
    await signed_in_member(client, dsn, world, "a")
    shown = await client.get("/me/health-checks")
    assert shown.status_code == 200 and "东镇社区卫生服务中心" in shown.text and "余 1" in shown.text
    assert "Places left this year" in (await client.get("/me/health-checks?lang=en")).text
    held = await client.post("/me/health-checks/hold", data={"slot_id": str(slot_id)}, follow_redirects=False)
    assert held.status_code == 303
    page_text = (await client.get("/me/health-checks?lang=zh-CN")).text
    assert "data-hc-countdown" in page_text and "确认预约" in page_text
    booking_id = await conn.fetchval("SELECT id FROM health_check_bookings")
    done = await client.post(f"/me/health-checks/{booking_id}/confirm", follow_redirects=False)
    assert done.headers["location"] == "/me/health-checks?done=booked"
    assert "预约成功" in (await client.get(done.headers["location"])).text

    client.cookies.clear()
    await signed_in_member(client, dsn, world, "b")
    full = await client.post("/me/health-checks/hold", data={"slot_id": str(slot_id)})
    assert full.status_code == 409 and "该时段已约满" in full.text
    client.cookies.clear()
    await signed_in_member(client, dsn, world, "c")  # a fresh session for 张a's card is not needed: use c's
    cancel_other = await client.post(f"/me/health-checks/{booking_id}/cancel")
    assert cancel_other.status_code == 404
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", booking_id) == "booked"


async def test_the_staff_page_marks_who_came(client, dsn, conn) -> None:
    world, checks, slot_id = await open_world(client, dsn, conn, capacity=3)
    await signed_in_member(client, dsn, world, "a")
    held = (await client.post("/api/benefits/v1/health-checks/holds", json={"slot_id": slot_id})).json()
    await client.post(f"/api/benefits/v1/health-checks/bookings/{held['id']}/confirm")
    day = (datetime.now(UTC) + timedelta(days=2)).astimezone(health_checks_zone()).date()
    await add_staff_login(dsn, "east@test", "org_reviewer", org_id=world.org_ids["east"])
    await sign_in_staff(client, "east@test")
    overview = await client.get("/staff/health-checks")
    assert overview.status_code == 200 and "东镇社区卫生服务中心" in overview.text
    clinic = await client.get(f"/staff/health-checks/clinics/{checks.clinic_id}?day={day}")
    assert clinic.status_code == 200 and "张a" in clinic.text
    early = await client.post(f"/staff/health-checks/bookings/{held['id']}/attended",
                              data={"clinic_id": str(checks.clinic_id), "day": str(day)})  # fmt: skip
    assert early.status_code == 409 and "不能登记" in early.text
    await conn.execute("UPDATE health_check_slots SET starts_at = now() - interval '2 hours',"
                       " ends_at = now() - interval '1 hour' WHERE id = $1", slot_id)  # fmt: skip
    marked = await client.post(f"/staff/health-checks/bookings/{held['id']}/no-show",
                               data={"clinic_id": str(checks.clinic_id), "day": str(day)},
                               follow_redirects=False)  # fmt: skip
    assert marked.status_code == 303 and "done=no_show" in marked.headers["location"]
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", held["id"]) == "no_show"
    await add_staff_login(dsn, "west@test", "org_reviewer", org_id=world.org_ids["west"])
    await sign_in_staff(client, "west@test")
    other = await client.get(f"/staff/health-checks/clinics/{checks.clinic_id}", follow_redirects=False)
    assert other.status_code == 403 and "这家体检机构不在您的范围内" in other.text and "张a" not in other.text
    assert "东镇社区卫生服务中心" not in (await client.get("/staff/health-checks")).text
    # Marking a booking of east's clinic from west: a 403 page, and nothing changed.
    await conn.execute("UPDATE health_check_bookings SET status = 'booked', closed_at = NULL, marked_by = NULL"
                       " WHERE id = $1", held["id"])  # fmt: skip
    refused = await client.post(f"/staff/health-checks/bookings/{held['id']}/attended",
                                data={"clinic_id": str(checks.clinic_id), "day": str(day)},
                                follow_redirects=False)  # fmt: skip
    assert refused.status_code == 403 and "这家体检机构不在您的范围内" in refused.text
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", held["id"]) == "booked"
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'health_check.attended'") == 0


def health_checks_zone():  # type: ignore[no-untyped-def]
    from zoneinfo import ZoneInfo

    return ZoneInfo("Asia/Shanghai")


# ------------------------------------------------------------------ each staff member's figures


async def test_a_town_reviewer_sees_only_their_towns_figures_and_the_federation_all(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=100)
    east_id, west_id = checks.org_ids["east"], checks.org_ids["west"]
    shares = YearIn(
        places=100, towns=[TownShareIn(town_id=east_id, places=30), TownShareIn(town_id=west_id, places=20)]
    )
    await health_check_admin.set_year(conn, checks.admin, 2026, shares, NOW)
    day = await slot(conn, checks, 10)
    east = await members(conn, east_id, 2)
    west = await members(conn, west_id, 3)
    for member in east + west[:2]:
        held = await hold(conn, member, day, NOW)
        await health_checks.confirm(conn, member, held.id, NOW)
    await hold(conn, west[2], day, NOW)  # a running hold of west's

    everyone = await health_check_figures.year_figures(conn, checks.admin, "health_check", 2026, NOW)
    assert (everyone.whole_year, everyone.places, everyone.left) == (True, 100, 95)
    assert (everyone.booked, everyone.held) == (4, 1)
    assert [(t.town_id, t.places, t.live, t.left) for t in everyone.towns] == [
        (east_id, 30, 2, 28),
        (west_id, 20, 3, 17),
    ]

    paths = dict(await conn.fetch("SELECT id, path FROM orgs"))
    reviewer = Principal(role=Role.ORG_REVIEWER, org_id=east_id, org_path=paths[east_id])
    mine = await health_check_figures.year_figures(conn, reviewer, "health_check", 2026, NOW)
    assert (mine.whole_year, mine.places, mine.left, mine.booked, mine.held) == (False, 30, 28, 2, 0)
    assert [t.town_id for t in mine.towns] == [east_id]

    # The API: a town reviewer gets their town's figures, the federation admin the year's.
    api = "/api/benefits/v1/health-checks/quota?year=2026"
    east_token = await staff_token(dsn, "org_reviewer", org_id=east_id)
    west_quota = (await client.get(api, headers=await staff_token(dsn, "org_reviewer", org_id=west_id))).json()
    # (The API goes by the real clock, by which west's hold made at NOW has run out.)
    assert (west_quota["places"], west_quota["booked"], west_quota["expired"]) == (20, 2, 1)
    assert [t["town_id"] for t in west_quota["towns"]] == [west_id]
    assert (await client.get(api, headers=east_token)).json()["booked"] == 2
    # A reviewer of a town without a share: their members' bookings, no places of their own.
    north = await conn.fetchval(
        "INSERT INTO orgs (parent_id, kind, name) VALUES ($1, 'town', '北镇') RETURNING id", checks.org_ids["district"]
    )
    north_quota = (await client.get(api, headers=await staff_token(dsn, "org_reviewer", org_id=north))).json()
    assert (north_quota["places"], north_quota["left"], north_quota["booked"], north_quota["towns"]) == (
        None, None, 0, [],
    )  # fmt: skip

    # The staff page: east's reviewer reads east's share and counts, not the district's.
    await add_staff_login(dsn, "east@test", "org_reviewer", org_id=east_id)
    await sign_in_staff(client, "east@test")
    shown = await client.get("/staff/health-checks")
    assert shown.status_code == 200 and "本辖区分配名额" in shown.text and "west镇" not in shown.text
    assert re.search(r'data-testid="hc-places">30<', shown.text) and re.search(r'data-testid="hc-left">28<', shown.text)


# ------------------------------------------------------------------ odd input, the hold's setting


async def test_odd_numbers_in_forms_and_queries_never_give_a_500(client, dsn, conn) -> None:
    world, checks, slot_id = await open_world(client, dsn, conn)
    await signed_in_member(client, dsn, world, "a")
    for typed in ("²", "abc", "１２", "99999999999999999999", ""):
        held = await client.post("/me/health-checks/hold", data={"slot_id": typed})
        assert held.status_code == 404 and "没有这个体检时段" in held.text, typed
    for path in ("²", "99999999999999999999"):
        answer = await client.post(f"/me/health-checks/{path}/confirm")
        assert answer.status_code < 500, path
        api = await client.post(f"/api/benefits/v1/health-checks/bookings/{path}/cancel")
        assert api.status_code < 500, path
    assert await conn.fetchval("SELECT count(*) FROM health_check_bookings") == 0
    client.cookies.clear()
    for query in ("year=²", "year=abc", "year=1"):
        answer = await client.get(f"/api/benefits/v1/health-checks/quota?{query}", headers=world.admin)
        assert answer.status_code == 422 and answer.json()["code"] == "malformed_request", query
    await add_staff_login(dsn, "east@test", "org_reviewer", org_id=world.org_ids["east"])
    await sign_in_staff(client, "east@test")
    for typed in ("²", "abc"):
        marked = await client.post("/staff/health-checks/bookings/1/attended", data={"clinic_id": typed, "day": "x"})
        assert marked.status_code == 404, typed  # no such booking, said on a page
    for day in ("0001-01-01", "9999-12-31", "２０２６-01-01", "²"):
        shown = await client.get(f"/staff/health-checks/clinics/{checks.clinic_id}?day={day}")
        assert shown.status_code == 200, day


async def test_the_hold_lasts_as_the_settings_say(dsn, conn) -> None:
    from litestar.testing import AsyncTestClient

    from unioncard.app import create_app
    from unioncard.settings import load_settings

    assert load_settings({"UNIONCARD_HEALTH_CHECK_HOLD_S": "90"}).health_check_hold_s == 90
    settings = Settings(secret_key="test-secret", terminal_cache_ttl_s=0.0, health_check_hold_s=90)
    async with AsyncTestClient(app=create_app(settings, dsn=dsn)) as client:
        world, _, slot_id = await open_world(client, dsn, conn)
        await signed_in_member(client, dsn, world, "a")
        held = (await client.post("/api/benefits/v1/health-checks/holds", json={"slot_id": slot_id})).json()
        assert 89 <= held["seconds_left"] <= 90
        assert "90 秒" in (await client.get("/me/health-checks?lang=zh-CN")).text


# ------------------------------------------------------------------ the admin API


async def admin_world(client, dsn: str, conn: asyncpg.Connection) -> tuple[World, int]:
    world = await make_world(client, dsn)
    benefit_id = await add_benefit(conn, "health_check", "health_check", yearly_quota=50)
    return world, benefit_id


async def unchanged(conn: asyncpg.Connection) -> tuple[object, ...]:
    """What the admin API writes, to show a refusal changed nothing."""
    return (
        tuple(await conn.fetch("SELECT benefit_id, year, places FROM health_check_years ORDER BY 1, 2")),
        tuple(await conn.fetch("SELECT town_id, places FROM health_check_town_quotas ORDER BY 1")),
        await conn.fetchval("SELECT count(*) FROM health_check_clinics"),
        await conn.fetchval("SELECT count(*) FROM health_check_slots"),
        await conn.fetchval("SELECT count(*) FROM audit_log"),
    )


def problem(answer, status: int, code: str) -> None:  # type: ignore[no-untyped-def]
    assert answer.status_code == status, answer.text
    assert answer.headers["content-type"].startswith("application/problem+json")
    assert answer.json()["code"] == code, answer.text


async def test_the_admin_sets_a_years_places_and_the_towns_shares(client, dsn, conn) -> None:
    world, _ = await admin_world(client, dsn, conn)
    east, west, district = world.org_ids["east"], world.org_ids["west"], world.org_ids["district"]
    api = "/api/admin/v1/health-checks/years/2026"
    body = {"places": 50, "towns": [{"town_id": east, "places": 30}, {"town_id": west, "places": 20}]}
    done = await client.post(api, json=body, headers=world.admin)
    assert done.status_code == 200, done.text
    assert (done.json()["places"], [t["places"] for t in done.json()["towns"]]) == (50, [30, 20])
    audit = await conn.fetchrow("SELECT actor, detail FROM audit_log WHERE action = 'health_check.year_set'")
    assert audit["actor"].startswith("federation_admin:") and '"places": 50' in audit["detail"]

    # Three members of east take places.
    checks = Checks(
        (await conn.fetchval("SELECT id FROM benefits")), 0, world.org_ids, Principal(role=Role.FEDERATION_ADMIN)
    )
    checks.clinic_id = (
        await health_check_admin.add_clinic(conn, checks.admin, ClinicIn(name="东镇医院", org_id=east))
    )["id"]
    day = await slot(conn, checks, 10)
    for member in await members(conn, east, 3):
        await hold(conn, member, day, datetime.now(UTC))

    before = await unchanged(conn)
    refusals = [
        ({"places": 40}, 409, "health_check_shares_over_places"),  # 30 + 20 > 40
        ({"places": 50, "towns": [{"town_id": east, "places": 31}]}, 409, "health_check_shares_over_places"),
        ({"places": 2}, 409, "health_check_places_below_used"),
        ({"places": 50, "towns": [{"town_id": east, "places": 2}]}, 409, "health_check_share_below_used"),
        ({"places": 50, "towns": [{"town_id": district, "places": 1}]}, 422, "health_check_not_a_town"),
        ({"places": 50, "towns": [{"town_id": 10**9, "places": 1}]}, 422, "health_check_not_a_town"),
        ({"places": 50, "towns": [{"town_id": west, "places": 1}, {"town_id": west, "places": 2}]}, 422,
         "validation_failed"),
        ({"places": -1}, 422, "malformed_request"),
        ({"places": "²"}, 422, "malformed_request"),
        ({"towns": []}, 422, "malformed_request"),
        ({"places": 50, "benefit": "no_such"}, 404, "benefit_not_found"),
    ]  # fmt: skip
    for refused, status, code in refusals:
        problem(await client.post(api, json=refused, headers=world.admin), status, code)
    problem(await client.post("/api/admin/v1/health-checks/years/1999", json=body, headers=world.admin), 422,
            "malformed_request")  # fmt: skip
    reviewer = await staff_token(dsn, "org_reviewer", org_id=east)
    problem(await client.post(api, json=body, headers=reviewer), 403, "forbidden")
    assert await unchanged(conn) == before

    # Lowering west's share and the year's places to what fits is fine; shares of towns not listed stay.
    lowered = await client.post(
        api, json={"places": 33, "towns": [{"town_id": west, "places": 0}]}, headers=world.admin
    )
    assert lowered.status_code == 200, lowered.text
    assert dict(await conn.fetch("SELECT town_id, places FROM health_check_town_quotas")) == {east: 30, west: 0}
    uncapped = await client.post(api, json={"places": None}, headers=world.admin)
    assert uncapped.status_code == 200 and uncapped.json()["places"] is None


async def test_a_share_set_while_members_book_never_falls_below_their_places(client, dsn, conn) -> None:
    checks = await setup(client, dsn, conn, quota=100)
    east = checks.org_ids["east"]
    await health_check_admin.set_year(conn, checks.admin, 2026, YearIn(places=100, towns=[
        TownShareIn(town_id=east, places=40)]), NOW)  # fmt: skip
    day = await slot(conn, checks, 50)
    people = await members(conn, east, 20)
    admin_conn = await asyncpg.connect(dsn)
    try:
        lowered = asyncio.create_task(code_of(health_check_admin.set_year(admin_conn, checks.admin, 2026, YearIn(
            places=100, towns=[TownShareIn(town_id=east, places=10)]), NOW)))  # fmt: skip
        outcome = await concurrent_holds(dsn, [(m, day) for m in people])
        refused = await lowered
    finally:
        await admin_conn.close()
    share = await conn.fetchval("SELECT places FROM health_check_town_quotas WHERE town_id = $1", east)
    assert await live_count(conn) <= share
    assert (refused, share, outcome["held"]) in {("ok", 10, 10), ("health_check_share_below_used", 40, 20)}


async def test_the_admin_adds_a_clinic(client, dsn, conn) -> None:
    world, _ = await admin_world(client, dsn, conn)
    api = "/api/admin/v1/health-checks/clinics"
    body = {"name": "西镇卫生院", "org_id": world.org_ids["west"], "address": "西镇人民路2号", "latitude": 30.2,
            "longitude": 120.1}  # fmt: skip
    before = await unchanged(conn)
    for refused, status, code in [
        ({**body, "org_id": 10**9}, 404, "not_found"),
        ({**body, "longitude": None}, 422, "validation_failed"),
        ({**body, "name": ""}, 422, "malformed_request"),
        ({**body, "latitude": 91}, 422, "malformed_request"),
        ({**body, "colour": "red"}, 422, "malformed_request"),
    ]:
        problem(await client.post(api, json=refused, headers=world.admin), status, code)
    reviewer = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["west"])
    problem(await client.post(api, json=body, headers=reviewer), 403, "forbidden")
    assert await unchanged(conn) == before
    added = await client.post(api, json=body, headers=world.admin)
    assert added.status_code == 201, added.text
    assert (added.json()["name"], added.json()["org_id"], added.json()["status"]) == (
        "西镇卫生院",
        world.org_ids["west"],
        "active",
    )
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'health_check.clinic_add'") == 1
    paths = (await client.get("/schema/openapi.json")).json()["paths"]
    assert {"/api/admin/v1/health-checks/years/{year}", "/api/admin/v1/health-checks/clinics",
            "/api/admin/v1/health-checks/clinics/{clinic_id}/slots"} <= set(paths)  # fmt: skip


async def test_the_admin_adds_slots_in_bulk_once(client, dsn, conn) -> None:
    world, benefit_id = await admin_world(client, dsn, conn)
    admin = Principal(role=Role.FEDERATION_ADMIN)
    clinic = await health_check_admin.add_clinic(conn, admin, ClinicIn(name="东镇医院", org_id=world.org_ids["east"]))
    api = f"/api/admin/v1/health-checks/clinics/{clinic['id']}/slots"
    # 1 Dec 2026 is a Tuesday: Tue to Fri, then Monday 7 Dec: 5 weekdays × 3 hours.
    body = {"first_day": "2026-12-01", "last_day": "2026-12-07", "hours": [8, 9, 10], "capacity": 5}
    first = await client.post(api, json=body, headers=world.admin)
    assert first.status_code == 200 and (first.json()["created"], first.json()["existing"]) == (15, 0), first.text
    again = await client.post(api, json=body, headers=world.admin)
    assert (again.json()["created"], again.json()["existing"]) == (0, 15)
    more = await client.post(
        api, json={**body, "first_day": "2026-12-07", "last_day": "2026-12-08"}, headers=world.admin
    )
    assert (more.json()["created"], more.json()["existing"]) == (3, 3)
    rows = await conn.fetch("SELECT starts_at, ends_at, capacity, year FROM health_check_slots ORDER BY starts_at")
    assert len(rows) == 18 and {r["capacity"] for r in rows} == {5} and {r["year"] for r in rows} == {2026}
    assert rows[0]["starts_at"] == datetime(2026, 12, 1, 0, 0, tzinfo=UTC)  # 08:00 in Shanghai
    assert rows[0]["ends_at"] - rows[0]["starts_at"] == timedelta(hours=1)
    assert await conn.fetchval("SELECT count(*) FROM audit_log WHERE action = 'health_check.slots_add'") == 3

    before = await unchanged(conn)
    for refused, status, code in [
        ({**body, "last_day": "2026-11-30"}, 422, "validation_failed"),
        ({**body, "last_day": "2028-01-01"}, 422, "validation_failed"),
        ({**body, "hours": [8, 8]}, 422, "validation_failed"),
        ({**body, "hours": [8, 9], "minutes": 90}, 422, "validation_failed"),
        ({**body, "hours": [24]}, 422, "malformed_request"),
        ({**body, "hours": []}, 422, "malformed_request"),
        ({**body, "capacity": 0}, 422, "malformed_request"),
        ({**body, "weekdays": [0]}, 422, "malformed_request"),
        ({**body, "first_day": "²"}, 422, "malformed_request"),
        ({**body, "first_day": "1999-12-31", "last_day": "2000-01-01"}, 422, "validation_failed"),
        ({**body, "benefit": "no_such"}, 404, "benefit_not_found"),
    ]:
        problem(await client.post(api, json=refused, headers=world.admin), status, code)
    problem(await client.post("/api/admin/v1/health-checks/clinics/999999/slots", json=body, headers=world.admin),
            404, "health_check_clinic_not_found")  # fmt: skip
    assert await unchanged(conn) == before

    # A member books a slot the API made.
    (member,) = await members(conn, world.org_ids["east"], 1)
    coming = await conn.fetchval("SELECT id FROM health_check_slots ORDER BY starts_at LIMIT 1")
    assert (await hold(conn, member, coming, datetime(2026, 11, 29, 1, tzinfo=UTC))).status == "held"
    assert benefit_id == await conn.fetchval("SELECT DISTINCT benefit_id FROM health_check_slots")


# ------------------------------------------------------------------ the demo's bookings


async def test_the_demo_loader_fills_a_tiny_district_at_the_designs_shares(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    for town, count in (("east", 30), ("west", 10)):
        await members(conn, world.org_ids[town], count)
    await add_benefit(conn, "health_check", "health_check", yearly_quota=20, membership_months_min=6)
    today = date(2026, 11, 29)
    figures = await load_health_checks(conn, random.Random(7), today)
    assert figures == {"year": 2026, "quota": 20, "town_quotas": 2, "clinics": 8, "slots": 8 * 261 * 4,
                       "attended": 15, "booked": 1, "no_show": 1, "cancelled": 1, "expired": 0,
                       "places_left": 4}  # fmt: skip
    statuses = dict(await conn.fetch("SELECT status, count(*) FROM health_check_bookings GROUP BY status"))
    assert statuses == {"attended": 15, "booked": 1, "no_show": 1, "cancelled": 1}
    shares = dict(await conn.fetch("SELECT town_id, places FROM health_check_town_quotas"))
    assert shares == {world.org_ids["east"]: 15, world.org_ids["west"]: 5}
    # No slot over capacity, no town over its share, nobody booked twice, each in its right time.
    over = await conn.fetchval(
        "SELECT count(*) FROM (SELECT s.id FROM health_check_slots s JOIN health_check_bookings k ON k.slot_id = s.id"
        " AND k.status IN ('booked', 'attended', 'no_show') GROUP BY s.id, s.capacity HAVING count(*) > s.capacity) x"
    )
    assert over == 0
    for town_id, places in shares.items():
        assert await live_count(conn, f"town_id = {town_id}") <= places
    start = datetime(2026, 11, 28, 16, 0, tzinfo=UTC)  # the demo's today began in Shanghai
    wrong_time = await conn.fetchval(
        "SELECT count(*) FROM health_check_bookings k JOIN health_check_slots s ON s.id = k.slot_id"
        " WHERE k.held_at >= $1 OR (k.status IN ('attended', 'no_show') AND s.starts_at >= $1)"
        " OR (k.status = 'booked' AND s.starts_at < $1)", start,
    )  # fmt: skip
    assert wrong_time == 0
    # The service agrees with the loader, and books on top of it.
    admin = Principal(role=Role.FEDERATION_ADMIN)
    year = await health_check_figures.year_figures(conn, admin, "health_check", 2026, start)
    assert (year.attended, year.booked, year.no_show, year.left) == (15, 1, 1, 4)
    newcomer = await conn.fetchval(
        "SELECT m.id FROM members m WHERE m.org_id = $1 AND NOT EXISTS"
        " (SELECT FROM health_check_bookings k WHERE k.member_id = m.id) LIMIT 1", world.org_ids["east"],
    )  # fmt: skip
    coming = await conn.fetchval("SELECT id FROM health_check_slots WHERE starts_at > $1 ORDER BY starts_at LIMIT 1",
                                 start + timedelta(days=1))  # fmt: skip
    assert (await hold(conn, newcomer, coming, start)).status == "held"


# ------------------------------------------------------------------ in Chromium, on a phone

SHOTS_DIR = "/tmp/shots/health_checks"
BROWSER_HOLD_S = 6  # the server's hold, short so the test watches one run out


@pytest.fixture
def short_holds(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("UNIONCARD_HEALTH_CHECK_HOLD_S", str(BROWSER_HOLD_S))


@pytest.fixture
async def demo_district(client, dsn: str, conn: asyncpg.Connection) -> World:
    """张a of east with a PIN, 60 more members, the demo's clinics, slots and bookings for the local year."""
    world = await make_world(client, dsn)
    for town, count in (("east", 40), ("west", 20)):
        await members(conn, world.org_ids[town], count)
    await add_benefit(
        conn, "health_check", "health_check", name_zh="免费体检", name_en="Free health check",
        summary_zh="每年一次免费体检。", summary_en="A free health check once a year.",
        yearly_quota=20_000, membership_months_min=6, per_year_max=1,
    )  # fmt: skip
    today = datetime.now(health_checks_zone()).date()
    await load_health_checks(conn, random.Random(3), today)
    await add_card(client, world, "a", pin="123456", joined_on="2019-03-01")  # after: the demo has not booked 张a
    await conn.execute("UPDATE health_check_clinics SET name = replace(name, 'east镇', '东镇')")
    await add_staff_login(dsn, "admin@clinic", "federation_admin", name="区总工会管理员")
    await add_staff_login(dsn, "west@clinic", "org_reviewer", org_id=world.org_ids["west"], name="西镇审核员")
    return world


@pytest.mark.browser
async def test_a_member_books_on_a_phone_and_the_clinic_marks_it(
    short_holds: None, base_url: str, demo_district: World, conn: asyncpg.Connection, shots
) -> None:
    from playwright.async_api import expect

    from tests.browser import PHONE, TABLET_PORTRAIT, new_page

    world = demo_district
    phone = {"is_mobile": True, "has_touch": True, "device_scale_factor": 2}
    async with new_page(base_url, PHONE, accept_dialogs=True, **phone) as page:
        await page.goto("/me/login")
        await page.get_by_label("卡号").fill(world.cards["a"])
        await page.get_by_label("密码").fill("123456")
        await page.get_by_role("button", name="登录").click()
        await page.goto("/me/health-checks")
        await expect(page.get_by_test_id("hc-year-left")).to_have_text(re.compile(r"^\d{2},\d{3}$"))
        await page.screenshot(path=shots / "01-slots.png", full_page=True)

        # A hold counts down from the server's seconds; when it runs out, the confirm button goes grey.
        await page.get_by_test_id("hc-slot").first.click()
        await expect(page.get_by_test_id("hc-booking")).to_have_attribute("data-status", "held")
        await page.screenshot(path=shots / "02-held.png")
        await expect(page.get_by_test_id("hc-confirm")).to_be_disabled(timeout=(BROWSER_HOLD_S + 3) * 1000)
        await expect(page.get_by_text("保留时间已过")).to_be_visible()
        await page.screenshot(path=shots / "03-hold-ran-out.png")
        await page.get_by_role("link", name="重新选择").click()

        await page.get_by_test_id("hc-slot").first.click()
        await page.get_by_test_id("hc-confirm").click()
        await expect(page.get_by_text("预约成功！")).to_be_visible()
        await expect(page.get_by_test_id("hc-booking")).to_have_attribute("data-status", "booked")
        await page.screenshot(path=shots / "04-booked.png", full_page=True)
        await page.get_by_role("link", name="English").click()
        await expect(page.get_by_role("heading", name="Health-check booking")).to_be_visible()
        await page.screenshot(path=shots / "05-booked-en.png", full_page=True)
        await page.get_by_test_id("hc-cancel").click()
        await expect(page.get_by_text("Cancelled: the place is free again.")).to_be_visible()
        await page.screenshot(path=shots / "06-cancelled-en.png", full_page=True)

    # The clinic: a booking of the demo whose slot is today (moved there) is marked as come.
    booking_id, clinic_id, slot_id = await conn.fetchrow(
        "SELECT k.id, s.clinic_id, s.id FROM health_check_bookings k JOIN health_check_slots s ON s.id = k.slot_id"
        " WHERE k.status = 'booked' ORDER BY s.starts_at LIMIT 1"
    )
    await conn.execute("UPDATE health_check_slots SET starts_at = now() - interval '1 hour',"
                       " ends_at = now() - interval '1 minute' WHERE id = $1", slot_id)  # fmt: skip
    async with new_page(base_url, TABLET_PORTRAIT) as page:
        await page.goto("/login")
        await page.get_by_label("邮箱").fill("admin@clinic")
        await page.get_by_label("密码").fill("s3cret")
        await page.get_by_role("button", name="登录").click()
        await page.goto("/staff/health-checks")
        await expect(page.get_by_test_id("hc-attended")).not_to_have_text("0")
        await page.screenshot(path=shots / "07-staff-overview.png", full_page=True)
        await page.goto(f"/staff/health-checks/clinics/{clinic_id}")
        row = page.locator(f"[data-booking='{booking_id}']")
        await row.get_by_test_id("hc-mark-attended").click()
        await expect(page.get_by_text("已登记到检。")).to_be_visible()
        await expect(page.locator(f"[data-booking='{booking_id}']")).to_contain_text("已体检")
        await page.screenshot(path=shots / "08-staff-day.png", full_page=True)
    assert await conn.fetchval("SELECT status FROM health_check_bookings WHERE id = $1", booking_id) == "attended"

    # A reviewer of west sees west's share and members only; another town's clinic is a 403 page.
    east_clinic = await conn.fetchval(
        "SELECT id FROM health_check_clinics WHERE org_id <> $1 ORDER BY id LIMIT 1", world.org_ids["west"]
    )
    async with new_page(base_url, TABLET_PORTRAIT) as page:
        await page.goto("/login")
        await page.get_by_label("邮箱").fill("west@clinic")
        await page.get_by_label("密码").fill("s3cret")
        await page.get_by_role("button", name="登录").click()
        await page.goto("/staff/health-checks")
        await expect(page.get_by_text("本辖区分配名额")).to_be_visible()
        await page.screenshot(path=shots / "09-reviewer-overview.png", full_page=True)
        response = await page.goto(f"/staff/health-checks/clinics/{east_clinic}")
        assert response is not None and response.status == 403
        await expect(page.get_by_text("这家体检机构不在您的范围内。")).to_be_visible()
        await page.screenshot(path=shots / "10-clinic-forbidden.png")
