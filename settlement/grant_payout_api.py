"""The benefits API v1 for grant payouts: finance disburses approved grants, takes the bank file, confirms them paid."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from settlement import grant_payouts
from settlement.batch_api import app_rail, bank_file_response
from settlement.grant_payouts import DisburseIn, GrantConfirmIn
from unioncard import clock
from unioncard.auth import Principal, Role, requires

FINANCE = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN)


class GrantPayoutController(Controller):
    path = "/api/benefits/v1/grant-payouts"
    tags = ["benefits: grant payouts"]
    guards = [FINANCE]

    @post("/", operation_id="disburseGrants", status_code=200)
    async def disburse(self, principal: Principal, state: State, data: DisburseIn | None = None) -> dict[str, Any]:
        """Open a payout for every approved grant (or those named; a failed one again only when named) and post
        it; again, nothing more. The bank-file rail only: another answers 502 rail_unavailable."""
        async with state.pool.acquire() as conn:
            return await grant_payouts.disburse(conn, principal, data or DisburseIn(), app_rail(state), clock.now())

    @get("/", operation_id="listGrantPayouts")
    async def list_payouts(
        self,
        principal: Principal,
        state: State,
        status: str | None = None,
        bank_file_id: int | None = None,
        after_id: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=grant_payouts.PAGE_LIMIT_MAX)] = 100,
    ) -> list[dict[str, Any]]:
        """Grant payouts by id, of a status and a bank file or all."""
        async with state.pool.acquire() as conn:
            return await grant_payouts.list_payouts(conn, principal, status, bank_file_id, after_id, limit)

    @post("/bank-file.csv", operation_id="takeGrantBankFile", status_code=200)
    async def bank_file(self, principal: Principal, state: State) -> Response[bytes]:
        """Take the bank's bulk-payment file of every payout not yet in one (a POST: they move on to transferred
        and their applications to disbursed). Nothing waiting: 409."""
        async with state.pool.acquire() as conn:
            taken = await grant_payouts.take_bank_file(conn, principal, app_rail(state), clock.now())
        return bank_file_response(taken)

    @post("/bank-files/{file_id:int}/copy.csv", operation_id="copyGrantBankFile", status_code=200)
    async def bank_file_copy(self, file_id: int, principal: Principal, state: State) -> Response[bytes]:
        """A bank file taken before, again (named …-copy.csv); nothing moves."""
        async with state.pool.acquire() as conn:
            taken = await grant_payouts.copy_bank_file(conn, principal, file_id, app_rail(state))
        return bank_file_response(taken)

    @post("/confirm-paid", operation_id="confirmGrantPayoutsPaid", status_code=200)
    async def confirm_paid(self, data: GrantConfirmIn, principal: Principal, state: State) -> dict[str, Any]:
        """Finance saw these payouts paid (payout_ids, or the transferred ones of bank_file_id); again: unchanged."""
        async with state.pool.acquire() as conn:
            return await grant_payouts.confirm_paid(conn, principal, data, app_rail(state), clock.now())

    @post("/bank-result", operation_id="importGrantBankResult", status_code=200)
    async def bank_result(self, request: Request[Any, Any, Any], principal: Principal, state: State) -> dict[str, Any]:
        """The bank's result file for grant payouts as a CSV body (reference, status paid/failed, reason)."""
        body = await request.body()
        async with state.pool.acquire() as conn:
            return await grant_payouts.import_bank_result(conn, principal, body, app_rail(state), clock.now())


def grant_payout_routes() -> list[Any]:
    """The grant payout API and finance's grants page."""
    from settlement.grant_payout_pages import GrantPayoutPages

    return [GrantPayoutController, GrantPayoutPages]
