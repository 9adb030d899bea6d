"""Free yearly health checks: a member holds a place in a dated slot, confirms it or lets it go.

A member holds a place for settings.health_check_hold_s seconds, confirms it, and the clinic marks them
attended (the place stays taken) or not come (it is freed); a cancellation or a run-out hold frees it too. A
place is taken by a live booking: held while its hold lasts, booked or attended. A hold locks the year's row,
then the town's share, then the slot (always in that order), counts and inserts in one transaction, so the
year's places, a town's share and a slot's capacity are never exceeded, however many members book at once.
A confirmation takes the year's lock too, so a hold that another booking has counted as run out can never
be confirmed afterwards. platform/decisions/0007-health-check-quota.md says why.

The staff's side is in health_check_staff (attendance, clinic days) and health_check_admin (places, clinics,
slots); what members and staff read is in health_check_figures.
"""

from __future__ import annotations

import math
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import msgspec

from cards import catalog
from unioncard import clock, errors
from unioncard.db import Queries
from unioncard.errors import DomainError

queries = Queries(Path(__file__).parent / "health_check_queries.sql")

DEFAULT_CODE = "health_check"
LIVE = ("held", "booked", "attended")

errors.extend(
    {
        "health_check_quota_full": (409, "今年的体检名额已约满", "This year's health-check places are all taken"),
        "health_check_town_quota_full": (
            409, "本镇（街道）今年的体检名额已约满", "Your town's places this year are all taken"
        ),
        "health_check_slot_full": (409, "该时段已约满，请选择其他时段", "This slot is full: choose another one"),
        "health_check_slot_closed": (409, "该时段已不可预约", "This slot can no longer be booked"),
        "health_check_already_booked": (409, "您今年已有体检预约", "You already have a health check this year"),
        "health_check_hold_expired": (409, "保留时间已过，请重新选择时段", "The hold ran out: choose a slot again"),
        "health_check_not_confirmable": (409, "该预约不能确认", "This booking cannot be confirmed"),
        "health_check_not_cancellable": (409, "该预约不能取消", "This booking can no longer be cancelled"),
        "health_check_not_markable": (409, "该预约不能登记到检情况", "Attendance cannot be marked for this booking"),
        "health_check_slot_not_found": (404, "没有这个体检时段", "No such health-check slot"),
        "health_check_booking_not_found": (404, "没有这个体检预约", "No such health-check booking"),
        "health_check_clinic_not_found": (404, "没有这家体检机构", "No such clinic"),
    }
)  # fmt: skip


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


# ------------------------------------------------------------------ the member's steps


async def hold(
    conn: asyncpg.Connection, member_id: int, slot_id: int, now: datetime, *, hold_s: int, timezone: str
) -> Booking:
    """Hold a place in a slot for hold_s seconds (never past the slot's start); eligibility is the catalog's
    on the local date of `now` in `timezone`.

    Raises health_check_slot_not_found, health_check_slot_closed, benefit_not_eligible,
    health_check_already_booked, health_check_quota_full, health_check_town_quota_full or
    health_check_slot_full; nothing is changed then.
    """
    async with conn.transaction():
        slot = await conn.fetchrow(queries.hc_slot, slot_id)
        if slot is None:
            raise DomainError("health_check_slot_not_found")
        if slot["clinic_status"] != "active" or slot["starts_at"] <= now:
            raise DomainError("health_check_slot_closed")
        await catalog.require_eligible(conn, member_id, slot["benefit_code"], clock.local_date(now, timezone))
        benefit_id, year = slot["benefit_id"], slot["year"]
        town = await conn.fetchrow(queries.hc_member_town, member_id)
        town_id = town["id"] if town is not None else None
        await conn.execute(queries.hc_open_year, benefit_id, year)
        year_places = await conn.fetchval(queries.hc_lock_year, benefit_id, year)
        await conn.execute(queries.hc_sweep_year, benefit_id, year, now)
        mine = await conn.fetchrow(queries.hc_live_booking_of, member_id, benefit_id, year, now)
        if mine is not None:
            raise DomainError("health_check_already_booked", booking_id=mine["id"])
        town_quota = await conn.fetchrow(queries.hc_lock_town, benefit_id, year, town_id) if town_id else None
        await conn.fetchval(queries.hc_lock_slot, slot_id)
        live = await conn.fetchrow(queries.hc_live_counts, benefit_id, year, town_id, slot_id, now)
        if year_places is not None and live["year_live"] >= year_places:
            raise DomainError("health_check_quota_full")
        if town_quota is not None and live["town_live"] >= town_quota["places"]:
            raise DomainError("health_check_town_quota_full")
        if live["slot_live"] >= slot["capacity"]:
            raise DomainError("health_check_slot_full")
        held_until = min(now + timedelta(seconds=hold_s), slot["starts_at"])
        try:
            booking_id = await conn.fetchval(
                queries.hc_insert_hold, member_id, benefit_id, year, slot_id, town_id, now, held_until
            )
        except asyncpg.UniqueViolationError as exc:
            if exc.constraint_name == "health_check_bookings_live_key":
                raise DomainError("health_check_already_booked") from exc
            raise
    return await booking_of(conn, booking_id, now)


async def confirm(conn: asyncpg.Connection, member_id: int, booking_id: int, now: datetime) -> Booking:
    """Turn the member's running hold into a booking; confirming a booked one again changes nothing.

    Raises health_check_booking_not_found, health_check_hold_expired (the run-out hold is marked expired) or
    health_check_not_confirmable.
    """
    ran_out = False
    async with conn.transaction():
        found = await _own(conn, member_id, booking_id)
        # The year's lock first, as a hold takes it: a hold that counted this one as run out has marked it so.
        await conn.fetchval(queries.hc_lock_year, found["benefit_id"], found["year"])
        booking = await conn.fetchrow(queries.hc_lock_booking, booking_id)
        if booking["status"] == "held" and booking["held_until"] > now:
            await conn.execute(queries.hc_set_status, booking_id, "booked", now, None)
        elif booking["status"] == "held":
            await conn.execute(queries.hc_set_status, booking_id, "expired", booking["held_until"], None)
            ran_out = True
        elif booking["status"] == "expired":
            ran_out = True
        elif booking["status"] != "booked":
            raise DomainError("health_check_not_confirmable", status=booking["status"])
    if ran_out:
        raise DomainError("health_check_hold_expired")
    return await booking_of(conn, booking_id, now)


async def cancel(conn: asyncpg.Connection, member_id: int, booking_id: int, now: datetime) -> Booking:
    """Cancel the member's hold or booking before its slot starts, freeing the place; a hold that has run out
    is marked expired instead, and cancelling twice changes nothing.

    Raises health_check_booking_not_found or health_check_not_cancellable (attended, not come, or the slot has
    started).
    """
    async with conn.transaction():
        await _own(conn, member_id, booking_id)
        booking = await conn.fetchrow(queries.hc_lock_booking, booking_id)
        status = booking["status"]
        if status == "held" and booking["held_until"] <= now:
            await conn.execute(queries.hc_set_status, booking_id, "expired", booking["held_until"], None)
        elif status in ("held", "booked") and booking["starts_at"] > now:
            await conn.execute(queries.hc_set_status, booking_id, "cancelled", now, None)
        elif status not in ("cancelled", "expired"):
            raise DomainError("health_check_not_cancellable", status=status)
    return await booking_of(conn, booking_id, now)


async def _own(conn: asyncpg.Connection, member_id: int, booking_id: int) -> asyncpg.Record:
    found = await conn.fetchrow(queries.hc_booking, booking_id)
    if found is None or found["member_id"] != member_id:
        raise DomainError("health_check_booking_not_found")
    return found


async def sweep_expired(conn: asyncpg.Connection | asyncpg.Pool, now: datetime) -> int:
    """Mark every hold that ran out by `now` expired; how many. Never needed for correctness (a run-out hold
    counts for nothing), it keeps the statuses true; each hold sweeps its own year as well."""
    status = await conn.execute(queries.hc_sweep, now)
    return int(status.rsplit(" ", 1)[-1])


# ------------------------------------------------------------------ one booking


async def booking_of(conn: asyncpg.Connection | asyncpg.Pool, booking_id: int, now: datetime) -> Booking:
    """One booking. Raises health_check_booking_not_found."""
    row = await conn.fetchrow(queries.hc_booking, booking_id)
    if row is None:
        raise DomainError("health_check_booking_not_found")
    return booking_from_row(row, now)


def booking_from_row(row: Any, now: datetime) -> Booking:
    """A booking from a row of hc_booking or hc_member_bookings (with its year), as it stands at `now`."""
    fields = {name: row[name] for name in Booking.__struct_fields__ if name != "seconds_left"}
    # Rounded up, so a page counting these down never shows a hold over before the server does.
    left = math.ceil((row["held_until"] - now).total_seconds()) if row["status"] == "held" else 0
    if row["status"] == "held" and left <= 0:  # run out, whether or not a sweep has marked it yet
        fields.update(status="expired", closed_at=row["held_until"])
    return Booking(**fields, seconds_left=max(0, left))
