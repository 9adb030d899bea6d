"""The health-check API v1: members find a slot, hold, confirm and cancel; clinics mark who came."""

from __future__ import annotations

from zoneinfo import ZoneInfo

import msgspec
from litestar import Controller, get, post
from litestar.datastructures import State

from cards import health_checks
from cards.health_checks import DEFAULT_CODE, Booking, MemberView, YearFigures
from unioncard import clock
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError

MEMBER = requires(Role.MEMBER)
CLINIC_STAFF = requires(Role.FEDERATION_ADMIN, Role.ORG_REVIEWER)


class HoldIn(msgspec.Struct, forbid_unknown_fields=True):
    slot_id: int


def member_of(principal: Principal) -> int:
    if principal.member_id is None:
        raise DomainError("forbidden", "this is a member's")
    return principal.member_id


class HealthCheckController(Controller):
    path = "/api/benefits/v1/health-checks"
    tags = ["benefits: health checks"]

    @get("/slots", operation_id="healthCheckSlots", guards=[MEMBER])
    async def slots(self, principal: Principal, state: State, benefit: str = DEFAULT_CODE) -> MemberView:
        """Places left this year (overall and in the member's town), each clinic's next slots with free places,
        and the member's bookings this year. 404 benefit_not_found."""
        async with state.pool.acquire() as conn:
            return await health_checks.member_view(conn, member_of(principal), clock.now(), benefit)

    @get("/mine", operation_id="healthCheckMine", guards=[MEMBER])
    async def mine(self, principal: Principal, state: State, benefit: str = DEFAULT_CODE) -> list[Booking]:
        """The member's bookings this year, the newest first."""
        async with state.pool.acquire() as conn:
            view = await health_checks.member_view(conn, member_of(principal), clock.now(), benefit)
        return view.bookings

    @post("/holds", operation_id="healthCheckHold", guards=[MEMBER])
    async def hold(self, data: HoldIn, principal: Principal, state: State) -> Booking:
        """Hold a place in a slot for a few minutes (seconds_left); confirm it before it runs out.
        409 hc_quota_full, hc_town_quota_full, hc_slot_full, hc_slot_closed, hc_already_booked;
        422 benefit_not_eligible; 404 hc_slot_not_found."""
        async with state.pool.acquire() as conn:
            return await health_checks.hold(conn, member_of(principal), data.slot_id, clock.now())

    @post("/bookings/{booking_id:int}/confirm", operation_id="healthCheckConfirm", guards=[MEMBER], status_code=200)
    async def confirm(self, booking_id: int, principal: Principal, state: State) -> Booking:
        """Confirm a running hold; again on a booked one changes nothing. 409 hc_hold_expired, hc_not_confirmable."""
        async with state.pool.acquire() as conn:
            return await health_checks.confirm(conn, member_of(principal), booking_id, clock.now())

    @post("/bookings/{booking_id:int}/cancel", operation_id="healthCheckCancel", guards=[MEMBER], status_code=200)
    async def cancel(self, booking_id: int, principal: Principal, state: State) -> Booking:
        """Cancel a hold or a booking before its slot starts, freeing the place. 409 hc_not_cancellable."""
        async with state.pool.acquire() as conn:
            return await health_checks.cancel(conn, member_of(principal), booking_id, clock.now())

    @post(
        "/bookings/{booking_id:int}/attended",
        operation_id="healthCheckAttended",
        guards=[CLINIC_STAFF],
        status_code=200,
    )
    async def attended(self, booking_id: int, principal: Principal, state: State) -> Booking:
        """The member came: the place stays taken. From the slot's day on; audited. 403 outside your subtree;
        409 hc_not_markable."""
        async with state.pool.acquire() as conn:
            return await health_checks.mark(conn, principal, booking_id, "attended", clock.now())

    @post(
        "/bookings/{booking_id:int}/no-show",
        operation_id="healthCheckNoShow",
        guards=[CLINIC_STAFF],
        status_code=200,
    )
    async def no_show(self, booking_id: int, principal: Principal, state: State) -> Booking:
        """The member did not come: the place is freed. From the slot's day on; audited. 409 hc_not_markable."""
        async with state.pool.acquire() as conn:
            return await health_checks.mark(conn, principal, booking_id, "no_show", clock.now())

    @get("/quota", operation_id="healthCheckQuota", guards=[CLINIC_STAFF])
    async def quota(
        self, principal: Principal, state: State, benefit: str = DEFAULT_CODE, year: int | None = None
    ) -> YearFigures:
        """A year's places, bookings by status, and the towns' shares in your scope (default: this year)."""
        now = clock.now()
        chosen = year or now.astimezone(ZoneInfo(state.settings.timezone)).year
        return await health_checks.year_figures(state.pool, principal, benefit, chosen, now)
