"""Setting up health checks (the federation admin): a year's places and the towns' shares, clinics, and their
dated slots in bulk. Each change is audited; a refused one changes nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Annotated, Any

import asyncpg
import msgspec

from cards.health_check_figures import YearFigures, year_figures
from cards.health_checks import DEFAULT_CODE, queries
from unioncard import audit, errors
from unioncard.auth import Principal
from unioncard.errors import DomainError

DAYS_MAX = 366  # slots of at most a year in one call
SLOT_YEARS = (2000, 2999)  # as health_check_years allows

errors.extend(
    {
        "health_check_not_a_town": (422, "名额只能分配到镇（街道）", "Places are shared out to towns only"),
        "health_check_places_below_used": (
            409, "全年名额不能少于已占用的名额", "The year's places cannot be fewer than those already taken"
        ),
        "health_check_shares_over_places": (
            409, "各镇（街道）分配的名额合计超过全年名额", "The towns' shares add up to more than the year's places"
        ),
        "health_check_share_below_used": (
            409, "镇（街道）的名额不能少于已占用的名额", "A town's share cannot be fewer than the places it has taken"
        ),
    }
)  # fmt: skip

Id = Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]
PlaceCount = Annotated[int, msgspec.Meta(ge=0, le=10_000_000)]
BenefitCode = Annotated[str, msgspec.Meta(min_length=1, max_length=40)]


class TownShareIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    town_id: Id
    places: PlaceCount


class YearIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """A year's places (None: no cap beyond the slots) and the shares of the towns listed; the shares of towns
    not listed stay as they are."""

    places: PlaceCount | None
    towns: list[TownShareIn] = []
    benefit: BenefitCode = DEFAULT_CODE


class ClinicIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    name: Annotated[str, msgspec.Meta(min_length=1, max_length=100)]
    org_id: Id
    """The org whose subtree's staff mark who came."""
    address: Annotated[str, msgspec.Meta(max_length=200)] = ""
    latitude: Annotated[float, msgspec.Meta(ge=-90, le=90)] | None = None
    longitude: Annotated[float, msgspec.Meta(ge=-180, le=180)] | None = None


class SlotsIn(msgspec.Struct, forbid_unknown_fields=True, kw_only=True):
    """Slots on every local day from first_day to last_day whose ISO weekday (1 Monday … 7 Sunday) is listed,
    one starting at each local hour listed, `minutes` long, with `capacity` places each."""

    first_day: date
    last_day: date
    hours: Annotated[list[Annotated[int, msgspec.Meta(ge=0, le=23)]], msgspec.Meta(min_length=1, max_length=24)]
    capacity: Annotated[int, msgspec.Meta(ge=1, le=1000)]
    minutes: Annotated[int, msgspec.Meta(ge=5, le=720)] = 60
    weekdays: Annotated[list[Annotated[int, msgspec.Meta(ge=1, le=7)]], msgspec.Meta(min_length=1, max_length=7)] = (
        msgspec.field(default_factory=lambda: [1, 2, 3, 4, 5])
    )
    benefit: BenefitCode = DEFAULT_CODE


def _invalid(field: str, message: str) -> DomainError:
    return DomainError("validation_failed", message, errors=[{"field": field, "message": message}])


async def _benefit_id(conn: asyncpg.Connection, code: str) -> int:
    benefit = await conn.fetchrow(queries.hc_benefit, code)
    if benefit is None:
        raise DomainError("benefit_not_found")
    return int(benefit["id"])


# ------------------------------------------------------------------ places


async def set_year(
    conn: asyncpg.Connection, principal: Principal, year: int, data: YearIn, now: datetime
) -> YearFigures:
    """Set a year's places and the listed towns' shares, audited; the year's figures after it.

    Under the year's lock (which every hold takes first) the places taken cannot grow, so the checks hold.
    Raises benefit_not_found, validation_failed (a town twice), health_check_not_a_town,
    health_check_places_below_used, health_check_share_below_used or health_check_shares_over_places.
    """
    if not SLOT_YEARS[0] <= year <= SLOT_YEARS[1]:
        raise _invalid("year", f"a year from {SLOT_YEARS[0]} to {SLOT_YEARS[1]}")
    shares = {town.town_id: town.places for town in data.towns}
    if len(shares) != len(data.towns):
        raise _invalid("towns", "a town is listed twice")
    async with conn.transaction():
        benefit_id = await _benefit_id(conn, data.benefit)
        await conn.execute(queries.hc_open_year, benefit_id, year)
        before = await conn.fetchval(queries.hc_lock_year, benefit_id, year)
        for town_id in sorted(shares):
            if await conn.fetchval(queries.hc_org_kind, town_id) != "town":
                raise DomainError("health_check_not_a_town", town_id=town_id)
        used = {row["town_id"]: row["live"] for row in await conn.fetch(queries.hc_live_by_town, benefit_id, year, now)}
        taken = sum(used.values())
        if data.places is not None and data.places < taken:
            raise DomainError("health_check_places_below_used", places_taken=taken)
        for town_id, places in sorted(shares.items()):
            if places < used.get(town_id, 0):
                raise DomainError("health_check_share_below_used", town_id=town_id, places_taken=used[town_id])
        all_shares = {**dict(await conn.fetch(queries.hc_town_shares, benefit_id, year)), **shares}
        if data.places is not None and sum(all_shares.values()) > data.places:
            raise DomainError("health_check_shares_over_places", shares_total=sum(all_shares.values()))
        await conn.execute(queries.hc_set_year_places, benefit_id, year, data.places)
        for town_id, places in sorted(shares.items()):
            await conn.execute(queries.hc_set_town_places, benefit_id, year, town_id, places)
        await audit.record(
            conn, principal, "health_check.year_set", f"health_check_year:{benefit_id}:{year}",
            places=data.places, places_before=before, towns={str(t): p for t, p in sorted(shares.items())},
        )  # fmt: skip
        return await year_figures(conn, principal, data.benefit, year, now)


# ------------------------------------------------------------------ clinics and slots


async def add_clinic(conn: asyncpg.Connection, principal: Principal, data: ClinicIn) -> dict[str, Any]:
    """A new clinic of an org's subtree, audited. Raises validation_failed (one coordinate without the other)
    or not_found (no such org)."""
    if (data.latitude is None) != (data.longitude is None):
        raise _invalid("longitude" if data.longitude is None else "latitude", "both coordinates or neither")
    async with conn.transaction():
        try:
            clinic_id = await conn.fetchval(
                queries.hc_insert_clinic, data.name, data.address, data.latitude, data.longitude, data.org_id
            )
        except asyncpg.ForeignKeyViolationError as exc:
            raise DomainError(
                "not_found", "no such org", errors=[{"field": "org_id", "message": "no such org"}]
            ) from exc
        await audit.record(conn, principal, "health_check.clinic_add", f"health_check_clinic:{clinic_id}",
                           name=data.name, org_id=data.org_id)  # fmt: skip
        return dict(await conn.fetchrow(queries.hc_clinic, clinic_id))


def slot_days(data: SlotsIn) -> list[date]:
    """The days of the range whose weekday is asked for. Raises validation_failed."""
    if data.last_day < data.first_day:
        raise _invalid("last_day", "the range ends before it starts")
    if (data.last_day - data.first_day).days >= DAYS_MAX:
        raise _invalid("last_day", f"at most {DAYS_MAX} days at once")
    if not (SLOT_YEARS[0] <= data.first_day.year and data.last_day.year <= SLOT_YEARS[1]):
        raise _invalid("first_day", f"days from {SLOT_YEARS[0]} to {SLOT_YEARS[1]}")
    hours = sorted(data.hours)
    if len(set(hours)) != len(hours) or len(set(data.weekdays)) != len(data.weekdays):
        raise _invalid("hours" if len(set(hours)) != len(hours) else "weekdays", "listed twice")
    if any((later - earlier) * 60 < data.minutes for earlier, later in zip(hours, hours[1:], strict=False)):
        raise _invalid("minutes", "a slot would run into the next one")
    span = (data.last_day - data.first_day).days + 1
    days = (data.first_day + timedelta(days=n) for n in range(span))
    return [day for day in days if day.isoweekday() in data.weekdays]


async def add_slots(conn: asyncpg.Connection, principal: Principal, clinic_id: int, data: SlotsIn) -> dict[str, Any]:
    """A clinic's slots for a range of days (see SlotsIn), audited. Idempotent: a slot the clinic already has
    for the benefit at the same start is kept as it is and counted as existing.

    Raises validation_failed, health_check_clinic_not_found or benefit_not_found.
    """
    days = slot_days(data)
    async with conn.transaction():
        if await conn.fetchrow(queries.hc_clinic, clinic_id) is None:
            raise DomainError("health_check_clinic_not_found")
        benefit_id = await _benefit_id(conn, data.benefit)
        created = await conn.fetch(
            queries.hc_insert_slots, clinic_id, benefit_id, data.first_day, data.last_day, data.weekdays,
            data.hours, data.minutes, data.capacity,
        )  # fmt: skip
        result = {"clinic_id": clinic_id, "benefit": data.benefit, "created": len(created),
                  "existing": len(days) * len(data.hours) - len(created)}  # fmt: skip
        await audit.record(
            conn, principal, "health_check.slots_add", f"health_check_clinic:{clinic_id}", **result,
            first_day=data.first_day.isoformat(), last_day=data.last_day.isoformat(), hours=sorted(data.hours),
            weekdays=sorted(data.weekdays), minutes=data.minutes, capacity=data.capacity,
        )  # fmt: skip
    return result
