"""Worker service centres: a room is never booked twice at once, whatever the concurrency; the member's page."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from cards import centres, member_auth
from cards.centres import BookingIn
from tests.factories import World, add_benefit, add_card, make_world
from unioncard import clock
from unioncard.demo.loans_centres import load_loans_centres
from unioncard.errors import DomainError

TZ = "Asia/Shanghai"
ZONE = ZoneInfo(TZ)
NOW = datetime(2026, 11, 29, 9, 30, tzinfo=ZONE)  # a Sunday morning
ROOMS = [("training", "培训室", "Training room", 40), ("activity", "活动室", "Activity room", 30),
         ("library", "职工书屋", "Workers' library", 20), ("mediation", "调解室", "Mediation room", 6)]  # fmt: skip


def at(day: date, hour: int) -> datetime:
    return datetime.combine(day, time(hour), ZONE)


async def centre_world(client: AsyncTestClient, dsn: str, conn: asyncpg.Connection) -> tuple[World, dict[str, int]]:
    """Two towns with a centre each (east's at its merchants, west's 20 km off); the rooms of east's centre."""
    world = await make_world(client, dsn)
    await add_benefit(conn, "service_centre", "service_centre")
    ids = {}
    for town, place in (("east", (30.25, 120.16)), ("west", (30.40, 120.30))):
        ids[town] = await centres.create_centre(
            conn, world.org_ids[town], (f"{town}职工服务中心", f"{town} centre"), (f"{town}路1号", f"1 {town} Rd"),
            place, (time(8), time(21)), ROOMS,
        )  # fmt: skip
    rooms = {
        row["kind"]: row["id"]
        for row in await conn.fetch("SELECT kind, id FROM service_rooms WHERE centre_id = $1", ids["east"])
    }
    await conn.execute(
        "INSERT INTO merchants (name, category, latitude, longitude, org_id) VALUES ('店', 'food', 30.25, 120.16, $1)",
        world.org_ids["east"],
    )
    return world, {**rooms, "east_centre": ids["east"], "west_centre": ids["west"]}


def booking(room_id: int, start: datetime, hours: int = 1, **changes: object) -> BookingIn:
    return BookingIn(room_id=room_id, starts_at=start, hours=hours, purpose="技能培训", headcount=5, **changes)  # type: ignore[arg-type]


async def test_concurrent_bookings_of_one_room_and_hour_book_it_once(client, dsn, conn) -> None:
    n = 10
    world, rooms = await centre_world(client, dsn, conn)
    for i in range(n):
        await add_card(client, world, f"m{i}")
    tomorrow = NOW.date() + timedelta(days=1)
    pool = await asyncpg.create_pool(dsn, min_size=n, max_size=n)
    try:
        outcomes = await asyncio.gather(
            *(centres.book(pool, world.member_ids[f"m{i}"], booking(rooms["training"], at(tomorrow, 10)), NOW, TZ)
              for i in range(n)),
            return_exceptions=True,
        )  # fmt: skip
    finally:
        await pool.close()
    booked = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, DomainError)]
    assert len(booked) == 1 and len(refused) == n - 1 and {e.code for e in refused} == {"room_already_booked"}
    assert await conn.fetchval("SELECT count(*) FROM room_bookings") == 1


async def test_adjacent_hours_are_fine_overlaps_are_not_and_cancelling_frees_the_room(client, dsn, conn) -> None:
    world, rooms = await centre_world(client, dsn, conn)
    for label in ("a", "b"):
        await add_card(client, world, label)
    a, b = world.member_ids["a"], world.member_ids["b"]
    day = NOW.date() + timedelta(days=2)
    pool = await asyncpg.create_pool(dsn, min_size=2, max_size=4)
    try:
        nine = await centres.book(pool, a, booking(rooms["activity"], at(day, 9)), NOW, TZ)
        await centres.book(pool, b, booking(rooms["activity"], at(day, 10), hours=2), NOW, TZ)  # 10–12, adjacent
        await centres.book(pool, b, booking(rooms["library"], at(day, 9)), NOW, TZ)  # another room, same hour
        with pytest.raises(DomainError) as overlap:
            await centres.book(pool, b, booking(rooms["activity"], at(day, 8), hours=2), NOW, TZ)  # 8–10 hits 9–10
        assert overlap.value.code == "room_already_booked"
        with pytest.raises(DomainError) as not_yours:
            await centres.cancel(pool, b, nine["id"], NOW)
        assert not_yours.value.code == "room_booking_not_found"

        await centres.cancel(pool, a, nine["id"], NOW)
        again = await centres.book(pool, b, booking(rooms["activity"], at(day, 8), hours=2), NOW, TZ)
        assert again["status"] == "booked"
        with pytest.raises(DomainError) as twice:
            await centres.cancel(pool, a, nine["id"], NOW)
        assert twice.value.code == "room_booking_not_cancellable"
        with pytest.raises(DomainError) as started:
            await centres.cancel(pool, b, again["id"], at(day, 8) + timedelta(minutes=1))
        assert started.value.code == "room_booking_not_cancellable"

        view = await centres.centre_day(pool, rooms["east_centre"], day, b, NOW, TZ)
        activity = next(r for r in view["rooms"] if r["kind"] == "activity")
        states = {s["starts_at"].hour: s["state"] for s in activity["slots"]}
        assert (states[8], states[9], states[10], states[11], states[12]) == ("mine", "mine", "mine", "mine", "free")
        assert len(activity["slots"]) == 13  # 08:00 to 21:00
    finally:
        await pool.close()
    # The database itself refuses an overlap, whoever writes it; a cancelled row does not count.
    with pytest.raises(asyncpg.ExclusionViolationError) as excluded:
        await conn.execute(
            "INSERT INTO room_bookings (room_id, member_id, during, purpose, headcount)"
            " VALUES ($1, $2, tstzrange($3, $4), 'x', 1)",
            rooms["activity"], a, at(day, 11), at(day, 13),
        )  # fmt: skip
    assert excluded.value.constraint_name == "room_bookings_no_overlap"


@pytest.mark.parametrize(
    ("start", "hours", "headcount", "code"),
    [
        (at(NOW.date(), 9), 1, 1, "room_booking_in_past"),
        (at(NOW.date(), 7), 1, 1, "room_booking_invalid_time"),  # before opening
        (at(NOW.date(), 20), 2, 1, "room_booking_invalid_time"),  # past closing
        (at(NOW.date(), 14) + timedelta(minutes=30), 1, 1, "room_booking_invalid_time"),  # off the hour
        (at(NOW.date() + timedelta(days=31), 10), 1, 1, "room_booking_too_far"),
        (at(NOW.date(), 14), 1, 7, "room_capacity_exceeded"),  # the mediation room holds 6
    ],
)
async def test_bookings_stay_on_the_grid(client, dsn, conn, start, hours, headcount, code) -> None:
    world, rooms = await centre_world(client, dsn, conn)
    await add_card(client, world, "a")
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    try:
        wanted = BookingIn(
            room_id=rooms["mediation"], starts_at=start, hours=hours, purpose="调解", headcount=headcount
        )
        with pytest.raises(DomainError) as refused:
            await centres.book(pool, world.member_ids["a"], wanted, NOW, TZ)
    finally:
        await pool.close()
    assert refused.value.code == code
    assert await conn.fetchval("SELECT count(*) FROM room_bookings") == 0


# ---------------------------------------------------------------- the API and the member's page


async def sign_in_member(client: AsyncTestClient, conn: asyncpg.Connection, number: str) -> None:
    client.cookies.clear()
    client.cookies.set("uc_session", await member_auth.sign_in(conn, number, "123456", clock.now(), 3600))


async def test_the_member_books_and_cancels_on_the_page(client, dsn, conn) -> None:
    world, rooms = await centre_world(client, dsn, conn)
    await sign_in_member(client, conn, await add_card(client, world, "a", org="east", pin="123456"))
    near = (await client.get("/api/benefits/v1/centres")).json()
    assert [c["id"] for c in near] == [rooms["east_centre"], rooms["west_centre"]]
    assert near[0]["distance_km"] < 0.1 < 15 < near[1]["distance_km"]

    tomorrow = clock.now().astimezone(ZONE).date() + timedelta(days=1)
    page = await client.get(f"/me/centres?day={tomorrow}&room={rooms['library']}")
    assert page.status_code == 200 and "east职工服务中心" in page.text and "职工书屋" in page.text
    start = at(tomorrow, 15).isoformat()
    form = {"centre": str(rooms["east_centre"]), "day": str(tomorrow), "room_id": str(rooms["library"]),
            "start": start, "hours": "2", "purpose": "读书会", "headcount": "12",
            "idempotency_key": "web-1"}  # fmt: skip
    sent = await client.post("/me/centres/bookings", data=form, follow_redirects=False)
    assert sent.status_code == 303 and "done=booked" in sent.headers["location"]
    assert (await client.post("/me/centres/bookings", data=form, follow_redirects=False)).status_code == 303
    assert await conn.fetchval("SELECT count(*) FROM room_bookings") == 1  # the double tap booked once

    day = (await client.get(f"/api/benefits/v1/centres/{rooms['east_centre']}/day?on={tomorrow}")).json()
    library = next(r for r in day["rooms"] if r["id"] == rooms["library"])
    assert [s["state"] for s in library["slots"]][7:9] == ["mine", "mine"]  # 15:00 and 16:00
    shown = await client.get(f"/me/centres?day={tomorrow}&room={rooms['library']}&lang=en")
    assert "Reading" not in shown.text and "读书会" in shown.text and 'data-state="mine"' in shown.text

    taken = await client.post("/me/centres/bookings", data={**form, "idempotency_key": "web-2", "hours": "1"})
    assert taken.status_code == 409 and "The room is booked at that time" in taken.text  # English is remembered
    booking_id = await conn.fetchval("SELECT id FROM room_bookings")
    cancelled = await client.post(f"/me/centres/bookings/{booking_id}/cancel", follow_redirects=False)
    assert cancelled.status_code == 303
    assert await conn.fetchval("SELECT status FROM room_bookings WHERE id = $1", booking_id) == "cancelled"
    mine = (await client.get("/api/benefits/v1/centres/bookings")).json()
    assert [(b["id"], b["status"]) for b in mine] == [(booking_id, "cancelled")]


async def test_centres_need_a_member(client: AsyncTestClient) -> None:
    client.cookies.clear()
    assert (await client.get("/api/benefits/v1/centres")).status_code == 401
    assert (await client.get("/me/centres", follow_redirects=False)).headers["location"] == "/me/login"


# ---------------------------------------------------------------- the demo


async def test_the_demo_loader_on_a_tiny_world(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    for i in range(40):
        await add_card(client, world, f"m{i}", org="east" if i % 2 else "west", joined_on="2020-01-01")
    await add_benefit(conn, "loan_subsidy", "loan_subsidy", review_levels={"2000-01-01": "district"})
    await add_benefit(conn, "service_centre", "service_centre")
    today = date(2026, 11, 29)
    figures = await load_loans_centres(conn, random.Random(7), today)

    assert figures["centres"] == 6 and figures["rooms"] == 24
    assert await conn.fetchval("SELECT count(DISTINCT kind) FROM service_rooms") == 4
    assert figures["loan_fund_total_minor"] == 10_000_000_00
    drawn, ledger, approved = await conn.fetchrow(
        "SELECT (SELECT drawn_minor FROM loan_funds), ledger_balance('union:loan_fund'),"
        " (SELECT sum(subsidy_total_minor) FROM loan_applications WHERE status = 'approved')"
    )
    assert drawn == ledger == approved == figures["loan_subsidy_drawn_minor"] > 0
    assert figures["loan_applications"] == await conn.fetchval("SELECT count(*) FROM loan_applications") >= 20
    assert figures["loan_approved"] > figures["loan_applications"] / 2
    assert await conn.fetchval("SELECT count(*) FROM ledger_unbalanced") == 0
    assert (
        await conn.fetchval(
            "SELECT count(*) FROM loan_applications a JOIN (SELECT application_id, count(*) AS n FROM"
            " loan_application_events GROUP BY 1) e ON e.application_id = a.id"
            " WHERE e.n <> CASE a.status WHEN 'submitted' THEN 1 ELSE 2 END"
        )
        == 0
    )
    assert figures["room_bookings"] == await conn.fetchval("SELECT count(*) FROM room_bookings") > 1000
    span = await conn.fetchrow("SELECT min(lower(during)) AS first, max(lower(during)) AS last FROM room_bookings")
    assert span["first"] < datetime(2026, 1, 15, tzinfo=UTC) and span["last"] > datetime(2026, 11, 30, tzinfo=UTC)
    assert await conn.fetchval("SELECT count(DISTINCT org_id) FROM service_centres") == 2  # six over two towns
