"""Worker service centres: their rooms, the day's free and taken hours, and members' bookings.

A booking takes whole hours of a room, on the hour, within the centre's opening hours, from now up to
BOOK_DAYS_AHEAD days ahead, at most HOURS_MAX hours. No two live bookings of a room overlap: the database's
exclusion constraint room_bookings_no_overlap decides, so concurrent requests for one slot book it once and
the others get room_already_booked. A cancelled booking frees its hours.

The federation admin opens centres, adds rooms and closes a room (audited). A booking reads its room under a
share lock, so a room being closed is never booked in the same moment.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Annotated, Any, Literal
from zoneinfo import ZoneInfo

import asyncpg
import msgspec

from cards import catalog
from unioncard import audit, clock, errors
from unioncard.auth import Principal
from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "centre_queries.sql")

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
        "room_name_taken": (409, "该服务中心已有同名房间", "The centre has a room of that name already"),
        "room_has_bookings": (
            409,
            "该房间还有待使用的预约",
            "The room has bookings still to come: cancel them with it, or close it later",
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


Name = Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
Address = Annotated[str, msgspec.Meta(max_length=200)]


class RoomIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    kind: Literal["training", "activity", "library", "mediation"]
    name_zh: Name
    name_en: Name
    capacity: Annotated[int, msgspec.Meta(ge=1, le=10_000)]


class CentreIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A service centre of an org, open every day from opens_at to closes_at (local, on the hour)."""

    org_id: int
    name_zh: Name
    name_en: Name
    address_zh: Address = ""
    address_en: Address = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None
    opens_at: time = time(8)
    closes_at: time = time(21)
    rooms: Annotated[list[RoomIn], msgspec.Meta(max_length=50)] = msgspec.field(default_factory=list)


class CloseRoomIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    cancel_bookings: bool = False
    """Cancel the room's bookings that have not started; without it a room with such bookings stays open (409)."""
    note: Annotated[str, msgspec.Meta(max_length=500)] = ""


def problem(field: str, key: str, message: str) -> dict[str, str]:
    """One problem of validation_failed: the field, its page sentence's key (unioncard.i18n), the API's message."""
    return {"field": field, "key": key, "message": message}


def invalid(*problems: dict[str, str]) -> DomainError:
    return DomainError("validation_failed", problems[0]["message"], errors=list(problems))


# ------------------------------------------------------------------ centres and their days


def place_of(latitude: float | None, longitude: float | None) -> tuple[float, float] | None:
    """A place given as both coordinates (the API bounds them), or None. Raises validation_failed for one alone."""
    if latitude is None and longitude is None:
        return None
    if latitude is None or longitude is None:
        field = "longitude" if longitude is None else "latitude"
        raise invalid(problem(field, "centre_place_half", "give both latitude and longitude, or neither"))
    return (latitude, longitude)


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


async def book(
    pool: asyncpg.Pool, member_id: int, data: BookingIn, now: datetime, timezone: str
) -> tuple[dict[str, Any], bool]:
    """Book a room: (the booking, replayed). The same idempotency key with the same room and hours answers the
    first booking, replayed True, even once its time has passed.

    Raises DomainError validation_failed, idempotency_key_reused, room_not_found, room_booking_invalid_time,
    room_booking_in_past, room_booking_too_far, room_capacity_exceeded, benefit_not_found, benefit_not_eligible,
    room_booking_limit_reached, room_already_booked.
    """
    purpose = data.purpose.strip()
    if not 1 <= len(purpose) <= 200:
        raise invalid(problem("purpose", "centre_purpose_missing", "say what the room is for (1 to 200 characters)"))
    if data.starts_at.tzinfo is None:
        raise invalid(problem("starts_at", "centre_pick_a_slot", "starts_at needs its UTC offset"))
    try:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute(queries.centre_member_lock, member_id)
            if data.idempotency_key:
                earlier = await conn.fetchrow(queries.centre_booking_by_key, member_id, data.idempotency_key)
                if earlier is not None:
                    wanted = (data.room_id, data.starts_at, data.starts_at + data.hours * SLOT)
                    if (earlier["room_id"], earlier["starts_at"], earlier["ends_at"]) != wanted:
                        raise DomainError("idempotency_key_reused")
                    return await booking(conn, earlier["id"]), True
            room = await conn.fetchrow(queries.centre_room_for_booking, data.room_id)
            if room is None:
                raise DomainError("room_not_found")
            starts_at, ends_at = _check_time(data, room, now, timezone)
            if data.headcount > room["capacity"]:
                raise DomainError("room_capacity_exceeded", capacity=room["capacity"])
            benefit = await conn.fetchval(queries.centre_benefit)
            if benefit is not None:
                await catalog.require_eligible(conn, member_id, benefit, clock.local_date(now, timezone))
            if await conn.fetchval(queries.centre_member_upcoming, member_id, now) >= UPCOMING_MAX:
                raise DomainError("room_booking_limit_reached", limit=UPCOMING_MAX)
            booking_id = await conn.fetchval(
                queries.centre_booking_insert,
                room["id"], member_id, starts_at, ends_at, purpose, data.headcount, now, data.idempotency_key,
            )  # fmt: skip
            return await booking(conn, booking_id), False
    except asyncpg.ExclusionViolationError as exc:
        if exc.constraint_name == "room_bookings_no_overlap":
            raise DomainError("room_already_booked", room_id=data.room_id) from exc
        raise


def _local(moment: datetime, timezone: str) -> datetime:
    return moment.astimezone(ZoneInfo(timezone))


def _check_time(data: BookingIn, room: asyncpg.Record, now: datetime, timezone: str) -> tuple[datetime, datetime]:
    """[start, end) of a booking on the grid. Raises the room_booking_* time errors."""
    start = _local(data.starts_at, timezone)
    end = start + data.hours * SLOT
    on_grid = start.minute == 0 and start.second == 0 and start.microsecond == 0
    within = room["opens_at"] <= start.time() and end.date() == start.date() and end.time() <= room["closes_at"]
    if not (on_grid and within and 1 <= data.hours <= HOURS_MAX):
        raise DomainError("room_booking_invalid_time", opens_at=str(room["opens_at"]), closes_at=str(room["closes_at"]))
    if start <= now:
        raise DomainError("room_booking_in_past")
    if start.date() > clock.local_date(now, timezone) + timedelta(days=BOOK_DAYS_AHEAD):
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


# ------------------------------------------------------------------ the federation admin's


def _check_centre(data: CentreIn) -> None:
    """Raises DomainError validation_failed with every problem of a new centre."""
    problems = []
    if (data.latitude is None) != (data.longitude is None):
        problems.append(problem("latitude", "centre_place_half", "give both latitude and longitude, or neither"))
    for name in ("opens_at", "closes_at"):
        at = getattr(data, name)
        if at.tzinfo is not None or (at.minute, at.second, at.microsecond) != (0, 0, 0):
            problems.append(problem(name, "centre_hours_on_the_hour", "local time on the hour, e.g. 08:00:00"))
    if data.closes_at <= data.opens_at:
        problems.append(problem("closes_at", "centre_hours_order", "the centre closes after it opens"))
    for name in ("name_zh", "name_en"):
        if not getattr(data, name).strip():
            problems.append(problem(name, "centre_name_missing", "a name is not blank"))
    problems += _room_problems(data.rooms, "rooms")
    if problems:
        raise invalid(*problems)


def _room_problems(rooms: list[RoomIn], where: str) -> list[dict[str, str]]:
    problems, seen = [], set()
    for n, room in enumerate(rooms):
        name = room.name_zh.strip()
        if not name or not room.name_en.strip():
            problems.append(problem(f"{where}[{n}].name_zh", "centre_name_missing", "a room's names are not blank"))
        elif name in seen:
            problems.append(problem(f"{where}[{n}].name_zh", "centre_room_twice", "two rooms of one name"))
        seen.add(name)
    return problems


async def open_centre(pool: asyncpg.Pool, principal: Principal, data: CentreIn) -> dict[str, Any]:
    """A centre with its rooms, audited; the centre as centre_admin shows it.

    Raises DomainError validation_failed, not_found (no such org).
    """
    _check_centre(data)
    rooms: list[tuple[str, str, str, int]] = [
        (r.kind, r.name_zh.strip(), r.name_en.strip(), r.capacity) for r in data.rooms
    ]
    place = (data.latitude, data.longitude) if data.latitude is not None and data.longitude is not None else None
    names = (data.name_zh.strip(), data.name_en.strip())
    async with pool.acquire() as conn, conn.transaction():
        try:
            address = (data.address_zh.strip(), data.address_en.strip())
            hours = (data.opens_at, data.closes_at)
            centre_id = await create_centre(conn, data.org_id, names, address, place, hours, rooms)
        except asyncpg.ForeignKeyViolationError as exc:
            raise DomainError("not_found", "no such org") from exc
        await audit.record(conn, principal, "service_centre.create", f"service_centre:{centre_id}",
                           org_id=data.org_id, rooms=len(rooms))  # fmt: skip
        return await centre_admin(conn, centre_id)


async def add_room(pool: asyncpg.Pool, principal: Principal, centre_id: int, data: RoomIn) -> dict[str, Any]:
    """A new room of an open centre, audited. Raises DomainError validation_failed, centre_not_found,
    room_name_taken."""
    if problems := _room_problems([data], "room"):
        raise invalid(*[{**p, "field": p["field"].removeprefix("room[0].")} for p in problems])
    async with pool.acquire() as conn, conn.transaction():
        if await conn.fetchval(queries.centre_lock, centre_id) is None:
            raise DomainError("centre_not_found")
        try:
            room_id = await conn.fetchval(
                queries.centre_room_create, centre_id, data.kind, data.name_zh.strip(), data.name_en.strip(),
                data.capacity,
            )  # fmt: skip
        except asyncpg.UniqueViolationError as exc:
            raise DomainError("room_name_taken") from exc
        await audit.record(conn, principal, "service_room.create", f"service_room:{room_id}",
                           centre_id=centre_id, kind=data.kind, capacity=data.capacity)  # fmt: skip
        return dict(await conn.fetchrow(queries.centre_room_admin, room_id))


async def close_room(
    pool: asyncpg.Pool, principal: Principal, room_id: int, data: CloseRoomIn, now: datetime
) -> dict[str, Any]:
    """Close a room: no one books it from now on. Its bookings still to start are cancelled with it when
    data.cancel_bookings; without, they keep it open (409 room_has_bookings with their count). Closing a closed
    room changes nothing. Audited, with the bookings cancelled.

    Raises DomainError room_not_found, room_has_bookings.
    """
    async with pool.acquire() as conn, conn.transaction():
        room = await conn.fetchrow(queries.centre_room_lock, room_id)  # waits for bookings being made
        if room is None:
            raise DomainError("room_not_found")
        if room["status"] == "closed":
            return {**dict(await conn.fetchrow(queries.centre_room_admin, room_id)), "cancelled_bookings": 0}
        upcoming = await conn.fetchval(queries.centre_room_upcoming, room_id, now)
        if upcoming and not data.cancel_bookings:
            raise DomainError("room_has_bookings", upcoming=upcoming)
        cancelled = len(await conn.fetch(queries.centre_room_cancel_upcoming, room_id, now)) if upcoming else 0
        await conn.execute(queries.centre_room_close, room_id)
        await audit.record(conn, principal, "service_room.close", f"service_room:{room_id}",
                           cancelled_bookings=cancelled, note=data.note.strip())  # fmt: skip
        return {**dict(await conn.fetchrow(queries.centre_room_admin, room_id)), "cancelled_bookings": cancelled}


async def centre_admin(conn: asyncpg.Connection | asyncpg.Pool, centre_id: int) -> dict[str, Any]:
    """A centre (open or closed) with all its rooms, as the admin API answers. Raises centre_not_found."""
    row = await conn.fetchrow(queries.centre_admin, centre_id)
    if row is None:
        raise DomainError("centre_not_found")
    rooms = [dict(r) for r in await conn.fetch(queries.centre_rooms_admin, centre_id)]
    return {**dict(row), "rooms": rooms}


async def create_centre(
    conn: asyncpg.Connection, org_id: int, name: tuple[str, str], address: tuple[str, str],
    place: tuple[float, float] | None, hours: tuple[time, time], rooms: list[tuple[str, str, str, int]],
) -> int:  # fmt: skip
    """A centre with its rooms (kind, name zh, name en, capacity); its id. Not audited: open_centre is the
    admin's; tests call this directly."""
    latitude, longitude = place if place else (None, None)
    centre_id: int = await conn.fetchval(queries.centre_create, org_id, *name, *address, latitude, longitude, *hours)
    for kind, name_zh, name_en, capacity in rooms:
        await conn.execute(queries.centre_room_create, centre_id, kind, name_zh, name_en, capacity)
    return centre_id
