"""The health-check API v1: members find a slot, hold, confirm and cancel; clinics mark who came; the federation
admin sets up a year's places, clinics and slots."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from cards import health_check_admin, health_check_figures, health_check_staff, health_checks
from cards.health_check_admin import ClinicIn, SlotsIn, YearIn
from cards.health_check_figures import MemberView, YearFigures
from cards.health_checks import DEFAULT_CODE, Booking
from unioncard import clock
from unioncard.auth import Principal, Role, member_id_of, requires

MEMBER = requires(Role.MEMBER)
MEMBERS_ONLY = "this is a member's"
CLINIC_STAFF = requires(Role.FEDERATION_ADMIN, Role.ORG_REVIEWER)
ADMIN = requires(Role.FEDERATION_ADMIN)
Id = Annotated[int, Parameter(ge=1, le=2**63 - 1)]
Year = Annotated[int, Parameter(ge=2000, le=2999)]
OptionalYear = Annotated[int | None, Parameter(ge=2000, le=2999)]
Code = Annotated[str, Parameter(min_length=1, max_length=40)]


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    slot_id: Annotated[int, msgspec.Meta(ge=1, le=2**63 - 1)]


async def _member_view(principal: Principal, state: State, benefit: str) -> MemberView:
    settings = state.settings
    async with state.pool.acquire() as conn:
        return await health_check_figures.member_view(
            conn,
            member_id_of(principal, MEMBERS_ONLY),
            clock.now(),
            timezone=settings.timezone,
            hold_s=settings.health_check_hold_s,
            code=benefit,
        )


class HealthCheckController(Controller):
    path = "/api/benefits/v1/health-checks"
    tags = ["benefits: health checks"]

    @get("/slots", operation_id="healthCheckSlots", guards=[MEMBER])
    async def slots(self, principal: Principal, state: State, benefit: Code = DEFAULT_CODE) -> MemberView:
        """Places left this year (overall and in the member's town), each clinic's next slots with free places,
        and the member's bookings this year. 404 benefit_not_found."""
        return await _member_view(principal, state, benefit)

    @get("/mine", operation_id="healthCheckMine", guards=[MEMBER])
    async def mine(self, principal: Principal, state: State, benefit: Code = DEFAULT_CODE) -> list[Booking]:
        """The member's bookings this year, the newest first."""
        return (await _member_view(principal, state, benefit)).bookings

    @post("/holds", operation_id="healthCheckHold", guards=[MEMBER])
    async def hold(self, data: HoldIn, principal: Principal, state: State) -> Booking:
        """Hold a place in a slot for a few minutes (seconds_left); confirm it before it runs out.
        409 health_check_quota_full, health_check_town_quota_full, health_check_slot_full,
        health_check_slot_closed, health_check_already_booked; 422 benefit_not_eligible;
        404 health_check_slot_not_found."""
        settings = state.settings
        async with state.pool.acquire() as conn:
            return await health_checks.hold(
                conn, member_id_of(principal, MEMBERS_ONLY), data.slot_id, clock.now(),
                hold_s=settings.health_check_hold_s, timezone=settings.timezone,
            )  # fmt: skip

    @post("/bookings/{booking_id:int}/confirm", operation_id="healthCheckConfirm", guards=[MEMBER], status_code=200)
    async def confirm(self, booking_id: Id, principal: Principal, state: State) -> Booking:
        """Confirm a running hold; again on a booked one changes nothing. 409 health_check_hold_expired,
        health_check_not_confirmable."""
        async with state.pool.acquire() as conn:
            return await health_checks.confirm(conn, member_id_of(principal, MEMBERS_ONLY), booking_id, clock.now())

    @post("/bookings/{booking_id:int}/cancel", operation_id="healthCheckCancel", guards=[MEMBER], status_code=200)
    async def cancel(self, booking_id: Id, principal: Principal, state: State) -> Booking:
        """Cancel a hold or a booking before its slot starts, freeing the place. 409 health_check_not_cancellable."""
        async with state.pool.acquire() as conn:
            return await health_checks.cancel(conn, member_id_of(principal, MEMBERS_ONLY), booking_id, clock.now())

    @post("/bookings/{booking_id:int}/attended", operation_id="healthCheckAttended", guards=[CLINIC_STAFF],
          status_code=200)  # fmt: skip
    async def attended(self, booking_id: Id, principal: Principal, state: State) -> Booking:
        """The member came: the place stays taken. From the slot's day on; audited. 403 outside your subtree;
        409 health_check_not_markable."""
        async with state.pool.acquire() as conn:
            return await health_check_staff.mark(
                conn, principal, booking_id, "attended", clock.now(), state.settings.timezone
            )

    @post("/bookings/{booking_id:int}/no-show", operation_id="healthCheckNoShow", guards=[CLINIC_STAFF],
          status_code=200)  # fmt: skip
    async def no_show(self, booking_id: Id, principal: Principal, state: State) -> Booking:
        """The member did not come: the place is freed. From the slot's day on; audited.
        409 health_check_not_markable."""
        async with state.pool.acquire() as conn:
            return await health_check_staff.mark(
                conn, principal, booking_id, "no_show", clock.now(), state.settings.timezone
            )

    @get("/quota", operation_id="healthCheckQuota", guards=[CLINIC_STAFF])
    async def quota(
        self, principal: Principal, state: State, benefit: Code = DEFAULT_CODE, year: OptionalYear = None
    ) -> YearFigures:
        """A year's figures in your scope (default: this year): the federation sees the year's places and
        everyone's bookings, a reviewer their towns' shares and their members' bookings."""
        now = clock.now()
        chosen = year or clock.local_date(now, state.settings.timezone).year
        return await health_check_figures.year_figures(state.pool, principal, benefit, chosen, now)


class HealthCheckAdminController(Controller):
    path = "/api/admin/v1/health-checks"
    tags = ["admin: health checks"]
    guards = [ADMIN]

    @post("/years/{year:int}", operation_id="setHealthCheckYear", status_code=200)
    async def set_year(self, year: Year, data: YearIn, principal: Principal, state: State) -> YearFigures:
        """Set a year's places (null: no cap) and the listed towns' shares; audited. 409
        health_check_places_below_used, health_check_share_below_used, health_check_shares_over_places;
        422 health_check_not_a_town; 404 benefit_not_found."""
        async with state.pool.acquire() as conn:
            return await health_check_admin.set_year(conn, principal, year, data, clock.now())

    @post("/clinics", operation_id="addHealthCheckClinic")
    async def add_clinic(self, data: ClinicIn, principal: Principal, state: State) -> dict[str, Any]:
        """A clinic of an org's subtree (whose staff mark who came); audited. 404 not_found (no such org)."""
        async with state.pool.acquire() as conn:
            return await health_check_admin.add_clinic(conn, principal, data)

    @post("/clinics/{clinic_id:int}/slots", operation_id="addHealthCheckSlots", status_code=200)
    async def add_slots(self, clinic_id: Id, data: SlotsIn, principal: Principal, state: State) -> dict[str, Any]:
        """A clinic's slots over a range of days × local hours, `capacity` places each; audited. Sending it
        again adds nothing (created 0, the rest existing). 404 health_check_clinic_not_found, benefit_not_found."""
        async with state.pool.acquire() as conn:
            return await health_check_admin.add_slots(conn, principal, clinic_id, data)
