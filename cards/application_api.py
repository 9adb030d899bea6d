"""The benefits API v1 for grant applications: members apply and follow theirs; reviewers decide in their subtree."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from cards import applications
from cards.application_rules import ApplicationIn, ApproveIn, RejectIn
from unioncard import clock
from unioncard.auth import Principal, Role, requires

MEMBER = requires(Role.MEMBER)
REVIEWERS = requires(Role.ORG_REVIEWER, Role.FEDERATION_ADMIN)
READERS = requires(Role.ORG_REVIEWER, Role.FEDERATION_ADMIN, Role.FINANCE_OFFICER)


class ApplicationController(Controller):
    path = "/api/benefits/v1/applications"
    tags = ["benefits: applications"]
    guards = [MEMBER]

    @post("/", operation_id="submitApplication", status_code=201)
    async def submit(
        self, data: ApplicationIn, principal: Principal, state: State, request: Request[Any, Any, Any]
    ) -> Response[dict[str, Any]]:
        """Apply for a grant, dated today (local). An `Idempotency-Key` header makes a retry answer the first
        application, as the first answer did (201) with `Idempotent-Replayed: true`. 409 benefit_cap_reached,
        invoice_already_claimed, idempotency_key_reused; 422 benefit_not_eligible, validation_failed (with the
        fields)."""
        key = request.headers.get("idempotency-key")
        async with state.pool.acquire() as conn:
            found, replayed = await applications.submit(
                conn, principal, data, now=clock.now(), timezone=state.settings.timezone, idempotency_key=key
            )
        return Response(found, status_code=201, headers={"Idempotent-Replayed": "true"} if replayed else {})

    @get("/", operation_id="listMyApplications")
    async def mine(self, principal: Principal, state: State) -> list[dict[str, Any]]:
        """The signed-in member's applications, newest first."""
        async with state.pool.acquire() as conn:
            return await applications.list_mine(conn, principal)

    @get("/{application_id:int}", operation_id="getMyApplication")
    async def one(self, application_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """One of the member's applications with its history (paid or failed shows there)."""
        async with state.pool.acquire() as conn:
            return await applications.get_mine(conn, principal, application_id)


class ReviewController(Controller):
    path = "/api/benefits/v1/review/applications"
    tags = ["benefits: review"]

    @get("/", operation_id="listApplicationsForReview", guards=[READERS])
    async def inbox(
        self,
        principal: Principal,
        state: State,
        status: str | None = None,
        after_id: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=applications.PAGE_LIMIT_MAX)] = 100,
    ) -> dict[str, Any]:
        """Applications routed into the caller's org subtree (everywhere for the federation and finance), by id:
        `status` one status, `waiting` (submitted and under review: what waits for a decision), or none (all)."""
        async with state.pool.acquire() as conn:
            return await applications.list_for_review(conn, principal, status, after_id, limit)

    @get("/{application_id:int}", operation_id="getApplicationForReview", guards=[READERS])
    async def one(self, application_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """An application with its member (card masked), invoice and history; another subtree's is 403."""
        async with state.pool.acquire() as conn:
            return await applications.get_for_review(conn, principal, application_id)

    @post("/{application_id:int}/open", operation_id="openApplicationReview", guards=[REVIEWERS], status_code=200)
    async def open(self, application_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """submitted → under_review."""
        async with state.pool.acquire() as conn:
            return await applications.open_review(conn, principal, application_id, clock.now())

    @post("/{application_id:int}/approve", operation_id="approveApplication", guards=[REVIEWERS], status_code=200)
    async def approve(
        self, application_id: int, principal: Principal, state: State, data: ApproveIn | None = None
    ) -> dict[str, Any]:
        """Approve (an amount up to the one requested; none: as requested); posts the grant to the ledger."""
        async with state.pool.acquire() as conn:
            return await applications.approve(conn, principal, application_id, data or ApproveIn(), clock.now())

    @post("/{application_id:int}/reject", operation_id="rejectApplication", guards=[REVIEWERS], status_code=200)
    async def reject(self, application_id: int, data: RejectIn, principal: Principal, state: State) -> dict[str, Any]:
        """Reject with a reason; the invoice it named may be claimed again."""
        async with state.pool.acquire() as conn:
            return await applications.reject(conn, principal, application_id, data, clock.now())


def application_routes() -> list[Any]:
    """Every route of grant applications: the API, the member's pages and the reviewers' pages."""
    from cards.application_pages import ApplicationPages
    from cards.review_pages import ReviewPages

    return [ApplicationController, ReviewController, ApplicationPages, ReviewPages]
