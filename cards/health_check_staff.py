"""The clinic's side of health checks: the staff of a clinic's org subtree list its day and mark who came."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import asyncpg

from cards.health_check_figures import scope_path
from cards.health_checks import Booking, booking_of, queries
from unioncard import audit, clock
from unioncard.auth import Principal, Role
from unioncard.errors import DomainError

OUTCOMES = ("attended", "no_show")
MARKERS = frozenset({Role.FEDERATION_ADMIN, Role.ORG_REVIEWER})


def require_clinic_in_scope(principal: Principal, clinic_org_path: str) -> None:
    """Raises forbidden unless the staff member marks the clinics of this org path."""
    if principal.role not in MARKERS or not principal.may_see_org_path(clinic_org_path):
        raise DomainError("forbidden", "the clinic is outside your part of the tree")


async def mark(
    conn: asyncpg.Connection, principal: Principal, booking_id: int, outcome: str, now: datetime, timezone: str
) -> Booking:
    """The clinic marks a booking attended (the place stays taken) or no_show (the place is freed), from the
    slot's local day (in `timezone`) on; audited. Marking the same outcome again changes nothing.

    Raises validation_failed (another outcome), health_check_booking_not_found, forbidden (a clinic outside the
    staff member's subtree) or health_check_not_markable (not booked, or before the slot's day).
    """
    if outcome not in OUTCOMES:
        raise DomainError("validation_failed", f"outcome is one of {', '.join(OUTCOMES)}")
    async with conn.transaction():
        found = await conn.fetchrow(queries.hc_booking, booking_id)
        if found is None:
            raise DomainError("health_check_booking_not_found")
        require_clinic_in_scope(principal, found["clinic_org_path"])
        booking = await conn.fetchrow(queries.hc_lock_booking, booking_id)
        if booking["status"] != outcome:
            if booking["status"] != "booked":
                raise DomainError("health_check_not_markable", status=booking["status"])
            if clock.local_date(booking["starts_at"], timezone) > clock.local_date(now, timezone):
                raise DomainError("health_check_not_markable", reason="before_slot_day")
            await conn.execute(queries.hc_set_status, booking_id, outcome, now, principal.staff_user_id)
            await audit.record(
                conn, principal, f"health_check.{outcome}", f"health_check_booking:{booking_id}",
                member_id=found["member_id"], slot_id=found["slot_id"], clinic_id=found["clinic_id"],
            )  # fmt: skip
    return await booking_of(conn, booking_id, now)


async def clinics_for(conn: asyncpg.Connection | asyncpg.Pool, principal: Principal) -> list[dict[str, Any]]:
    """The clinics whose attendance this staff member marks."""
    return [dict(row) for row in await conn.fetch(queries.hc_clinics_in, scope_path(principal))]


async def clinic_day(
    conn: asyncpg.Connection | asyncpg.Pool, principal: Principal, clinic_id: int, code: str, day: date, now: datetime
) -> dict[str, Any]:
    """A clinic's slots on a local day with their bookings, for marking who came.

    Raises health_check_clinic_not_found, forbidden (outside the staff member's subtree) or benefit_not_found."""
    clinic = await conn.fetchrow(queries.hc_clinic, clinic_id)
    if clinic is None:
        raise DomainError("health_check_clinic_not_found")
    require_clinic_in_scope(principal, clinic["org_path"])
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
