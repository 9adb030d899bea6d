"""The settlement API v1 for batches and payouts: finance creates, approves and pays; a merchant reads its own."""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Controller, Request, Response, get, post
from litestar.datastructures import State
from litestar.params import Parameter

from settlement import batches
from settlement.batches import BatchIn, ConfirmPaidIn
from settlement.rails import BankFileRail, PayoutRail, rail_for
from unioncard.auth import Principal, Role, requires
from unioncard.errors import DomainError

FINANCE = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN)
READERS = requires(Role.FINANCE_OFFICER, Role.FEDERATION_ADMIN, Role.MERCHANT_ADMIN)


def app_rail(state: State) -> PayoutRail:
    """The app's payout rail, made once from its settings (a test may put its own in state.payout_rail first)."""
    rail: PayoutRail | None = state.get("payout_rail")
    if rail is None:
        rail = state.payout_rail = rail_for(state.settings)
    return rail


def bank_file_response(taken: batches.BankFile) -> Response[bytes]:
    headers = {"Content-Disposition": f'attachment; filename="{taken.filename}"'}
    return Response(taken.body, media_type="text/csv; charset=utf-8", headers=headers)


def _bank_file_rail(state: State) -> BankFileRail:
    rail = app_rail(state)
    if not isinstance(rail, BankFileRail):
        raise DomainError("conflict", f"the payout rail is {rail.name}: pay batches with POST …/batches/{{id}}/pay")
    return rail


class BatchController(Controller):
    path = "/api/settlement/v1"
    tags = ["settlement"]

    @post("/batches", operation_id="createSettlementBatch", guards=[FINANCE], status_code=201)
    async def create(self, data: BatchIn, principal: Principal, state: State) -> dict[str, Any]:
        """A draft batch of a reconciled claim's matched lines, some excluded with reasons."""
        async with state.pool.acquire() as conn:
            return await batches.create_batch(conn, principal, data)

    @get("/batches", operation_id="listSettlementBatches", guards=[READERS])
    async def list_batches(
        self,
        principal: Principal,
        state: State,
        merchant_id: int | None = None,
        after_id: Annotated[int, Parameter(ge=0)] = 0,
        limit: Annotated[int, Parameter(ge=1, le=batches.PAGE_LIMIT_MAX)] = 100,
    ) -> list[dict[str, Any]]:
        """Batches by id; a merchant's admin sees its own merchant's only."""
        async with state.pool.acquire() as conn:
            return await batches.list_batches(conn, principal, merchant_id, after_id, limit)

    @get("/batches/{batch_id:int}", operation_id="getSettlementBatch", guards=[READERS])
    async def get_batch(self, batch_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """The batch with its lines, clawbacks and payout instructions."""
        async with state.pool.acquire() as conn:
            return await batches.get_batch(conn, principal, batch_id)

    @post("/batches/{batch_id:int}/approve", operation_id="approveSettlementBatch", guards=[FINANCE], status_code=200)
    async def approve(self, batch_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Approve once: posts Dr merchant payable / Cr payouts:in_transit and opens the payout instruction."""
        rail = rail_for(state.settings)
        async with state.pool.acquire() as conn:
            return await batches.approve_batch(conn, principal, batch_id, rail.name)

    @post("/batches/{batch_id:int}/bank-file.csv", operation_id="takeSettlementBankFile", guards=[FINANCE],
          status_code=200)  # fmt: skip
    async def bank_file(self, batch_id: int, principal: Principal, state: State) -> Response[bytes]:
        """Take the bank's bulk-payment file: the batch's live instructions move on to transferred (a POST: it
        changes them). Taken again, the same lines in a file named …-copy.csv."""
        async with state.pool.acquire() as conn:
            taken = await batches.export_bank_file(conn, principal, batch_id, _bank_file_rail(state))
        return bank_file_response(taken)

    @post("/batches/{batch_id:int}/discard", operation_id="discardSettlementBatch", guards=[FINANCE],
          status_code=200)  # fmt: skip
    async def discard(self, batch_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Discard a draft batch; its claim may be batched again. An approved batch answers 409."""
        async with state.pool.acquire() as conn:
            return await batches.discard_batch(conn, principal, batch_id)

    @post("/batches/{batch_id:int}/pay", operation_id="paySettlementBatch", guards=[FINANCE], status_code=200)
    async def pay(self, batch_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Pay the batch through an API rail (Stripe Connect); again after no answer, with the same keys."""
        async with state.pool.acquire() as conn:
            return await batches.pay_batch(conn, principal, batch_id, app_rail(state))

    @post("/batches/{batch_id:int}/confirm-paid", operation_id="confirmSettlementPaid", guards=[FINANCE],
          status_code=200)  # fmt: skip
    async def confirm_paid(
        self, batch_id: int, principal: Principal, state: State, data: ConfirmPaidIn | None = None
    ) -> dict[str, Any]:
        """Finance saw the batch paid: every live instruction, or those named."""
        async with state.pool.acquire() as conn:
            return await batches.confirm_paid(conn, principal, batch_id, data or ConfirmPaidIn(), app_rail(state))

    @post("/payouts/bank-result", operation_id="importBankResult", guards=[FINANCE], status_code=200)
    async def bank_result(self, request: Request[Any, Any, Any], principal: Principal, state: State) -> dict[str, Any]:
        """The bank's result file as a CSV body (reference, status paid/failed, reason)."""
        body = await request.body()
        async with state.pool.acquire() as conn:
            return await batches.import_bank_result(conn, principal, body, _bank_file_rail(state))

    @post("/payouts/{instruction_id:int}/retry", operation_id="retryPayout", guards=[FINANCE], status_code=200)
    async def retry(self, instruction_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """A failed instruction again, as a new instruction."""
        rail = rail_for(state.settings)
        async with state.pool.acquire() as conn:
            return await batches.retry_instruction(conn, principal, instruction_id, rail.name)

    @post("/payouts/{instruction_id:int}/cancel", operation_id="cancelPayout", guards=[FINANCE], status_code=200)
    async def cancel(self, instruction_id: int, principal: Principal, state: State) -> dict[str, Any]:
        """Cancel an instruction not yet handed to the rail; the approval is reversed."""
        async with state.pool.acquire() as conn:
            return await batches.cancel_instruction(conn, principal, instruction_id)
