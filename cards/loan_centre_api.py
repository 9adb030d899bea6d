"""The benefits API v1 for loan subsidy applications and service-centre bookings (members and reviewers)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal

from litestar import Controller, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from cards import centres, loans
from cards.centres import BookingIn
from cards.loans import DecisionIn, LoanApplicationIn
from unioncard import clock
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError

MEMBER = requires(Role.MEMBER)
DECIDERS = requires(Role.FEDERATION_ADMIN, Role.ORG_REVIEWER)
Limit = Annotated[int, Parameter(ge=1, le=1000)]
LoanStatus = Literal["submitted", "approved", "rejected"]


def _member_id(principal: Principal) -> int:
    if principal.member_id is None:
        raise DomainError("forbidden")
    return principal.member_id


class LoanApplicationController(Controller):
    path = "/api/benefits/v1"
    tags = ["benefits"]

    @get("/loan-fund", operation_id="loanFund", guards=[requires(Role.MEMBER, *loans.DECIDERS, Role.FINANCE_OFFICER)])
    async def fund(self, state: State) -> dict[str, Any]:
        """The loan subsidy fund: its total, what approved subsidies drew, what remains."""
        return await loans.fund(state.pool)

    @post("/loan-applications", operation_id="applyForLoanSubsidy", guards=[MEMBER])
    async def apply(self, data: LoanApplicationIn, principal: Principal, state: State) -> dict[str, Any]:
        """Apply for the subsidy of a loan; the subsidy is computed now and kept. An idempotency_key replays."""
        return await loans.apply(state.pool, _member_id(principal), data, clock.now(), state.settings.timezone)

    @get("/loan-applications/mine", operation_id="myLoanApplications", guards=[MEMBER])
    async def mine(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        return await loans.member_applications(state.pool, _member_id(principal))

    @get("/loan-applications", operation_id="loanApplicationsToReview", guards=[DECIDERS])
    async def to_review(
        self, principal: Principal, state: State, status: LoanStatus | None = None, limit: Limit = 100
    ) -> list[dict[str, Any]]:
        """The applications the caller may decide: the federation all, a reviewer those of their subtree."""
        return await loans.applications_to_review(state.pool, principal, status, limit)

    @post("/loan-applications/{application_id:int}/approve", operation_id="approveLoanSubsidy", guards=[DECIDERS],
          status_code=200)  # fmt: skip
    async def approve(
        self, application_id: int, principal: Principal, state: State, data: DecisionIn | None = None
    ) -> dict[str, Any]:
        """Approve: the subsidy is drawn from the fund and posted. 409 loan_fund_exhausted when too little
        remains; 403 for a reviewer outside the application's subtree."""
        note = data.note if data else ""
        return await loans.approve(state.pool, principal, application_id, note, clock.now())

    @post("/loan-applications/{application_id:int}/reject", operation_id="rejectLoanSubsidy", guards=[DECIDERS],
          status_code=200)  # fmt: skip
    async def reject(self, application_id: int, data: DecisionIn, principal: Principal, state: State) -> dict[str, Any]:
        """Reject with a reason (note); the fund is untouched."""
        return await loans.reject(state.pool, principal, application_id, data.note, clock.now())


class CentreController(Controller):
    path = "/api/benefits/v1/centres"
    tags = ["benefits"]
    guards = [MEMBER]

    @get("/", operation_id="serviceCentres")
    async def list_centres(
        self, principal: Principal, state: State, latitude: float | None = None, longitude: float | None = None
    ) -> list[dict[str, Any]]:
        """The open centres, nearest first: to the place given, else to the member's town."""
        place = (latitude, longitude) if latitude is not None and longitude is not None else None
        place = place or await centres.member_place(state.pool, _member_id(principal))
        return await centres.centres_near(state.pool, place)

    @get("/{centre_id:int}/day", operation_id="serviceCentreDay")
    async def day(self, centre_id: int, principal: Principal, state: State, on: date) -> dict[str, Any]:
        """A centre's rooms on a day, each with its hour slots: free, taken, mine or past."""
        return await centres.centre_day(
            state.pool, centre_id, on, _member_id(principal), clock.now(), state.settings.timezone
        )

    @post("/bookings", operation_id="bookRoom")
    async def book(self, data: BookingIn, principal: Principal, state: State) -> dict[str, Any]:
        """Book whole hours of a room. 409 room_already_booked when someone holds any of them."""
        return await centres.book(state.pool, _member_id(principal), data, clock.now(), state.settings.timezone)

    @get("/bookings", operation_id="myRoomBookings")
    async def mine(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        return await centres.member_bookings(state.pool, _member_id(principal), clock.now())

    @post("/bookings/{booking_id:int}/cancel", operation_id="cancelRoomBooking", status_code=200)
    async def cancel(self, booking_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Cancel before it starts; the hours are free again."""
        return await centres.cancel(state.pool, _member_id(principal), booking_id, clock.now())


def loan_centre_routes() -> list[Any]:
    """Everything of the loan subsidy and the service centres that app.py registers: APIs and pages."""
    from cards.centre_pages import centre_page_routes
    from cards.loan_pages import loan_page_routes

    return [LoanApplicationController, CentreController, *loan_page_routes(), *centre_page_routes()]
