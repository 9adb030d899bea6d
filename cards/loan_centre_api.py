"""The benefits API v1 for loan subsidy applications and service-centre bookings (members and reviewers), and the
admin API v1 that sets up the loan subsidy fund and the service centres (the federation admin)."""

from __future__ import annotations

from datetime import date
from typing import Annotated, Any, Literal, TypeVar

import msgspec
from litestar import Controller, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from cards import centres, loans
from cards.centres import BookingIn, CentreIn, CloseRoomIn, RoomIn
from cards.loans import DecisionIn, FundIn, FundTotalIn, LoanApplicationIn
from unioncard import clock
from unioncard.auth import Principal, Role, member_id_of, requires
from unioncard.errors import DomainError

MEMBER = requires(Role.MEMBER)
DECIDERS = requires(Role.FEDERATION_ADMIN, Role.ORG_REVIEWER)
ADMIN = requires(Role.FEDERATION_ADMIN)
Limit = Annotated[int, Parameter(ge=1, le=1000)]
LoanStatus = Literal["submitted", "approved", "rejected"]
Latitude = Annotated[float | None, Parameter(ge=-90, le=90, description="degrees, with longitude")]
Longitude = Annotated[float | None, Parameter(ge=-180, le=180, description="degrees, with latitude")]
Keyed = TypeVar("Keyed", LoanApplicationIn, BookingIn)
IdempotencyKey = Annotated[
    str | None,
    Parameter(header="Idempotency-Key", max_length=100, description="a retry answers the first (or the body's key)"),
]


def _keyed(data: Keyed, header: str | None) -> Keyed:
    """The body with the Idempotency-Key header as its key; both given must agree."""
    if header is None or header == data.idempotency_key:
        return data
    if data.idempotency_key is not None:
        message = "the Idempotency-Key header and idempotency_key differ"
        raise DomainError("validation_failed", message, errors=[{"field": "idempotency_key", "message": message}])
    return msgspec.structs.replace(data, idempotency_key=header)


def _created(body: dict[str, Any], replayed: bool) -> Response[dict[str, Any]]:
    """201 for a create and for its replay, which says so (the till's convention)."""
    return Response(body, status_code=201, headers={"Idempotent-Replayed": "true"} if replayed else {})


class LoanApplicationController(Controller):
    path = "/api/benefits/v1"
    tags = ["benefits"]

    @get("/loan-fund", operation_id="loanFund", guards=[requires(Role.MEMBER, *loans.DECIDERS, Role.FINANCE_OFFICER)])
    async def fund(self, state: State) -> dict[str, Any]:
        """The loan subsidy fund: its total, what approved subsidies drew, what remains."""
        return await loans.fund(state.pool)

    @post("/loan-applications", operation_id="applyForLoanSubsidy", guards=[MEMBER], status_code=201)
    async def apply(
        self, data: LoanApplicationIn, principal: Principal, state: State, idempotency_key: IdempotencyKey = None
    ) -> Response[dict[str, Any]]:
        """Apply for the subsidy of a loan; the subsidy is computed now and kept. A retry with the same key answers
        the first application (201, `Idempotent-Replayed: true`). 409 benefit_cap_reached; 422 validation_failed
        (errors: field, key, message), benefit_not_eligible."""
        found, replayed = await loans.apply(
            state.pool, member_id_of(principal), _keyed(data, idempotency_key), clock.now(), state.settings.timezone
        )
        return _created(found, replayed)

    @get("/loan-applications/mine", operation_id="myLoanApplications", guards=[MEMBER])
    async def mine(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        return await loans.member_applications(state.pool, member_id_of(principal))

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
        remains, loan_application_status_conflict when decided already; 403 outside the application's subtree."""
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
        self, principal: Principal, state: State, latitude: Latitude = None, longitude: Longitude = None
    ) -> list[dict[str, Any]]:
        """The open centres, nearest first: to the place given (both coordinates), else to the member's town."""
        place = centres.place_of(latitude, longitude)
        place = place or await centres.member_place(state.pool, member_id_of(principal))
        return await centres.centres_near(state.pool, place)

    @get("/{centre_id:int}/day", operation_id="serviceCentreDay")
    async def day(self, centre_id: int, principal: Principal, state: State, on: date) -> dict[str, Any]:
        """A centre's rooms on a day, each with its hour slots: free, taken, mine or past."""
        return await centres.centre_day(
            state.pool, centre_id, on, member_id_of(principal), clock.now(), state.settings.timezone
        )

    @post("/bookings", operation_id="bookRoom", status_code=201)
    async def book(
        self, data: BookingIn, principal: Principal, state: State, idempotency_key: IdempotencyKey = None
    ) -> Response[dict[str, Any]]:
        """Book whole hours of a room. A retry with the same key answers the first booking (201,
        `Idempotent-Replayed: true`). 409 room_already_booked when someone holds any of the hours."""
        found, replayed = await centres.book(
            state.pool, member_id_of(principal), _keyed(data, idempotency_key), clock.now(), state.settings.timezone
        )
        return _created(found, replayed)

    @get("/bookings", operation_id="myRoomBookings")
    async def mine(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        return await centres.member_bookings(state.pool, member_id_of(principal), clock.now())

    @post("/bookings/{booking_id:int}/cancel", operation_id="cancelRoomBooking", status_code=200)
    async def cancel(self, booking_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Cancel before it starts; the hours are free again."""
        return await centres.cancel(state.pool, member_id_of(principal), booking_id, clock.now())


class LoanCentreAdminController(Controller):
    """The federation admin sets up the loan subsidy fund and the service centres; every change is audited."""

    path = "/api/admin/v1"
    tags = ["admin: catalog"]
    guards = [ADMIN]

    @post("/loan-funds", operation_id="openLoanFund")
    async def open_fund(self, data: FundIn, principal: Principal, state: State) -> dict[str, Any]:
        """A loan-subsidy benefit's fund. 404 benefit_not_found; 409 loan_fund_exists; 422 validation_failed."""
        return await loans.open_fund(state.pool, principal, data)

    @post("/loan-funds/{benefit_id:int}/total", operation_id="setLoanFundTotal", status_code=200)
    async def set_total(self, benefit_id: int, data: FundTotalIn, principal: Principal, state: State) -> dict[str, Any]:
        """Change the fund's total. 409 loan_fund_below_drawn (with drawn_minor); 404 loan_fund_not_found."""
        return await loans.set_fund_total(state.pool, principal, benefit_id, data)

    @post("/centres", operation_id="openServiceCentre")
    async def open_centre(self, data: CentreIn, principal: Principal, state: State) -> dict[str, Any]:
        """A service centre with its rooms. 404 not_found (org); 422 validation_failed (errors: field, message)."""
        return await centres.open_centre(state.pool, principal, data)

    @get("/centres/{centre_id:int}", operation_id="getServiceCentre")
    async def centre(self, centre_id: int, state: State) -> dict[str, Any]:
        """A centre, open or closed, with all its rooms."""
        return await centres.centre_admin(state.pool, centre_id)

    @post("/centres/{centre_id:int}/rooms", operation_id="addServiceRoom")
    async def add_room(self, centre_id: int, data: RoomIn, principal: Principal, state: State) -> dict[str, Any]:
        """A room of an open centre. 404 centre_not_found; 409 room_name_taken."""
        return await centres.add_room(state.pool, principal, centre_id, data)

    @post("/rooms/{room_id:int}/close", operation_id="closeServiceRoom", status_code=200)
    async def close_room(
        self, room_id: int, principal: Principal, state: State, data: CloseRoomIn | None = None
    ) -> dict[str, Any]:
        """Close a room to bookings. 409 room_has_bookings (with upcoming) unless cancel_bookings; the answer says
        how many bookings were cancelled. Closing a closed room changes nothing."""
        return await centres.close_room(state.pool, principal, room_id, data or CloseRoomIn(), clock.now())


def loan_centre_routes() -> list[Any]:
    """Everything of the loan subsidy and the service centres that app.py registers: APIs and pages."""
    from cards.centre_pages import centre_page_routes
    from cards.loan_pages import loan_page_routes

    return [
        LoanApplicationController, CentreController, LoanCentreAdminController, *loan_page_routes(),
        *centre_page_routes(),
    ]  # fmt: skip
