"""Worker service centres: their rooms, the day's free and taken hours, and members' bookings.

A booking takes whole hours of a room, on the hour, within the centre's opening hours, from now up to
BOOK_DAYS_AHEAD days ahead, at most HOURS_MAX hours. No two live bookings of a room overlap: the database's
exclusion constraint room_bookings_no_overlap decides, so concurrent requests for one slot book it once and
the others get room_already_booked. A cancelled booking frees its hours.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from cards import catalog
from unioncard import errors
from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "centre_queries.sql")

ROOM_KINDS = ("training", "activity", "library", "mediation")
SLOT = timedelta(hours=1)
HOURS_MAX = 4
BOOK_DAYS_AHEAD = 30
UPCOMING_MAX = 5  # live bookings a member may hold at once, so no one holds a room for the month
PAST_SHOWN = 10

errors.extend(
    {
        "centre_not_found": (404, "服务中心不存在", "No such service centre"),
        "room_not_found": (404, "活动室不存在", "No such room"),
        "room_already_booked": (409, "该时段已被预约", "The room is booked at that time"),
        "room_booking_invalid_time": (
            422,
            "预约时间须为开放时间内的整点，且不超过4小时",
            "Book whole hours within the opening hours, 4 at most",
        ),
        "room_booking_in_past": (422, "不能预约已过去的时段", "That time has passed"),
        "room_booking_too_far": (422, "最多可预约30天内的时段", "Book at most 30 days ahead"),
        "room_capacity_exceeded": (422, "人数超过房间容量", "More people than the room holds"),
        "room_booking_limit_reached": (409, "待使用的预约已达上限", "You hold as many bookings as allowed"),
        "room_booking_not_found": (404, "预约不存在", "No such booking"),
        "room_booking_not_cancellable": (
            409,
            "该预约已取消或已开始，不能取消",
            "This booking is cancelled already or has started",
        ),
    }
)


class BookingIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    room_id: int
    starts_at: datetime
    """On the hour, with its UTC offset, e.g. 2026-12-01T09:00:00+08:00."""
    hours: Annotated[int, msgspec.Meta(ge=1, le=HOURS_MAX)] = 1
    purpose: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    headcount: Annotated[int, msgspec.Meta(ge=1, le=10_000)] = 1
    idempotency_key: Annotated[str, msgspec.Meta(max_length=100)] | None = None


# ------------------------------------------------------------------ centres and their days


async def member_place(conn: asyncpg.Connection | asyncpg.Pool, member_id: int) -> tuple[float, float] | None:
    """Roughly where the member is: the middle of their town's centres, else of its merchants."""
    row = await conn.fetchrow(queries.centre_member_place, member_id)
    return (float(row["latitude"]), float(row["longitude"])) if row else None


async def centres_near(
    conn: asyncpg.Connection | asyncpg.Pool, place: tuple[float, float] | None
) -> list[dict[str, Any]]:
    """Every open centre, nearest to `place` first, with distance_km (None without a place)."""
    latitude, longitude = place if place else (None, None)
    return [dict(row) for row in await conn.fetch(queries.centres_near, latitude, longitude)]


async def centre(conn: asyncpg.Connection | asyncpg.Pool, centre_id: int) -> dict[str, Any]:
    """One open centre. Raises DomainError centre_not_found."""
    row = await conn.fetchrow(queries.centre, centre_id)
    if row is None:
        raise DomainError("centre_not_found")
    return dict(row)


def day_slots(day: date, opens_at: time, closes_at: time, timezone: str) -> list[datetime]:
    """The starts of the day's hour slots within the opening hours, as aware datetimes."""
    zone = ZoneInfo(timezone)
    start, end = datetime.combine(day, opens_at, zone), datetime.combine(day, closes_at, zone)
    starts = []
    while start + SLOT <= end:
        starts.append(start)
        start += SLOT
    return starts


async def centre_day(
    conn: asyncpg.Connection | asyncpg.Pool, centre_id: int, day: date, member_id: int | None, now: datetime,
    timezone: str,
) -> dict[str, Any]:  # fmt: skip
    """A centre's rooms on a day, each with its hour slots: free, taken, mine (member_id's) or past.

    Raises DomainError centre_not_found.
    """
    found = await centre(conn, centre_id)
    starts = day_slots(day, found["opens_at"], found["closes_at"], timezone)
    rooms = [dict(row) for row in await conn.fetch(queries.centre_rooms, centre_id)]
    bookings: list[asyncpg.Record] = []
    if starts:
        bookings = await conn.fetch(queries.centre_bookings_between, centre_id, starts[0], starts[-1] + SLOT)
    for room in rooms:
        held = [b for b in bookings if b["room_id"] == room["id"]]
        room["slots"] = [_slot(start, held, member_id, now) for start in starts]
    return {**found, "day": day, "rooms": rooms}


def _slot(start: datetime, held: list[asyncpg.Record], member_id: int | None, now: datetime) -> dict[str, Any]:
    end = start + SLOT
    booking = next((b for b in held if b["starts_at"] < end and start < b["ends_at"]), None)
    if booking is not None:
        state = "mine" if member_id is not None and booking["member_id"] == member_id else "taken"
    else:
        state = "past" if start <= now else "free"
    return {"starts_at": start, "ends_at": end, "state": state}


# ------------------------------------------------------------------ bookings


async def book(pool: asyncpg.Pool, member_id: int, data: BookingIn, now: datetime, timezone: str) -> dict[str, Any]:
    """Book a room; the same idempotency key with the same booking returns the first one.

    Raises DomainError room_not_found, room_booking_invalid_time, room_booking_in_past, room_booking_too_far,
    room_capacity_exceeded, validation_failed, benefit_not_found, benefit_not_eligible,
    room_booking_limit_reached, room_already_booked, idempotency_key_reused.
    """
    purpose = data.purpose.strip()
    if not 1 <= len(purpose) <= 200:
        raise DomainError("validation_failed", "say what the room is for (1 to 200 characters)", field="purpose")
    try:
        async with pool.acquire() as conn, conn.transaction():
            room = await conn.fetchrow(queries.centre_room_for_booking, data.room_id)
            if room is None:
                raise DomainError("room_not_found")
            starts_at, ends_at = _check_time(data, room, now, timezone)
            if data.headcount > room["capacity"]:
                raise DomainError("room_capacity_exceeded", capacity=room["capacity"])
            await conn.execute(queries.centre_member_lock, member_id)
            if data.idempotency_key:
                earlier = await conn.fetchrow(queries.centre_booking_by_key, member_id, data.idempotency_key)
                if earlier is not None:
                    if (earlier["room_id"], earlier["starts_at"], earlier["ends_at"]) != (
                        room["id"],
                        starts_at,
                        ends_at,
                    ):
                        raise DomainError("idempotency_key_reused")
                    return await booking(conn, earlier["id"])
            benefit = await conn.fetchval(queries.centre_benefit)
            if benefit is not None:
                await catalog.require_eligible(conn, member_id, benefit, _local(now, timezone).date())
            if await conn.fetchval(queries.centre_member_upcoming, member_id, now) >= UPCOMING_MAX:
                raise DomainError("room_booking_limit_reached", limit=UPCOMING_MAX)
            booking_id = await conn.fetchval(
                queries.centre_booking_insert,
                room["id"], member_id, starts_at, ends_at, purpose, data.headcount, now, data.idempotency_key,
            )  # fmt: skip
            return await booking(conn, booking_id)
    except asyncpg.ExclusionViolationError as exc:
        if exc.constraint_name == "room_bookings_no_overlap":
            raise DomainError("room_already_booked", room_id=data.room_id) from exc
        raise


def _local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def _check_time(data: BookingIn, room: asyncpg.Record, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a booking on the grid. Raises the room_booking_* time errors."""
    if data.starts_at.tzinfo is None:
        raise DomainError("validation_failed", "starts_at needs its UTC offset", field="starts_at")
    start = _local(data.starts_at, timezone)
    end = start + data.hours * SLOT
    on_grid = start.minute == 0 and start.second == 0 and start.microsecond == 0
    within = room["opens_at"] <= start.time() and end.date() == start.date() and end.time() <= room["closes_at"]
    if not (on_grid and within and 1 <= data.hours <= HOURS_MAX):
        raise DomainError("room_booking_invalid_time", opens_at=str(room["opens_at"]), closes_at=str(room["closes_at"]))
    if start <= now:
        raise DomainError("room_booking_in_past")
    if start.date() > _local(now, timezone).date() + timedelta(days=BOOK_DAYS_AHEAD):
        raise DomainError("room_booking_too_far", days=BOOK_DAYS_AHEAD)
    return start, end


async def booking(conn: asyncpg.Connection | asyncpg.Pool, booking_id: int) -> dict[str, Any]:
    row = await conn.fetchrow(queries.centre_booking, booking_id)
    if row is None:
        raise DomainError("room_booking_not_found")
    return dict(row)


async def member_bookings(
    conn: asyncpg.Connection | asyncpg.Pool, member_id: int, now: datetime
) -> list[dict[str, Any]]:
    """The member's bookings that have not ended, soonest first, then the last few past ones."""
    return [dict(row) for row in await conn.fetch(queries.centre_member_bookings, member_id, now, PAST_SHOWN)]


async def cancel(pool: asyncpg.Pool, member_id: int, booking_id: int, now: datetime) -> dict[str, Any]:
    """Cancel the member's own booking before it starts; its hours are free again.

    Raises DomainError room_booking_not_found (none, or another member's), room_booking_not_cancellable.
    """
    async with pool.acquire() as conn, conn.transaction():
        cancelled = await conn.fetchval(queries.centre_booking_cancel, booking_id, member_id, now)
        found = await conn.fetchrow(queries.centre_booking, booking_id)
        if found is None or found["member_id"] != member_id:
            raise DomainError("room_booking_not_found")
        if cancelled is None:
            raise DomainError("room_booking_not_cancellable", status=found["status"])
        return dict(found)


async def create_centre(
    conn: asyncpg.Connection, org_id: int, name: tuple[str, str], address: tuple[str, str],
    place: tuple[float, float] | None, hours: tuple[time, time], rooms: list[tuple[str, str, str, int]],
) -> int:  # fmt: skip
    """A centre with its rooms (kind, name zh, name en, capacity); its id. For tests, the demo, admins."""
    latitude, longitude = place if place else (None, None)
    centre_id: int = await conn.fetchval(queries.centre_create, org_id, *name, *address, latitude, longitude, *hours)
    for kind, name_zh, name_en, capacity in rooms:
        await conn.execute(queries.centre_room_create, centre_id, kind, name_zh, name_en, capacity)
    return centre_id
