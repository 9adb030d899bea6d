"""The settlement API v1: merchants submit claims; finance reconciles and reads them."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from settlement import service
from unioncard.auth import Principal, Role, requires

SUBMITTERS = requires(Role.MERCHANT_ADMIN, Role.TERMINAL)
READERS = requires(Role.MERCHANT_ADMIN, Role.TERMINAL, Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN)
RECONCILERS = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN)

Period = Annotated[str | None, Parameter(query="period", description="YYYY-MM; default: the first line's month")]
Limit = Annotated[int, Parameter(query="limit", ge=1, le=service.PAGE_LIMIT_MAX)]


class ClaimController(Controller):
    path = "/api/settlement/v1/claims"
    tags = ["settlement"]

    @post("/", operation_id="submitClaim", guards=[SUBMITTERS], status_code=201)
    async def submit(
        self, request: Request[Any, Any, Any], principal: Principal, state: State, period: Period = None
    ) -> dict[str, Any]:
        """A claim as JSON, or as a CSV body (Content-Type text/csv); stored and reconciled, or rejected whole."""
        body = await request.body()
        async with state.pool.acquire() as conn:
            return await service.submit_claim_body(
                conn, principal, body, request.headers.get("content-type", ""), period, state.settings.timezone
            )

    @get("/{claim_id:int}", operation_id="getClaim", guards=[READERS])
    async def get_claim(self, claim_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """The claim with lines, amounts and union shares per class, and its latest run."""
        async with state.pool.acquire() as conn:
            return await service.get_claim(conn, principal, claim_id)

    @get("/{claim_id:int}/lines", operation_id="listClaimLines", guards=[READERS])
    async def lines(
        self,
        claim_id: int,
        principal: Principal,
        state: State,
        line_class: Annotated[str | None, Parameter(query="class")] = None,
        after_line: Annotated[int, Parameter(query="after_line", ge=0)] = 0,
        limit: Limit = 100,
    ) -> dict[str, Any]:
        """A page of the claim's lines, of one class or all, after a line number."""
        async with state.pool.acquire() as conn:
            return await service.list_lines(
                conn, principal, claim_id, line_class=line_class, after_line=after_line, limit=limit
            )

    @get("/{claim_id:int}/unclaimed", operation_id="listUnclaimedSales", guards=[READERS])
    async def unclaimed(
        self, claim_id: int, principal: Principal, state: State, after: str | None = None, limit: Limit = 100
    ) -> dict[str, Any]:
        """The period's sales that no line of the claim names."""
        async with state.pool.acquire() as conn:
            return await service.list_unclaimed(conn, principal, claim_id, after=after, limit=limit)

    @get("/{claim_id:int}/results.csv", operation_id="exportClaimResults", guards=[READERS])
    async def results_csv(self, claim_id: int, principal: Principal, state: State) -> Response[bytes]:
        """Every line with its class, as CSV."""
        async with state.pool.acquire() as conn:
            body = await service.export_results(conn, principal, claim_id)
        headers = {"Content-Disposition": f'attachment; filename="claim-{claim_id}-results.csv"'}
        return Response(body, media_type="text/csv; charset=utf-8", headers=headers)

    @post("/{claim_id:int}/reconcile", operation_id="reconcileClaim", guards=[RECONCILERS], status_code=200)
    async def reconcile(
        self,
        claim_id: int,
        principal: Principal,
        state: State,
        tolerance_minor: Annotated[int | None, Parameter(query="tolerance_minor", ge=0)] = None,
    ) -> dict[str, Any]:
        """Classify the lines again (tolerance on the union share in fen, default 0) and record the run."""
        async with state.pool.acquire() as conn:
            return await service.reconcile_claim(conn, principal, claim_id, tolerance_minor)
