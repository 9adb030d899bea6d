"""Free yearly health checks: places per year and town, clinics with dated slots, holds and bookings.

A member holds a place in a slot for HOLD_S seconds, confirms it, and the clinic marks them attended (the
place stays taken) or not come (it is freed); a cancellation or a run-out hold frees it too. A place is
taken by a live booking: held while its hold lasts, booked or attended. A hold locks the year's row, then
the town's share, then the slot (always in that order), counts and inserts in one transaction, so the
year's places, a town's share and a slot's capacity are never exceeded, however many members book at once.
A confirmation takes the year's lock too, so a hold that another booking has counted as run out can never
be confirmed afterwards.
"""

from __future__ import annotations

import math
import os
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from cards import catalog
from unioncard import audit, errors
from unioncard.auth import Principal, Role
from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "health_check_queries.sql")

DEFAULT_CODE = "health_check"
# How long a chosen slot waits for the member's confirmation; the environment may shorten it (browser tests).
HOLD_S = int(os.environ.get("UNIONCARD_HEALTH_CHECK_HOLD_S") or 10 * 60)
SLOT_DAYS_AHEAD = 60  # how far ahead the member's page offers slots
SLOTS_PER_CLINIC = 8  # two mornings' worth
LIVE = ("held", "booked", "attended")
OUTCOMES = ("attended", "no_show")
MARKERS = frozenset({Role.FEDERATION_ADMIN, Role.ORG_REVIEWER})

errors.extend(
    {
        "hc_quota_full": (409, "今年的体检名额已约满", "This year's health-check places are all taken"),
        "hc_town_quota_full": (409, "本镇（街道）今年的体检名额已约满", "Your town's places this year are all taken"),
        "hc_slot_full": (409, "该时段已约满，请选择其他时段", "This slot is full: choose another one"),
        "hc_slot_closed": (409, "该时段已不可预约", "This slot can no longer be booked"),
        "hc_already_booked": (409, "您今年已有体检预约", "You already have a health check this year"),
        "hc_hold_expired": (409, "保留时间已过，请重新选择时段", "The hold ran out: choose a slot again"),
        "hc_not_confirmable": (409, "该预约不能确认", "This booking cannot be confirmed"),
        "hc_not_cancellable": (409, "该预约不能取消", "This booking can no longer be cancelled"),
        "hc_not_markable": (409, "该预约不能登记到检情况", "Attendance cannot be marked for this booking"),
        "hc_slot_not_found": (404, "没有这个体检时段", "No such health-check slot"),
        "hc_booking_not_found": (404, "没有这个体检预约", "No such health-check booking"),
        "hc_clinic_not_found": (404, "没有这家体检机构", "No such clinic"),
        "hc_not_a_town": (422, "名额只能分配到镇（街道）", "Places are shared out to towns only"),
    }
)


class Booking(msgspec.Struct, kw_only=True):
    """A member's booking as they and the clinic see it: seconds_left counts down a running hold, and a hold
    that has run out reads expired even before a sweep marks it so."""

    id: int
    status: str
    benefit_code: str
    year: int
    slot_id: int
    starts_at: datetime
    ends_at: datetime
    clinic_id: int
    clinic_name: str
    clinic_address: str
    held_until: datetime
    booked_at: datetime | None
    closed_at: datetime | None
    seconds_left: int = 0


class Places(msgspec.Struct, kw_only=True):
    """Places of a year: the year's (None: no cap) and the member's town's share (None: the town has none)."""

    year: int
    year_places: int | None
    year_left: int | None
    town_id: int | None = None
    town_name: str | None = None
    town_places: int | None = None
    town_left: int | None = None


class Slot(msgspec.Struct, kw_only=True):
    id: int
    starts_at: datetime
    ends_at: datetime
    capacity: int
    free: int


class ClinicSlots(msgspec.Struct, kw_only=True):
    id: int
    name: str
    address: str
    latitude: float | None
    longitude: float | None
    in_my_town: bool
    slots: list[Slot]


class MemberView(msgspec.Struct, kw_only=True):
    """What the member's page shows: the benefit, what they lack for it, places, clinics, their bookings."""

    benefit_code: str
    benefit_name_zh: str
    benefit_name_en: str
    unmet: list[str]
    places: Places
    live: Booking | None
    clinics: list[ClinicSlots]
    bookings: list[Booking]
    hold_s: int = HOLD_S


class TownFigures(msgspec.Struct, kw_only=True):
    town_id: int
    town_name: str
    places: int
    live: int
    attended: int
    left: int


class YearFigures(msgspec.Struct, kw_only=True):
    """A year at a glance for staff: places, bookings by status and each town's share in their scope."""

    benefit_code: str
    year: int
    places: int | None
    left: int | None
    held: int = 0
    booked: int = 0
    attended: int = 0
    no_show: int = 0
    cancelled: int = 0
    expired: int = 0
    towns: list[TownFigures] = msgspec.field(default_factory=list)


# ------------------------------------------------------------------ the member's steps


async def hold(conn: asyncpg.Connection, member_id: int, slot_id: int, now: datetime) -> Booking:
    """Hold a place in a slot for HOLD_S seconds (never past the slot's start).

    Raises hc_slot_not_found, hc_slot_closed, benefit_not_eligible, hc_already_booked, hc_quota_full,
    hc_town_quota_full or hc_slot_full; nothing is changed then.
    """
    async with conn.transaction():
        slot = await conn.fetchrow(queries.hc_slot, slot_id, now)
        if slot is None:
            raise DomainError("hc_slot_not_found")
        if slot["clinic_status"] != "active" or slot["starts_at"] <= now:
            raise DomainError("hc_slot_closed")
        await catalog.require_eligible(conn, member_id, slot["benefit_code"], slot["today"])
        benefit_id, year = slot["benefit_id"], slot["year"]
        town = await conn.fetchrow(queries.hc_member_town, member_id)
        town_id = town["id"] if town is not None else None
        await conn.execute(queries.hc_open_year, benefit_id, year)
        year_places = await conn.fetchval(queries.hc_lock_year, benefit_id, year)
        await conn.execute(queries.hc_sweep_year, benefit_id, year, now)
        mine = await conn.fetchrow(queries.hc_live_booking_of, member_id, benefit_id, year, now)
        if mine is not None:
            raise DomainError("hc_already_booked", booking_id=mine["id"])
        town_quota = await conn.fetchrow(queries.hc_lock_town, benefit_id, year, town_id) if town_id else None
        await conn.fetchval(queries.hc_lock_slot, slot_id)
        live = await conn.fetchrow(queries.hc_live_counts, benefit_id, year, town_id, slot_id, now)
        if year_places is not None and live["year_live"] >= year_places:
            raise DomainError("hc_quota_full")
        if town_quota is not None and live["town_live"] >= town_quota["places"]:
            raise DomainError("hc_town_quota_full")
        if live["slot_live"] >= slot["capacity"]:
            raise DomainError("hc_slot_full")
        held_until = min(now + timedelta(seconds=HOLD_S), slot["starts_at"])
        try:
            booking_id = await conn.fetchval(
                queries.hc_insert_hold, member_id, benefit_id, year, slot_id, town_id, now, held_until
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "health_check_bookings_live_key":
                raise DomainError("hc_already_booked") from exc
            raise
    return await booking_of(conn, booking_id, now)


async def confirm(conn: asyncpg.Connection, member_id: int, booking_id: int, now: datetime) -> Booking:
    """Turn the member's running hold into a booking; confirming a booked one again changes nothing.

    Raises hc_booking_not_found, hc_hold_expired (the run-out hold is marked expired) or hc_not_confirmable.
    """
    ran_out = False
    async with conn.transaction():
        found = await _own(conn, member_id, booking_id)
        # The year's lock first, as a hold takes it: a hold that counted this one as run out has marked it so.
        await conn.fetchval(queries.hc_lock_year, found["benefit_id"], found["year"])
        booking = await conn.fetchrow(queries.hc_lock_booking, booking_id, now)
        if booking["status"] == "held" and booking["held_until"] > now:
            await conn.execute(queries.hc_set_status, booking_id, "booked", now, None)
        elif booking["status"] == "held":
            await conn.execute(queries.hc_set_status, booking_id, "expired", booking["held_until"], None)
            ran_out = True
        elif booking["status"] == "expired":
            ran_out = True
        elif booking["status"] != "booked":
            raise DomainError("hc_not_confirmable", status=booking["status"])
    if ran_out:
        raise DomainError("hc_hold_expired")
    return await booking_of(conn, booking_id, now)


async def cancel(conn: asyncpg.Connection, member_id: int, booking_id: int, now: datetime) -> Booking:
    """Cancel the member's hold or booking before its slot starts, freeing the place; a hold that has run out
    is marked expired instead, and cancelling twice changes nothing.

    Raises hc_booking_not_found or hc_not_cancellable (attended, not come, or the slot has started).
    """
    async with conn.transaction():
        await _own(conn, member_id, booking_id)
        booking = await conn.fetchrow(queries.hc_lock_booking, booking_id, now)
        status = booking["status"]
        if status == "held" and booking["held_until"] <= now:
            await conn.execute(queries.hc_set_status, booking_id, "expired", booking["held_until"], None)
        elif status in ("held", "booked") and booking["starts_at"] > now:
            await conn.execute(queries.hc_set_status, booking_id, "cancelled", now, None)
        elif status not in ("cancelled", "expired"):
            raise DomainError("hc_not_cancellable", status=status)
    return await booking_of(conn, booking_id, now)


async def _own(conn: asyncpg.Connection, member_id: int, booking_id: int) -> asyncpg.Record:
    found = await conn.fetchrow(queries.hc_booking, booking_id)
    if found is None or found["member_id"] != member_id:
        raise DomainError("hc_booking_not_found")
    return found


# ------------------------------------------------------------------ the clinic's step


async def mark(conn: asyncpg.Connection, principal: Principal, booking_id: int, outcome: str, now: datetime) -> Booking:
    """The clinic marks a booking attended (the place stays taken) or no_show (the place is freed), from the
    slot's local day on; audited. Marking the same outcome again changes nothing.

    Raises validation_failed (another outcome), hc_booking_not_found, forbidden (a clinic outside the
    staff member's subtree) or hc_not_markable (not booked, or before the slot's day).
    """
    if outcome not in OUTCOMES:
        raise DomainError("validation_failed", f"outcome is one of {', '.join(OUTCOMES)}")
    async with conn.transaction():
        found = await conn.fetchrow(queries.hc_booking, booking_id)
        if found is None:
            raise DomainError("hc_booking_not_found")
        if principal.role not in MARKERS or not principal.may_see_org_path(found["clinic_org_path"]):
            raise DomainError("forbidden", "the clinic is outside your part of the tree")
        booking = await conn.fetchrow(queries.hc_lock_booking, booking_id, now)
        if booking["status"] != outcome:
            if booking["status"] != "booked":
                raise DomainError("hc_not_markable", status=booking["status"])
            if not booking["slot_day_come"]:
                raise DomainError("hc_not_markable", reason="before_slot_day")
            await conn.execute(queries.hc_set_status, booking_id, outcome, now, principal.staff_user_id)
            await audit.record(
                conn, principal, f"health_check.{outcome}", f"health_check_booking:{booking_id}",
                member_id=found["member_id"], slot_id=found["slot_id"], clinic_id=found["clinic_id"],
            )  # fmt: skip
    return await booking_of(conn, booking_id, now)


async def sweep_expired(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> int:
    """Mark every hold that ran out by `now` expired; how many. Never needed for correctness (a run-out hold
    counts for nothing), it keeps the statuses true; each hold sweeps its own year as well."""
    status = await conn.execute(queries.hc_sweep, now)
    return int(status.rsplit(" ", 1)[-1])


# ------------------------------------------------------------------ what members and staff read


async def booking_of(conn: asyncpg.Connection | asyncpg.Pool, booking_id: int, now: datetime) -> Booking:
    """One booking. Raises hc_booking_not_found."""
    row = await conn.fetchrow(queries.hc_booking, booking_id)
    if row is None:
        raise DomainError("hc_booking_not_found")
    return _booking(row, now)


def _booking(row: Any, now: datetime) -> Booking:
    fields = {name: row[name] for name in Booking.__struct_fields__ if name != "seconds_left"}
    # Rounded up, so a page counting these down never shows a hold over before the server does.
    left = math.ceil((row["held_until"] - now).total_seconds()) if row["status"] == "held" else 0
    if row["status"] == "held" and left <= 0:  # run out, whether or not a sweep has marked it yet
        fields.update(status="expired", closed_at=row["held_until"])
    return Booking(**fields, seconds_left=max(0, left))


async def member_view(conn: asyncpg.Connection, member_id: int, now: datetime, code: str = DEFAULT_CODE) -> MemberView:
    """The member's page: places left this year (overall and in their town), the next free slots of each
    clinic this year (their town's first), and their bookings this year. Raises benefit_not_found."""
    today: date = await conn.fetchval(queries.hc_local_today, now)
    benefit = await catalog.benefit_for_member(conn, member_id, code, today)
    if benefit["kind"] != "health_check":
        raise DomainError("benefit_not_found")
    town = await conn.fetchrow(queries.hc_member_town, member_id)
    places = await places_of(conn, benefit["id"], today.year, town, now)
    rows = await conn.fetch(
        queries.hc_open_slots, benefit["id"], now, now + timedelta(days=SLOT_DAYS_AHEAD), SLOTS_PER_CLINIC, today.year
    )
    clinics: dict[int, ClinicSlots] = {}
    for row in rows:
        clinic = clinics.get(row["clinic_id"])
        if clinic is None:
            in_town = town is not None and row["clinic_org_path"].startswith(town["path"])
            clinic = clinics[row["clinic_id"]] = ClinicSlots(
                id=row["clinic_id"], name=row["clinic_name"], address=row["clinic_address"],
                latitude=row["latitude"], longitude=row["longitude"], in_my_town=in_town, slots=[],
            )  # fmt: skip
        clinic.slots.append(
            Slot(id=row["id"], starts_at=row["starts_at"], ends_at=row["ends_at"], capacity=row["capacity"],
                 free=row["free"])
        )  # fmt: skip
    bookings = [
        _booking({**dict(row), "year": today.year}, now)
        for row in await conn.fetch(queries.hc_member_bookings, member_id, benefit["id"], today.year)
    ]
    live = next((b for b in bookings if b.status in LIVE), None)
    return MemberView(
        benefit_code=benefit["code"], benefit_name_zh=benefit["name_zh"], benefit_name_en=benefit["name_en"],
        unmet=list(benefit["unmet"]), places=places, live=live,
        clinics=sorted(clinics.values(), key=lambda c: not c.in_my_town), bookings=bookings,
    )  # fmt: skip


async def places_of(
    conn: asyncpg.Connection | asyncpg.Pool, benefit_id: int, year: int, town: Any, now: datetime
) -> Places:
    """Places of a year at `now` (before the year's first hold: the benefit's yearly_quota)."""
    town_id = town["id"] if town is not None else None
    row = await conn.fetchrow(queries.hc_places, benefit_id, year, town_id, now)
    year_places = row["year_places"]
    town_places = row["town_places"]
    return Places(
        year=year,
        year_places=year_places,
        year_left=None if year_places is None else max(0, year_places - row["year_live"]),
        town_id=town_id,
        town_name=town["name"] if town is not None else None,
        town_places=town_places,
        town_left=None if town_places is None else max(0, town_places - row["town_live"]),
    )


async def year_figures(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, code: str, year: int, now: datetime
) -> YearFigures:
    """The year's places and bookings by status, and the towns' shares in the staff member's scope.

    Raises benefit_not_found."""
    benefit = await conn.fetchrow(queries.hc_benefit, code)
    if benefit is None:
        raise DomainError("benefit_not_found")
    row = await conn.fetchrow(queries.hc_year_figures, benefit["id"], year, now)
    if row is None:  # the year has not opened: nobody has booked yet
        return YearFigures(benefit_code=code, year=year, places=benefit["yearly_quota"], left=benefit["yearly_quota"])
    counts = {name: row[name] for name in ("held", "booked", "attended", "no_show", "cancelled", "expired")}
    taken = counts["held"] + counts["booked"] + counts["attended"]
    towns = [
        TownFigures(
            town_id=town["town_id"],
            town_name=town["town_name"],
            places=town["places"],
            live=town["live"],
            attended=town["attended"],
            left=max(0, town["places"] - town["live"]),
        )  # fmt: skip
        for town in await conn.fetch(queries.hc_town_figures, benefit["id"], year, now, scope_path(principal))
    ]
    places = row["places"]
    left = None if places is None else max(0, places - taken)
    return YearFigures(benefit_code=code, year=year, places=places, left=left, towns=towns, **counts)


def scope_path(principal: Principal) -> str:
    """The org path a staff member's clinics and towns lie under ('' for the federation)."""
    if principal.role == Role.ORG_REVIEWER:
        return principal.org_path or "/none/"
    return ""


async def clinics_for(conn: asyncpg.Connection | asyncpg.Pool, principal: Principal) -> list[dict[str, Any]]:
    """The clinics whose attendance this staff member marks."""
    return [dict(row) for row in await conn.fetch(queries.hc_clinics_in, scope_path(principal))]


async def clinic_day(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, clinic_id: int, code: str, day: date, now: datetime
) -> dict[str, Any]:
    """A clinic's slots on a local day with their bookings, for marking who came.

    Raises hc_clinic_not_found, forbidden (outside the staff member's subtree) or benefit_not_found."""
    clinic = await conn.fetchrow(queries.hc_clinic, clinic_id)
    if clinic is None:
        raise DomainError("hc_clinic_not_found")
    if principal.role not in MARKERS or not principal.may_see_org_path(clinic["org_path"]):
        raise DomainError("forbidden", "the clinic is outside your part of the tree")
    benefit = await conn.fetchrow(queries.hc_benefit, code)
    if benefit is None:
        raise DomainError("benefit_not_found")
    slots: dict[int, dict[str, Any]] = {}
    for row in await conn.fetch(queries.hc_clinic_day, clinic_id, benefit["id"], day, now):
        slot = slots.setdefault(
            row["slot_id"],
            {"id": row["slot_id"], "starts_at": row["starts_at"], "ends_at": row["ends_at"],
             "capacity": row["capacity"], "bookings": []},
        )  # fmt: skip
        if row["booking_id"] is not None:
            slot["bookings"].append({name: row[name] for name in (
                "booking_id", "status", "held_until", "member_name", "national_id_last4", "card_last4")})  # fmt: skip
    return {"clinic": dict(clinic), "benefit": dict(benefit), "day": day, "slots": list(slots.values())}


# ------------------------------------------------------------------ setting up clinics, slots and places


async def add_clinic(
    conn: asyncpg.Connection | asyncpg.Pool,
    name: str,
    org_id: int,
    *,
    address: str = "",
    latitude: float | None = None,
    longitude: float | None = None,
) -> int:
    """A new clinic of an org's subtree; its id."""
    return int(await conn.fetchval(queries.hc_insert_clinic, name, address, latitude, longitude, org_id))


async def add_slot(
    conn: asyncpg.Connection | asyncpg.Pool,
    clinic_id: int,
    benefit_id: int,
    starts_at: datetime,
    ends_at: datetime,
    capacity: int,
) -> int:
    """A dated slot of a clinic for a benefit; its id. Its year is the local year of its start."""
    row = await conn.fetchrow(queries.hc_insert_slot, clinic_id, benefit_id, starts_at, ends_at, capacity)
    return int(row["id"])


async def set_places(
    conn: asyncpg.Connection, benefit_id: int, year: int, places: int | None, towns: dict[int, int] | None = None
) -> None:
    """Set a year's places and, optionally, towns' shares {town org id: places}. Raises hc_not_a_town."""
    async with conn.transaction():
        await conn.execute(queries.hc_set_year_places, benefit_id, year, places)
        for town_id, town_places in (towns or {}).items():
            if await conn.fetchval(queries.hc_org_kind, town_id) != "town":
                raise DomainError("hc_not_a_town", town_id=town_id)
            await conn.execute(queries.hc_set_town_places, benefit_id, year, town_id, town_places)
