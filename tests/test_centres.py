"""Worker service centres: a room is never booked twice at once, whatever the concurrency; the member's page."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from litestar.testing import AsyncTestClient

from cards import centres, member_auth
from cards.centres import BookingIn
from tests.factories import World, add_benefit, add_card, make_world, ok, staff_token
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
    booked = [o for o in outcomes if isinstance(o, tuple)]
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
        nine, _ = await centres.book(pool, a, booking(rooms["activity"], at(day, 9)), NOW, TZ)
        await centres.book(pool, b, booking(rooms["activity"], at(day, 10), hours=2), NOW, TZ)  # 10–12, adjacent
        await centres.book(pool, b, booking(rooms["library"], at(day, 9)), NOW, TZ)  # another room, same hour
        with pytest.raises(DomainError) as overlap:
            await centres.book(pool, b, booking(rooms["activity"], at(day, 8), hours=2), NOW, TZ)  # 8–10 hits 9–10
        assert overlap.value.code == "room_already_booked"
        with pytest.raises(DomainError) as not_yours:
            await centres.cancel(pool, b, nine["id"], NOW)
        assert not_yours.value.code == "room_booking_not_found"

        await centres.cancel(pool, a, nine["id"], NOW)
        again, replayed = await centres.book(pool, b, booking(rooms["activity"], at(day, 8), hours=2), NOW, TZ)
        assert again["status"] == "booked" and not replayed
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

    tomorrow = clock.local_today(TZ) + timedelta(days=1)
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


def problem(response: Any, status: int, code: str) -> dict:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith("application/problem+json")
    body = response.json()
    assert body["code"] == code, body
    return body


async def test_the_place_asked_for_is_bounded_and_the_distance_never_fails(client, dsn, conn) -> None:
    world, rooms = await centre_world(client, dsn, conn)
    await sign_in_member(client, conn, await add_card(client, world, "a", org="east", pin="123456"))
    url = "/api/benefits/v1/centres"
    for query in ("latitude=150&longitude=120", "latitude=30&longitude=181", "latitude=-90.5&longitude=0",
                  "latitude=nan&longitude=0", "latitude=inf&longitude=0"):  # fmt: skip
        problem(await client.get(f"{url}?{query}"), 422, "malformed_request")
    half = problem(await client.get(f"{url}?latitude=30"), 422, "validation_failed")
    assert [e["field"] for e in half["errors"]] == ["longitude"] and "field" not in half
    poles = (await client.get(f"{url}?latitude=-90&longitude=180")).json()
    assert len(poles) == 2 and all(13_300 < c["distance_km"] < 13_400 for c in poles)  # 120° of the globe
    near = (await client.get(f"{url}?latitude=30.40&longitude=120.30")).json()
    assert [c["id"] for c in near] == [rooms["west_centre"], rooms["east_centre"]]
    # The query clamps the haversine's argument too: unclamped, (160, -60) against a centre at (20, 120) rounds it
    # below zero, and sqrt() fails.
    await centres.create_centre(conn, world.org_ids["west"], ("南", "South"), ("", ""), (20.0, 120.0),
                                (time(8), time(21)), [])  # fmt: skip
    wild = await centres.centres_near(conn, (160.0, -60.0))
    assert len(wild) == 3 and all(c["distance_km"] >= 0 for c in wild)


async def test_replays_answer_201_and_say_so_and_problems_name_their_field(client, dsn, conn) -> None:
    world, rooms = await centre_world(client, dsn, conn)
    await sign_in_member(client, conn, await add_card(client, world, "a", org="east", pin="123456"))
    url = "/api/benefits/v1/centres/bookings"
    start = at(clock.local_today(TZ) + timedelta(days=1), 10).isoformat()
    body = {"room_id": rooms["training"], "starts_at": start, "purpose": "培训"}
    first = await client.post(url, json=body, headers={"Idempotency-Key": "b1"})
    assert first.status_code == 201 and "idempotent-replayed" not in first.headers
    for headers, in_body in (({"Idempotency-Key": "b1"}, {}), ({}, {"idempotency_key": "b1"})):
        again = await client.post(url, json={**body, **in_body}, headers=headers)
        assert again.status_code == 201 and again.headers["idempotent-replayed"] == "true"
        assert again.json() == first.json()
    problem(await client.post(url, json={**body, "hours": 2}, headers={"Idempotency-Key": "b1"}), 409,
            "idempotency_key_reused")  # fmt: skip
    mixed = {**body, "idempotency_key": "b2"}
    problem(await client.post(url, json=mixed, headers={"Idempotency-Key": "b3"}), 422, "validation_failed")
    blank = problem(await client.post(url, json={**body, "purpose": "  "}), 422, "validation_failed")
    assert blank["errors"] == [{"field": "purpose", "key": "centre_purpose_missing", "message": blank["detail"]}]
    assert "field" not in blank
    assert await conn.fetchval("SELECT count(*) FROM room_bookings") == 1


async def test_the_form_reads_whole_numbers_and_errors_keep_the_member_layout(client, dsn, conn) -> None:
    world, rooms = await centre_world(client, dsn, conn)
    await sign_in_member(client, conn, await add_card(client, world, "a", org="east", pin="123456"))
    tomorrow = clock.local_today(TZ) + timedelta(days=1)
    form = {"centre": str(rooms["east_centre"]), "day": str(tomorrow), "room_id": str(rooms["library"]),
            "start": at(tomorrow, 15).isoformat(), "hours": "1", "purpose": "读书会", "headcount": "12"}  # fmt: skip
    wrong = [("hours", "²", "时长为1至4小时"), ("headcount", "１２", "请填写人数"), ("hours", "9", "时长为1至4小时"),
             ("room_id", "²", "请选择一个可预约的开始时间")]  # fmt: skip
    for name, value, sentence in wrong:
        refused = await client.post("/me/centres/bookings", data={**form, name: value, "idempotency_key": name})
        assert refused.status_code == 422 and sentence in refused.text, (name, value)
        assert 'class="m-tabs"' in refused.text
    assert await conn.fetchval("SELECT count(*) FROM room_bookings") == 0
    gone = await client.get("/me/centres?centre=999999")
    assert gone.status_code == 404 and "服务中心不存在" in gone.text and 'class="m-tabs"' in gone.text
    assert "返回我的卡" in gone.text  # the member layout's own error, not the staff error page


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


# ---------------------------------------------------------------- the admin API


async def test_the_admin_opens_a_centre_adds_a_room_and_closes_one(client, dsn, conn) -> None:
    world = await make_world(client, dsn)
    await add_benefit(conn, "service_centre", "service_centre")
    url = "/api/admin/v1/centres"
    rooms = [{"kind": kind, "name_zh": zh, "name_en": en, "capacity": n} for kind, zh, en, n in ROOMS[:2]]
    good = {"org_id": world.org_ids["east"], "name_zh": "东职工服务中心", "name_en": "East centre", "latitude": 30.25,
            "longitude": 120.16, "opens_at": "08:00:00", "closes_at": "21:00:00", "rooms": rooms}  # fmt: skip
    for changes, status, code in (
        ({"latitude": 95}, 422, "malformed_request"),
        ({"rooms": [{"kind": "gym", "name_zh": "x", "name_en": "x", "capacity": 1}]}, 422, "malformed_request"),
        ({"longitude": None}, 422, "validation_failed"),
        ({"opens_at": "08:30:00"}, 422, "validation_failed"),
        ({"closes_at": "07:00:00"}, 422, "validation_failed"),
        ({"rooms": [*good["rooms"], good["rooms"][0]]}, 422, "validation_failed"),
        ({"org_id": 999999}, 404, "not_found"),
    ):
        refused = problem(await client.post(url, json={**good, **changes}, headers=world.admin), status, code)
        if code == "validation_failed":
            assert refused["errors"] and all({"field", "message"} <= set(e) for e in refused["errors"])
    reviewer = await staff_token(dsn, "org_reviewer", org_id=world.org_ids["east"])
    problem(await client.post(url, json=good, headers=reviewer), 403, "forbidden")
    assert await conn.fetchval("SELECT count(*) FROM service_centres") == 0
    assert await conn.fetchval("SELECT count(*) FROM service_rooms") == 0

    made = await ok(await client.post(url, json=good, headers=world.admin))
    assert [r["kind"] for r in made["rooms"]] == ["training", "activity"] and made["status"] == "open"
    rooms_url = f"{url}/{made['id']}/rooms"
    room = {"kind": "mediation", "name_zh": "调解室", "name_en": "Mediation room", "capacity": 6}
    problem(await client.post(rooms_url, json={**room, "capacity": 0}, headers=world.admin), 422, "malformed_request")
    problem(await client.post(f"{url}/999999/rooms", json=room, headers=world.admin), 404, "centre_not_found")
    added = await ok(await client.post(rooms_url, json=room, headers=world.admin))
    problem(await client.post(rooms_url, json=room, headers=world.admin), 409, "room_name_taken")
    assert len((await client.get(f"{url}/{made['id']}", headers=world.admin)).json()["rooms"]) == 3

    # a member books the new room; closing it would strand them, unless the admin cancels the booking with it
    await sign_in_member(client, conn, await add_card(client, world, "a", org="east", pin="123456"))
    start = at(clock.local_today(TZ) + timedelta(days=1), 10).isoformat()
    booking_body = {"room_id": added["id"], "starts_at": start, "purpose": "调解"}
    booked = await ok(await client.post("/api/benefits/v1/centres/bookings", json=booking_body))
    close = f"/api/admin/v1/rooms/{added['id']}/close"
    stranded = problem(await client.post(close, headers=world.admin), 409, "room_has_bookings")
    assert stranded["upcoming"] == 1
    problem(await client.post(close, json={"cancel_bookings": True}, headers=reviewer), 403, "forbidden")
    problem(await client.post("/api/admin/v1/rooms/999999/close", headers=world.admin), 404, "room_not_found")
    assert await conn.fetchval("SELECT status FROM service_rooms WHERE id = $1", added["id"]) == "open"
    assert await conn.fetchval("SELECT status FROM room_bookings WHERE id = $1", booked["id"]) == "booked"

    closed = await ok(
        await client.post(close, json={"cancel_bookings": True, "note": "装修"}, headers=world.admin), 200
    )
    assert (closed["status"], closed["cancelled_bookings"]) == ("closed", 1)
    assert await conn.fetchval("SELECT status FROM room_bookings WHERE id = $1", booked["id"]) == "cancelled"
    again = await ok(await client.post(close, headers=world.admin), 200)  # closed already: nothing more happens
    assert (again["status"], again["cancelled_bookings"]) == ("closed", 0)
    problem(await client.post("/api/benefits/v1/centres/bookings", json=booking_body), 404, "room_not_found")
    trail = [r["action"] for r in await conn.fetch("SELECT action FROM audit_log ORDER BY id")]
    assert [a for a in trail if a.startswith("service_")] == [
        "service_centre.create", "service_room.create", "service_room.close",
    ]  # fmt: skip
