"""What members and staff read of health checks: the member's page (places, free slots, their bookings) and a
year's figures, each staff member's within their part of the org tree."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import asyncpg
import msgspec

from cards import catalog
from cards.health_checks import DEFAULT_CODE, LIVE, Booking, booking_from_row, queries
from unioncard import clock
from unioncard.auth import Principal, Role
from unioncard.errors import DomainError

SLOT_DAYS_AHEAD = 60  # how far ahead the member's page offers slots
SLOTS_PER_CLINIC = 8  # two mornings' worth
STATUSES = ("held", "booked", "attended", "no_show", "cancelled", "expired")


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
    """What the member's page shows: the benefit, what they lack for it, places, clinics, their bookings, and
    how long a hold lasts."""

    benefit_code: str
    benefit_name_zh: str
    benefit_name_en: str
    unmet: list[str]
    places: Places
    live: Booking | None
    clinics: list[ClinicSlots]
    bookings: list[Booking]
    hold_s: int


class TownFigures(msgspec.Struct, kw_only=True):
    town_id: int
    town_name: str
    places: int
    live: int
    attended: int
    left: int


class YearFigures(msgspec.Struct, kw_only=True):
    """A year at a glance for staff, within their scope.

    The federation (whole_year): the year's places and what is left of them, the bookings of everyone, every
    town's share. A reviewer: the bookings of the members of their subtree, the shares of the towns in it, and
    as places and left those shares summed (None when no town of theirs has a share: their members book from
    the year's places, which are not theirs to see)."""

    benefit_code: str
    year: int
    whole_year: bool
    places: int | None
    left: int | None
    held: int = 0
    booked: int = 0
    attended: int = 0
    no_show: int = 0
    cancelled: int = 0
    expired: int = 0
    towns: list[TownFigures] = msgspec.field(default_factory=list)


def scope_path(principal: Principal) -> str:
    """The org path a staff member's clinics, towns and members lie under ('' for the federation)."""
    if principal.role == Role.FEDERATION_ADMIN:
        return ""
    return principal.org_path or "/none/"


# ------------------------------------------------------------------ the member


async def member_view(
    conn: asyncpg.Connection, member_id: int, now: datetime, *, timezone: str, hold_s: int, code: str = DEFAULT_CODE
) -> MemberView:
    """The member's page at `now`: places left this year (overall and in their town), the next free slots of each
    clinic this year (their town's first), and their bookings this year. Raises benefit_not_found."""
    today = clock.local_date(now, timezone)
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
        booking_from_row({**dict(row), "year": today.year}, now)
        for row in await conn.fetch(queries.hc_member_bookings, member_id, benefit["id"], today.year)
    ]
    live = next((b for b in bookings if b.status in LIVE), None)
    return MemberView(
        benefit_code=benefit["code"], benefit_name_zh=benefit["name_zh"], benefit_name_en=benefit["name_en"],
        unmet=list(benefit["unmet"]), places=places, live=live,
        clinics=sorted(clinics.values(), key=lambda c: not c.in_my_town), bookings=bookings, hold_s=hold_s,
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


# ------------------------------------------------------------------ staff


async def year_figures(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, code: str, year: int, now: datetime
) -> YearFigures:
    """A year's figures at `now` within the staff member's scope (see YearFigures). Raises benefit_not_found."""
    benefit = await conn.fetchrow(queries.hc_benefit, code)
    if benefit is None:
        raise DomainError("benefit_not_found")
    scope = scope_path(principal)
    row = await conn.fetchrow(queries.hc_year_figures, benefit["id"], year, now, scope)
    counts = {name: row[name] if row is not None else 0 for name in STATUSES}
    towns = [
        TownFigures(
            town_id=town["town_id"],
            town_name=town["town_name"],
            places=town["places"],
            live=town["live"],
            attended=town["attended"],
            left=max(0, town["places"] - town["live"]),
        )  # fmt: skip
        for town in await conn.fetch(queries.hc_town_figures, benefit["id"], year, now, scope)
    ]
    if not scope:
        # Before the year's first hold its row does not exist: the benefit's yearly_quota, all of it left.
        places = row["places"] if row is not None else benefit["yearly_quota"]
        taken = counts["held"] + counts["booked"] + counts["attended"]
        left = None if places is None else max(0, places - taken)
    elif towns:
        places, left = sum(t.places for t in towns), sum(t.left for t in towns)
    else:
        places, left = None, None
    return YearFigures(
        benefit_code=code, year=year, whole_year=not scope, places=places, left=left, towns=towns, **counts
    )
